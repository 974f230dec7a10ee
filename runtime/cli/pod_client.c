/* pea pod stop/wait/events: clients of pea-shim, and what every pod command needs to find and reach it. */
#include <errno.h>
#include <fcntl.h>
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

#include "cli_options.h"
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

/* The directory of a program: its real path, symlinks resolved; NULL when it cannot be resolved. */
static char *real_directory(const char *path)
{
    char resolved[PATH_MAX];
    if (!realpath(path, resolved))
        return NULL;
    *strrchr(resolved, '/') = '\0';
    return xstrdup(resolved[0] ? resolved : "/");
}

/* Where the shell found argv0 when it has no "/": the first executable of that name in $PATH, as execvp looks. */
static char *search_path(const char *argv0)
{
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; p && *p;) {
        size_t n = strcspn(p, ":");
        AUTO_FREE char *candidate = xasprintf("%.*s/%s", (int)n, n ? p : ".", argv0);
        if (access(candidate, X_OK) == 0)
            return take_ptr(&candidate);
        p += n + (p[n] == ':');
    }
    return NULL;
}

/* The directory of the pea binary running: /proc/self/exe, unless that is the sealed copy pea re-executed from (a
 * memfd: realpath fails on it), then argv0 as the shell resolved it. */
static char *own_directory(const char *argv0)
{
    char *dir = real_directory("/proc/self/exe");
    if (dir || !argv0)
        return dir;
    if (strchr(argv0, '/'))
        return real_directory(argv0);
    AUTO_FREE char *found = search_path(argv0);
    return found ? real_directory(found) : NULL;
}

/* prefix/<libexecdir>/pea for an install under another prefix than the one built for: bin_dir less as many
 * components as the install's sbindir has (sbin: one), then the libexec directory. NULL when either is absolute. */
static char *relocated_libexec(const char *bin_dir)
{
    if (PEA_INSTALL_SBINDIR[0] == '/' || PEA_INSTALL_LIBEXECDIR[0] == '/')
        return NULL;
    AUTO_FREE char *prefix = xstrdup(bin_dir);
    for (const char *c = PEA_INSTALL_SBINDIR; c && *c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
        char *slash = strrchr(prefix, '/');
        if (!slash)
            return NULL;
        *slash = '\0';
    }
    return xasprintf("%s/%s/pea", prefix, PEA_INSTALL_LIBEXECDIR);
}

char *pod_find_helper(const char *argv0, const char *name, const char *build_subdir, struct pea_error *err)
{
    AUTO_FREE char *dir = own_directory(argv0);
    AUTO_FREE char *relocated = dir ? relocated_libexec(dir) : NULL;
    /* Beside pea; its directory of a build tree (pea is build/runtime/pea); the install's libexec directory,
     * relocated with pea and as configured. */
    char *candidates[] = {dir ? xasprintf("%s/%s", dir, name) : NULL,
                          dir ? xasprintf("%s/../%s/%s", dir, build_subdir, name) : NULL,
                          relocated ? xasprintf("%s/%s", relocated, name) : NULL,
                          xasprintf("%s/%s", PEA_LIBEXEC_DIR, name)};
    char *found = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (!found && candidates[i] && access(candidates[i], X_OK) == 0)
            found = take_ptr(&candidates[i]);
        free(candidates[i]);
    }
    if (found)
        return found;
    const char *hint = strcmp(name, "pea-pause") == 0 ? "; give its path with --pause" : "";
    if (dir)
        pea_fail(err, ENOENT, "find %s (beside pea in %s, in %s/../%s, or in %s%s%s)%s", name, dir, dir,
                 build_subdir, relocated ? relocated : "", relocated ? " or " : "", PEA_LIBEXEC_DIR, hint);
    else
        pea_fail(err, ENOENT, "find %s (pea's own path cannot be resolved; not in %s)%s", name, PEA_LIBEXEC_DIR,
                 hint);
    return NULL;
}

