/* Probes and lifecycle hooks in the supervising loop: handler.c runs one action (exec in the container, a network
 * check from the pod's network namespace, a sleep) without blocking the loop; probe.c schedules the probes and acts
 * on their results; lifecycle.c runs postStart and the stop sequence (preStop, stop signal, SIGKILL). */
#ifndef PEA_LIFECYCLE_INTERNAL_H
#define PEA_LIFECYCLE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "pea/pod_manifest.h"
#include "supervise_internal.h"

/* ---- handler.c ---- */

struct handler_run;
/* How a run ended: ok, and what it said (a probe's output, the HTTP status, why it failed). The run is freed once
 * this returns. */
typedef void (*handler_done_fn)(struct pod_supervisor *sup, struct member *m, void *ctx, bool is_ok,
                                const char *message);

/* Start h for m's container, to end within timeout_ms (< 0: no limit). done is called exactly once, from the loop
 * (never from within handler_start), unless the run is cancelled first. */
struct handler_run *handler_start(struct pod_supervisor *sup, struct member *m, const struct pea_pod_handler *h,
                                  long long timeout_ms, handler_done_fn done, void *ctx);
/* Kill what still runs, reap it and free the run, without calling done. */
void handler_cancel(struct pod_supervisor *sup, struct handler_run *run);
/* When the run next needs handler_tick (its deadline, or now when its result waits to be delivered). */
bool handler_due(const struct handler_run *run, struct timespec *due);
void handler_tick(struct pod_supervisor *sup, struct handler_run *run, const struct timespec *now);

/* Run in a child already in the pod's network namespace: one check of h (httpGet, tcpSocket, grpc) against h->host
 * or default_host, within timeout_ms; msg gets what was found. */
bool probe_net_check(const struct pea_pod_handler *h, const char *default_host, int timeout_ms, char *msg,
                     size_t len);

/* ---- probe.c ---- */

/* m's container is running (and its postStart hook done): its probes start. */
void probes_start(struct pod_supervisor *sup, struct member *m);
/* Stop every probe of m (it exited, or is being stopped). */
void probes_stop(struct pod_supervisor *sup, struct member *m);
bool probes_due(const struct member *m, struct timespec *due);
void probes_tick(struct pod_supervisor *sup, struct member *m, const struct timespec *now);

/* ---- lifecycle.c ---- */

/* The container just started: run its postStart hook, then start its probes. */
void lifecycle_after_start(struct pod_supervisor *sup, struct member *m);
/* Stop m's container: preStop (within the grace period), the stop signal, SIGKILL at the deadline. */
void lifecycle_begin_stop(struct pod_supervisor *sup, struct member *m, long long grace_seconds);
/* Kill m's container because it is unhealthy (a probe, a failed postStart): the restart policy then decides. */
void lifecycle_kill_unhealthy(struct pod_supervisor *sup, struct member *m, long long grace_seconds);
/* m's container exited: cancel what still runs for it. */
void lifecycle_member_gone(struct pod_supervisor *sup, struct member *m);
bool lifecycle_due(const struct member *m, struct timespec *due);
void lifecycle_tick(struct pod_supervisor *sup, struct member *m, const struct timespec *now);

/* Time helpers shared by the three. */
void lifecycle_now(struct timespec *ts);
void lifecycle_add_ms(struct timespec *ts, long long ms);
long long lifecycle_ms_between(const struct timespec *a, const struct timespec *b);
/* Keep the earlier of *best and t in *best; *has_best says whether *best holds one yet. */
void lifecycle_earliest(struct timespec *best, bool *has_best, const struct timespec *t);

#endif
