/* The pod's supervising loop, one thread, event-driven (epoll over pidfds, output pipes and a signalfd): init
 * containers one at a time to completion in order (sidecars started and kept), then the app containers; exits
 * recorded in the pod's state; restartPolicy with exponential back-off; teardown on SIGINT/SIGTERM. The foreground
 * `pea pod run` and pea-shim run the same loop with different output sinks. */
#ifndef PEA_SUPERVISE_H
#define PEA_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pea/error.h"
#include "pea/pod.h"

enum pod_stream { POD_STDOUT = 1, POD_STDERR = 2 };

struct pod_supervisor_ops {
    /* A chunk of a container's output, as read (not split into lines). */
    void (*on_output)(void *ctx, const char *container, enum pod_stream stream, const char *buf, size_t len);
    /* A state change, for people: "started", "exited with code 3", "restarting in 2s". */
    void (*on_event)(void *ctx, const char *container, const char *what);
    /* A container's record changed (borrowed; the shape of one element of supervisor_containers). May be NULL. */
    void (*on_change)(void *ctx, const char *container, const json_t *record);
    /* A container is about to get a new instance (a restart or a recreate): the shim rotates its log to
     * "previous". May be NULL. */
    void (*on_new_instance)(void *ctx, const char *container);
    /* An event with a kubelet-like reason ("Unhealthy", "Killing", "FailedPostStartHook", "FailedPreStopHook") and
     * its message. May be NULL: on_event then gets "REASON: MESSAGE". */
    void (*on_event_reason)(void *ctx, const char *container, const char *reason, const char *what);
};

/* Back-off before restarting a container that exited: 1 s, doubled per restart up to 5 minutes; reset once it has
 * run for 10 minutes. */
#define POD_BACKOFF_FIRST_MS 1000
#define POD_BACKOFF_MAX_MS (300 * 1000)
#define POD_BACKOFF_RESET_MS (600 * 1000)

struct pod_supervisor;

struct pod_supervisor *supervisor_new(struct pea_pod *pod, const struct pod_supervisor_ops *ops, void *ctx,
                                      struct pea_error *err);
/* Block SIGINT, SIGTERM and SIGHUP for the loop's signalfd. A caller blocks them before building the sandbox, so
 * that a stop signal during pod_create is seen by the loop (which then tears down at once) instead of killing us
 * half-way; they stay blocked after the loop returns, so a second Ctrl-C cannot interrupt the teardown. */
void supervisor_block_stop_signals(void);

/* Run the pod until it is told to stop (SIGINT, SIGTERM), its infra dies, or it has finished (every app container
 * exited for good under its restartPolicy, or an init container failed under Never). Then tear it down. *exit_code:
 * 0 when every app container that ran last exited 0, else the first non-zero status (128+N for a signal); 1 when an
 * init container failed or the infra died. */
int supervisor_run(struct pod_supervisor *sup, int *exit_code, struct pea_error *err);
void supervisor_free(struct pod_supervisor *sup);

/* ---- what pea-shim adds to the loop: its own fds, and the control operations. None of these block the loop:
 * a stop sends SIGTERM and arms a SIGKILL after the timeout; completion shows through ops->on_change. ---- */

/* Watch fd (EPOLLIN) in the loop; fn gets the epoll events. supervisor_unwatch does not close it. */
typedef void (*supervisor_fd_fn)(struct pod_supervisor *sup, int fd, uint32_t events, void *ctx);
int supervisor_watch(struct pod_supervisor *sup, int fd, supervisor_fd_fn fn, void *ctx, struct pea_error *err);
/* The same for EPOLLOUT: fd has room to write. */
int supervisor_watch_writable(struct pod_supervisor *sup, int fd, supervisor_fd_fn fn, void *ctx,
                              struct pea_error *err);
void supervisor_unwatch(struct pod_supervisor *sup, int fd);

/* Every container in manifest order (init containers first), each
 *   {"name", "init": bool, "sidecar": bool, "state": "waiting|running|backoff|exited|stopped",
 *    "pid": N (0 unless running), "restarts": N, "started": bool and "ready": bool (running, its postStart done and
 *    its startup probe passed; and its readiness probe passing), "exitCode": N (once it has exited), "startedAt", "finishedAt"}
 * ("stopped": held by a stop request, not restarted until start/restart/apply). */
json_t *supervisor_containers(const struct pod_supervisor *sup);
/* {"name", "status": "starting|running|finished|stopping", "infraPid", "created", "restarts" (sum),
 *  "containers": supervisor_containers} */
