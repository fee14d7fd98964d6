/* Factorization files: the project's HDF5 format and JSON (see docs/formats.md).
 *
 * HDF5: one group per key at the root, the key being "n,m,p" or any name without '/'. Group
 * attributes: n, m, p, rank (int32), denominator (int64), arithmetic ("integer" | "mod2").
 * Datasets: u [rank, n*m], v [rank, m*p], w [rank, p*n], int64 numerators (row r = term r).
 * JSON: {"format": "tensorgame-factorizations", "version": 1, "factorizations": {KEY: {"n":..,
 * "m":.., "p":.., "rank":.., "denominator":.., "arithmetic":"integer", "u": [[..],..], "v":..,
 * "w":..}}}. Every reader checks names, shapes and types and reports what is wrong. */
#ifndef TG_FACTIO_H
#define TG_FACTIO_H

#include "common/fact.h"

typedef struct tg_fact_list {
    int n;
    char **keys;
    tg_fact **facts;
} tg_fact_list;

void tg_fact_list_free(tg_fact_list *l);
/* Adds (takes ownership of f; copies key). */
int tg_fact_list_add(tg_fact_list *l, const char *key, tg_fact *f);

/* Reads every factorization of an HDF5 or JSON file (chosen by content, not name). */
int tg_factio_read(const char *path, tg_fact_list *out);
/* Reads one key; -1 with a message naming the key and the keys present if it is missing. */
tg_fact *tg_factio_read_key(const char *path, const char *key);
/* Writes a whole list, replacing the file atomically (temporary name, then rename). Format by
 * extension: .json is JSON, anything else HDF5. */
int tg_factio_write(const char *path, const tg_fact_list *l);

#endif
