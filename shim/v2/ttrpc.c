/* ttrpc framing on the server side: a receive buffer that yields whole requests, a send queue that the event loop
 * drains when the socket takes more. Nothing here blocks. */
#include "ttrpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pea/util.h"
#include "rpc_status.pb-c.h"
#include "ttrpc.pb-c.h"

/* Buffers start small and go back to this size once a large message has passed: a shim mostly sees requests of a
 * few hundred bytes, and its resident size is the point. */
#define BUFFER_IDLE_SIZE 4096

struct ttrpc_conn {
    int fd;
    ttrpc_request_handler handler;
    void *ctx;
    uint8_t *in;
    size_t in_len, in_cap;
    uint32_t discard_left; /* bytes of an oversized message still to skip */
    struct timespec received; /* when the last bytes were read: a request's timeout counts from there */
    uint8_t *out;
    size_t out_len, out_cap, out_sent;
};

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE])
{
    for (int i = 0; i < 4; i++) {
        out[i] = (uint8_t)(h->length >> (24 - 8 * i));
        out[4 + i] = (uint8_t)(h->stream_id >> (24 - 8 * i));
    }
    out[8] = h->type;
    out[9] = h->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h)
{
    h->length = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
    h->stream_id = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];
    h->type = in[8];
    h->flags = in[9];
}

struct ttrpc_conn *ttrpc_conn_new(int fd, ttrpc_request_handler handler, void *ctx)
{
    struct ttrpc_conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->handler = handler;
    c->ctx = ctx;
    return c;
}

void ttrpc_conn_free(struct ttrpc_conn *conn)
{
    if (!conn)
        return;
    if (conn->fd >= 0)
        close(conn->fd);
    free(conn->in);
    free(conn->out);
    free(conn);
}

int ttrpc_conn_fd(const struct ttrpc_conn *conn) { return conn->fd; }

bool ttrpc_conn_has_pending_output(const struct ttrpc_conn *conn) { return conn->out_sent < conn->out_len; }

static void reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return;
    size_t n = *cap ? *cap : BUFFER_IDLE_SIZE;
    while (n < need)
        n *= 2;
    *buf = xrealloc(*buf, n);
    *cap = n;
}

int ttrpc_conn_flush(struct ttrpc_conn *conn)
{
    while (conn->out_sent < conn->out_len) {
        ssize_t n = send(conn->fd, conn->out + conn->out_sent, conn->out_len - conn->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 1;
            return -1;
        }
        conn->out_sent += (size_t)n;
    }
    conn->out_len = conn->out_sent = 0;
    if (conn->out_cap > BUFFER_IDLE_SIZE) {
        free(conn->out);
        conn->out = NULL;
        conn->out_cap = 0;
    }
    return 0;
}

void ttrpc_respond(struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *message, const uint8_t *payload,
                   size_t payload_len)
{
    Ttrpc__Response response = TTRPC__RESPONSE__INIT;
    Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
    if (code != TTRPC_OK) {
        status.code = code;
        status.message = (char *)(message ? message : "");
        response.status = &status;
    } else {
        response.payload.data = (uint8_t *)payload;
        response.payload.len = payload_len;
    }
    size_t size = ttrpc__response__get_packed_size(&response);
    if (size > TTRPC_MESSAGE_MAX) {
        char text[128];
        snprintf(text, sizeof text, "response of %zu bytes exceeds the maximum message size of %u", size,
                 TTRPC_MESSAGE_MAX);
        ttrpc_respond(conn, stream_id, TTRPC_RESOURCE_EXHAUSTED, text, NULL, 0);
        return;
    }
    reserve(&conn->out, &conn->out_cap, conn->out_len + TTRPC_HEADER_SIZE + size);
    struct ttrpc_header h = {.length = (uint32_t)size, .stream_id = stream_id, .type = TTRPC_TYPE_RESPONSE};
    ttrpc_header_encode(&h, conn->out + conn->out_len);
    ttrpc__response__pack(&response, conn->out + conn->out_len + TTRPC_HEADER_SIZE);
    conn->out_len += TTRPC_HEADER_SIZE + size;
    /* A peer that is gone shows up as a hang-up on the socket; the event loop closes it there. */
    (void)ttrpc_conn_flush(conn);
}

void ttrpc_respond_message(struct ttrpc_conn *conn, uint32_t stream_id, const ProtobufCMessage *message)
{
    if (!message) {
        ttrpc_respond(conn, stream_id, TTRPC_OK, NULL, NULL, 0);
        return;
    }
    size_t size = protobuf_c_message_get_packed_size(message);
    AUTO_FREE uint8_t *body = xmalloc(size ? size : 1);
    protobuf_c_message_pack(message, body);
    ttrpc_respond(conn, stream_id, TTRPC_OK, NULL, body, size);
}

void ttrpc_respond_error(struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ttrpc_respond(conn, stream_id, code, text, NULL, 0);
}

bool ttrpc_deadline_has_passed(const struct timespec *deadline, const struct timespec *now)
{
    if (deadline->tv_sec == 0 && deadline->tv_nsec == 0)
        return false;
    return now->tv_sec > deadline->tv_sec || (now->tv_sec == deadline->tv_sec && now->tv_nsec >= deadline->tv_nsec);
}

static struct timespec deadline_after(const struct timespec *start, int64_t timeout_nano)
{
    const int64_t second = 1000000000;
    struct timespec d = {.tv_sec = start->tv_sec + (time_t)(timeout_nano / second),
                         .tv_nsec = start->tv_nsec + (long)(timeout_nano % second)};
    if (d.tv_nsec >= second) {
        d.tv_sec++;
        d.tv_nsec -= second;
    }
    return d;
}

