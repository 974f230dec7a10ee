/* pea pod apply/exec/stop/wait/events: the clients of pea-shim, and what every pod command needs to reach it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pod_client.h"
#include "pea/log.h"
#include "pea/pod_manifest.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "proto.h"

#define SHIM_SOCKET_NAME "shim.sock"

/* A deadline passed: the message says which and how long, without strerror's words; errnum says ETIMEDOUT. */
__attribute__((format(printf, 2, 3))) static int fail_timed_out(struct pea_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->errnum = ETIMEDOUT;
    return -1;
}

/* "10s", "2.5s": a deadline as the messages say it. */
static void format_duration(int ms, char *buf, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%ds", ms / 1000);
    else
        snprintf(buf, len, "%d.%ds", ms / 1000, ms % 1000 / 100);
}

char *pod_find_helper(const char *argv0, const char *name, const char *build_subdir, struct pea_error *err)
{
    char self[PATH_MAX];
    if (argv0 && strchr(argv0, '/') && realpath(argv0, self)) {
        *strrchr(self, '/') = '\0';
        char *candidates[] = {xasprintf("%s/%s", self, name), xasprintf("%s/../%s/%s", self, build_subdir, name),
                              xasprintf("%s/../libexec/pea/%s", self, name)};
        char *found = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
            if (!found && access(candidates[i], X_OK) == 0)
                found = take_ptr(&candidates[i]);
            free(candidates[i]);
        }
        if (found)
            return found;
    }
    AUTO_FREE char *installed = xasprintf("%s/%s", PEA_LIBEXEC_DIR, name);
    if (access(installed, X_OK) == 0)
        return take_ptr(&installed);
    pea_fail(err, ENOENT, "find %s (beside pea, or %s)", name, installed);
    return NULL;
}

/* The shim runs from /: every path it gets must be absolute. */
static char *absolute_path(const char *path)
{
    char cwd[PATH_MAX];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return xstrdup(path);
    return xasprintf("%s/%s", cwd, path);
}

/* In the first child: a new session, then the shim as a grandchild, so that it is nobody's child but init's (or
 * a subreaper's) and has no controlling terminal; stdio on /dev/null, the ready pipe as fd 3, the manifest (when
 * manifest_fd >= 0) as fd 4, nothing else. */
static void exec_shim_detached(char **argv, int ready_write, int manifest_fd)
{
    if (setsid() < 0)
        _exit(1);
    pid_t pid = fork();
    if (pid != 0)
        _exit(pid < 0 ? 1 : 0);
    int ready = fcntl(ready_write, F_DUPFD, 10);
    int manifest = manifest_fd >= 0 ? fcntl(manifest_fd, F_DUPFD, 10) : -1;
    int null_fd = open("/dev/null", O_RDWR);
    if (ready < 0 || (manifest_fd >= 0 && manifest < 0) || null_fd < 0 || chdir("/") < 0)
        _exit(1);
    for (int fd = 0; fd < 3; fd++)
        if (dup2(null_fd, fd) < 0)
            _exit(1);
    if (dup2(ready, 3) < 0 || (manifest >= 0 && dup2(manifest, 4) < 0))
        _exit(1);
    sys_close_from(manifest >= 0 ? 5 : 4);
    execv(argv[0], argv);
    _exit(127);
}

/* Read the shim's one ready line: "ok", or its error. */
static int await_ready(int fd, const char *shim, struct pea_error *err)
{
    char line[1024];
    size_t used = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (used < sizeof line - 1) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = POD_SHIM_READY_TIMEOUT_MS - ((now.tv_sec - start.tv_sec) * 1000LL +
                                                      (now.tv_nsec - start.tv_nsec) / 1000000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return pea_fail(err, errno, "wait for %s to get the pod ready", shim);
        if (r == 0) {
            char within[32];
            format_duration(POD_SHIM_READY_TIMEOUT_MS, within, sizeof within);
            return fail_timed_out(err, "%s did not report the pod ready within %s", shim, within);
        }
        ssize_t n = read(fd, line + used, sizeof line - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        used += (size_t)n;
        if (memchr(line, '\n', used))
            break;
    }
    line[used] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, "ok") == 0)
        return 0;
    if (!line[0])
        return pea_fail(err, 0, "%s exited before the pod was ready", shim);
    return pea_fail(err, 0, "%s", line);
}

