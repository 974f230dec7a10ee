/* What the supervising loop (supervise.c) and its control operations (supervise_control.c) share. */
#ifndef PEA_SUPERVISE_INTERNAL_H
#define PEA_SUPERVISE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pea/supervise.h"

/* How long a member may take to be gone after its SIGKILL before the pod's teardown goes on without waiting. */
#define POD_STOP_SETTLE_MS 5000

enum member_phase {
    PHASE_WAITING, /* not started yet */
    PHASE_RUNNING,
    PHASE_BACKOFF, /* exited; starts again at restart_at */
    PHASE_EXITED,  /* exited for good under restartPolicy (or the pod is stopping) */
    PHASE_STOPPED, /* held by a stop request until start/restart/apply */
};

enum watch_kind { WATCH_SIGNAL = 1, WATCH_INFRA, WATCH_EXIT, WATCH_OUTPUT, WATCH_CALLER };

struct member;
struct member_probes; /* probe.c */
struct member_hooks;  /* lifecycle.c */

/* One fd in the epoll set; epoll's data points here, so members and watches never move once made. */
struct watch {
    enum watch_kind kind;
    int fd;
    struct member *member; /* EXIT, OUTPUT */
    int stream;            /* OUTPUT */
    supervisor_fd_fn fn;   /* CALLER */
    void *ctx;
    struct watch *next;    /* the supervisor's list of caller watches */
    bool is_dead;          /* unwatched during a dispatch batch: freed after it */
    bool is_for_writing;   /* CALLER: EPOLLOUT, not EPOLLIN */
};

struct member {
    const struct pea_pod_container *c; /* points into the supervisor's current manifest */
    bool is_init;
    bool is_removed; /* dropped by apply: kept (never freed while the loop runs) so late events stay valid */
    enum member_phase phase;
    pid_t pid;
    int pidfd;
    struct watch exit_watch, out_watch[3]; /* with a tty, out_watch[POD_STDOUT] reads the pty's master */
    int stdin_fd;          /* stdin: the write end of its stdin pipe, or its pty's master; -1 without or closed */
    bool is_stdin_closed;  /* stdinOnce: closed after the first attach session with stdin (until it starts again) */
    unsigned restarts;
    bool has_exited;
    int last_exit;
    long long backoff_ms;
    struct timespec started_at, restart_at;
    char started_at_text[64], finished_at_text[64];
    char start_error[sizeof ((struct pea_error *)0)->msg]; /* why its last start failed ("" once one succeeds): ps -o json, apply, exec say it */
    /* A stop in progress: SIGKILL at kill_at if still running; then hold it, or start it again. */
    bool is_stopping, start_after_stop, remove_after_stop;
    struct timespec kill_at;
    /* Probes and lifecycle hooks (probe.c, lifecycle.c); NULL while none runs. */
    struct member_probes *probes;
    struct member_hooks *hooks;
    bool is_started;    /* postStart done and the startup probe passed (or there is none) */
    bool is_ready;      /* started and the readiness probe passing (or there is none) */
    bool is_probe_kill; /* killed as unhealthy: the restart policy decides what follows, not the stop */
};

struct pod_supervisor {
    struct pea_pod *pod;
    const struct pod_supervisor_ops *ops;
    void *ctx;
    struct member **members; /* init containers in order, then app containers (apply may append) */
    size_t n_members;
    size_t next_init;
    bool apps_started, is_stopping, is_finished, keep_finished;
    /* Once the pod is stopping: the loop waits for its members no longer than this (the grace period, the SIGKILL,
     * then POD_STOP_SETTLE_MS) before the teardown. */
    bool has_stop_deadline;
    struct timespec stop_deadline;
    /* The grace period a shutdown asked for (pod rm --force, --grace-period) instead of the manifest's. */
    bool has_stop_grace;
    long long stop_grace_seconds;
    int exit_code;
    /* RestartAllContainers (a restartPolicyRules action): every member is being killed; once none runs, the pod
     * starts again from its first init container at restart_all_at, in the same sandbox. Its back-off is the pod's,
     * reset as a container's is once the pod ran POD_BACKOFF_RESET_MS since it last started again. */
    bool is_restarting_all;
    struct timespec restart_all_at, restarted_all_at;
    long long restart_all_backoff_ms;
    int epoll_fd, signal_fd;
    struct watch signal_watch, infra_watch;
    struct watch *caller_watches;
};

void supervisor_record(struct pod_supervisor *sup, struct member *m);
void supervisor_close_stdin(struct member *m);
json_t *supervisor_member_json(const struct member *m);
struct member *supervisor_find(const struct pod_supervisor *sup, const char *name);
void supervisor_start_member(struct pod_supervisor *sup, struct member *m);
/* SIGTERM now, SIGKILL at the deadline; then hold, start again, or drop, as the flags say. */
void supervisor_stop_member(struct pod_supervisor *sup, struct member *m, long long timeout_seconds);
void supervisor_advance(struct pod_supervisor *sup);
/* ---- supervise_restart.c ---- */
/* m's own restartPolicy, else the pod's. */
enum pea_restart_policy supervisor_restart_policy(const struct pod_supervisor *sup, const struct member *m);
/* Whether m starts again after it was killed as unhealthy: unless its restartPolicy is Never, as the kubelet does. */
bool supervisor_restarts_after_kill(const struct pod_supervisor *sup, const struct member *m);
/* The first of m's restartPolicyRules matching exit code code (its index in *index), NULL when none does. */
const struct pea_restart_rule *supervisor_matching_rule(const struct member *m, int code, size_t *index);
/* trigger exited with code, matching restartPolicyRules[rule] of action RestartAllContainers: kill every member. */
void supervisor_restart_all_kill(struct pod_supervisor *sup, struct member *trigger, int code, size_t rule);
bool supervisor_has_running_member(const struct pod_supervisor *sup);
/* Every member gone and the pod's back-off over: start the pod again from its first init container. */
void supervisor_restart_all_begin(struct pod_supervisor *sup);
/* The grace period of the pod's stop: the one a shutdown asked for, else the manifest's. */
long long supervisor_stop_grace_seconds(const struct pod_supervisor *sup);
struct member *supervisor_member_new(const struct pea_pod_container *c, bool is_init);
void supervisor_emit(struct pod_supervisor *sup, const char *container, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An event with a kubelet-like reason (Unhealthy, Killing, FailedPostStartHook, FailedPreStopHook). */
void supervisor_emit_reason(struct pod_supervisor *sup, const char *container, const char *reason, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

#endif
