/* The control socket: clients, their lifetime, pending replies and the supervisor callbacks that feed them. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pea/log.h"
#include "pea/util.h"
#include "server_internal.h"

/* ---- clients ---- */

void client_send(struct client *c, json_t *msg, const int *fds, size_t n_fds)
{
    struct pea_error err = {0};
    if (!c->is_dead && proto_send(c->fd, msg, fds, n_fds, &err) < 0) {
        /* EAGAIN too: a client that does not read its replies or events is not waited for. */
        log_debug("client %d: %s: dropped", c->fd, err.msg);
        c->is_dead = true;
    }
    json_decref(msg);
}

void client_reply_error(struct client *c, uint64_t id, const char *message)
{
    client_send(c, proto_reply_error(id, message), NULL, 0);
}

static void client_free(struct shim_server *s, struct client *c)
{
    for (struct pending *p = s->pending, *next; p; p = next) {
        next = p->next;
        if (p->client != c)
            continue;
        if (p->kind == PENDING_EXEC) {
            p->client = NULL; /* the process runs on; its exit is still reaped */
        } else if (p->kind == PENDING_ATTACH) {
            p->client = NULL;
            server_end_attach(p, -1, NULL);
        } else
            pending_remove(s, p);
    }
    supervisor_unwatch(s->sup, c->fd);
    close(c->fd);
    free(c);
    s->n_clients--;
}

/* Free the clients marked dead; only at the outermost callback, so that no handler loses its client. */
static void sweep(struct shim_server *s)
{
    if (s->depth > 0)
        return;
    for (struct client **p = &s->clients; *p;) {
        struct client *c = *p;
        if (c->is_dead) {
            *p = c->next;
            client_free(s, c);
        } else {
            p = &c->next;
        }
    }
}

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

static void client_ready(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx)
{
    (void)sup;
    (void)fd;
    struct client *c = ctx;
    struct shim_server *s = c->server;
    s->depth++;
    if (events & EPOLLIN) {
        json_t *msg = NULL;
        int fds[PROTO_MAX_FDS];
        size_t n_fds = 0;
        struct pea_error err = {0};
        if (proto_recv(c->fd, &msg, fds, 3, &n_fds, &err) < 0) {
            if (err.errnum == EAGAIN || err.errnum == EWOULDBLOCK)
                ; /* woken for nothing */
            else if (err.errnum != 0)
                c->is_dead = true; /* ECONNRESET and the like: the client has gone */
            else
                client_reply_error(c, 0, err.msg); /* garbage, too large, too many fds: say so, go on */
        } else if (!msg) {
            c->is_dead = true; /* orderly shutdown */
        } else {
            struct proto_request req;
            if (proto_request_from_json(msg, &req, &err) < 0) {
                client_reply_error(c, req.has_id ? req.id : 0, err.msg);
                close_fds(fds, n_fds);
            } else {
                server_handle(c, &req, fds, n_fds);
            }
            proto_request_clear(&req);
            json_decref(msg);
        }
    } else if (events & (EPOLLHUP | EPOLLERR)) {
        c->is_dead = true;
    }
    s->depth--;
    sweep(s);
}

static void refuse(int fd, const char *message)
{
    struct pea_error ignored = {0};
    AUTO_JSON json_t *msg = proto_reply_error(0, message);
    proto_send(fd, msg, NULL, 0, &ignored);
    close(fd);
}

static void listener_ready(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx)
{
    (void)events;
    struct shim_server *s = ctx;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("accept on the control socket: %s", strerror(errno));
            return;
        }
        struct pea_error err = {0};
        if (proto_check_peer(cfd, s->owner, &err) < 0) {
            log_warn("control socket: %s", err.msg);
            refuse(cfd, err.msg);
            continue;
        }
        if (s->n_clients >= SHIM_MAX_CLIENTS) {
            refuse(cfd, "too many clients");
            continue;
        }
        struct client *c = xcalloc(1, sizeof *c);
        c->server = s;
        c->fd = cfd;
        if (supervisor_watch(sup, cfd, client_ready, c, &err) < 0) {
            log_warn("control socket: %s", err.msg);
            close(cfd);
            free(c);
            continue;
        }
        c->next = s->clients;
        s->clients = c;
        s->n_clients++;
    }
}

/* ---- pending replies ---- */

struct pending *pending_add(struct shim_server *s, enum pending_kind kind, struct client *c, uint64_t id,
                            const char *container)
{
    struct pending *p = xcalloc(1, sizeof *p);
    p->server = s;
    p->kind = kind;
    p->client = c;
    p->id = id;
    p->container = container ? xstrdup(container) : NULL;
    p->pidfd = -1;
    p->out_fds[0] = p->out_fds[1] = p->out_fds[2] = -1;
    p->next = s->pending;
    s->pending = p;
    return p;
}