/* Start pea-shim detached and wait for its "ok": for a new pod (argv_tail: --data-root, --pause, --manifest-fd; the
 * manifest in manifest_fd) or to adopt one whose shim died (--adopt NAME; manifest_fd -1). */
static int spawn_shim(const struct cli_globals *g, char *const *argv_tail, size_t n_tail, int manifest_fd,
                      struct pea_error *err)
{
    AUTO_FREE char *shim = pod_find_helper(g->argv0, "pea-shim", "shim", err);
    if (!shim)
        return -1;
    AUTO_FREE char *root = absolute_path(g->root);
    char *argv[16] = {shim, "--root", root, "--ready-fd", "3"};
    size_t n = 5;
    for (size_t i = 0; i < n_tail; i++)
        argv[n++] = argv_tail[i];
    if (g->debug)
        argv[n++] = "--debug";
    argv[n] = NULL;
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "pipe for %s", shim);
    AUTO_FD int ready_read = ready[0];
    pid_t pid = fork();
    if (pid < 0) {
        close(ready[1]);
        return pea_fail(err, errno, "fork for %s", shim);
    }
    if (pid == 0)
        exec_shim_detached(argv, ready[1], manifest_fd);
    close(ready[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return await_ready(ready_read, "pea-shim", err);
}

int pod_spawn_shim(const struct cli_globals *g, int manifest_fd, const char *data_root, const char *pause,
                   struct pea_error *err)
{
    AUTO_FREE char *data = absolute_path(data_root);
    AUTO_FREE char *pause_path = absolute_path(pause);
    char *tail[] = {"--data-root", data, "--pause", pause_path, "--manifest-fd", "4"};
    return spawn_shim(g, tail, ARRAY_SIZE(tail), manifest_fd, err);
}

int pod_adopt(const struct cli_globals *g, const char *name, struct pea_error *err)
{
    char *tail[] = {"--adopt", (char *)name};
    return spawn_shim(g, tail, ARRAY_SIZE(tail), -1, err);
}

/* ---- talking to a shim ---- */

bool pod_shim_is_alive(const struct pea_pod *pod) { return pod_recorded_process_alive(pod, "shim"); }

pid_t pod_shim_peer_pid(int fd)
{
    struct ucred cred = {0};
    socklen_t len = sizeof cred;
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
}

/* The send timeout set at connect (SO_SNDTIMEO), in ms. */
static int send_timeout_ms(int fd)
{
    struct timeval tv = {0};
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) < 0)
        return 0;
    return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

int pod_shim_connect(const struct pea_pod *pod, int timeout_ms, struct pea_error *err)
{
    AUTO_FD int dir_fd = open(pod->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open %s", pod->dir);
    /* Through /proc/self/fd, so that a long --root cannot overflow sun_path. */
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dir_fd, SHIM_SOCKET_NAME);
    AUTO_FD int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return pea_fail(err, errno, "create a socket");
    /* A shim that does not accept (its backlog full) or read (its queue full) would block connect and sendmsg for
     * ever; SO_SNDTIMEO bounds both. */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        return pea_fail(err, errno, "set a send timeout on a socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (errno != EAGAIN)
            return pea_fail(err, errno, "pod %s: connect to its shim at %s/%s", pod->name, pod->dir,
                            SHIM_SOCKET_NAME);
        char within[32];
        format_duration(timeout_ms, within, sizeof within);
        json_t *shim = json_object_get(pod->state, "shim");
        return fail_timed_out(err, "pod %s: pea-shim (pid %lld) did not take the connection within %s",
                              pod->name, (long long)json_integer_value(json_object_get(shim, "pid")), within);
    }
    return take_fd(&fd);
}

static uint64_t next_request_id = 1;

json_t *pod_shim_request(const char *op) { return proto_request_new(next_request_id++, op); }

