/* One handler per request of the control protocol. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/container.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "server_internal.h"

static void reply_ok(struct client *c, uint64_t id, json_t *result)
{
    client_send(c, proto_reply_ok(id, result), NULL, 0);
}

static void reply_result(struct client *c, uint64_t id, int r, const struct pea_error *err)
{
    if (r < 0)
        client_reply_error(c, id, err->msg);
    else
        reply_ok(c, id, NULL);
}

static bool container_is_running(struct shim_server *s, const char *name)
{
    AUTO_JSON json_t *containers = supervisor_containers(s->sup);
    json_t *record = containers_find(containers, name);
    const char *state = json_string_value(json_object_get(record, "state"));
    return state && strcmp(state, "running") == 0;
}

/* stop and restart answer once the container has left "running", so that the client sees the effect. */
static void handle_stop_or_restart(struct client *c, const struct proto_request *req)
{
    struct shim_server *s = c->server;
    struct pea_error err = {0};
    int r;
    if (req->op == PROTO_OP_STOP) {
        long long grace = req->has_timeout ? (long long)req->timeout_seconds
                                           : s->pod->manifest->termination_grace_seconds;
        r = supervisor_container_stop(s->sup, req->container, grace, &err);
    } else {
        r = supervisor_container_restart(s->sup, req->container, &err);
    }
    if (r < 0)
        client_reply_error(c, req->id, err.msg);
    else if (!container_is_running(s, req->container))
        reply_ok(c, req->id, NULL);
    else
        pending_add(s, PENDING_LEAVE_RUNNING, c, req->id, req->container);
}

static void handle_wait(struct client *c, const struct proto_request *req)
{
    struct shim_server *s = c->server;
    if (req->container) {
        AUTO_JSON json_t *containers = supervisor_containers(s->sup);
        if (!containers_find(containers, req->container)) {
            AUTO_FREE char *msg = xasprintf("no container %s in pod %s", req->container, s->pod->name);
            client_reply_error(c, req->id, msg);
            return;
        }
    }
    if (req->wait_for == PROTO_WAIT_STARTED) {
        struct pending *p = pending_add(s, PENDING_STARTED, c, req->id, req->container);
        p->awaited = json_object();
        AUTO_JSON json_t *containers = supervisor_containers(s->sup);
        size_t i;
        json_t *record;
        json_array_foreach(containers, i, record) {
            const char *name = json_string_value(json_object_get(record, "name"));
            if (name && (!req->container || strcmp(name, req->container) == 0))
                json_object_set_new(p->awaited, name, json_null());
        }
        pending_check(s);
        return;
    }
    enum pending_kind kind = req->wait_for == PROTO_WAIT_RUNNING ? PENDING_RUNNING
                             : req->container                   ? PENDING_EXITED
                                                                : PENDING_POD_EXIT;
    pending_add(s, kind, c, req->id, req->container);
    pending_check(s);
}

/* How long a process exec'd into a container that has gone may take to die of its SIGKILL before we move on (it is
 * then reaped when its exit shows, or at the end). */
#define EXEC_KILL_WAIT_MS 2000

/* Tell p's client how its process ended (info NULL: it could not be read), then drop p. A process killed while its
 * container or the pod stops (or, has_lost_container, once its container's instance has gone) went with them: the
 * client is told so, not left to guess from a signal. */
static void exec_finish(struct pending *p, const siginfo_t *info, bool has_lost_container)
{
    struct shim_server *s = p->server;
    if (p->client) {
        json_t *event = json_object();
        if (info)
            json_object_set_new(event, "exitCode", json_integer(info->si_code == CLD_EXITED
                                                                    ? info->si_status
                                                                    : 128 + info->si_status));
        AUTO_FREE char *reason = NULL;
        if (!info)
            reason = xstrdup("its exit status could not be read");
        else if (info->si_code != CLD_EXITED && supervisor_is_stopping(s->sup))
            reason = xstrdup("the pod is being stopped");
        else if (info->si_code != CLD_EXITED &&
                 (has_lost_container || supervisor_container_is_ending(s->sup, p->container)))
            reason = xasprintf("container %s stopped", p->container);
        if (reason)
            json_object_set_new(event, "reason", json_string(reason));
        client_send(p->client, proto_event(p->id, event), NULL, 0);
        client_send(p->client, proto_end(p->id), NULL, 0);
    }
    pending_remove(s, p);
}