void pending_remove(struct shim_server *s, struct pending *p)
{
    for (struct pending **link = &s->pending; *link; link = &(*link)->next)
        if (*link == p) {
            *link = p->next;
            break;
        }
    if (p->pidfd >= 0) {
        supervisor_unwatch(s->sup, p->pidfd);
        close(p->pidfd);
    }
    for (int i = 0; i < 3; i++) {
        if (p->is_waiting_room[i])
            supervisor_unwatch(s->sup, p->out_fds[i]);
        if (p->out_fds[i] >= 0)
            close(p->out_fds[i]);
        free(p->queued[i]);
    }
    json_decref(p->result);
    json_decref(p->awaited);
    free(p->container);
    free(p->instance);
    free(p);
}

json_t *containers_find(json_t *containers, const char *name)
{
    size_t i;
    json_t *record;
    json_array_foreach(containers, i, record) {
        const char *n = json_string_value(json_object_get(record, "name"));
        if (n && strcmp(n, name) == 0)
            return record;
    }
    return NULL;
}

static bool state_is(const json_t *record, const char *state)
{
    const char *s = json_string_value(json_object_get(record, "state"));
    return s && strcmp(s, state) == 0;
}

static bool every_app_runs(json_t *containers)
{
    size_t i;
    json_t *record;
    json_array_foreach(containers, i, record)
        if (!json_is_true(json_object_get(record, "init")) && !state_is(record, "running"))
            return false;
    return true;
}

/* The awaited containers have each started since (or failed to: that too sets startedAt), are gone, or wait for
 * their turn (an app container before the init containers are done starts later, from the new spec). */
static bool applied_containers_started(const struct pending *p, json_t *containers)
{
    const char *name;
    json_t *before;
    json_object_foreach(p->awaited, name, before) {
        json_t *record = containers_find(containers, name);
        json_t *started = json_object_get(record, "startedAt");
        bool is_same_instance = json_is_null(before) ? !started : started && json_equal(before, started);
        if (record && is_same_instance && !state_is(record, "waiting"))
            return false;
    }
    return true;
}

/* Whether p can be answered now; *result gets what to answer with. */
static bool pending_is_met(const struct pending *p, json_t *containers, json_t *status, json_t **result)
{
    json_t *record = p->container ? containers_find(containers, p->container) : NULL;
    switch (p->kind) {
    case PENDING_LEAVE_RUNNING:
        if (record && state_is(record, "running"))
            return false;
        break;
    case PENDING_EXITED:
        if (!record || !(state_is(record, "exited") || state_is(record, "stopped")))
            return false;
        break;
    case PENDING_RUNNING:
        if (p->container ? !(record && state_is(record, "running")) : !every_app_runs(containers))
            return false;
        break;
    case PENDING_POD_EXIT: {
        const char *pod_state = json_string_value(json_object_get(status, "status"));
        if (!pod_state || strcmp(pod_state, "finished") != 0)
            return false;
        *result = json_incref(status);
        return true;
    }
    case PENDING_STARTED:
        if (!applied_containers_started(p, containers))
            return false;
        break;
    case PENDING_EXEC:
    case PENDING_ATTACH: return false;
    case PENDING_APPLY:
        if (!applied_containers_started(p, containers))
            return false;
        *result = json_incref(p->result);
        return true;
    }
    *result = record ? json_deep_copy(record) : json_deep_copy(containers);
    return true;
}

void pending_check(struct shim_server *s)
{
    AUTO_JSON json_t *status = supervisor_pod_status(s->sup);
    json_t *containers = json_object_get(status, "containers");
    for (struct pending *p = s->pending, *next; p; p = next) {
        next = p->next;
        json_t *result = NULL;
        if (!p->client || !pending_is_met(p, containers, status, &result))
            continue;
        client_send(p->client, proto_reply_ok(p->id, result), NULL, 0);
        pending_remove(s, p);
    }
}

/* ---- supervisor callbacks ---- */

static void broadcast(struct shim_server *s, json_t *event)
{
    for (struct client *c = s->clients; c; c = c->next)
        if (c->is_subscribed)
            client_send(c, proto_event(c->events_id, json_incref(event)), NULL, 0);
    json_decref(event);
}

