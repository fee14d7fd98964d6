/* Reading what a run has written, for the learner's TensorBoard summaries and `tg status`:
 * results.h5 with its provenance attributes (replay/results.h writes it, atomically replaced, so
 * it can be read while the run goes on) and the processes' status files
 * (RUN_DIR/status/<process>.json, written atomically by tg_runinfo_write_status). */
#ifndef TG_RUNINFO_H
#define TG_RUNINFO_H

#include <jansson.h>
#include <stdint.h>

#include "common/fact.h"

typedef struct tg_result {
    char key[128];
    char target[32];        /* "n,m,p" */
    char arithmetic[16];
    int rank;
    double when;            /* wall-clock seconds (NAN if unknown) */
    uint64_t model_version;
    char actor[64];
    tg_fact *fact;          /* owned */
} tg_result;

/* Every factorization in results.h5 (0 entries if the file does not exist). */
int tg_results_load(const char *path, tg_result **out, int *n);
void tg_results_free(tg_result *r, int n);

/* Writes obj as RUN_DIR/status/<process>.json atomically (temporary name, rename). */
int tg_runinfo_write_status(const char *run_dir, const char *process, json_t *obj);

#endif
