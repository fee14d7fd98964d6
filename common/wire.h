/* Encoding and decoding of wire messages (proto/tensorgame.proto). Every message is one
 * Tg__Envelope. tg_wire_decode enforces a size limit and the protocol version, and rejects
 * malformed input with a message; callers answer peers with tg_wire_error. Arrays are checked
 * against their dtype and shape before use. */
#ifndef TG_WIRE_H
#define TG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/tensorgame.pb-c.h"

#define TG_PROTO_VERSION 1
#define TG_WIRE_MAX_DEFAULT (256u << 20) /* 256 MiB */

/* Decodes; NULL with a message if data is larger than max_bytes, not a valid Envelope, of
 * another protocol version, or has no body. Free with tg_wire_free. */
Tg__Envelope *tg_wire_decode(const void *data, size_t len, size_t max_bytes);
void tg_wire_free(Tg__Envelope *e);
/* Packs an envelope (its version is set here) into a malloc'd buffer; returns its length. */
size_t tg_wire_encode(Tg__Envelope *e, uint8_t **out);

/* Checks an Array: dtype, number of dimensions, and optionally each dimension (-1 = any), and
 * that data holds exactly prod(shape) elements. Returns 0 or -1 with a message naming `what`. */
int tg_array_check(const Tg__Array *a, Tg__DType dtype, int ndim, const int64_t *shape,
                   const char *what);
/* Fills an Array that points at (does not copy) data; shape copied into shape_buf. */
void tg_array_set(Tg__Array *a, Tg__DType dtype, int ndim, const int64_t *shape,
                  int64_t *shape_buf, const void *data, size_t nbytes);
size_t tg_dtype_size(Tg__DType t);

/* ZeroMQ helpers (libzmq sockets): send an envelope as one frame after optional routing frames
 * (identity for ROUTER sockets). Return 0 or -1 with a message. */
int tg_wire_send(void *sock, const void *ident, size_t ident_len, Tg__Envelope *e);
/* Sends an Error envelope with the given code and message. */
int tg_wire_send_error(void *sock, const void *ident, size_t ident_len, int code, const char *msg);

#endif
