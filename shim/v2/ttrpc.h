/* ttrpc, containerd's RPC over a stream socket: every message is a 10-byte header (length and stream id as
 * big-endian uint32, a type byte, a flags byte) and a protobuf body, a ttrpc.Request (type 1) from the client on an
 * odd stream id, answered by a ttrpc.Response (type 2) on the same id. A client may send many requests before
 * reading any answer (containerd parks a Wait and goes on), so answers go out in any order, some much later. */
#ifndef PEA_SHIM_V2_TTRPC_H
#define PEA_SHIM_V2_TTRPC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <protobuf-c/protobuf-c.h>

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MESSAGE_MAX (4u << 20) /* ttrpc's limit on a body; a larger one is skipped and refused */

enum ttrpc_message_type {
    TTRPC_TYPE_REQUEST = 1,
    TTRPC_TYPE_RESPONSE = 2,
};

/* The gRPC status codes a response carries; containerd maps them back to its errors (errdefs.FromGRPC). */
enum ttrpc_code {
    TTRPC_OK = 0,
    TTRPC_UNKNOWN = 2,
    TTRPC_INVALID_ARGUMENT = 3,
    TTRPC_DEADLINE_EXCEEDED = 4,
    TTRPC_NOT_FOUND = 5,
    TTRPC_ALREADY_EXISTS = 6,
    TTRPC_RESOURCE_EXHAUSTED = 8,
    TTRPC_FAILED_PRECONDITION = 9,
    TTRPC_UNIMPLEMENTED = 12,
    TTRPC_INTERNAL = 13,
};

struct ttrpc_header {
    uint32_t length; /* of the body, without the header */
    uint32_t stream_id;
    uint8_t type;
    uint8_t flags;
};

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE]);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h);

/* One decoded request; the strings and payload live until the handler returns. */
struct ttrpc_request {
    uint32_t stream_id;
    const char *service; /* "containerd.task.v2.Task" */
    const char *method;  /* "Create" */
    const uint8_t *payload;
    size_t payload_len;
    int64_t timeout_nano; /* 0: no deadline */
    /* CLOCK_MONOTONIC time by which the client wants the answer (timeout_nano counted from when its bytes were
     * read); {0, 0} without one. As in ttrpc-go, where it becomes the handler's context deadline: a request whose
     * deadline passed before it could be run is answered DEADLINE_EXCEEDED and not run. */
    struct timespec deadline;
};

/* The answer a call whose deadline passed gets (ttrpc-go's words for context.DeadlineExceeded). */
#define TTRPC_DEADLINE_MESSAGE "context deadline exceeded"
/* Whether the deadline (absolute, CLOCK_MONOTONIC; {0, 0} means none) lies at or before now. */
bool ttrpc_deadline_has_passed(const struct timespec *deadline, const struct timespec *now);

struct ttrpc_conn;
/* Called for each complete request. It answers now (ttrpc_respond*) or keeps the stream id and answers later. */
typedef void (*ttrpc_request_handler)(struct ttrpc_conn *conn, const struct ttrpc_request *req, void *ctx);

/* The server end of one connection; the socket should be non-blocking. */
struct ttrpc_conn *ttrpc_conn_new(int fd, ttrpc_request_handler handler, void *ctx);
/* Closes the socket too. */
void ttrpc_conn_free(struct ttrpc_conn *conn);
int ttrpc_conn_fd(const struct ttrpc_conn *conn);

/* Read what the socket holds and hand every complete request to the handler.
 * 0: keep going; -1: the peer closed or broke the protocol (free the connection). */
int ttrpc_conn_on_readable(struct ttrpc_conn *conn);
/* Send what is queued. 0: all sent; 1: some is left (wait for the socket to be writable); -1: the peer is gone. */
int ttrpc_conn_flush(struct ttrpc_conn *conn);
bool ttrpc_conn_has_pending_output(const struct ttrpc_conn *conn);

/* Queue an answer and send what the socket takes now. A code other than TTRPC_OK carries the message text. */
void ttrpc_respond(struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *message, const uint8_t *payload,
                   size_t payload_len);
/* Answer with a packed protobuf message (NULL: google.protobuf.Empty, no bytes). */
void ttrpc_respond_message(struct ttrpc_conn *conn, uint32_t stream_id, const ProtobufCMessage *message);
void ttrpc_respond_error(struct ttrpc_conn *conn, uint32_t stream_id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The client end's receive side (the shim calls containerd's events service). BUF holds *LEN bytes read from the
 * socket, out of a buffer of CAPACITY: every whole frame is taken off the front, and each response handed to the
 * handler with its status code (TTRPC_OK, the code containerd answered, or TTRPC_INTERNAL for an undecodable body)
 * and payload; other frame types are skipped. A handler returning false stops the walk (it gave the connection
 * up; what is left is dropped). Returns -1 when a frame cannot fit in CAPACITY (break the connection), else 0. */
typedef bool (*ttrpc_response_handler)(uint32_t stream_id, int code, const char *message, const uint8_t *payload,
                                       size_t payload_len, void *ctx);
int ttrpc_take_responses(uint8_t *buf, size_t *len, size_t capacity, ttrpc_response_handler handler, void *ctx);

#endif
