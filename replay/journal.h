/* The insert journal: what makes an acknowledged game durable between two checkpoints of
 * replay.h5. Files RUN/replay.wal.<seq> (seq: 8 decimal digits), each a header "TGWAL001" and
 * records of: magic u32 0x4a524754, payload length u32, game id u64, CRC32C u32 (isa-l's
 * crc32_iscsi over id and payload), reserved u32, then the payload (the Game envelope as
 * received). All little-endian. A record that is cut short or fails its CRC at the end of a file
 * is the torn tail of a crash and is ignored; anywhere else it is corruption. */
#ifndef REPLAY_JOURNAL_H
#define REPLAY_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct replay_journal replay_journal;

/* Creates RUN/replay.wal.<seq> (must not exist). */
replay_journal *replay_journal_create(const char *run_dir, uint64_t seq);
/* Appends one record with write(2): survives the death of the process once this returns. */
int replay_journal_append(replay_journal *j, uint64_t id, const void *data, size_t len);
/* fdatasync: survives power loss once this returns. */
int replay_journal_sync(replay_journal *j);
uint64_t replay_journal_seq(const replay_journal *j);
uint64_t replay_journal_bytes(const replay_journal *j);
void replay_journal_close(replay_journal *j);

/* Sequence numbers of the journal files present in run_dir, ascending (malloc'd, *n of them). */
int replay_journal_list(const char *run_dir, uint64_t **seqs, int *n);
/* Calls fn for every intact record of file seq, in order. Returns the number of records, or -1
 * with a message on corruption before the tail (with skip_corrupt != 0: logs it, keeps what was
 * read before and returns the count). fn returning -1 stops with -1. */
typedef int (*replay_journal_fn)(void *ud, uint64_t id, const uint8_t *data, size_t len);
int64_t replay_journal_read(const char *run_dir, uint64_t seq, int skip_corrupt, replay_journal_fn fn, void *ud);
/* Deletes journal files with seq < below. */
int replay_journal_remove_below(const char *run_dir, uint64_t below);

#endif
