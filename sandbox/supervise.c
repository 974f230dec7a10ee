/* The pod's supervising loop. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/log.h"
#include "pea/supervise.h"
#include "pea/sys.h"
#include "pea/util.h"

enum member_phase { PHASE_WAITING, PHASE_RUNNING, PHASE_BACKOFF, PHASE_DONE };

struct member {
    const struct pea_pod_container *c;
    bool is_init;
    enum member_phase phase;
    pid_t pid;
    int pidfd;
    int out[3]; /* read ends of its stdout (1) and stderr (2) pipes; -1 when closed */
    unsigned restarts;
    long long backoff_ms;
    int last_exit;
    struct timespec started_at, restart_at;
};

struct pod_supervisor {
    struct pea_pod *pod;
    const struct pod_supervisor_ops *ops;
    void *ctx;
    struct member *members; /* init containers in order, then app containers */
    size_t n_members, n_init;
    size_t next_init;
    bool apps_started, is_stopping, is_finished;
    int exit_code;
    int epoll_fd, signal_fd;
};

/* What an epoll event is about: the signalfd, the infra's pidfd, a member's pidfd or one of its pipes. */
enum watch_kind { WATCH_SIGNAL = 1, WATCH_INFRA, WATCH_EXIT, WATCH_OUTPUT };

static uint64_t watch_key(enum watch_kind kind, size_t member, int stream)
{
    return (uint64_t)kind << 48 | (uint64_t)member << 8 | (uint64_t)stream;
}

static long long ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000LL + (b->tv_nsec - a->tv_nsec) / 1000000;
}

static void now_monotonic(struct timespec *ts) { clock_gettime(CLOCK_MONOTONIC, ts); }

static void emit_event(struct pod_supervisor *sup, const char *container, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emit_event(struct pod_supervisor *sup, const char *container, const char *fmt, ...)
{
    char what[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (sup->ops->on_event)
        sup->ops->on_event(sup->ctx, container, what);
}

/* The container's record in pod.json, for `pea pod ps` and for whoever adopts the pod later. */
static void record(struct pod_supervisor *sup, const struct member *m, const char *state)
{
    json_t *containers = json_object_get(sup->pod->state, "containers");
    char now[64];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    format_rfc3339_nano(&ts, now, sizeof now);
    json_t *entry = json_object_get(containers, m->c->name);
    if (!entry) {
        entry = json_object();
        json_object_set_new(containers, m->c->name, entry);
    }
    json_object_set_new(entry, "state", json_string(state));
    json_object_set_new(entry, "init", json_boolean(m->is_init));
    json_object_set_new(entry, "restarts", json_integer(m->restarts));
    json_object_set_new(entry, "pid", json_integer(m->phase == PHASE_RUNNING ? m->pid : 0));
    if (strcmp(state, "running") == 0) {
        json_object_set_new(entry, "startedAt", json_string(now));
    } else if (strcmp(state, "exited") == 0) {
        json_object_set_new(entry, "exitCode", json_integer(m->last_exit));
        json_object_set_new(entry, "finishedAt", json_string(now));
    }
    struct pea_error err = {0};
    if (pod_save(sup->pod, &err) < 0)
        log_warn("%s", err.msg);
}

static int watch(struct pod_supervisor *sup, int fd, uint64_t key, struct pea_error *err)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = key};
    if (epoll_ctl(sup->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return pea_fail(err, errno, "epoll_ctl add fd %d", fd);
    return 0;
}

static void close_output(struct pod_supervisor *sup, struct member *m, int stream)
{
    if (m->out[stream] < 0)
        return;
    epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, m->out[stream], NULL);
    close(m->out[stream]);
    m->out[stream] = -1;
}

/* Read what a pipe has now; at EOF close it. */
static void forward_output(struct pod_supervisor *sup, struct member *m, int stream)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(m->out[stream], buf, sizeof buf);
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
    m->restart_at.tv_sec += m->backoff_ms / 1000;
    m->restart_at.tv_nsec += (m->backoff_ms % 1000) * 1000000;
    if (m->restart_at.tv_nsec >= 1000000000) {
        m->restart_at.tv_sec++;
        m->restart_at.tv_nsec -= 1000000000;
    }
    m->phase = PHASE_BACKOFF;
    emit_event(sup, m->c->name, "restarting in %lld.%03llds", m->backoff_ms / 1000, m->backoff_ms % 1000);
}

static void member_exited(struct pod_supervisor *sup, struct member *m, int code);

