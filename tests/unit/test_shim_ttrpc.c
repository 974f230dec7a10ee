/* containerd-shim-pea-v2's ttrpc framing, over a real socket pair: what a client such as containerd sends, and what
 * comes back, byte for byte where the format fixes it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pea/util.h"
#include "rpc_status.pb-c.h"
#include "ttrpc.h"
#include "ttrpc.pb-c.h"

/* ---- header ---- */

Test(shim_ttrpc, header_is_big_endian_length_stream_type_flags)
{
    struct ttrpc_header h = {.length = 0x01020304, .stream_id = 0x0a0b0c0d, .type = TTRPC_TYPE_RESPONSE, .flags = 0};
    uint8_t wire[TTRPC_HEADER_SIZE];
    ttrpc_header_encode(&h, wire);
    const uint8_t expected[TTRPC_HEADER_SIZE] = {1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 2, 0};
    cr_assert_arr_eq(wire, expected, sizeof expected);
    struct ttrpc_header back;
    ttrpc_header_decode(wire, &back);
    cr_assert_eq(back.length, h.length);
    cr_assert_eq(back.stream_id, h.stream_id);
    cr_assert_eq(back.type, h.type);
}

/* ---- a connection ---- */

struct seen {
    int count;
    uint32_t streams[16];
    char methods[16][32];
    char payloads[16][32];
    struct timespec deadlines[16];
    bool answer_now;
};

static void record(struct ttrpc_conn *conn, const struct ttrpc_request *req, void *ctx)
{
    struct seen *s = ctx;
    cr_assert_lt(s->count, 16);
    s->streams[s->count] = req->stream_id;
    snprintf(s->methods[s->count], sizeof s->methods[0], "%s/%s", req->service, req->method);
    snprintf(s->payloads[s->count], sizeof s->payloads[0], "%.*s", (int)req->payload_len, (const char *)req->payload);
    s->deadlines[s->count] = req->deadline;
    s->count++;
    if (strcmp(req->method, "Slow") == 0) /* a handler that takes its time, as a Create does */
        usleep(300 * 1000);
    if (s->answer_now)
        ttrpc_respond(conn, req->stream_id, TTRPC_OK, NULL, (const uint8_t *)"ok", 2);
}

struct pair {
    int client;
    struct ttrpc_conn *server;
    struct seen seen;
};

static void pair_open(struct pair *p, bool answer_now)
{
    int fds[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    memset(&p->seen, 0, sizeof p->seen);
    p->seen.answer_now = answer_now;
    p->client = fds[0];
    p->server = ttrpc_conn_new(fds[1], record, &p->seen);
}

static void pair_close(struct pair *p)
{
    ttrpc_conn_free(p->server);
    close(p->client);
}

/* A framed ttrpc.Request with a timeout (0: none), as containerd's client writes a call under a context deadline. */
static size_t frame_request_with_timeout(uint8_t *out, uint32_t stream, const char *service, const char *method,
                                         const char *payload, int64_t timeout_nano)
{
    Ttrpc__Request r = TTRPC__REQUEST__INIT;
    r.timeout_nano = timeout_nano;
    r.service = (char *)service;
    r.method = (char *)method;
    r.payload.data = (uint8_t *)payload;
    r.payload.len = strlen(payload);
    size_t size = ttrpc__request__get_packed_size(&r);
    struct ttrpc_header h = {.length = (uint32_t)size, .stream_id = stream, .type = TTRPC_TYPE_REQUEST};
    ttrpc_header_encode(&h, out);
    ttrpc__request__pack(&r, out + TTRPC_HEADER_SIZE);
    return TTRPC_HEADER_SIZE + size;
}

/* A framed ttrpc.Request, as containerd's client writes it. */
static size_t frame_request(uint8_t *out, uint32_t stream, const char *service, const char *method, const char *payload)
{
    return frame_request_with_timeout(out, stream, service, method, payload, 0);
}

static void client_send(struct pair *p, const void *data, size_t len)
{
    cr_assert_eq(write_all(p->client, data, len), 0);
    cr_assert_eq(ttrpc_conn_on_readable(p->server), 0);
}

/* The next response on the client side: its stream id, status code and text, payload. */
struct answer {
    uint32_t stream;
    int code;
    char message[160];
    char payload[32];
};

static struct answer client_receive(struct pair *p)
{
    uint8_t head[TTRPC_HEADER_SIZE];
    struct pollfd pfd = {.fd = p->client, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 2000), 1, "no response arrived");
    cr_assert_eq(read(p->client, head, sizeof head), (ssize_t)sizeof head);
    struct ttrpc_header h;
    ttrpc_header_decode(head, &h);
    cr_assert_eq(h.type, TTRPC_TYPE_RESPONSE);
    AUTO_FREE uint8_t *body = xmalloc(h.length + 1);
    cr_assert_eq(read(p->client, body, h.length), (ssize_t)h.length);
    Ttrpc__Response *r = ttrpc__response__unpack(NULL, h.length, body);
    cr_assert_not_null(r);
    struct answer a = {.stream = h.stream_id, .code = r->status ? r->status->code : 0};
    if (r->status)
        snprintf(a.message, sizeof a.message, "%s", r->status->message);
    snprintf(a.payload, sizeof a.payload, "%.*s", (int)r->payload.len, (const char *)r->payload.data);
    ttrpc__response__free_unpacked(r, NULL);
    return a;
}