/* Wait for one message; timeout_ms < 0 waits for ever. *msg NULL: the shim closed the connection. */
int pod_shim_receive(int fd, int timeout_ms, json_t **msg, int *reply_fd, struct pea_error *err)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return pea_fail(err, errno, "wait for pea-shim (pid %d) to answer", (int)pod_shim_peer_pid(fd));
        if (r == 0) {
            char within[32];
            format_duration(timeout_ms, within, sizeof within);
            return fail_timed_out(err, "pea-shim (pid %d) did not answer within %s", (int)pod_shim_peer_pid(fd),
                                  within);
        }
        break;
    }
    int fds[PROTO_MAX_FDS];
    size_t n_fds = 0;
    if (proto_recv(fd, msg, fds, reply_fd ? 1 : 0, &n_fds, err) < 0)
        return -1;
    if (reply_fd)
        *reply_fd = n_fds > 0 ? fds[0] : -1;
    /* A shim of another pea (the binaries replaced while it runs) may speak another protocol: say so rather
     * than misread it. */
    json_t *v = *msg ? json_object_get(*msg, "v") : NULL;
    if (*msg && json_integer_value(v) != PROTO_VERSION) {
        json_int_t got = json_integer_value(v);
        json_decref(take_ptr(msg));
        if (reply_fd && *reply_fd >= 0) {
            close(*reply_fd);
            *reply_fd = -1;
        }
        return pea_fail(err, 0, "pea-shim speaks protocol version %lld; this pea speaks %d (restart the pod with "
                        "pea pod apply --recreate)", (long long)got, PROTO_VERSION);
    }
    return 0;
}

int pod_shim_outcome(json_t *msg, json_t **result, struct pea_error *err)
{
    if (!json_is_true(json_object_get(msg, "ok"))) {
        const char *message = json_string_value(json_object_get(msg, "error"));
        return pea_fail(err, 0, "%s", message ? message : "pea-shim sent a malformed reply");
    }
    if (result)
        *result = json_incref(json_object_get(msg, "result"));
    return 0;
}

int pod_shim_call(int fd, json_t *request, const int *fds, size_t n_fds, int timeout_ms, json_t **result,
                  int *reply_fd, struct pea_error *err)
{
    AUTO_JSON json_t *req = request;
    json_int_t id = json_integer_value(json_object_get(req, "id"));
    if (proto_send(fd, req, fds, n_fds, err) < 0) {
        if (err->errnum != EAGAIN)
            return -1;
        char within[32];
        format_duration(send_timeout_ms(fd), within, sizeof within);
        return fail_timed_out(err, "pea-shim (pid %d) did not take the request within %s",
                              (int)pod_shim_peer_pid(fd), within);
    }
    for (;;) {
        AUTO_JSON json_t *msg = NULL;
        if (pod_shim_receive(fd, timeout_ms, &msg, reply_fd, err) < 0)
            return -1;
        if (!msg)
            return pea_fail(err, 0, "pea-shim (pid %d) closed the connection without an answer",
                            (int)pod_shim_peer_pid(fd));
        json_int_t got = json_integer_value(json_object_get(msg, "id"));
        /* id 0 answers a request the shim could not read, or a refused connection. */
        if ((got == id || got == 0) && json_object_get(msg, "ok"))
            return pod_shim_outcome(msg, result, err);
        if (reply_fd && *reply_fd >= 0)
            close(*reply_fd);
    }
}

json_t *pod_shim_status(const struct pea_pod *pod)
{
    struct pea_error err = {0};
    if (!pod_shim_is_alive(pod))
        return NULL;
    AUTO_FD int fd = pod_shim_connect(pod, POD_SHIM_STATUS_TIMEOUT_MS, &err);
    json_t *status = NULL;
    if (fd < 0 || pod_shim_call(fd, pod_shim_request("status"), NULL, 0, POD_SHIM_STATUS_TIMEOUT_MS, &status, NULL,
                                &err) < 0)
        return NULL;
    return status;
}

/* Wait until the connection ends (the shim closes it only when the pod is gone) and the shim has exited: the
 * teardown takes the grace period and then some; a shim that has not finished a minute after that is stuck. */
