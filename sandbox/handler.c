/* One run of a probe's or a hook's action, driven by the supervising loop: exec in the container (as `pea pod exec`
 * does), a network check from a child that joined the pod's network namespace, or a sleep. Nothing here blocks:
 * exits and output come through watched fds, timeouts through handler_tick. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lifecycle_internal.h"
#include "pea/container.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"

/* What of a command's output goes into an event: the kubelet keeps 10 KiB, an event line wants less. */
#define HANDLER_OUTPUT_MAX 1024
/* A network check times itself out; this much later its child is killed regardless. */
#define HANDLER_NET_SLACK_MS 1000

struct handler_run {
    handler_done_fn done;
    void *ctx;
    struct member *m;
    enum pea_pod_handler_type type;
    long long timeout_ms;
    pid_t pid;
    int pidfd, out_fd;
    char output[HANDLER_OUTPUT_MAX];
    size_t output_len;
    bool has_deadline;
    struct timespec deadline;
    /* Its owner no longer waits for it (delivered, timed out or cancelled): what still runs is reaped, then the run
     * is freed. */
    bool is_detached;
    /* A result known before anything ran (a start that failed): delivered at the next tick. */
    bool has_result, is_result_ok;
    char result[sizeof(((struct pea_error *)0)->msg) + 64];
};

static void close_output(struct pod_supervisor *sup, struct handler_run *run)
{
    if (run->out_fd < 0)
        return;
    supervisor_unwatch(sup, run->out_fd);
    close(run->out_fd);
    run->out_fd = -1;
}

/* Read what the pipe holds now; keep the first HANDLER_OUTPUT_MAX - 1 bytes. */
static void read_output(struct pod_supervisor *sup, struct handler_run *run)
{
    char buf[4096];
    while (run->out_fd >= 0) {
        ssize_t n = read(run->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close_output(sup, run);
            return;
        }
        size_t room = sizeof run->output - 1 - run->output_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(run->output + run->output_len, buf, take);
        run->output_len += take;
    }
}

static void output_ready(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx)
{
    (void)fd;
    (void)events;
    read_output(sup, ctx);
}

static void run_free(struct pod_supervisor *sup, struct handler_run *run)
{
    close_output(sup, run);
    if (run->pidfd >= 0) {
        supervisor_unwatch(sup, run->pidfd);
        close(run->pidfd);
    }
    free(run);
}

