/* The pod's supervising loop, one thread, event-driven (epoll over pidfds, output pipes and a signalfd): init
 * containers one at a time to completion in order (sidecars started and kept), then the app containers; exits
 * recorded in the pod's state; restartPolicy with exponential back-off; teardown on SIGINT/SIGTERM. The foreground
 * `pea pod run` and pea-shim run the same loop with different output sinks. */
#ifndef PEA_SUPERVISE_H
#define PEA_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
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

#endif