static int await_shim_exit(const struct pea_pod *pod, int fd, int pidfd, struct pea_error *err)
{
    long long grace = pod->manifest->termination_grace_seconds;
    int timeout_ms = (int)((grace + 60) * 1000);
    char within[32];
    format_duration(timeout_ms, within, sizeof within);
    pid_t shim = pod_shim_peer_pid(fd);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000);
        AUTO_JSON json_t *msg = NULL;
        struct pea_error why = {0};
        if (left <= 0 || pod_shim_receive(fd, (int)left, &msg, NULL, &why) < 0) {
            if (left > 0 && why.errnum != ETIMEDOUT) {
                *err = why;
                return pea_wrap(err, "pod %s: shut down", pod->name);
            }
            return fail_timed_out(err, "pod %s: pea-shim (pid %d) did not finish the teardown within %s",
                                  pod->name, (int)shim, within);
        }
        if (!msg)
            break;
    }
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (pidfd >= 0 && poll(&p, 1, 10000) == 0)
        return fail_timed_out(err, "pod %s: pea-shim (pid %d) did not exit within 10s of closing its socket",
                              pod->name, (int)shim);
    return 0;
}

int pod_shim_shutdown(const struct pea_pod *pod, struct pea_error *err)
{
    return pod_shim_shutdown_within(pod, POD_SHIM_ANSWER_TIMEOUT_MS, err);
}

int pod_shim_shutdown_within(const struct pea_pod *pod, int answer_timeout_ms, struct pea_error *err)
{
    json_t *shim = json_object_get(pod->state, "shim");
    AUTO_FD int pidfd = sys_pidfd_open((pid_t)json_integer_value(json_object_get(shim, "pid")), 0);
    if (!pod_shim_is_alive(pod))
        return pea_fail(err, 0, "pod %s: its shim is not running", pod->name);
    AUTO_FD int fd = pod_shim_connect(pod, answer_timeout_ms, err);
    if (fd < 0)
        return -1;
    if (pod_shim_call(fd, pod_shim_request("shutdown"), NULL, 0, answer_timeout_ms, NULL, NULL, err) < 0)
        return pea_wrap(err, "pod %s: shut down", pod->name);
    return await_shim_exit(pod, fd, pidfd, err);
}

const char *pod_default_container(const struct pea_pod *pod, struct pea_error *err)
{
    if (pod->manifest->n_containers == 1)
        return pod->manifest->containers[0].name;
    pea_fail(err, 0, "pod %s has %zu containers: name one with -c", pod->name, pod->manifest->n_containers);
    return NULL;
}

/* A pod that a shim serves, connected. */
int pod_open_served(const struct cli_globals *g, const char *name, struct pea_pod **pod, int *fd,
                           struct pea_error *err)
{
    if (pod_open(g->root, name, pod, err) < 0)
        return -1;
    if (!json_object_get((*pod)->state, "shim"))
        return pea_fail(err, 0, "pod %s is not run by pea-shim (it was started with pea pod run)", name);
    if (!pod_shim_is_alive(*pod))
        return pea_fail(err, 0, "pod %s: its shim is gone (the pod is degraded; pea pod rm removes it)", name);
    *fd = pod_shim_connect(*pod, POD_SHIM_ANSWER_TIMEOUT_MS, err);
    AUTO_JSON json_t *status = NULL;
    if (*fd < 0 || pod_shim_call(*fd, pod_shim_request("status"), NULL, 0, POD_SHIM_ANSWER_TIMEOUT_MS, &status,
                                 NULL, err) < 0)
        return -1;
    return 0;
}

/* ---- apply ---- */

static void print_summary(const char *name, json_t *summary)
{
    static const char *const kinds[] = {"recreated", "updated", "added", "removed"};
    bool changed = false;
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        json_t *list = json_object_get(summary, kinds[i]);
        if (json_array_size(list) == 0)
            continue;
        changed = true;
        printf("%s:", kinds[i]);
        size_t j;
        json_t *c;
        json_array_foreach(list, j, c)
            printf("%s %s", j ? "," : "", json_string_value(c));
        printf("\n");
    }
    if (!changed)
        printf("pod %s unchanged\n", name);
}

/* A new pod's shim answers once each container has started (or failed to) or waits behind the init containers,
 * as an apply to a running pod does for the containers it changed. */
static int pod_await_started(const struct cli_globals *g, const char *name, struct pea_error *err)
{
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int fd = -1;
    if (pod_open_served(g, name, &pod, &fd, err) < 0)
        return -1;
    json_t *req = pod_shim_request("wait");
    json_object_set_new(req, "for", json_string("started"));
    AUTO_JSON json_t *result = NULL;
    return pod_shim_call(fd, req, NULL, 0, POD_SHIM_REQUEST_TIMEOUT_MS, &result, NULL, err);
}