json_t *supervisor_pod_status(const struct pod_supervisor *sup);
struct pea_pod *supervisor_pod(const struct pod_supervisor *sup);

/* "no container X in pod P" for an unknown name. */
int supervisor_container_stop(struct pod_supervisor *sup, const char *name, long long timeout_seconds,
                              struct pea_error *err);
int supervisor_container_start(struct pod_supervisor *sup, const char *name, struct pea_error *err);
/* Stop (grace period) and start again as soon as it has exited; counts as a restart. */
int supervisor_container_restart(struct pod_supervisor *sup, const char *name, struct pea_error *err);
/* Signal the container's init; what happens on exit follows restartPolicy. */
int supervisor_container_kill(struct pod_supervisor *sup, const char *name, int sig, struct pea_error *err);

/* Make the pod what the new manifest says, changing only what changed (it takes the manifest on success):
 *   a container whose image, command, args, env, workingDir, volumeMounts or securityContext changed is stopped and
 *   recreated in place; a resources-only change is written to its cgroup live (container update); added containers
 *   start, removed ones stop and go; metadata, restartPolicy and terminationGracePeriodSeconds are taken as they are.
 * Changes that need a new sandbox (name, hostname, shareProcessNamespace, hostNetwork, the pea section, volumes, init
 * containers) fail naming the field: "spec.hostname: changing it needs a new sandbox (apply --recreate)".
 * *summary = {"recreated": [...], "updated": [...], "added": [...], "removed": [...], "unchanged": [...]}; applying
 * the running manifest again changes nothing. */
int supervisor_apply(struct pod_supervisor *sup, struct pea_pod_manifest *manifest, json_t **summary,
                     struct pea_error *err);

/* Whether a process can be exec'd in container name now; else why not: no such container, it failed to start (and
 * the reason), it is not running, or it or the pod is being stopped. */
int supervisor_exec_check(const struct pod_supervisor *sup, const char *name, struct pea_error *err);

/* Attach to a running container: whether it has a tty and, when wants_stdin, a new fd that writes its stdin (its
 * stdin pipe or its pty's master); an error when it keeps no stdin (stdin: false) or closed it (stdinOnce). */
int supervisor_attach(struct pod_supervisor *sup, const char *name, bool wants_stdin, bool *has_tty, int *input_fd,
                      struct pea_error *err);
/* An attach session with stdin to the instance of name started at instance (its startedAt) has ended: with
 * stdinOnce, the container's stdin closes. */
void supervisor_attach_ended(struct pod_supervisor *sup, const char *name, const char *instance);

/* Start a process in a running container (OCI process JSON, as `pea exec --process`), with stdio fds given (-1 =
 * /dev/null) or, when process.terminal is set, a pty whose master goes to *console_master. The process is our child:
 * the caller watches *pidfd (supervisor_watch) and reaps it with waitid(P_PIDFD). */
int supervisor_exec(struct pod_supervisor *sup, const char *name, json_t *process, const int stdio[3], pid_t *pid,
                    int *pidfd, int *console_master, struct pea_error *err);

/* pea-shim keeps a finished pod (every app container exited for good) until it is told to stop, so that its state,
 * exit codes and logs stay there to be read; `pea pod run` tears it down at once (the default). */
void supervisor_keep_finished(struct pod_supervisor *sup, bool keep);

/* Take over a pod whose supervisor died (pea-shim restarted), before supervisor_run: containers still running are
 * watched through pidfds and their output FIFOs reopened; one that exits, or that exited meanwhile, is recorded as
 * exited with an unknown code (it was not our child: its status is not ours to read), never an invented one; the
 * others resume from their records in pod.json. Fails when the infra is gone. */
int supervisor_adopt(struct pod_supervisor *sup, struct pea_error *err);

/* Stop the pod: each running member gets the stop signal, the grace period and SIGKILL while the loop goes on (its
 * watches served, as before), then the loop ends and the pod is torn down (as a stop signal does). */
void supervisor_request_stop(struct pod_supervisor *sup);
/* The same with grace_seconds instead of the manifest's grace period (0: SIGKILL at once, as kubectl delete --force
 * --grace-period=0); a stop already under way is hurried to it, never slowed. */
void supervisor_request_stop_within(struct pod_supervisor *sup, long long grace_seconds);

/* Whether the pod is being stopped (a stop signal, shutdown, or its infra gone): start, restart, apply and exec are
 * refused from then on. */
bool supervisor_is_stopping(const struct pod_supervisor *sup);
/* Whether what runs in container name is ending: it is being stopped, is not running, or is gone. */
bool supervisor_container_is_ending(const struct pod_supervisor *sup, const char *name);

#endif
