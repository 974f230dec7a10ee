/* The pod's supervising loop: members' lifecycles, output, restarts with back-off, stop signals, teardown. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/container.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "lifecycle_internal.h"
#include "supervise_internal.h"

static long long ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000LL + (b->tv_nsec - a->tv_nsec) / 1000000;
}

static void now_monotonic(struct timespec *ts) { clock_gettime(CLOCK_MONOTONIC, ts); }

static void add_ms(struct timespec *ts, long long ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void now_text(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    format_rfc3339_nano(&ts, buf, len);
}

void supervisor_emit(struct pod_supervisor *sup, const char *container, const char *fmt, ...)
{
    char what[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (sup->ops->on_event)
        sup->ops->on_event(sup->ctx, container, what);
}

void supervisor_emit_reason(struct pod_supervisor *sup, const char *container, const char *reason, const char *fmt,
                            ...)
{
    char what[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (sup->ops->on_event_reason)
        sup->ops->on_event_reason(sup->ctx, container, reason, what);
    else if (sup->ops->on_event)
        supervisor_emit(sup, container, "%s: %s", reason, what);
}

static const char *phase_name(enum member_phase p)
{
    static const char *const names[] = {"waiting", "running", "backoff", "exited", "stopped"};
    return names[p];
}

json_t *supervisor_member_json(const struct member *m)
{
    json_t *j = json_pack("{s:s, s:b, s:b, s:s, s:i, s:i}", "name", m->c->name, "init", m->is_init, "sidecar",
                          m->c->is_sidecar, "state", phase_name(m->phase), "pid",
                          m->phase == PHASE_RUNNING ? (int)m->pid : 0, "restarts", (int)m->restarts);
    bool is_running = m->phase == PHASE_RUNNING;
    json_object_set_new(j, "started", json_boolean(is_running && m->is_started));
    json_object_set_new(j, "ready", json_boolean(is_running && m->is_ready));
    if (m->has_exited && m->last_exit >= 0)
        json_object_set_new(j, "exitCode", json_integer(m->last_exit));
    else if (m->has_exited)
        json_object_set_new(j, "reason", json_string("unknown: it exited while no supervisor watched it"));
    if (m->started_at_text[0])
        json_object_set_new(j, "startedAt", json_string(m->started_at_text));
    if (m->start_error[0])
        json_object_set_new(j, "startError", json_string(m->start_error));
    if (m->finished_at_text[0] && m->phase != PHASE_RUNNING)
        json_object_set_new(j, "finishedAt", json_string(m->finished_at_text));
    return j;
}

/* The record in pod.json (for `pea pod ps` and for whoever adopts the pod later), and the change to callers. */
void supervisor_record(struct pod_supervisor *sup, struct member *m)
{
    json_t *containers = json_object_get(sup->pod->state, "containers");
    if (m->is_removed) {
        json_object_del(containers, m->c->name);
    } else {
        json_t *record = supervisor_member_json(m);
        json_object_set_new(containers, m->c->name, record);
        if (sup->ops->on_change)
            sup->ops->on_change(sup->ctx, m->c->name, record);
    }
    struct pea_error err = {0};
    if (pod_save(sup->pod, &err) < 0)
        log_warn("%s", err.msg);
}

struct member *supervisor_find(const struct pod_supervisor *sup, const char *name)
{
    for (size_t i = 0; i < sup->n_members; i++)
        if (!sup->members[i]->is_removed && strcmp(sup->members[i]->c->name, name) == 0)
            return sup->members[i];
    return NULL;
}