int pod_apply(const struct cli_globals *g, int argc, char **argv)
{
    enum { OPT_DATA_ROOT = 256, OPT_PAUSE, OPT_RECREATE, OPT_NO_WAIT, OPT_CONFIGMAP, OPT_SECRET };
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},
        {"configmap", required_argument, NULL, OPT_CONFIGMAP},
        {"secret", required_argument, NULL, OPT_SECRET},
        {"data-root", required_argument, NULL, OPT_DATA_ROOT},
        {"pause", required_argument, NULL, OPT_PAUSE},
        {"recreate", no_argument, NULL, OPT_RECREATE},
        {"no-wait", no_argument, NULL, OPT_NO_WAIT},
        {0},
    };
    const char *file = NULL, *data_root = POD_DEFAULT_DATA_ROOT, *pause = NULL;
    bool recreate = false, no_wait = false;
    AUTO_STRV char **configmaps = xcalloc(1, sizeof(char *)), **secrets = xcalloc(1, sizeof(char *));
    int c;
    while ((c = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case OPT_CONFIGMAP: strv_append(&configmaps, optarg); break;
        case OPT_SECRET: strv_append(&secrets, optarg); break;
        case OPT_DATA_ROOT: data_root = optarg; break;
        case OPT_PAUSE: pause = optarg; break;
        case OPT_RECREATE: recreate = true; break;
        case OPT_NO_WAIT: no_wait = true; break;
        default: return cli_usage_error("pod apply", "unknown option %s", argv[optind - 1]);
        }
    }
    if (!file || optind != argc)
        return cli_usage_error("pod apply", "-f FILE is required, and nothing else");
    struct pea_error err = {0};
    AUTO_FREE char *pause_path = pause ? xstrdup(pause) : pod_find_helper(g->argv0, "pea-pause", "sandbox", &err);
    struct pea_pod_manifest *m = pause_path ? manifest_load_with_configs(file, configmaps, secrets, &err) : NULL;
    if (!m)
        return cli_fail(&err);
    /* The shim parses the manifest for itself, from exactly this text in a memfd: the client keeps only what it
     * needs, so that its own parse is gone before it reads the pod's state. */
    AUTO_FREE char *name = xstrdup(m->name);
    long long grace_seconds = m->termination_grace_seconds;
    AUTO_FD int manifest_fd = manifest_source_memfd(m, &err);
    manifest_free(m);
    if (manifest_fd < 0)
        return cli_fail(&err);
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, name);
    if (access(dir, F_OK) == 0) {
        if (pod_open(g->root, name, &pod, &err) < 0)
            return cli_fail(&err);
        if (!recreate) {
            AUTO_FD int fd = -1;
            /* The shim died but the pod lives: a new shim takes it over, then applies what changed. */
            if (json_object_get(pod->state, "shim") && !pod_shim_is_alive(pod) && pod_infra_alive(pod)) {
                if (pod_adopt(g, name, &err) < 0)
                    return cli_fail(&err);
                printf("pod %s adopted by a new pea-shim\n", name);
            }
            pod_free(take_ptr(&pod));
            if (pod_open_served(g, name, &pod, &fd, &err) < 0)
                return cli_fail(&err);
            json_t *req = pod_shim_request("apply");
            /* Sent only when asked: a shim older than the argument refuses it (and answers at once without it). */
            if (no_wait)
                json_object_set_new(req, "noWait", json_true());
            /* The answer comes once recreated containers have been stopped (the new grace period) and started. */
            long long timeout_ms = POD_SHIM_REQUEST_TIMEOUT_MS + (no_wait ? 0 : grace_seconds * 1000);
            AUTO_JSON json_t *summary = NULL;
            if (pod_shim_call(fd, req, &manifest_fd, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms, &summary,
                              NULL, &err) < 0)
                return cli_fail(&err);
            print_summary(name, summary);
            return 0;
        }
        int r = pod_shim_is_alive(pod) ? pod_shim_shutdown(pod, &err) : 0;
        if (r == 0 && access(dir, F_OK) == 0)
            r = pod_remove(g->root, name, pod->manifest->termination_grace_seconds, &err);
        if (r < 0)
            return cli_fail(&err);
    }
    /* In the memfd: a manifest may be larger than one datagram of the protocol. */
    if (pod_spawn_shim(g, manifest_fd, data_root, pause_path, &err) < 0)
        return cli_fail(&err);
    if (!no_wait && pod_await_started(g, name, &err) < 0)
        return cli_fail(&err);
    printf("pod %s applied\n", name);
    return 0;
}

