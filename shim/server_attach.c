/* pea pod attach: a client's session with a running container's stdio. The client gets the read ends of pipes that
 * the shim copies the container's output into (the same bytes the log gets), and, when it asks and the container
 * keeps stdin, an fd that writes the container's stdin itself (its pipe, or its pty's master: resize works there).
 * The shim never waits for a session: an output pipe that is full ends it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "pea/log.h"
#include "pea/util.h"
#include "server_internal.h"

/* Room for the client to fall behind a busy container before its session ends; the system's limit may refuse it. */
#define ATTACH_PIPE_BYTES (1 << 20)
/* What the shim keeps for a client whose pipe is full before it ends the session instead of waiting. */
#define ATTACH_QUEUE_BYTES (4 << 20)

/* Write what fd takes now from buf; the rest is left. -1 when the client has gone (EPIPE and the like). */
static ssize_t write_some(int fd, const char *buf, size_t len)
{
    ssize_t n;
    do
        n = write(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return 0;
    return n;
}

void server_end_attach(struct pending *p, int exit_code, const char *reason)
{
    struct shim_server *s = p->server;
    if (p->client) {
        json_t *event = json_object();
        if (exit_code >= 0)
            json_object_set_new(event, "exitCode", json_integer(exit_code));
        if (reason)
            json_object_set_new(event, "reason", json_string(reason));
        client_send(p->client, proto_event(p->id, event), NULL, 0);
        client_send(p->client, proto_end(p->id), NULL, 0);
    }
    /* What is still queued goes as far as the pipe takes it now (the log has all of it). */
    for (int i = POD_STDOUT; i <= POD_STDERR; i++)
        if (p->queued_len[i] > 0 && p->out_fds[i] >= 0)
            write_some(p->out_fds[i], p->queued[i], p->queued_len[i]);
    if (p->has_stdin && p->instance)
        supervisor_attach_ended(s->sup, p->container, p->instance);
    pending_remove(s, p);
}

void server_end_attaches(struct shim_server *s, const char *container, const json_t *record)
{
    const char *state = json_string_value(json_object_get(record, "state"));
    const char *started = json_string_value(json_object_get(record, "startedAt"));
    bool is_running = state && strcmp(state, "running") == 0;
    for (struct pending *p = s->pending, *next; p; p = next) {
        next = p->next;
        if (p->kind != PENDING_ATTACH || strcmp(p->container, container) != 0)
            continue;
        if (is_running && p->instance && started && strcmp(p->instance, started) == 0)
            continue;
        json_t *code = json_object_get(record, "exitCode");
        if (supervisor_is_stopping(s->sup)) {
            server_end_attach(p, -1, "the pod is being stopped");
        } else if (!is_running && json_is_integer(code)) {
            server_end_attach(p, (int)json_integer_value(code), NULL);
        } else {
            AUTO_FREE char *reason = xasprintf("container %s stopped", container);
            server_end_attach(p, -1, reason);
        }
    }
}

static void attach_room(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx)
{
    (void)sup;
    (void)events;
    struct pending *p = ctx;
    int stream = fd == p->out_fds[POD_STDOUT] ? POD_STDOUT : POD_STDERR;
    ssize_t n = write_some(fd, p->queued[stream], p->queued_len[stream]);
    if (n < 0) {
        server_end_attach(p, -1, NULL);
        return;
    }
    memmove(p->queued[stream], p->queued[stream] + n, p->queued_len[stream] - (size_t)n);
    p->queued_len[stream] -= (size_t)n;
    if (p->queued_len[stream] == 0) {
        supervisor_unwatch(p->server->sup, fd);
        p->is_waiting_room[stream] = false;
    }
}

/* Queue what the pipe has no room for, up to ATTACH_QUEUE_BYTES; false when that would be passed. */
static bool queue_output(struct pending *p, int stream, const char *buf, size_t len)
{
    if (p->queued_len[stream] + len > ATTACH_QUEUE_BYTES)
        return false;
    p->queued[stream] = xrealloc(p->queued[stream], p->queued_len[stream] + len);
    memcpy(p->queued[stream] + p->queued_len[stream], buf, len);
    p->queued_len[stream] += len;
    if (!p->is_waiting_room[stream]) {
        struct pea_error err = {0};
        if (supervisor_watch_writable(p->server->sup, p->out_fds[stream], attach_room, p, &err) < 0) {
            log_warn("attach to %s: %s", p->container, err.msg);
            return false;
        }
        p->is_waiting_room[stream] = true;
    }
    return true;
}

void server_attach_output(struct shim_server *s, const char *container, int stream, const char *buf, size_t len)
{
    for (struct pending *p = s->pending, *next; p; p = next) {
        next = p->next;
        if (p->kind != PENDING_ATTACH || strcmp(p->container, container) != 0)
            continue;
        int to = p->has_tty ? POD_STDOUT : stream;
        if (p->out_fds[to] < 0)
            continue;
        /* Behind what is queued, or written now as far as the pipe takes it. */
        ssize_t n = p->queued_len[to] > 0 ? 0 : write_some(p->out_fds[to], buf, len);
        if (n < 0) {
            server_end_attach(p, -1, NULL);
            continue;
        }
        if ((size_t)n == len || queue_output(p, to, buf + n, len - (size_t)n))
            continue;
        log_debug("attach to %s: the client does not read its output: ended", container);
        server_end_attach(p, -1, "the output came faster than this client read it (pea pod logs has it all)");
    }
}

/* A pipe whose write end (non-blocking, ours) is in *write_fd and read end (the client's) in *read_fd. */
static int output_pipe(int *read_fd, int *write_fd)
{
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) < 0)
        return -1;
    fcntl(ends[1], F_SETPIPE_SZ, ATTACH_PIPE_BYTES);
    fcntl(ends[1], F_SETFL, O_NONBLOCK);
    *read_fd = ends[0];
    *write_fd = ends[1];
    return 0;
}