static int watch_add(struct pod_supervisor *sup, struct watch *w, struct pea_error *err)
{
    struct epoll_event ev = {.events = w->is_for_writing ? EPOLLOUT : EPOLLIN, .data.ptr = w};
    if (epoll_ctl(sup->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
        return pea_fail(err, errno, "watch fd %d", w->fd);
    return 0;
}

static void close_output(struct pod_supervisor *sup, struct member *m, int stream)
{
    struct watch *w = &m->out_watch[stream];
    if (w->fd < 0)
        return;
    epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
    close(w->fd);
    w->fd = -1;
}

/* Read what a pipe has now; at EOF close it. One buffer for the whole loop (it is single-threaded), a quarter of
 * the FIFO's size: a busy writer costs few reads, and an idle pod never touches most of it. */
static void forward_output(struct pod_supervisor *sup, struct member *m, int stream)
{
    static char buf[256 * 1024];
    while (m->out_watch[stream].fd >= 0) {
        ssize_t n = read(m->out_watch[stream].fd, buf, sizeof buf);
        if (n > 0) {
            if (sup->ops->on_output)
                sup->ops->on_output(sup->ctx, m->c->name, (enum pod_stream)stream, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            close_output(sup, m, stream);
        return;
    }
}

struct member *supervisor_member_new(const struct pea_pod_container *c, bool is_init)
{
    struct member *m = xcalloc(1, sizeof *m);
    m->c = c;
    m->is_init = is_init;
    m->pidfd = -1;
    m->stdin_fd = -1;
    m->exit_watch = (struct watch){.kind = WATCH_EXIT, .fd = -1, .member = m};
    for (int s = 0; s < 3; s++)
        m->out_watch[s] = (struct watch){.kind = WATCH_OUTPUT, .fd = -1, .member = m, .stream = s};
    return m;
}

static void member_exited(struct pod_supervisor *sup, struct member *m, int code);

/* A container's stdout or stderr is a FIFO in the pod's directory that the container opens read-write, not a pipe:
 * were the supervisor to die, writes would then block once the buffer is full instead of killing the container
 * with SIGPIPE, and a new supervisor can open the FIFO again and go on reading. */
static int open_output_fifo(const struct pea_pod *pod, const char *name, int stream, int *read_fd, int *write_fd,
                            struct pea_error *err)
{
    AUTO_FREE char *path = xasprintf("%s/io/%s.%d", pod->dir, name, stream);
    if ((unlink(path) < 0 && errno != ENOENT) || mkfifo(path, 0600) < 0)
        return pea_fail(err, errno, "create %s", path);
    *read_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    *write_fd = *read_fd < 0 ? -1 : open(path, O_RDWR | O_CLOEXEC);
    if (*write_fd < 0) {
        int saved = errno;
        if (*read_fd >= 0)
            close(*read_fd);
        *read_fd = -1;
        return pea_fail(err, saved, "open %s", path);
    }
    /* Room for bursts while the loop is busy elsewhere; the system's limit may refuse it, which is fine. */
    fcntl(*read_fd, F_SETPIPE_SZ, 1 << 20);
    return 0;
}

/* Begin creating m's container; its output FIFOs are watched from here on. NULL with *err when it failed. */
static struct pea_create_job *begin_member(struct pod_supervisor *sup, struct member *m, struct pea_error *err)
{
    int read_fd[3] = {-1, -1, -1}, write_fd[3] = {-1, -1, -1};
    struct pea_create_job *job = NULL;
    m->pidfd = -1;
    supervisor_close_stdin(m);
    m->is_stdin_closed = false;
    if (m->c->has_tty) {
        /* The pty is its stdio: its master, read as stdout, comes when the container is created. */
        pod_container_create_begin(sup->pod, m->c, NULL, &job, err);
        return job;
    }
    int stdin_pipe[2] = {-1, -1};
    if (m->c->has_stdin && pipe2(stdin_pipe, O_CLOEXEC) < 0) {
        pea_fail(err, errno, "%s: make the stdin pipe", m->c->name);
        return NULL;
    }
    if (open_output_fifo(sup->pod, m->c->name, POD_STDOUT, &read_fd[1], &write_fd[1], err) == 0 &&
        open_output_fifo(sup->pod, m->c->name, POD_STDERR, &read_fd[2], &write_fd[2], err) == 0) {
        int stdio[3] = {stdin_pipe[0], write_fd[1], write_fd[2]};
        pod_container_create_begin(sup->pod, m->c, stdio, &job, err);
    }
    /* The container holds the read end now; we keep the write end open (EOF only when stdinOnce says so). */
    if (stdin_pipe[0] >= 0)
        close(stdin_pipe[0]);
    if (job)
        m->stdin_fd = stdin_pipe[1];
    else if (stdin_pipe[1] >= 0)
        close(stdin_pipe[1]);
    for (int s = POD_STDOUT; s <= POD_STDERR; s++) {
        /* The container's init holds its own write ends now; ours would keep the FIFO from ever reaching EOF. */
        if (write_fd[s] >= 0)
            close(write_fd[s]);
        struct pea_error watch_err = {0};
        m->out_watch[s].fd = read_fd[s];
        if (read_fd[s] >= 0 && watch_add(sup, &m->out_watch[s], &watch_err) < 0)
            close_output(sup, m, s);
    }
    return job;
}

/* Read the pty's master as the container's stdout (the log gets its output; the pty joins stdout and stderr) and
 * keep a copy for attached input when the container keeps stdin. */
static int watch_terminal(struct pod_supervisor *sup, struct member *m, int *master, struct pea_error *err)
{
    int flags = fcntl(*master, F_GETFL);
    if (flags < 0 || fcntl(*master, F_SETFL, flags | O_NONBLOCK) < 0)
        return pea_fail(err, errno, "%s: make the pty master non-blocking", m->c->name);
    if (m->c->has_stdin && (m->stdin_fd = fcntl(*master, F_DUPFD_CLOEXEC, 3)) < 0)
        return pea_fail(err, errno, "%s: keep the pty master", m->c->name);
    m->out_watch[POD_STDOUT].fd = take_fd(master);
    if (watch_add(sup, &m->out_watch[POD_STDOUT], err) < 0) {
        close_output(sup, m, POD_STDOUT);
        return -1;
    }
    return 0;
}

/* Finish what begin_member began (job NULL: it failed, *err says why), start the container and record it. */
static void finish_member(struct pod_supervisor *sup, struct member *m, struct pea_create_job *job,
                          struct pea_error *err)
{
    AUTO_FD int master = -1;
    int r = job ? container_create_finish_console(job, &m->pid, &m->pidfd, &master, err) : -1;
    if (r == 0 && m->c->has_tty && master < 0)
        r = pea_fail(err, 0, "%s: no pty master came back", m->c->name);
    if (r == 0 && master >= 0)
        r = watch_terminal(sup, m, &master, err);
    if (r == 0 && (r = pod_container_start(sup->pod, m->c->name, err)) < 0) {
        struct pea_error ignored = {0};
        pod_container_stop(sup->pod, m->c->name, m->pidfd, 0, &ignored);
    }
    now_monotonic(&m->started_at);
    now_text(m->started_at_text, sizeof m->started_at_text);
    m->phase = PHASE_RUNNING;
    if (r < 0) {
        /* Kubernetes reports a container that cannot start as exit code 128 and treats it like any exit. */
        if (m->pidfd >= 0) {
            siginfo_t info;
            waitid(P_PIDFD, (id_t)m->pidfd, &info, WEXITED);
            close(m->pidfd);
        }
        m->pidfd = -1;
        snprintf(m->start_error, sizeof m->start_error, "%s", err->msg);
        supervisor_emit(sup, m->c->name, "failed to start: %s", err->msg);
        member_exited(sup, m, 128);
        return;
    }
    m->start_error[0] = '\0';
    m->exit_watch.fd = m->pidfd;
    struct pea_error watch_err = {0};
    if (watch_add(sup, &m->exit_watch, &watch_err) < 0)
        log_warn("%s", watch_err.msg);
    supervisor_record(sup, m);
    supervisor_emit(sup, m->c->name, "started (pid %d)", (int)m->pid);
    lifecycle_after_start(sup, m);
}

void supervisor_start_member(struct pod_supervisor *sup, struct member *m)
{
    struct pea_error err = {0};
    finish_member(sup, m, begin_member(sup, m, &err), &err);
}

/* Start several members at once: all are begun before any is waited for, so that while one child sets up its root
 * on its own the next is being made. */
static void start_members(struct pod_supervisor *sup, struct member **ms, size_t n)
{
    struct pea_create_job **jobs = xcalloc(n, sizeof *jobs);
    struct pea_error *errs = xcalloc(n, sizeof *errs);
    for (size_t i = 0; i < n; i++)
        jobs[i] = begin_member(sup, ms[i], &errs[i]);
    for (size_t i = 0; i < n; i++)
        finish_member(sup, ms[i], jobs[i], &errs[i]);
    free(errs);
    free(jobs);
}

/* A member that ran before starts as a new instance of itself (its log keeps the previous one). */
static void start_new_instance(struct pod_supervisor *sup, struct member *m)
{
    if (sup->ops->on_new_instance)
        sup->ops->on_new_instance(sup->ctx, m->c->name);
    supervisor_start_member(sup, m);
}

/* Start what may start now: the next init container (after the one before it completed, or started for a
 * sidecar), then every app container. Nothing while the pod is restarting all its containers. */
void supervisor_advance(struct pod_supervisor *sup)
{
    while (!sup->is_stopping && !sup->is_finished && !sup->is_restarting_all && sup->next_init < sup->n_members &&
           sup->members[sup->next_init]->is_init) {
        struct member *m = sup->members[sup->next_init];
        if (m->phase == PHASE_WAITING && m->has_exited)
            start_new_instance(sup, m);
        else if (m->phase == PHASE_WAITING)
            supervisor_start_member(sup, m);
        /* A sidecar lets the next one start once it has started (its postStart and startup probe passed). */
        if ((m->phase == PHASE_EXITED && m->last_exit == 0) ||
            (m->c->is_sidecar && m->phase == PHASE_RUNNING && m->is_started))
            sup->next_init++;
        else
            return;
    }
    if (sup->is_stopping || sup->is_finished || sup->is_restarting_all || sup->apps_started)
        return;
    sup->apps_started = true;
    struct member **apps = xcalloc(sup->n_members, sizeof *apps);
    size_t n = 0;
    for (size_t i = 0; i < sup->n_members; i++)
        if (!sup->members[i]->is_init && sup->members[i]->phase == PHASE_WAITING) {
            apps[n++] = sup->members[i];
            if (sup->members[i]->has_exited && sup->ops->on_new_instance)
                sup->ops->on_new_instance(sup->ctx, sup->members[i]->c->name);
        }
    start_members(sup, apps, n);
    free(apps);
}

static bool should_restart(const struct pod_supervisor *sup, const struct member *m, int code)
{
    if (m->c->is_sidecar)
        return true;
    switch (supervisor_restart_policy(sup, m)) {
    case PEA_RESTART_ALWAYS: return !m->is_init || code != 0;
    case PEA_RESTART_ON_FAILURE: return code != 0;
    default: return false;
    }
}

static void check_finished(struct pod_supervisor *sup)
{
    if (!sup->apps_started)
        return;
    for (size_t i = 0; i < sup->n_members; i++) {
        const struct member *m = sup->members[i];
        if (!m->is_init && !m->is_removed && m->phase != PHASE_EXITED)
            return;
    }
    sup->is_finished = true;
}

static void schedule_restart(struct pod_supervisor *sup, struct member *m)
{
    struct timespec now;
    now_monotonic(&now);
    if (ms_between(&m->started_at, &now) >= POD_BACKOFF_RESET_MS)
        m->backoff_ms = 0;
    m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : POD_BACKOFF_FIRST_MS;
    if (m->backoff_ms > POD_BACKOFF_MAX_MS)
        m->backoff_ms = POD_BACKOFF_MAX_MS;
    m->restart_at = now;
    add_ms(&m->restart_at, m->backoff_ms);
    m->phase = PHASE_BACKOFF;
    m->restarts++;
    supervisor_emit(sup, m->c->name, "restarting in %lld.%03llds", m->backoff_ms / 1000, m->backoff_ms % 1000);
}

/* What a requested stop leads to, once the container is not running. */
static void finish_stop(struct pod_supervisor *sup, struct member *m)
{
    m->is_stopping = false;
    if (m->remove_after_stop) {
        struct pea_error err = {0};
        if (pod_container_stop(sup->pod, m->c->name, -1, 0, &err) < 0)
            log_warn("%s", err.msg);
        supervisor_emit(sup, m->c->name, "removed");
        m->phase = PHASE_EXITED;
        m->is_removed = true;
        check_finished(sup);
        supervisor_record(sup, m);
        return;
    }
    if (m->start_after_stop) {
        m->start_after_stop = false;
        m->restarts++;
        m->backoff_ms = 0;
        start_new_instance(sup, m);
        return;
    }
    m->phase = PHASE_STOPPED;
    supervisor_record(sup, m);
}

static void member_exited(struct pod_supervisor *sup, struct member *m, int code)
{
    lifecycle_member_gone(sup, m);
    bool was_probe_kill = m->is_probe_kill;
    m->is_probe_kill = false;
    if (was_probe_kill)
        m->is_stopping = false;
    m->has_exited = true;
    m->last_exit = code;
    supervisor_close_stdin(m);
    now_text(m->finished_at_text, sizeof m->finished_at_text);
    m->phase = PHASE_EXITED;
    if (code >= 0)
        supervisor_emit(sup, m->c->name, "exited with code %d", code);
    else
        supervisor_emit(sup, m->c->name, "exited while no supervisor watched it (exit code unknown)");
    if (m->is_stopping && !sup->is_stopping) {
        finish_stop(sup, m);
        return;
    }
    if (sup->is_stopping || sup->is_restarting_all) {
        supervisor_record(sup, m);
        return;
    }
    size_t rule_index = 0;
    const struct pea_restart_rule *rule = was_probe_kill ? NULL : supervisor_matching_rule(m, code, &rule_index);
    if (rule && rule->action == PEA_RESTART_ACTION_RESTART_ALL) {
        supervisor_restart_all_kill(sup, m, code, rule_index);
        supervisor_record(sup, m);
        return;
    }
    if (rule)
        supervisor_emit(sup, m->c->name, "exit code %d matches restartPolicyRules[%zu]: restart", code, rule_index);
    bool is_restarted = was_probe_kill ? supervisor_restarts_after_kill(sup, m)
                                       : rule ? true : should_restart(sup, m, code);
    if (is_restarted) {
        schedule_restart(sup, m);
        supervisor_record(sup, m);
        return;
    }
    /* The pod's state is settled before the change is recorded: what waits for the pod to finish is woken by the
     * record, and nothing else would wake it. */
    if (m->is_init && code != 0) {
        supervisor_emit(sup, m->c->name, "init container failed: the pod does not start");
        sup->exit_code = 1;
        sup->is_finished = true;
        supervisor_record(sup, m);
        return;
    }
    if (!m->is_init && code != 0 && sup->exit_code == 0)
        sup->exit_code = code;
    check_finished(sup);
    supervisor_record(sup, m);
    supervisor_advance(sup);
}

void supervisor_stop_member(struct pod_supervisor *sup, struct member *m, long long timeout_seconds)
{
    if (m->phase != PHASE_RUNNING) {
        finish_stop(sup, m);
        return;
    }
    /* Asked for: what follows is the stop's (held, started again, removed), not the restart policy's. */
    m->is_probe_kill = false;
    lifecycle_begin_stop(sup, m, timeout_seconds);
}

static void reap_member(struct pod_supervisor *sup, struct member *m)
{
    siginfo_t info = {0};
    if (waitid(P_PIDFD, (id_t)m->pidfd, &info, WEXITED | WNOHANG) < 0 && errno == ECHILD) {
        /* Adopted: not our child, so its status went to whoever reaped it. Unknown, never invented. */
        epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, m->pidfd, NULL);
        close(m->pidfd);
        m->pidfd = m->exit_watch.fd = -1;
        member_exited(sup, m, -1);
        return;
    }
    if (info.si_pid == 0)
        return;
    /* What it wrote before it exited is in its pipes now: into the log before the exit is recorded, or a reader
     * that stops at the exit (`pea pod logs -f`) would miss its last lines. */
    for (int stream = POD_STDOUT; stream <= POD_STDERR; stream++)
        forward_output(sup, m, stream);
    epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, m->pidfd, NULL);
    close(m->pidfd);
    m->pidfd = m->exit_watch.fd = -1;
    member_exited(sup, m, info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status);
}

/* The nearest back-off restart or stop deadline, for epoll_wait. */
static int next_timeout_ms(const struct pod_supervisor *sup)
{
    long long best = -1;
    struct timespec now;
    now_monotonic(&now);
    for (size_t i = 0; i < sup->n_members; i++) {
        const struct member *m = sup->members[i];
        const struct timespec *due = m->phase == PHASE_BACKOFF                     ? &m->restart_at
                                     : m->is_stopping && m->phase == PHASE_RUNNING ? &m->kill_at
                                                                                   : NULL;
        struct timespec hook_due;
        if (lifecycle_due(m, &hook_due) && (!due || ms_between(&hook_due, due) > 0))
            due = &hook_due;
        if (!due)
            continue;
        long long left = ms_between(&now, due);
        if (left < 0)
            left = 0;
        if (best < 0 || left < best)
            best = left;
    }
    if (sup->is_restarting_all && !supervisor_has_running_member(sup)) {
        long long left = ms_between(&now, &sup->restart_all_at);
        if (best < 0 || left < best)
            best = left < 0 ? 0 : left;
    }
    if (sup->has_stop_deadline) {
        long long left = ms_between(&now, &sup->stop_deadline);
        if (best < 0 || left < best)
            best = left < 0 ? 0 : left;
    }
    return best < 0 ? -1 : (int)(best > INT_MAX ? INT_MAX : best);
}

static void handle_deadlines(struct pod_supervisor *sup)
{
    struct timespec now;
    now_monotonic(&now);
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        lifecycle_tick(sup, m, &now);
        if (!sup->is_stopping && !sup->is_restarting_all && m->phase == PHASE_BACKOFF &&
            ms_between(&now, &m->restart_at) <= 0) {
            start_new_instance(sup, m);
        } else if (m->is_stopping && m->phase == PHASE_RUNNING && ms_between(&now, &m->kill_at) <= 0) {
            struct pea_error err = {0};
            if (container_kill(sup->pod->oci_root, m->c->name, SIGKILL, true, &err) < 0)
                log_debug("kill %s: %s", m->c->name, err.msg);
            m->kill_at.tv_sec += 3600; /* once is enough; the exit follows */
        }
    }
    if (sup->is_restarting_all && !sup->is_stopping && !supervisor_has_running_member(sup) &&
        ms_between(&now, &sup->restart_all_at) <= 0)
        supervisor_restart_all_begin(sup);
    supervisor_advance(sup);
}

static void handle_signal(struct pod_supervisor *sup)
{
    struct signalfd_siginfo si;
    while (read(sup->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        supervisor_emit(sup, sup->pod->name, "%s: stopping the pod", strsignal((int)si.ssi_signo));
        sup->is_stopping = true;
    }
}

struct pod_supervisor *supervisor_new(struct pea_pod *pod, const struct pod_supervisor_ops *ops, void *ctx,
                                      struct pea_error *err)
{
    struct pod_supervisor *sup = xcalloc(1, sizeof *sup);
    sup->pod = pod;
    sup->ops = ops;
    sup->ctx = ctx;
    const struct pea_pod_manifest *m = pod->manifest;
    sup->n_members = m->n_init_containers + m->n_containers;
    sup->members = xcalloc(sup->n_members, sizeof *sup->members);
    for (size_t i = 0; i < sup->n_members; i++) {
        bool is_init = i < m->n_init_containers;
        sup->members[i] =
            supervisor_member_new(is_init ? &m->init_containers[i] : &m->containers[i - m->n_init_containers],
                                  is_init);
    }
    sup->signal_watch = (struct watch){.kind = WATCH_SIGNAL, .fd = -1};
    sup->infra_watch = (struct watch){.kind = WATCH_INFRA, .fd = -1};
    sup->signal_fd = -1;
    sup->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (sup->epoll_fd < 0) {
        pea_fail(err, errno, "epoll_create1");
        supervisor_free(sup);
        return NULL;
    }
    return sup;
}

void supervisor_free(struct pod_supervisor *sup)
{
    if (!sup)
        return;
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        if (m->pidfd >= 0)
            close(m->pidfd);
        supervisor_close_stdin(m);
        for (int s = POD_STDOUT; s <= POD_STDERR; s++)
            if (m->out_watch[s].fd >= 0)
                close(m->out_watch[s].fd);
        free(m);
    }
    for (struct watch *w = sup->caller_watches, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    if (sup->signal_fd >= 0)
        close(sup->signal_fd);
    if (sup->epoll_fd >= 0)
        close(sup->epoll_fd);
    free(sup->members);
    free(sup);
}

static int watch_caller(struct pod_supervisor *sup, int fd, bool is_for_writing, supervisor_fd_fn fn, void *ctx,
                        struct pea_error *err)
{
    struct watch *w = xcalloc(1, sizeof *w);
    *w = (struct watch){.kind = WATCH_CALLER, .fd = fd, .fn = fn, .ctx = ctx, .next = sup->caller_watches,
                        .is_for_writing = is_for_writing};
    if (watch_add(sup, w, err) < 0) {
        free(w);
        return -1;
    }
    sup->caller_watches = w;
    return 0;
}

int supervisor_watch(struct pod_supervisor *sup, int fd, supervisor_fd_fn fn, void *ctx, struct pea_error *err)
{
    return watch_caller(sup, fd, false, fn, ctx, err);
}

int supervisor_watch_writable(struct pod_supervisor *sup, int fd, supervisor_fd_fn fn, void *ctx,
                              struct pea_error *err)
{
    return watch_caller(sup, fd, true, fn, ctx, err);
}

void supervisor_unwatch(struct pod_supervisor *sup, int fd)
{
    for (struct watch *w = sup->caller_watches; w; w = w->next)
        if (w->fd == fd && !w->is_dead) {
            epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            w->is_dead = true; /* freed after the current dispatch batch: its event may still be queued */
            return;
        }
}

static void free_dead_watches(struct pod_supervisor *sup)
{
    for (struct watch **p = &sup->caller_watches; *p;) {
        struct watch *w = *p;
        if (w->is_dead) {
            *p = w->next;
            free(w);
        } else {
            p = &w->next;
        }
    }
}

static void dispatch(struct pod_supervisor *sup, const struct epoll_event *ev)
{
    struct watch *w = ev->data.ptr;
    if (w->is_dead)
        return;
    switch (w->kind) {
    case WATCH_SIGNAL: handle_signal(sup); break;
    case WATCH_INFRA:
        supervisor_emit(sup, PEA_POD_INFRA_ID, "the infra process exited: the pod is gone");
        epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
        sup->exit_code = 1;
        sup->is_stopping = true;
        break;
    case WATCH_EXIT: reap_member(sup, w->member); break;
    case WATCH_OUTPUT: forward_output(sup, w->member, w->stream); break;
    case WATCH_CALLER: w->fn(sup, w->fd, ev->events, w->ctx); break;
    }
}

/* After teardown: what the pipes still hold, and every child we made. A teardown that failed (its state gone
 * under it, say) may have left them running: SIGKILL through the pidfd first, so that the wait cannot hang. */
static void reap_for_good(int pidfd)
{
    if (pidfd < 0)
        return;
    sys_pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
    siginfo_t info;
    while (waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED) < 0 && errno == EINTR)
        ;
}

static void drain_and_reap(struct pod_supervisor *sup)
{
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        for (int s = POD_STDOUT; s <= POD_STDERR; s++)
            forward_output(sup, m, s);
        reap_for_good(m->pidfd);
    }
    reap_for_good(sup->pod->infra_pidfd);
}