static void dispatch(struct ttrpc_conn *conn, const struct ttrpc_header *h, const uint8_t *body)
{
    if (h->type != TTRPC_TYPE_REQUEST)
        return; /* ttrpc ignores other types, for messages a later version may add */
    if (h->stream_id % 2 == 0) {
        ttrpc_respond(conn, h->stream_id, TTRPC_INVALID_ARGUMENT, "StreamID must be odd for client initiated streams",
                      NULL, 0);
        return;
    }
    Ttrpc__Request *r = ttrpc__request__unpack(NULL, h->length, body);
    if (!r) {
        ttrpc_respond(conn, h->stream_id, TTRPC_INVALID_ARGUMENT, "unmarshal request error", NULL, 0);
        return;
    }
    struct ttrpc_request req = {
        .stream_id = h->stream_id,
        .service = r->service,
        .method = r->method,
        .payload = r->payload.data,
        .payload_len = r->payload.len,
        .timeout_nano = r->timeout_nano,
    };
    if (r->timeout_nano > 0) {
        /* Earlier requests of the same read may have kept this one waiting past its deadline: then it is not run. */
        req.deadline = deadline_after(&conn->received, r->timeout_nano);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ttrpc_deadline_has_passed(&req.deadline, &now)) {
            ttrpc_respond(conn, h->stream_id, TTRPC_DEADLINE_EXCEEDED, TTRPC_DEADLINE_MESSAGE, NULL, 0);
            ttrpc__request__free_unpacked(r, NULL);
            return;
        }
    }
    conn->handler(conn, &req, conn->ctx);
    ttrpc__request__free_unpacked(r, NULL);
}

/* Hand out every whole message in the receive buffer; keep the partial one at its front. */
static void consume_buffer(struct ttrpc_conn *conn)
{
    size_t off = 0;
    for (;;) {
        size_t avail = conn->in_len - off;
        if (conn->discard_left) {
            size_t skip = avail < conn->discard_left ? avail : conn->discard_left;
            off += skip;
            conn->discard_left -= (uint32_t)skip;
            if (conn->discard_left)
                break;
            continue;
        }
        if (avail < TTRPC_HEADER_SIZE)
            break;
        struct ttrpc_header h;
        ttrpc_header_decode(conn->in + off, &h);
        if (h.length > TTRPC_MESSAGE_MAX) {
            char text[128];
            snprintf(text, sizeof text, "message length %u exceed maximum message size of %u", h.length,
                     TTRPC_MESSAGE_MAX);
            ttrpc_respond(conn, h.stream_id, TTRPC_RESOURCE_EXHAUSTED, text, NULL, 0);
            off += TTRPC_HEADER_SIZE;
            conn->discard_left = h.length;
            continue;
        }
        if (avail < TTRPC_HEADER_SIZE + (size_t)h.length)
            break;
        const uint8_t *body = conn->in + off + TTRPC_HEADER_SIZE;
        off += TTRPC_HEADER_SIZE + h.length;
        dispatch(conn, &h, body);
    }
    memmove(conn->in, conn->in + off, conn->in_len - off);
    conn->in_len -= off;
    if (conn->in_len == 0 && conn->in_cap > BUFFER_IDLE_SIZE) {
        free(conn->in);
        conn->in = NULL;
        conn->in_cap = 0;
    }
}

/* How much the buffer must hold for the message at its front to be whole. */
static size_t bytes_wanted(const struct ttrpc_conn *conn)
{
    if (conn->discard_left || conn->in_len < TTRPC_HEADER_SIZE)
        return BUFFER_IDLE_SIZE;
    struct ttrpc_header h;
    ttrpc_header_decode(conn->in, &h);
    return h.length > TTRPC_MESSAGE_MAX ? BUFFER_IDLE_SIZE : TTRPC_HEADER_SIZE + (size_t)h.length;
}

int ttrpc_conn_on_readable(struct ttrpc_conn *conn)
{
    for (;;) {
        size_t want = bytes_wanted(conn);
        reserve(&conn->in, &conn->in_cap, want > conn->in_len ? want : conn->in_len + 1);
        ssize_t n = recv(conn->fd, conn->in + conn->in_len, conn->in_cap - conn->in_len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        if (n == 0)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &conn->received);
        conn->in_len += (size_t)n;
        consume_buffer(conn);
    }
}

int ttrpc_take_responses(uint8_t *buf, size_t *len, size_t capacity, ttrpc_response_handler handler, void *ctx)
{
    size_t off = 0;
    while (*len - off >= TTRPC_HEADER_SIZE) {
        struct ttrpc_header h;
        ttrpc_header_decode(buf + off, &h);
        if (h.length > capacity - TTRPC_HEADER_SIZE)
            return -1;
        if (*len - off < TTRPC_HEADER_SIZE + (size_t)h.length)
            break;
        const uint8_t *body = buf + off + TTRPC_HEADER_SIZE;
        off += TTRPC_HEADER_SIZE + h.length;
        if (h.type != TTRPC_TYPE_RESPONSE)
            continue;
        Ttrpc__Response *r = ttrpc__response__unpack(NULL, h.length, body);
        bool keep_going;
        if (!r)
            keep_going = handler(h.stream_id, TTRPC_INTERNAL, "malformed response", NULL, 0, ctx);
        else if (r->status && r->status->code != TTRPC_OK)
            keep_going = handler(h.stream_id, r->status->code, r->status->message ? r->status->message : "", NULL, 0,
                                 ctx);
        else
            keep_going = handler(h.stream_id, TTRPC_OK, NULL, r->payload.data, r->payload.len, ctx);
        if (r)
            ttrpc__response__free_unpacked(r, NULL);
        if (!keep_going) {
            *len = 0;
            return 0;
        }
    }
    memmove(buf, buf + off, *len - off);
    *len -= off;
    return 0;
}