void server_handle_attach(struct client *c, const struct proto_request *req)
{
    struct shim_server *s = c->server;
    struct pea_error err = {0};
    bool has_tty = false;
    AUTO_FD int input = -1;
    if (supervisor_attach(s->sup, req->container, req->stdin_wanted, &has_tty, &input, &err) < 0) {
        client_reply_error(c, req->id, err.msg);
        return;
    }
    int reads[2] = {-1, -1}, writes[2] = {-1, -1};
    size_t n_streams = has_tty ? 1 : 2;
    for (size_t i = 0; i < n_streams; i++)
        if (output_pipe(&reads[i], &writes[i]) < 0) {
            AUTO_FREE char *msg = xasprintf("attach to %s: make an output pipe: %s", req->container, strerror(errno));
            for (size_t j = 0; j < i; j++) {
                close(reads[j]);
                close(writes[j]);
            }
            client_reply_error(c, req->id, msg);
            return;
        }
    struct pending *p = pending_add(s, PENDING_ATTACH, c, req->id, req->container);
    p->has_tty = has_tty;
    p->has_stdin = input >= 0;
    p->out_fds[POD_STDOUT] = writes[0];
    p->out_fds[POD_STDERR] = writes[1];
    AUTO_JSON json_t *containers = supervisor_containers(s->sup);
    const char *started = json_string_value(json_object_get(containers_find(containers, req->container), "startedAt"));
    p->instance = started ? xstrdup(started) : NULL;
    int fds[3];
    size_t n_fds = 0;
    for (size_t i = 0; i < n_streams; i++)
        fds[n_fds++] = reads[i];
    if (input >= 0)
        fds[n_fds++] = input;
    client_send(c, proto_reply_ok(req->id, json_pack("{s:b, s:b}", "tty", has_tty, "stdin", input >= 0)), fds,
                n_fds);
    for (size_t i = 0; i < n_streams; i++)
        close(reads[i]);
}