static void stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

void supervisor_block_stop_signals(void)
{
    sigset_t stop_signals;
    stop_signal_set(&stop_signals);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
}

void supervisor_request_stop(struct pod_supervisor *sup) { sup->is_stopping = true; }

/* The pod is stopping: each member still running gets its stop signal and the grace period here, in the loop, which
 * goes on serving meanwhile (a shim's clients answered, exec'd processes reaped: a process exec'd into a container
 * can only be reaped by us, and its container's init does not finish exiting until it is). False once none runs. */
static bool stop_running_members(struct pod_supervisor *sup)
{
    struct timespec now;
    now_monotonic(&now);
    if (!sup->has_stop_deadline) {
        sup->has_stop_deadline = true;
        sup->stop_deadline = now;
        add_ms(&sup->stop_deadline, supervisor_stop_grace_seconds(sup) * 1000 + POD_STOP_SETTLE_MS);
    }
    /* One that outlives its SIGKILL this long (its state gone under it, say) is the teardown's to kill. */
    if (ms_between(&now, &sup->stop_deadline) <= 0)
        return false;
    bool is_any_running = false;
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        if (m->phase != PHASE_RUNNING)
            continue;
        is_any_running = true;
        if (!m->is_stopping)
            supervisor_stop_member(sup, m, supervisor_stop_grace_seconds(sup));
    }
    return is_any_running;
}