/* Trim the output for an event: no trailing white space, no line breaks. */
static void output_text(struct handler_run *run)
{
    run->output[run->output_len] = '\0';
    while (run->output_len > 0 && strchr(" \t\r\n", run->output[run->output_len - 1]))
        run->output[--run->output_len] = '\0';
    for (char *p = run->output; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static void deliver(struct pod_supervisor *sup, struct handler_run *run, bool is_ok, const char *message)
{
    run->is_detached = true;
    run->done(sup, run->m, run->ctx, is_ok, message);
}

static void child_exited(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx)
{
    (void)fd;
    (void)events;
    struct handler_run *run = ctx;
    siginfo_t info = {0};
    int r = waitid(P_PIDFD, (id_t)run->pidfd, &info, WEXITED | WNOHANG);
    if (r < 0 && errno != ECHILD)
        return;
    if (r == 0 && info.si_pid == 0)
        return; /* not yet */
    read_output(sup, run);
    if (!run->is_detached) {
        output_text(run);
        bool is_ok = info.si_code == CLD_EXITED && info.si_status == 0;
        char message[HANDLER_OUTPUT_MAX + 64];
        if (run->type != PEA_HANDLER_EXEC || run->output_len)
            snprintf(message, sizeof message, "%s", run->output);
        else if (info.si_code == CLD_EXITED)
            snprintf(message, sizeof message, "command exited with code %d", info.si_status);
        else
            snprintf(message, sizeof message, "command killed by %s", strsignal(info.si_status));
        deliver(sup, run, is_ok, message);
    }
    run_free(sup, run);
}

/* A failure known at once: reported from the next tick, never from inside handler_start. */
static void fail_later(struct handler_run *run, const char *prefix, const char *what)
{
    run->has_result = true;
    run->is_result_ok = false;
    snprintf(run->result, sizeof run->result, "%s%s", prefix, what);
}

static int watch_child(struct pod_supervisor *sup, struct handler_run *run, struct pea_error *err)
{
    if (fcntl(run->out_fd, F_SETFL, O_NONBLOCK) < 0 || supervisor_watch(sup, run->out_fd, output_ready, run, err) < 0)
        return pea_fail(err, errno, "watch the output");
    if (supervisor_watch(sup, run->pidfd, child_exited, run, err) < 0)
        return -1;
    return 0;
}

static void start_exec(struct pod_supervisor *sup, struct handler_run *run, const struct pea_pod_handler *h)
{
    struct pea_error err = {0};
    AUTO_JSON json_t *process = container_exec_process_from_flags(sup->pod->oci_root, run->m->c->name, h->command,
                                                                  NULL, NULL, NULL, false, 1, &err);
    int pipe_fds[2];
    if (!process || pipe2(pipe_fds, O_CLOEXEC) < 0) {
        fail_later(run, "", process ? strerror(errno) : err.msg);
        return;
    }
    AUTO_FD int write_end = pipe_fds[1];
    run->out_fd = pipe_fds[0];
    AUTO_FD int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct pea_exec_options o = {.root = sup->pod->oci_root, .id = run->m->c->name, .process = process,
                                 .has_stdio_fds = true, .stdio_fds = {null_fd, write_end, write_end}};
    AUTO_FD int console_master = -1;
    if (null_fd < 0 || container_exec_child(&o, &run->pid, &run->pidfd, &console_master, &err) < 0) {
        fail_later(run, "", null_fd < 0 ? "open /dev/null" : err.msg);
        return;
    }
    if (watch_child(sup, run, &err) < 0) {
        sys_pidfd_send_signal(run->pidfd, SIGKILL, NULL, 0);
        siginfo_t info;
        waitid(P_PIDFD, (id_t)run->pidfd, &info, WEXITED);
        fail_later(run, "", err.msg);
    }
}

/* The pod's address for a check that names no host: its own address on the bridge, else loopback (no network of
 * its own, the host's, or one prepared by someone else: the check runs inside it, where 127.0.0.1 is the pod). */
static void pod_address(const struct pea_pod_manifest *manifest, char *out, size_t len)
{
    if (manifest->network_mode == PEA_NETWORK_BRIDGE && manifest->address) {
        snprintf(out, len, "%.*s", (int)strcspn(manifest->address, "/"), manifest->address);
        return;
    }
    snprintf(out, len, "127.0.0.1");
}

static void start_network_check(struct pod_supervisor *sup, struct handler_run *run, const struct pea_pod_handler *h)
{
    char host[64];
    pod_address(sup->pod->manifest, host, sizeof host);
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        fail_later(run, "", strerror(errno));
        return;
    }
    run->out_fd = pipe_fds[0];
    int netns = sup->pod->infra_pidfd;
    pid_t pid = fork();
    if (pid == 0) {
        /* The infra process holds the pod's network namespace: join it through its pidfd (the process we hold, not
         * a path that could be swapped), keep only the pipe, check, report, exit. */
        char msg[512];
        if (netns < 0 || setns(netns, CLONE_NEWNET) < 0) {
            int n = snprintf(msg, sizeof msg, "join the pod's network namespace: %s", strerror(netns < 0 ? ESRCH : errno));
            if (write(pipe_fds[1], msg, (size_t)n) < 0)
                _exit(2);
            _exit(1);
        }
        if (dup2(pipe_fds[1], 3) < 0)
            _exit(2);
        sys_close_from(4);
        bool is_ok = probe_net_check(h, host, (int)run->timeout_ms, msg, sizeof msg);
        if (write(3, msg, strlen(msg)) < 0)
            _exit(2);
        _exit(is_ok ? 0 : 1);
    }
    close(pipe_fds[1]);
    struct pea_error err = {0};
    if (pid < 0) {
        fail_later(run, "fork: ", strerror(errno));
        return;
    }
    run->pid = pid;
    run->pidfd = sys_pidfd_open(pid, 0);
    if (run->pidfd < 0 || watch_child(sup, run, &err) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_later(run, "", run->pidfd < 0 ? "pidfd_open of the check" : err.msg);
    }
}

struct handler_run *handler_start(struct pod_supervisor *sup, struct member *m, const struct pea_pod_handler *h,
                                  long long timeout_ms, handler_done_fn done, void *ctx)
{
    struct handler_run *run = xcalloc(1, sizeof *run);
    *run = (struct handler_run){.done = done, .ctx = ctx, .m = m, .type = h->type, .timeout_ms = timeout_ms,
                                .pidfd = -1, .out_fd = -1};
    if (timeout_ms >= 0 || h->type == PEA_HANDLER_SLEEP) {
        run->has_deadline = true;
        lifecycle_now(&run->deadline);
        long long ms = h->type == PEA_HANDLER_SLEEP ? h->sleep_seconds * 1000 : timeout_ms;
        if (h->type != PEA_HANDLER_EXEC && h->type != PEA_HANDLER_SLEEP)
            ms += HANDLER_NET_SLACK_MS;
        lifecycle_add_ms(&run->deadline, ms);
    }
    /* Without a limit of its own, a network check still ends: the kubelet gives hooks' HTTP requests its client's
     * default, and so do we here (a stop's deadline cuts it off sooner). */
    if (run->timeout_ms < 0)
        run->timeout_ms = 30000;
    switch (h->type) {
    case PEA_HANDLER_EXEC: start_exec(sup, run, h); break;
    case PEA_HANDLER_HTTP_GET:
    case PEA_HANDLER_TCP_SOCKET:
    case PEA_HANDLER_GRPC: start_network_check(sup, run, h); break;
    case PEA_HANDLER_SLEEP: break; /* the deadline is the whole of it */
    case PEA_HANDLER_NONE: fail_later(run, "", "no handler"); break;
    }
    return run;
}

void handler_cancel(struct pod_supervisor *sup, struct handler_run *run)
{
    run->is_detached = true;
    if (run->pidfd < 0) {
        run_free(sup, run);
        return;
    }
    /* Reaped when its exit shows (child_exited), so that the loop never waits for it here. */
    sys_pidfd_send_signal(run->pidfd, SIGKILL, NULL, 0);
}

bool handler_due(const struct handler_run *run, struct timespec *due)
{
    if (run->is_detached)
        return false;
    if (run->has_result) {
        lifecycle_now(due);
        return true;
    }
    if (!run->has_deadline)
        return false;
    *due = run->deadline;
    return true;
}

void handler_tick(struct pod_supervisor *sup, struct handler_run *run, const struct timespec *now)
{
    if (run->is_detached)
        return;
    if (run->has_result) {
        deliver(sup, run, run->is_result_ok, run->result);
        handler_cancel(sup, run);
        return;
    }
    if (!run->has_deadline || lifecycle_ms_between(now, &run->deadline) > 0)
        return;
    if (run->type == PEA_HANDLER_SLEEP) {
        deliver(sup, run, true, "");
        run_free(sup, run);
        return;
    }
    char message[128];
    snprintf(message, sizeof message, "%s timed out after %llds",
             run->type == PEA_HANDLER_EXEC ? "command" : "request", (run->timeout_ms + 999) / 1000);
    deliver(sup, run, false, message);
    handler_cancel(sup, run);
}
