/* results.h5: every verified discovery of a run, in the factorization layout of common/factio.h
 * (so `tg verify/show` read it) plus provenance attributes; see docs/formats.md. The file is
 * rewritten atomically (temporary name, fsync, rename) on every addition: an earlier discovery is
 * never lost, a crash leaves the previous complete file. Best rank per (target, arithmetic). */
#ifndef REPLAY_RESULTS_H
#define REPLAY_RESULTS_H

#include <stdint.h>

#include "common/fact.h"

typedef struct replay_results replay_results;

/* Loads path if it exists (a corrupt file is an error naming it, unless reset_corrupt: then it
 * is moved aside to path.corrupt-<time> and a fresh file is started). */
replay_results *replay_results_open(const char *path, int reset_corrupt);
void replay_results_free(replay_results *r);
/* Adds a verified factorization (copied) and rewrites the file; returns its index (the index of
 * the identical one if it is already recorded: resent discoveries are stored once). */
int replay_results_add(replay_results *r, const tg_fact *f, uint64_t model_version, const char *actor, double when);
int replay_results_count(const replay_results *r);
/* Smallest rank recorded for the target in that arithmetic, 0 if none. */
int replay_results_best(const replay_results *r, tg_dims d, int mod2);
/* The i-th recorded factorization (0 <= i < count), owned by r; and when it was found. */
const tg_fact *replay_results_fact(const replay_results *r, int i);
double replay_results_when(const replay_results *r, int i);

#endif
