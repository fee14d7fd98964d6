/* TensorBoard event files, written natively: TFRecord framing (little-endian uint64 length,
 * masked CRC32C of the length, data, masked CRC32C of the data) around tensorboard.Event
 * messages (proto/tensorboard.proto, TensorFlow's field numbers). Scalars as simple_value, text as
 * a string tensor with the "text" plugin's metadata, a SessionLog START marker on resume (so
 * TensorBoard drops the orphaned tail of an interrupted run).
 *
 * Files: DIR/tb/<process>/events.out.tfevents.<unix time>.<host>[.<n>], one per writer. A writer
 * is thread-safe; events reach the file on tg_tb_flush (and on close). */
#ifndef TG_TB_H
#define TG_TB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct tg_tb tg_tb;

/* Creates DIR/tb/<process>/ (with parents) and a new event file in it, starting with the
 * file_version event. NULL with a message on failure. */
tg_tb *tg_tb_open(const char *run_dir, const char *process);
/* Path of the event file. */
const char *tg_tb_path(const tg_tb *tb);
int tg_tb_scalar(tg_tb *tb, const char *tag, int64_t step, double value);
/* A text summary (markdown, as TensorBoard's text plugin renders it). */
int tg_tb_text(tg_tb *tb, const char *tag, int64_t step, const char *text);
/* SessionLog START at `step`: TensorBoard discards events of earlier sessions at steps >= it. */
int tg_tb_session_start(tg_tb *tb, int64_t step);
int tg_tb_flush(tg_tb *tb);
void tg_tb_close(tg_tb *tb);

/* CRC32C (Castagnoli, the standard one: "123456789" -> 0xe3069283) and TFRecord's masking. */
uint32_t tg_crc32c(const void *data, size_t len);
uint32_t tg_crc32c_mask(uint32_t crc);
/* Frames one record into f; 0 or -1 with a message. */
int tg_tfrecord_write(FILE *f, const void *data, size_t len);
/* Reads the next record into *buf (realloc'd, *cap its capacity); returns 1 with *len set, 0 at
 * a clean end of file, 0 also at a truncated last record (a live writer's unfinished tail), and
 * -1 with a message on a CRC mismatch or an absurd length. */
int tg_tfrecord_read(FILE *f, uint8_t **buf, size_t *cap, size_t *len);

/* Reads an event file and calls fn for every scalar summary value; a truncated tail is not an
 * error (the file may be being written). 0 or -1 with a message (corrupt record or message). */
typedef void (*tg_tb_scalar_fn)(void *ud, const char *tag, int64_t step, double wall_time,
                                double value);
int tg_tb_read_scalars(const char *path, tg_tb_scalar_fn fn, void *ud);

#endif