static json_t *event_base(const char *container)
{
    char now[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    format_rfc3339_nano(&ts, now, sizeof now);
    return json_pack("{s:s, s:s}", "time", now, "container", container);
}

static void on_output(void *ctx, const char *container, enum pod_stream stream, const char *buf, size_t len)
{
    struct shim_server *s = ctx;
    shim_logs_write(s->logs, container, stream, buf, len);
    server_attach_output(s, container, (int)stream, buf, len);
    sweep(s);
}

static void on_event(void *ctx, const char *container, const char *what)
{
    struct shim_server *s = ctx;
    log_msg(PEA_LOG_INFO, "%s: %s", container, what);
    json_t *event = event_base(container);
    json_object_set_new(event, "message", json_string(what));
    broadcast(s, event);
    sweep(s);
}

static void on_event_reason(void *ctx, const char *container, const char *reason, const char *what)
{
    struct shim_server *s = ctx;
    log_msg(PEA_LOG_INFO, "%s: %s: %s", container, reason, what);
    json_t *event = event_base(container);
    json_object_set_new(event, "reason", json_string(reason));
    json_object_set_new(event, "message", json_string(what));
    broadcast(s, event);
    sweep(s);
}

static void on_change(void *ctx, const char *container, const json_t *record)
{
    struct shim_server *s = ctx;
    json_t *event = event_base(container);
    json_object_set_new(event, "record", json_deep_copy(record));
    broadcast(s, event);
    /* The loop may report a change before server_start, while the supervisor is being made. */
    if (s->sup) {
        server_end_execs(s, container, record);
        server_end_attaches(s, container, record);
        pending_check(s);
    }
    sweep(s);
    /* A container's start builds its config, spec and process in memory and frees them: give back the pages, or
     * they stay resident for the shim's life. Changes are rare (starts, exits), a trim is cheap. */
    malloc_trim(0);
}

static void on_new_instance(void *ctx, const char *container)
{
    struct shim_server *s = ctx;
    shim_logs_new_instance(s->logs, container);
}

const struct pod_supervisor_ops *server_supervisor_ops(void)
{
    static const struct pod_supervisor_ops ops = {
        .on_output = on_output, .on_event = on_event, .on_change = on_change, .on_new_instance = on_new_instance,
        .on_event_reason = on_event_reason};
    return &ops;
}

/* ---- lifetime ---- */

struct shim_server *server_new(struct pea_pod *pod, struct shim_logs *logs, int listen_fd, uid_t owner)
{
    struct shim_server *s = xcalloc(1, sizeof *s);
    s->pod = pod;
    s->logs = logs;
    s->listen_fd = listen_fd;
    s->owner = owner;
    return s;
}

int server_start(struct shim_server *s, struct pod_supervisor *sup, struct pea_error *err)
{
    s->sup = sup;
    return supervisor_watch(sup, s->listen_fd, listener_ready, s, err);
}

void server_finish(struct shim_server *s, int exit_code)
{
    s->depth++;
    for (struct pending *p = s->pending, *next; p; p = next) {
        next = p->next;
        if (p->client && p->kind == PENDING_POD_EXIT) {
            client_send(p->client, proto_reply_ok(p->id, json_pack("{s:i}", "exitCode", exit_code)), NULL, 0);
        } else if (p->kind == PENDING_ATTACH) {
            server_end_attach(p, -1, "the pod has stopped");
            continue;
        } else if (p->client && p->kind == PENDING_EXEC) {
            /* Not reaped by now (server_end_execs could not): its exit code is not ours to report. */
            client_send(p->client, proto_event(p->id, json_pack("{s:s}", "reason", "the pod has stopped")), NULL, 0);
            client_send(p->client, proto_end(p->id), NULL, 0);
        } else if (p->client) {
            client_reply_error(p->client, p->id, "the pod has stopped");
        }
        if (p->pidfd >= 0) {
            /* Killed with its container by the teardown; whatever is not gone yet, init reaps. */
            siginfo_t info;
            waitid(P_PIDFD, (id_t)p->pidfd, &info, WEXITED | WNOHANG);
        }
        pending_remove(s, p);
    }
    for (struct client *c = s->clients; c; c = c->next)
        if (c->is_subscribed)
            client_send(c, proto_end(c->events_id), NULL, 0);
    for (struct client *c = s->clients; c; c = c->next)
        c->is_dead = true;
    s->depth--;
    sweep(s);
}

void server_free(struct shim_server *s)
{
    if (!s)
        return;
    while (s->pending)
        pending_remove(s, s->pending);
    for (struct client *c = s->clients; c; c = s->clients) {
        s->clients = c->next;
        client_free(s, c);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    free(s);
}