/* ---- stop, wait, events ---- */

int pod_stop(const struct cli_globals *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("pod stop", "a pod name is required");
    int status = 0;
    for (int i = 1; i < argc; i++) {
        struct pea_error err = {0};
        AUTO_POD struct pea_pod *pod = NULL;
        AUTO_FD int fd = -1;
        if (pod_open_served(g, argv[i], &pod, &fd, &err) < 0 || pod_shim_shutdown(pod, &err) < 0)
            status = cli_fail(&err);
    }
    return status;
}

int pod_wait(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"container", required_argument, NULL, 'c'}, {"for", required_argument, NULL, 'F'}, {0}};
    const char *container = NULL, *condition = "exit";
    int c;
    while ((c = getopt_long(argc, argv, "+c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': container = optarg; break;
        case 'F': condition = optarg; break;
        default: return cli_usage_error("pod wait", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("pod wait", "one pod name is required");
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int fd = -1;
    if (pod_open_served(g, argv[optind], &pod, &fd, &err) < 0) {
        pea_wrap(&err, "pod wait %s", argv[optind]);
        return cli_fail(&err);
    }
    json_t *req = pod_shim_request("wait");
    json_object_set_new(req, "for", json_string(condition));
    if (container)
        json_object_set_new(req, "container", json_string(container));
    AUTO_JSON json_t *result = NULL;
    /* The answer comes when the condition holds, however long that is: the shim has answered just now (in
     * pod_open_served), its death closes the connection, and Ctrl-C ends the wait. */
    if (pod_shim_call(fd, req, NULL, 0, -1, &result, NULL, &err) < 0) {
        pea_wrap(&err, "pod wait %s", argv[optind]);
        return cli_fail(&err);
    }
    json_t *code = json_object_get(result, "exitCode");
    if (strcmp(condition, "exit") == 0 && json_is_integer(code))
        printf("%lld\n", (long long)json_integer_value(code));
    return 0;
}

static void print_event(json_t *event, bool is_json)
{
    if (is_json) {
        AUTO_FREE char *text = json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text);
    } else {
        json_t *record = json_object_get(event, "record");
        const char *what = json_string_value(json_object_get(event, "message"));
        printf("%s %s %s%s\n", json_string_value(json_object_get(event, "time")),
               json_string_value(json_object_get(event, "container")), what ? what : "state ",
               what ? "" : json_string_value(json_object_get(record, "state")));
    }
    fflush(stdout);
}

int pod_events(const struct cli_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, {0}};
    bool is_json = false;
    int c;
    while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1) {
        if (c != 'o' || (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0))
            return cli_usage_error("pod events", "--output takes table or json");
        is_json = strcmp(optarg, "json") == 0;
    }
    if (optind + 1 != argc)
        return cli_usage_error("pod events", "one pod name is required");
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int fd = -1;
    if (pod_open_served(g, argv[optind], &pod, &fd, &err) < 0) {
        pea_wrap(&err, "pod events %s", argv[optind]);
        return cli_fail(&err);
    }
    AUTO_JSON json_t *req = pod_shim_request("events");
    if (proto_send(fd, req, NULL, 0, &err) < 0)
        return cli_fail(&err);
    /* A stream for as long as the pod lives: no deadline on the next event (see pod_wait). */
    for (;;) {
        AUTO_JSON json_t *msg = NULL;
        if (pod_shim_receive(fd, -1, &msg, NULL, &err) < 0)
            return cli_fail(&err);
        if (!msg || json_object_get(msg, "end"))
            return 0;
        if (json_object_get(msg, "ok") && pod_shim_outcome(msg, NULL, &err) < 0)
            return cli_fail(&err);
        json_t *event = json_object_get(msg, "event");
        if (event)
            print_event(event, is_json);
    }
}
