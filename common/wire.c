/* Wire messages: protobuf-c does the (de)serialisation; this file adds the limits and checks every
 * receiver needs before trusting a peer's bytes, and zero-copy ZeroMQ sends. */
#include "common/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"

Tg__Envelope *tg_wire_decode(const void *data, size_t len, size_t max_bytes)
{
    if (len > max_bytes) {
        tg_fail("message of %zu bytes is larger than the limit of %zu bytes", len, max_bytes);
        return NULL;
    }
    if (len > 0 && !data) {
        tg_fail("message has no data");
        return NULL;
    }
    Tg__Envelope *e = tg__envelope__unpack(NULL, len, (const uint8_t *)data);
    if (!e) {
        tg_fail("malformed message (%zu bytes are not a valid tg.Envelope)", len);
        return NULL;
    }
    if (e->version != TG_PROTO_VERSION) {
        tg_fail("message has protocol version %u, this program speaks version %d", e->version, TG_PROTO_VERSION);
        tg__envelope__free_unpacked(e, NULL);
        return NULL;
    }
    if (e->body_case == TG__ENVELOPE__BODY__NOT_SET) {
        tg_fail("message has no body (or a message type this program does not know)");
        tg__envelope__free_unpacked(e, NULL);
        return NULL;
    }
    return e;
}

void tg_wire_free(Tg__Envelope *e)
{
    if (e)
        tg__envelope__free_unpacked(e, NULL);
}

size_t tg_wire_encode(Tg__Envelope *e, uint8_t **out)
{
    e->version = TG_PROTO_VERSION;
    size_t n = tg__envelope__get_packed_size(e);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        *out = NULL;
        tg_fail("out of memory encoding a message of %zu bytes", n);
        return 0;
    }
    size_t m = tg__envelope__pack(e, buf);
    TG_ASSERT(m == n);
    *out = buf;
    return n;
}

size_t tg_dtype_size(Tg__DType t)
{
    switch (t) {
    case TG__DTYPE__F32:
    case TG__DTYPE__I32:
        return 4;
    case TG__DTYPE__I8:
    case TG__DTYPE__U8:
        return 1;
    case TG__DTYPE__I64:
    case TG__DTYPE__F64:
        return 8;
    case TG__DTYPE__BF16:
        return 2;
    default:
        return 0;
    }
}

static const char *dtype_name(Tg__DType t)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&tg__dtype__descriptor, (int)t);
    return v ? v->name : "unknown";
}

int tg_array_check(const Tg__Array *a, Tg__DType dtype, int ndim, const int64_t *shape, const char *what)
{
    if (!a)
        return tg_fail("%s: missing array", what);
    if (a->dtype != dtype)
        return tg_fail("%s: dtype %s (%d), expected %s", what, dtype_name(a->dtype), (int)a->dtype,
                       dtype_name(dtype));
    if (a->n_shape != (size_t)ndim)
        return tg_fail("%s: %zu dimensions, expected %d", what, a->n_shape, ndim);
    size_t es = tg_dtype_size(dtype);
    if (es == 0)
        return tg_fail("%s: dtype %s has no element size", what, dtype_name(dtype));
    uint64_t count = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        int64_t d = a->shape[i];
        if (d < 0)
            return tg_fail("%s: dimension %d is negative (%lld)", what, i, (long long)d);
        if (shape && shape[i] >= 0 && d != shape[i])
            return tg_fail("%s: dimension %d is %lld, expected %lld", what, i, (long long)d, (long long)shape[i]);
        overflow |= __builtin_mul_overflow(count, (uint64_t)d, &count);
    }
    overflow |= __builtin_mul_overflow(count, (uint64_t)es, &count);
    if (overflow || count != (uint64_t)a->data.len) {
        char sh[160];
        size_t off = 0;
        sh[0] = 0;
        for (int i = 0; i < ndim && off < sizeof sh - 24; i++)
            off += (size_t)snprintf(sh + off, sizeof sh - off, "%s%lld", i ? "," : "", (long long)a->shape[i]);
        return tg_fail("%s: %zu bytes of data for shape [%s] of %s (%zu bytes each)", what, a->data.len, sh,
                       dtype_name(dtype), es);
    }
    return 0;
}

void tg_array_set(Tg__Array *a, Tg__DType dtype, int ndim, const int64_t *shape, int64_t *shape_buf,
                  const void *data, size_t nbytes)
{
    tg__array__init(a);
    a->dtype = dtype;
    a->n_shape = (size_t)ndim;
    memcpy(shape_buf, shape, (size_t)ndim * sizeof *shape);
    a->shape = shape_buf;
    a->data.data = (uint8_t *)data;
    a->data.len = nbytes;
}

static void free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static int send_frame(void *sock, zmq_msg_t *msg, int flags)
{
    for (;;) {
        if (zmq_msg_send(msg, sock, flags) >= 0)
            return 0;
        if (errno != EINTR) {
            int e = errno;
            zmq_msg_close(msg);
            return tg_fail("zmq send: %s", zmq_strerror(e));
        }
    }
}

int tg_wire_send(void *sock, const void *ident, size_t ident_len, Tg__Envelope *e)
{
    uint8_t *buf;
    size_t n = tg_wire_encode(e, &buf);
    if (!buf)
        return -1;
    if (ident) {
        zmq_msg_t id;
        if (zmq_msg_init_size(&id, ident_len)) {
            free(buf);
            return tg_fail("zmq_msg_init_size: %s", zmq_strerror(errno));
        }
        memcpy(zmq_msg_data(&id), ident, ident_len);
        if (send_frame(sock, &id, ZMQ_SNDMORE)) {
            free(buf);
            return -1;
        }
    }
    /* zero-copy: ZeroMQ frees the buffer when it has been sent */
    zmq_msg_t body;
    if (zmq_msg_init_data(&body, buf, n, free_buf, NULL)) {
        free(buf);
        return tg_fail("zmq_msg_init_data: %s", zmq_strerror(errno));
    }
    return send_frame(sock, &body, 0);
}

int tg_wire_send_error(void *sock, const void *ident, size_t ident_len, int code, const char *msg)
{
    Tg__Error err = TG__ERROR__INIT;
    err.code = code;
    err.message = (char *)msg;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_ERROR;
    e.error = &err;
    return tg_wire_send(sock, ident, ident_len, &e);
}