static void start_member(struct pod_supervisor *sup, struct member *m)
{
    struct pea_error err = {0};
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    int r = -1;
    m->pidfd = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        pea_fail(&err, errno, "pipe");
    } else {
        int stdio[3] = {-1, out[1], errp[1]};
        r = pod_container_create(sup->pod, m->c, stdio, &m->pid, &m->pidfd, &err);
        if (r == 0 && (r = pod_container_start(sup->pod, m->c->name, &err)) < 0) {
            struct pea_error ignored = {0};
            pod_container_stop(sup->pod, m->c->name, m->pidfd, 0, &ignored);
        }
    }
    /* The container holds the write ends now; ours would keep the pipes from ever reaching EOF. */
    if (out[1] >= 0)
        close(out[1]);
    if (errp[1] >= 0)
        close(errp[1]);
    m->out[POD_STDOUT] = out[0];
    m->out[POD_STDERR] = errp[0];
    for (int s = POD_STDOUT; s <= POD_STDERR; s++) {
        struct pea_error watch_err = {0};
        if (m->out[s] >= 0 && (fcntl(m->out[s], F_SETFL, O_NONBLOCK) < 0 ||
                               watch(sup, m->out[s], watch_key(WATCH_OUTPUT, (size_t)(m - sup->members), s),
                                     &watch_err) < 0))
            close_output(sup, m, s);
    }
    now_monotonic(&m->started_at);
    m->phase = PHASE_RUNNING;
    if (r < 0) {
        /* Kubernetes reports a container that cannot start as exit code 128 and treats it like any exit. */
        if (m->pidfd >= 0) {
            siginfo_t info;
            waitid(P_PIDFD, (id_t)m->pidfd, &info, WEXITED);
            close(m->pidfd);
        }
        m->pidfd = -1;
        emit_event(sup, m->c->name, "failed to start: %s", err.msg);
        member_exited(sup, m, 128);
        return;
    }
    if (watch(sup, m->pidfd, watch_key(WATCH_EXIT, (size_t)(m - sup->members), 0), &err) < 0)
        log_warn("%s", err.msg);
    record(sup, m, "running");
    emit_event(sup, m->c->name, "started (pid %d)", (int)m->pid);
}

/* Start what may start now: the next init container (after the one before it completed, or started for a
 * sidecar), then every app container. */
static void advance(struct pod_supervisor *sup)
{
    while (!sup->is_stopping && !sup->is_finished && sup->next_init < sup->n_init) {
        struct member *m = &sup->members[sup->next_init];
        if (m->phase == PHASE_WAITING)
            start_member(sup, m);
        if (m->phase == PHASE_DONE || (m->c->is_sidecar && m->phase == PHASE_RUNNING))
            sup->next_init++;
        else
            return;
    }
    if (sup->is_stopping || sup->is_finished || sup->apps_started)
        return;
    sup->apps_started = true;
    for (size_t i = sup->n_init; i < sup->n_members; i++)
        start_member(sup, &sup->members[i]);
}

static bool should_restart(const struct pod_supervisor *sup, const struct member *m, int code)
{
    if (m->c->is_sidecar)
        return true;
    switch (sup->pod->manifest->restart_policy) {
    case PEA_RESTART_ALWAYS: return !m->is_init || code != 0;
    case PEA_RESTART_ON_FAILURE: return code != 0;
    default: return false;
    }
}

static void check_finished(struct pod_supervisor *sup)
{
    if (!sup->apps_started)
        return;
    for (size_t i = sup->n_init; i < sup->n_members; i++)
        if (sup->members[i].phase != PHASE_DONE)
            return;
    sup->is_finished = true;
}

static void member_exited(struct pod_supervisor *sup, struct member *m, int code)
{
    m->last_exit = code;
    m->phase = PHASE_DONE;
    record(sup, m, "exited");
    emit_event(sup, m->c->name, "exited with code %d", code);
    if (sup->is_stopping)
        return;
    if (should_restart(sup, m, code)) {
        m->restarts++;
        schedule_restart(sup, m);
        return;
    }
    if (m->is_init && code != 0) {
        emit_event(sup, m->c->name, "init container failed: the pod does not start");
        sup->exit_code = 1;
        sup->is_finished = true;
        return;
    }
    if (!m->is_init && code != 0 && sup->exit_code == 0)
        sup->exit_code = code;
    check_finished(sup);
    advance(sup);
}

static void reap_member(struct pod_supervisor *sup, struct member *m)
{
    siginfo_t info = {0};
    if (waitid(P_PIDFD, (id_t)m->pidfd, &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0)
        return;
    epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, m->pidfd, NULL);
    close(m->pidfd);
    m->pidfd = -1;
    int code = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
    member_exited(sup, m, code);
}

static int next_timeout_ms(const struct pod_supervisor *sup)
{
    long long best = -1;
    struct timespec now;
    now_monotonic(&now);
    for (size_t i = 0; i < sup->n_members; i++) {
        const struct member *m = &sup->members[i];
        if (m->phase != PHASE_BACKOFF)
            continue;
        long long left = ms_between(&now, &m->restart_at);
        if (left < 0)
            left = 0;
        if (best < 0 || left < best)
            best = left;
    }
    return best < 0 ? -1 : (int)(best > INT_MAX ? INT_MAX : best);
}