int pod_stop_grace_seconds(const char *command, bool force, bool now, long long grace_seconds, long long *out)
{
    if (now && grace_seconds >= 0)
        return cli_usage_error(command, "--now and --grace-period cannot be given together");
    if (now)
        grace_seconds = 1;
    /* kubectl's rule: 0 means "at once" only with --force; without, it is 1. */
    if (grace_seconds == 0 && !force)
        grace_seconds = 1;
    if (force && grace_seconds < 0)
        grace_seconds = 0;
    *out = grace_seconds < 0 ? -1 : grace_seconds;
    return 0;
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
static int await_shim_exit(const struct pea_pod *pod, int fd, int pidfd, long long grace, struct pea_error *err)
{
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
    return pod_shim_shutdown_within(pod, POD_SHIM_ANSWER_TIMEOUT_MS, -1, err);
}

int pod_shim_shutdown_within(const struct pea_pod *pod, int answer_timeout_ms, long long grace_seconds,
                             struct pea_error *err)
{
    json_t *shim = json_object_get(pod->state, "shim");
    AUTO_FD int pidfd = sys_pidfd_open((pid_t)json_integer_value(json_object_get(shim, "pid")), 0);
    if (!pod_shim_is_alive(pod))
        return pea_fail(err, 0, "pod %s: its shim is not running", pod->name);
    AUTO_FD int fd = pod_shim_connect(pod, answer_timeout_ms, err);
    if (fd < 0)
        return -1;
    json_t *req = pod_shim_request("shutdown");
    /* Sent only when asked: a shim older than the argument refuses it. */
    if (grace_seconds >= 0)
        json_object_set_new(req, "timeout", json_integer(grace_seconds));
    if (pod_shim_call(fd, req, NULL, 0, answer_timeout_ms, NULL, NULL, err) < 0)
        return pea_wrap(err, "pod %s: shut down", pod->name);
    long long grace = grace_seconds >= 0 ? grace_seconds : pod->manifest->termination_grace_seconds;
    return await_shim_exit(pod, fd, pidfd, grace, err);
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

/* ---- stop, wait, events ---- */

int pod_stop(const struct cli_globals *g, int argc, char **argv)
{
    bool force = false;
    long long grace_given = -1, grace_seconds;
    const struct cli_option opts[] = {
        CLI_INT("grace-period", 0, &grace_given),
        CLI_FLAG("force", 0, &force),
        CLI_END,
    };
    struct cli_args args;
    if (cli_parse_options("pod stop", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **names = args.items;
    if (pod_stop_grace_seconds("pod stop", force, false, grace_given, &grace_seconds) != 0)
        return 1;
    if (args.n == 0)
        return cli_usage_error("pod stop", "a pod name is required");
    int status = 0;
    for (size_t i = 0; i < args.n; i++) {
        struct pea_error err = {0};
        AUTO_POD struct pea_pod *pod = NULL;
        AUTO_FD int fd = -1;
        if (pod_open_served(g, cli_pod_name(names[i]), &pod, &fd, &err) < 0 ||
            pod_shim_shutdown_within(pod, POD_SHIM_ANSWER_TIMEOUT_MS, grace_seconds, &err) < 0)
            status = cli_fail(&err);
    }
    return status;
}

int pod_wait(const struct cli_globals *g, int argc, char **argv)
{
    const char *container = NULL, *condition = "exit";
    const struct cli_option opts[] = {
        CLI_STRING("container", 'c', &container),
        CLI_CHOICE("for", 0, &condition, "exit|running|started"),
        CLI_END,
    };
    struct cli_args args;
    if (cli_parse_options("pod wait", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    if (args.n != 1)
        return cli_usage_error("pod wait", "one pod name is required");
    const char *name = cli_pod_name(positional[0]);
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int fd = -1;
    if (pod_open_served(g, name, &pod, &fd, &err) < 0) {
        pea_wrap(&err, "pod wait %s", name);
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
        pea_wrap(&err, "pod wait %s", name);
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
        const char *reason = json_string_value(json_object_get(event, "reason"));
        printf("%s %s %s%s%s%s\n", json_string_value(json_object_get(event, "time")),
               json_string_value(json_object_get(event, "container")), reason ? reason : "", reason ? ": " : "",
               what ? what : "state ", what ? "" : json_string_value(json_object_get(record, "state")));
    }
    fflush(stdout);
}

int pod_events(const struct cli_globals *g, int argc, char **argv)
{
    const char *output = "table";
    const struct cli_option opts[] = {CLI_CHOICE("output", 'o', &output, "table|json"), CLI_END};
    struct cli_args args;
    if (cli_parse_options("pod events", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    if (args.n != 1)
        return cli_usage_error("pod events", "one pod name is required");
    bool is_json = strcmp(output, "json") == 0;
    const char *name = cli_pod_name(positional[0]);
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int fd = -1;
    if (pod_open_served(g, name, &pod, &fd, &err) < 0) {
        pea_wrap(&err, "pod events %s", name);
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