static void adopt_member(struct pod_supervisor *sup, struct member *m, json_t *record)
{
    const char *state = json_string_value(json_object_get(record, "state"));
    m->restarts = (unsigned)json_integer_value(json_object_get(record, "restarts"));
    json_t *code = json_object_get(record, "exitCode");
    m->has_exited = code != NULL || json_object_get(record, "reason") != NULL;
    m->last_exit = code ? (int)json_integer_value(code) : -1;
    snprintf(m->started_at_text, sizeof m->started_at_text, "%s",
             json_string_value(json_object_get(record, "startedAt")) ?: "");
    snprintf(m->finished_at_text, sizeof m->finished_at_text, "%s",
             json_string_value(json_object_get(record, "finishedAt")) ?: "");
    now_monotonic(&m->started_at);
    struct pea_error ignored = {0};
    AUTO_JSON json_t *oci = container_state(sup->pod->oci_root, m->c->name, &ignored);
    const char *oci_status = json_string_value(json_object_get(oci, "status"));
    pid_t pid = 0;
    if (state && strcmp(state, "stopped") == 0) {
        m->phase = PHASE_STOPPED;
    } else if (oci_status && (strcmp(oci_status, "running") == 0 || strcmp(oci_status, "paused") == 0) &&
               (m->pidfd = pod_open_member_pidfd(sup->pod->oci_root, m->c->name, &pid)) >= 0) {
        m->phase = PHASE_RUNNING;
        m->pid = pid;
        /* Its postStart hook ran under the supervisor before: the probes start over. */
        probes_start(sup, m);
        m->exit_watch.fd = m->pidfd;
        struct pea_error err = {0};
        if (watch_add(sup, &m->exit_watch, &err) < 0)
            log_warn("%s", err.msg);
        /* The FIFOs the container writes to: reopen our reading ends. */
        for (int s = POD_STDOUT; s <= POD_STDERR; s++) {
            AUTO_FREE char *path = xasprintf("%s/io/%s.%d", sup->pod->dir, m->c->name, s);
            m->out_watch[s].fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
            if (m->out_watch[s].fd >= 0 && watch_add(sup, &m->out_watch[s], &err) < 0)
                close_output(sup, m, s);
        }
    } else if (state && (strcmp(state, "running") == 0 || strcmp(state, "backoff") == 0)) {
        /* It was running when its supervisor went away and is gone now: what it exited with is not known. */
        m->phase = PHASE_RUNNING;
        member_exited(sup, m, -1);
        return;
    } else {
        m->phase = state && strcmp(state, "exited") == 0 ? PHASE_EXITED : PHASE_WAITING;
    }
    supervisor_record(sup, m);
}