static void restart_due(struct pod_supervisor *sup)
{
    struct timespec now;
    now_monotonic(&now);
    for (size_t i = 0; i < sup->n_members && !sup->is_stopping; i++) {
        struct member *m = &sup->members[i];
        if (m->phase == PHASE_BACKOFF && ms_between(&now, &m->restart_at) <= 0)
            start_member(sup, m);
    }
    advance(sup);
}

static void handle_signal(struct pod_supervisor *sup)
{
    struct signalfd_siginfo si;
    while (read(sup->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        emit_event(sup, sup->pod->name, "%s: stopping the pod", strsignal((int)si.ssi_signo));
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
    sup->n_init = m->n_init_containers;
    sup->n_members = m->n_init_containers + m->n_containers;
    sup->members = xcalloc(sup->n_members, sizeof *sup->members);
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *mem = &sup->members[i];
        mem->is_init = i < sup->n_init;
        mem->c = mem->is_init ? &m->init_containers[i] : &m->containers[i - sup->n_init];
        mem->pidfd = mem->out[0] = mem->out[POD_STDOUT] = mem->out[POD_STDERR] = -1;
    }
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
        struct member *m = &sup->members[i];
        if (m->pidfd >= 0)
            close(m->pidfd);
        for (int s = POD_STDOUT; s <= POD_STDERR; s++)
            if (m->out[s] >= 0)
                close(m->out[s]);
    }
    if (sup->signal_fd >= 0)
        close(sup->signal_fd);
    if (sup->epoll_fd >= 0)
        close(sup->epoll_fd);
    free(sup->members);
    free(sup);
}

static void dispatch(struct pod_supervisor *sup, const struct epoll_event *ev)
{
    enum watch_kind kind = (enum watch_kind)(ev->data.u64 >> 48);
    size_t index = (size_t)((ev->data.u64 >> 8) & 0xffffffffffULL);
    int stream = (int)(ev->data.u64 & 0xff);
    switch (kind) {
    case WATCH_SIGNAL: handle_signal(sup); break;
    case WATCH_INFRA:
        emit_event(sup, PEA_POD_INFRA_ID, "the infra process exited: the pod is gone");
        epoll_ctl(sup->epoll_fd, EPOLL_CTL_DEL, sup->pod->infra_pidfd, NULL);
        sup->exit_code = 1;
        sup->is_stopping = true;
        break;
    case WATCH_EXIT: reap_member(sup, &sup->members[index]); break;
    case WATCH_OUTPUT: forward_output(sup, &sup->members[index], stream); break;
    }
}

/* After teardown: what the pipes still hold, and every child we made. */
static void drain_and_reap(struct pod_supervisor *sup)
{
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = &sup->members[i];
        for (int s = POD_STDOUT; s <= POD_STDERR; s++)
            if (m->out[s] >= 0)
                forward_output(sup, m, s);
        if (m->pidfd >= 0) {
            siginfo_t info;
            waitid(P_PIDFD, (id_t)m->pidfd, &info, WEXITED);
        }
    }
    if (sup->pod->infra_pidfd >= 0) {
        siginfo_t info;
        waitid(P_PIDFD, (id_t)sup->pod->infra_pidfd, &info, WEXITED);
    }
}

void supervisor_block_stop_signals(void)
{
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_signals, NULL);
}

int supervisor_run(struct pod_supervisor *sup, int *exit_code, struct pea_error *err)
{
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    supervisor_block_stop_signals();
    sup->signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sup->signal_fd < 0 || watch(sup, sup->signal_fd, watch_key(WATCH_SIGNAL, 0, 0), err) < 0 ||
        (sup->pod->infra_pidfd >= 0 &&
         watch(sup, sup->pod->infra_pidfd, watch_key(WATCH_INFRA, 0, 0), err) < 0)) {
        if (!err->msg[0])
            pea_fail(err, errno, "signalfd");
        sup->is_stopping = true;
    }
    advance(sup);
    while (!sup->is_stopping && !sup->is_finished) {
        struct epoll_event events[16];
        int n = epoll_wait(sup->epoll_fd, events, ARRAY_SIZE(events), next_timeout_ms(sup));
        if (n < 0 && errno != EINTR) {
            pea_fail(err, errno, "epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(sup, &events[i]);
        restart_due(sup);
    }
    struct pea_error teardown = {0};
    int r = pod_remove(sup->pod->root, sup->pod->name, sup->pod->manifest->termination_grace_seconds, &teardown);
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
