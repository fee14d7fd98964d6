/* replay.h5: the HDF5 checkpoint of the replay tables (layout in docs/formats.md, "Replay store").
 *
 * The file is always replaced atomically: written to replay.h5.tmp, fsync'd, renamed over
 * replay.h5, directory fsync'd. So at any instant replay.h5 is a complete, consistent file (or
 * absent); inserts between two checkpoints are made durable by the journal (journal.h). HDF5
 * itself is not crash-consistent while a file is being modified, which is why the live file is
 * never modified in place. */
#ifndef REPLAY_STORE_H
#define REPLAY_STORE_H

#include <hdf5.h>
#include <pthread.h>
#include <stdint.h>

#include "replay/table.h"

#define REPLAY_STORE_VERSION 1

typedef struct replay_store_meta {
    int S;
    uint64_t next_game_id; /* every game id in the file is below this */
    uint64_t journal_seq;  /* journal files with a sequence number >= this are newer than the file */
    double written;        /* wall-clock seconds */
    /* the sample rate limiter's counters when the file was written (replay.samples_per_insert
     * holds over the run's life, restarts included); has_limiter 0: a file written without them */
    int has_limiter;
    int64_t limiter_inserts, limiter_samples;
} replay_store_meta;

typedef struct replay_store_tables {
    replay_game **games[REPLAY_NTABLES];
    int64_t n[REPLAY_NTABLES];
} replay_store_tables;

/* Held around every HDF5 use of the replay server (checkpoint thread, results.h5), so that it is
 * safe with an HDF5 library built without thread safety. */
extern pthread_mutex_t replay_hdf5_mu;

/* Writes the tables to path atomically (path.tmp, fsync, rename, fsync of the directory). */
/* Scalar HDF5 attributes (also used by results.c); -1 with a message naming the attribute. */
int replay_h5_attr(hid_t obj, const char *name, hid_t type, const void *v);
int replay_h5_attr_str(hid_t obj, const char *name, const char *s);

int replay_store_write(const char *path, const replay_store_meta *meta, const replay_store_tables *t);
/* Reads a whole file; every table's games are new references (free with replay_store_tables_free).
 * -1 with a message naming the file and what is wrong on any inconsistency. */
int replay_store_read(const char *path, replay_store_meta *meta, replay_store_tables *t);
void replay_store_tables_free(replay_store_tables *t);

#endif