static bool client_has_data(struct pair *p)
{
    struct pollfd pfd = {.fd = p->client, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

Test(shim_ttrpc, request_reaches_handler_and_response_keeps_stream_id)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frame[256];
    client_send(&p, frame, frame_request(frame, 7, "containerd.task.v2.Task", "Connect", "abc"));
    cr_assert_eq(p.seen.count, 1);
    cr_assert_eq(p.seen.streams[0], 7);
    cr_assert_str_eq(p.seen.methods[0], "containerd.task.v2.Task/Connect");
    cr_assert_str_eq(p.seen.payloads[0], "abc");
    struct answer a = client_receive(&p);
    cr_assert_eq(a.stream, 7);
    cr_assert_eq(a.code, 0);
    cr_assert_str_eq(a.payload, "ok");
    pair_close(&p);
}

Test(shim_ttrpc, pipelined_requests_in_one_write_are_all_handled)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frames[768];
    size_t len = frame_request(frames, 1, "s", "Wait", "");
    len += frame_request(frames + len, 3, "s", "Kill", "9");
    len += frame_request(frames + len, 5, "s", "State", "");
    client_send(&p, frames, len);
    cr_assert_eq(p.seen.count, 3);
    cr_assert_str_eq(p.seen.methods[1], "s/Kill");
    for (uint32_t stream = 1; stream <= 5; stream += 2)
        cr_assert_eq(client_receive(&p).stream, stream);
    pair_close(&p);
}

Test(shim_ttrpc, request_split_across_reads_is_handled_once_whole)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frame[256];
    size_t len = frame_request(frame, 9, "containerd.task.v2.Task", "State", "payload");
    for (size_t i = 0; i < len; i++) {
        client_send(&p, frame + i, 1);
        cr_assert_eq(p.seen.count, i + 1 == len ? 1 : 0, "after %zu of %zu bytes", i + 1, len);
    }
    cr_assert_eq(client_receive(&p).stream, 9);
    pair_close(&p);
}

Test(shim_ttrpc, answers_may_come_later_and_out_of_order)
{
    struct pair p;
    pair_open(&p, false);
    uint8_t frames[512];
    size_t len = frame_request(frames, 1, "s", "Wait", "");
    len += frame_request(frames + len, 3, "s", "Connect", "");
    client_send(&p, frames, len);
    cr_assert_eq(p.seen.count, 2);
    cr_assert(!client_has_data(&p));
    ttrpc_respond(p.server, 3, TTRPC_OK, NULL, (const uint8_t *)"second", 6);
    ttrpc_respond_error(p.server, 1, TTRPC_NOT_FOUND, "task %s: not found", "c1");
    struct answer a = client_receive(&p);
    cr_assert_eq(a.stream, 3);
    cr_assert_str_eq(a.payload, "second");
    a = client_receive(&p);
    cr_assert_eq(a.stream, 1);
    cr_assert_eq(a.code, TTRPC_NOT_FOUND);
    cr_assert_str_eq(a.message, "task c1: not found");
    pair_close(&p);
}

Test(shim_ttrpc, even_stream_id_is_refused)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frame[256];
    client_send(&p, frame, frame_request(frame, 2, "s", "State", ""));
    cr_assert_eq(p.seen.count, 0);
    struct answer a = client_receive(&p);
    cr_assert_eq(a.stream, 2);
    cr_assert_eq(a.code, TTRPC_INVALID_ARGUMENT);
    cr_assert_str_eq(a.message, "StreamID must be odd for client initiated streams");
    pair_close(&p);
}

Test(shim_ttrpc, malformed_request_body_is_refused)
{
    struct pair p;
    pair_open(&p, true);
    /* Field 1 (service) claims 100 bytes; 3 follow. */
    uint8_t frame[TTRPC_HEADER_SIZE + 5] = {0, 0, 0, 5, 0, 0, 0, 11, TTRPC_TYPE_REQUEST, 0, 0x0a, 100, 'a', 'b', 'c'};
    client_send(&p, frame, sizeof frame);
    cr_assert_eq(p.seen.count, 0);
    struct answer a = client_receive(&p);
    cr_assert_eq(a.stream, 11);
    cr_assert_eq(a.code, TTRPC_INVALID_ARGUMENT);
    cr_assert_str_eq(a.message, "unmarshal request error");
    pair_close(&p);
}