int supervisor_adopt(struct pod_supervisor *sup, struct pea_error *err)
{
    if (!pod_infra_alive(sup->pod))
        return pea_fail(err, 0, "pod %s: the infra process is gone: nothing to adopt", sup->pod->name);
    json_t *records = json_object_get(sup->pod->state, "containers");
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        json_t *record = json_object_get(records, m->c->name);
        if (record)
            adopt_member(sup, m, record);
        if (!m->is_init && m->phase != PHASE_WAITING)
            sup->apps_started = true;
    }
    /* Init containers are done once any app container has run. */
    if (sup->apps_started)
        while (sup->next_init < sup->n_members && sup->members[sup->next_init]->is_init)
            sup->next_init++;
    return 0;
}

void supervisor_keep_finished(struct pod_supervisor *sup, bool keep) { sup->keep_finished = keep; }

struct pea_pod *supervisor_pod(const struct pod_supervisor *sup) { return sup->pod; }

int supervisor_run(struct pod_supervisor *sup, int *exit_code, struct pea_error *err)
{
    sigset_t stop_signals;
    stop_signal_set(&stop_signals);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
    sup->signal_fd = sup->signal_watch.fd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
    sup->infra_watch.fd = sup->pod->infra_pidfd;
    if (sup->signal_fd < 0 || watch_add(sup, &sup->signal_watch, err) < 0 ||
        (sup->infra_watch.fd >= 0 && watch_add(sup, &sup->infra_watch, err) < 0)) {
        if (!err->msg[0])
            pea_fail(err, errno, "signalfd");
        sup->is_stopping = true;
    }
    supervisor_advance(sup);
    while (sup->is_stopping ? stop_running_members(sup) : !(sup->is_finished && !sup->keep_finished)) {
        struct epoll_event events[32];
        int n = epoll_wait(sup->epoll_fd, events, ARRAY_SIZE(events), next_timeout_ms(sup));
        if (n < 0 && errno != EINTR) {
            pea_fail(err, errno, "epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(sup, &events[i]);
        free_dead_watches(sup);
        handle_deadlines(sup);
    }
    struct pea_error teardown = {0};
    int r = pod_remove(sup->pod->root, sup->pod->name, supervisor_stop_grace_seconds(sup), &teardown);
    drain_and_reap(sup);
    *exit_code = sup->exit_code;
    if (err->msg[0])
        return -1;
    if (r < 0) {
        *err = teardown;
        return -1;
    }
    return 0;
}