static void exec_exited(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx)
{
    (void)sup;
    (void)events;
    struct pending *p = ctx;
    siginfo_t info = {0};
    if (waitid(P_PIDFD, (id_t)fd, &info, WEXITED | WNOHANG) < 0) {
        /* Not EINTR with WNOHANG; anything else would leave the pidfd readable for ever. */
        exec_finish(p, NULL, false);
        return;
    }
    if (info.si_pid != 0)
        exec_finish(p, &info, false);
}

void server_end_execs(struct shim_server *s, const char *container, const json_t *record)
{
    const char *state = json_string_value(json_object_get(record, "state"));
    const char *started = json_string_value(json_object_get(record, "startedAt"));
    bool is_running = state && strcmp(state, "running") == 0;
    for (struct pending *p = s->pending, *next; p; p = next) {
        next = p->next;
        if (p->kind != PENDING_EXEC || strcmp(p->container, container) != 0)
            continue;
        if (is_running && (!p->instance || (started && strcmp(p->instance, started) == 0)))
            continue;
        /* In a container of its own PID namespace it died with the init already; in the pod's shared one it would
         * live on. */
        sys_pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        struct pollfd exited = {.fd = p->pidfd, .events = POLLIN};
        poll(&exited, 1, EXEC_KILL_WAIT_MS);
        siginfo_t info = {0};
        if (waitid(P_PIDFD, (id_t)p->pidfd, &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0)
            exec_finish(p, &info, true);
    }
}

/* exec: the process gets the client's fds as stdio, or a pty whose master goes back in the reply. */
static void handle_exec(struct client *c, const struct proto_request *req, int *fds, size_t n_fds)
{
    struct shim_server *s = c->server;
    struct pea_error err = {0};
    if (req->tty ? n_fds != 0 : n_fds != 0 && n_fds != 3) {
        client_reply_error(c, req->id, req->tty ? "exec: with tty, no descriptors are passed"
                                                : "exec: pass stdin, stdout and stderr, or no descriptor");
        return;
    }
    /* Checked before the process is built from the container's state, which one that failed to start has not. */
    if (supervisor_exec_check(s->sup, req->container, &err) < 0) {
        client_reply_error(c, req->id, err.msg);
        return;
    }
    AUTO_JSON json_t *process = container_exec_process_from_flags(
        s->pod->oci_root, req->container, req->args, req->env, req->cwd, req->user, req->tty, 1, &err);
    if (!process) {
        AUTO_FREE char *msg = xasprintf("exec in %s: %s", req->container, err.msg);
        client_reply_error(c, req->id, msg);
        return;
    }
    int stdio[3] = {-1, -1, -1};
    for (size_t i = 0; i < n_fds; i++)
        stdio[i] = fds[i];
    pid_t pid = 0;
    AUTO_FD int pidfd = -1, master = -1;
    if (supervisor_exec(s->sup, req->container, process, stdio, &pid, &pidfd, &master, &err) < 0) {
        client_reply_error(c, req->id, err.msg);
        return;
    }
    struct pending *p = pending_add(s, PENDING_EXEC, c, req->id, req->container);
    p->pidfd = take_fd(&pidfd);
    AUTO_JSON json_t *containers = supervisor_containers(s->sup);
    const char *started = json_string_value(json_object_get(containers_find(containers, req->container), "startedAt"));
    p->instance = started ? xstrdup(started) : NULL;
    if (supervisor_watch(s->sup, p->pidfd, exec_exited, p, &err) < 0) {
        /* Without the watch its exit would never be seen: end it now rather than leak it. */
        log_warn("exec in %s: %s", req->container, err.msg);
        sys_pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        siginfo_t info;
        waitid(P_PIDFD, (id_t)p->pidfd, &info, WEXITED);
        pending_remove(s, p);
        client_reply_error(c, req->id, err.msg);
        return;
    }
    client_send(c, proto_reply_ok(req->id, json_pack("{s:i}", "pid", (int)pid)), &master, master >= 0 ? 1 : 0);
}

static void handle_apply(struct client *c, const struct proto_request *req, const int *fds, size_t n_fds)
{
    struct shim_server *s = c->server;
    struct pea_error err = {0};
    if (n_fds != 1) {
        client_reply_error(c, req->id, "apply: the manifest comes as one descriptor");
        return;
    }
    struct pea_pod_manifest *m = manifest_load_sealed(fds[0], "manifest", &err);
    if (!m) {
        AUTO_FREE char *msg = xasprintf("apply: %s", err.msg);
        client_reply_error(c, req->id, msg);
        return;
    }
    /* Which instance of each container ran before: the apply is done once the recreated and added ones have
     * new ones. */
    AUTO_JSON json_t *before = supervisor_containers(s->sup);
    json_t *summary = NULL;
    if (supervisor_apply(s->sup, m, &summary, &err) < 0) {
        manifest_free(m);
        client_reply_error(c, req->id, err.msg);
        return;
    }
    if (req->no_wait) {
        reply_ok(c, req->id, summary);
        return;
    }
    struct pending *p = pending_add(s, PENDING_APPLY, c, req->id, NULL);
    p->result = summary;
    p->awaited = json_object();
    static const char *const started[] = {"recreated", "added"};
    for (size_t i = 0; i < ARRAY_SIZE(started); i++) {
        size_t j;
        json_t *name;
        json_array_foreach(json_object_get(summary, started[i]), j, name) {
            json_t *at = json_object_get(containers_find(before, json_string_value(name)), "startedAt");
            json_object_set_new(p->awaited, json_string_value(name), at ? json_incref(at) : json_null());
        }
    }
    pending_check(s);
}

void server_handle(struct client *c, struct proto_request *req, int *fds, size_t n_fds)
{
    struct shim_server *s = c->server;
    struct pea_error err = {0};
    if (req->op != PROTO_OP_EXEC && req->op != PROTO_OP_APPLY && n_fds > 0) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        client_reply_error(c, req->id, "descriptors come only with exec and apply");
        return;
    }
    switch (req->op) {
    case PROTO_OP_STATUS: {
        json_t *status = supervisor_pod_status(s->sup);
        json_object_set_new(status, "shimPid", json_integer(getpid()));
        reply_ok(c, req->id, status);
        break;
    }
    case PROTO_OP_LIST: reply_ok(c, req->id, supervisor_containers(s->sup)); break;
    case PROTO_OP_START:
        reply_result(c, req->id, supervisor_container_start(s->sup, req->container, &err), &err);
        break;
    case PROTO_OP_KILL:
        reply_result(c, req->id, supervisor_container_kill(s->sup, req->container, req->signal, &err), &err);
        break;
    case PROTO_OP_STOP:
    case PROTO_OP_RESTART: handle_stop_or_restart(c, req); break;
    case PROTO_OP_EXEC:
        handle_exec(c, req, fds, n_fds);
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        break;
    case PROTO_OP_ATTACH: server_handle_attach(c, req); break;
    case PROTO_OP_LOGS:
        /* Reading files is the client's work: the shim never blocks on (or buffers for) a slow log reader. */
        client_reply_error(c, req->id, "logs are read from the files: use pea pod logs");
        break;
    case PROTO_OP_WAIT: handle_wait(c, req); break;
    case PROTO_OP_APPLY:
        handle_apply(c, req, fds, n_fds);
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        break;
    case PROTO_OP_EVENTS:
        c->is_subscribed = true;
        c->events_id = req->id;
        break;
    case PROTO_OP_SHUTDOWN:
        reply_ok(c, req->id, NULL);
        if (req->has_timeout)
            supervisor_request_stop_within(s->sup, (long long)req->timeout_seconds);
        else
            supervisor_request_stop(s->sup);
        break;
    }
}