Test(shim_ttrpc, message_over_4_mib_is_skipped_and_refused_then_the_next_is_served)
{
    struct pair p;
    pair_open(&p, true);
    uint32_t big = TTRPC_MESSAGE_MAX + 1;
    struct ttrpc_header h = {.length = big, .stream_id = 13, .type = TTRPC_TYPE_REQUEST};
    uint8_t head[TTRPC_HEADER_SIZE];
    ttrpc_header_encode(&h, head);
    client_send(&p, head, sizeof head);
    struct answer a = client_receive(&p);
    cr_assert_eq(a.stream, 13);
    cr_assert_eq(a.code, TTRPC_RESOURCE_EXHAUSTED);
    cr_assert_str_eq(a.message, "message length 4194305 exceed maximum message size of 4194304");
    /* The body follows in chunks, then a normal request. */
    AUTO_FREE uint8_t *junk = xcalloc(1, 1 << 16);
    for (uint32_t sent = 0; sent < big;) {
        uint32_t n = big - sent < (1u << 16) ? big - sent : 1u << 16;
        client_send(&p, junk, n);
        sent += n;
    }
    cr_assert_eq(p.seen.count, 0);
    uint8_t frame[256];
    client_send(&p, frame, frame_request(frame, 15, "s", "State", "after"));
    cr_assert_eq(p.seen.count, 1);
    cr_assert_str_eq(p.seen.payloads[0], "after");
    cr_assert_eq(client_receive(&p).stream, 15);
    pair_close(&p);
}

Test(shim_ttrpc, response_messages_from_the_client_are_ignored)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frame[TTRPC_HEADER_SIZE] = {0, 0, 0, 0, 0, 0, 0, 1, TTRPC_TYPE_RESPONSE, 0};
    client_send(&p, frame, sizeof frame);
    cr_assert_eq(p.seen.count, 0);
    cr_assert(!client_has_data(&p));
    pair_close(&p);
}

Test(shim_ttrpc, peer_closing_ends_the_connection)
{
    struct pair p;
    pair_open(&p, true);
    close(p.client);
    cr_assert_eq(ttrpc_conn_on_readable(p.server), -1);
    ttrpc_conn_free(p.server);
}

/* ---- deadlines (Request.timeout_nano) ---- */

static int64_t nanoseconds(const struct timespec *t) { return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec; }

Test(shim_ttrpc, request_without_timeout_has_no_deadline)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frame[256];
    client_send(&p, frame, frame_request(frame, 1, "s", "State", ""));
    cr_assert_eq(p.seen.count, 1);
    cr_assert_eq(nanoseconds(&p.seen.deadlines[0]), 0);
    pair_close(&p);
}

Test(shim_ttrpc, timeout_becomes_the_handlers_deadline)
{
    struct pair p;
    pair_open(&p, true);
    uint8_t frame[256];
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    client_send(&p, frame, frame_request_with_timeout(frame, 1, "s", "Wait", "", 60LL * 1000000000));
    clock_gettime(CLOCK_MONOTONIC, &after);
    cr_assert_eq(p.seen.count, 1);
    int64_t deadline = nanoseconds(&p.seen.deadlines[0]);
    cr_assert_geq(deadline, nanoseconds(&before) + 60LL * 1000000000);
    cr_assert_leq(deadline, nanoseconds(&after) + 60LL * 1000000000);
    cr_assert_eq(client_receive(&p).code, TTRPC_OK);
    pair_close(&p);
}

Test(shim_ttrpc, request_whose_deadline_passed_while_queued_is_not_run)
{
    /* Three requests in one write: a slow one (300 ms), then one that wanted an answer within 20 ms, then one
     * with a minute to spare. The second is answered DEADLINE_EXCEEDED without reaching the handler. */
    struct pair p;
    pair_open(&p, true);
    uint8_t frames[768];
    size_t len = frame_request(frames, 1, "s", "Slow", "");
    len += frame_request_with_timeout(frames + len, 3, "s", "Kill", "late", 20 * 1000000);
    len += frame_request_with_timeout(frames + len, 5, "s", "State", "in time", 60LL * 1000000000);
    client_send(&p, frames, len);
    cr_assert_eq(p.seen.count, 2);
    cr_assert_str_eq(p.seen.methods[0], "s/Slow");
    cr_assert_str_eq(p.seen.methods[1], "s/State");
    cr_assert_eq(client_receive(&p).stream, 1);
    struct answer a = client_receive(&p);
    cr_assert_eq(a.stream, 3);
    cr_assert_eq(a.code, TTRPC_DEADLINE_EXCEEDED);
    cr_assert_str_eq(a.message, "context deadline exceeded");
    a = client_receive(&p);
    cr_assert_eq(a.stream, 5);
    cr_assert_eq(a.code, TTRPC_OK);
    pair_close(&p);
}

Test(shim_ttrpc, deadline_comparison)
{
    struct timespec none = {0}, at = {.tv_sec = 5, .tv_nsec = 10};
    struct timespec before = {.tv_sec = 5, .tv_nsec = 9}, same = at, later = {.tv_sec = 6, .tv_nsec = 0};
    cr_assert(!ttrpc_deadline_has_passed(&none, &later));
    cr_assert(!ttrpc_deadline_has_passed(&at, &before));
    cr_assert(ttrpc_deadline_has_passed(&at, &same));
    cr_assert(ttrpc_deadline_has_passed(&at, &later));
}
