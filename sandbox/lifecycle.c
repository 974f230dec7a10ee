/* Lifecycle hooks and the stop sequence, as the kubelet runs them. After a container starts, its postStart hook
 * runs; until it is done the container is neither started nor ready, and if it fails the container is killed
 * (FailedPostStartHook) and the restart policy decides. A stop (pod stop or rm, a container stop, an apply that
 * recreates it, a failed probe) runs the preStop hook within the grace period, then sends the stop signal
 * (lifecycle.stopSignal, SIGTERM by default), then SIGKILL at the deadline; the hook's time counts against the grace
 * period, and the signal gets at least the kubelet's 2 s after a hook. */
#include <stdlib.h>
#include <string.h>

#include "lifecycle_internal.h"
#include "pea/container.h"
#include "pea/log.h"
#include "pea/util.h"

/* What the kubelet leaves the stop signal after a preStop hook that used up the grace period
 * (minimumGracePeriodInSeconds). */
#define STOP_SIGNAL_MIN_MS 2000

struct member_hooks {
    struct handler_run *post_start, *pre_stop;
    struct timespec pre_stop_end; /* the end of the grace period the hook runs in */
};

/* ---- time ---- */

void lifecycle_now(struct timespec *ts) { clock_gettime(CLOCK_MONOTONIC, ts); }

void lifecycle_add_ms(struct timespec *ts, long long ms)
{
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

long long lifecycle_ms_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000LL + (b->tv_nsec - a->tv_nsec) / 1000000;
}

void lifecycle_earliest(struct timespec *best, bool *has_best, const struct timespec *t)
{
    if (!*has_best || lifecycle_ms_between(t, best) > 0)
        *best = *t;
    *has_best = true;
}

/* ---- hooks ---- */

static struct member_hooks *hooks_of(struct member *m)
{
    if (!m->hooks)
        m->hooks = xcalloc(1, sizeof *m->hooks);
    return m->hooks;
}

static void post_start_done(struct pod_supervisor *sup, struct member *m, void *ctx, bool is_ok, const char *message)
{
    (void)ctx;
    m->hooks->post_start = NULL;
    if (is_ok) {
        probes_start(sup, m);
        return;
    }
    supervisor_emit_reason(sup, m->c->name, "FailedPostStartHook", "postStart hook failed: %s",
                           message[0] ? message : "(no output)");
    bool is_restarted = supervisor_restarts_after_kill(sup, m);
    supervisor_emit_reason(sup, m->c->name, "Killing", "Container %s failed its postStart hook%s", m->c->name,
                           is_restarted ? ", will be restarted" : "");
    lifecycle_kill_unhealthy(sup, m, sup->pod->manifest->termination_grace_seconds);
}

void lifecycle_after_start(struct pod_supervisor *sup, struct member *m)
{
    m->is_started = m->is_ready = false;
    if (m->c->post_start.type == PEA_HANDLER_NONE) {
        probes_start(sup, m);
        return;
    }
    /* No limit of its own, as in the kubelet: a stop cuts it off. */
    hooks_of(m)->post_start = handler_start(sup, m, &m->c->post_start, -1, post_start_done, NULL);
}

static void send_stop_signal(struct pod_supervisor *sup, struct member *m)
{
    struct pea_error err = {0};
    if (container_kill(sup->pod->oci_root, m->c->name, m->c->stop_signal, false, &err) < 0)
        log_debug("stop %s: %s", m->c->name, err.msg);
}

/* The hook is over (done, failed or cut off at the end of the grace period): the stop signal, and SIGKILL at the
 * end of the grace period but not sooner than STOP_SIGNAL_MIN_MS from now. */
static void after_pre_stop(struct pod_supervisor *sup, struct member *m)
{
    struct timespec now, earliest;
    lifecycle_now(&now);
    earliest = now;
    lifecycle_add_ms(&earliest, STOP_SIGNAL_MIN_MS);
    m->kill_at = m->hooks->pre_stop_end;
    if (lifecycle_ms_between(&m->kill_at, &earliest) > 0)
        m->kill_at = earliest;
    send_stop_signal(sup, m);
}

static void pre_stop_done(struct pod_supervisor *sup, struct member *m, void *ctx, bool is_ok, const char *message)
{
    (void)ctx;
    m->hooks->pre_stop = NULL;
    if (!is_ok)
        supervisor_emit_reason(sup, m->c->name, "FailedPreStopHook", "preStop hook failed: %s",
                               message[0] ? message : "(no output)");
    after_pre_stop(sup, m);
}

void lifecycle_begin_stop(struct pod_supervisor *sup, struct member *m, long long grace_seconds)
{
    struct timespec now, end;
    lifecycle_now(&now);
    end = now;
    lifecycle_add_ms(&end, grace_seconds * 1000);
    struct member_hooks *hooks = hooks_of(m);
    if (m->is_stopping) {
        /* Stopped again meanwhile: a shorter deadline wins; none at all (a forced stop) ends the hook now. */
        if (hooks->pre_stop && lifecycle_ms_between(&end, &hooks->pre_stop_end) > 0)
            hooks->pre_stop_end = end;
        if (hooks->pre_stop && grace_seconds == 0) {
            handler_cancel(sup, hooks->pre_stop);
            hooks->pre_stop = NULL;
            send_stop_signal(sup, m);
        } else if (!hooks->pre_stop) {
            send_stop_signal(sup, m);
        }
        if (lifecycle_ms_between(&end, &m->kill_at) > 0)
            m->kill_at = end;
        return;
    }
    m->is_stopping = true;
    probes_stop(sup, m);
    if (hooks->post_start) {
        handler_cancel(sup, hooks->post_start);
        hooks->post_start = NULL;
    }
    if (m->is_ready || m->is_started) {
        m->is_ready = m->is_started = false;
        supervisor_record(sup, m);
    }
    supervisor_emit(sup, m->c->name, "stopping (SIGKILL in %llds)", grace_seconds);
    if (m->c->pre_stop.type == PEA_HANDLER_NONE || grace_seconds == 0) {
        m->kill_at = end;
        send_stop_signal(sup, m);
        return;
    }
    /* SIGKILL waits for the hook: after_pre_stop sets the deadline once it is over. */
    hooks->pre_stop_end = end;
    m->kill_at = end;
    lifecycle_add_ms(&m->kill_at, STOP_SIGNAL_MIN_MS);
    hooks->pre_stop = handler_start(sup, m, &m->c->pre_stop, grace_seconds * 1000, pre_stop_done, NULL);
}

void lifecycle_kill_unhealthy(struct pod_supervisor *sup, struct member *m, long long grace_seconds)
{
    m->is_probe_kill = true;
    m->start_after_stop = false;
    lifecycle_begin_stop(sup, m, grace_seconds);
}

void lifecycle_member_gone(struct pod_supervisor *sup, struct member *m)
{
    probes_stop(sup, m);
    m->is_started = m->is_ready = false;
    struct member_hooks *hooks = m->hooks;
    if (!hooks)
        return;
    m->hooks = NULL;
    if (hooks->post_start)
        handler_cancel(sup, hooks->post_start);
    if (hooks->pre_stop)
        handler_cancel(sup, hooks->pre_stop);
    free(hooks);
}

bool lifecycle_due(const struct member *m, struct timespec *due)
{
    bool has_due = false;
    const struct member_hooks *hooks = m->hooks;
    struct timespec t;
    if (hooks && hooks->post_start && handler_due(hooks->post_start, &t))
        lifecycle_earliest(due, &has_due, &t);
    if (hooks && hooks->pre_stop) {
        if (handler_due(hooks->pre_stop, &t))
            lifecycle_earliest(due, &has_due, &t);
        lifecycle_earliest(due, &has_due, &hooks->pre_stop_end);
    }
    struct timespec probe_due;
    if (probes_due(m, &probe_due))
        lifecycle_earliest(due, &has_due, &probe_due);
    return has_due;
}

void lifecycle_tick(struct pod_supervisor *sup, struct member *m, const struct timespec *now)
{
    /* Each step may end what the next would touch: look again each time. */
    if (m->hooks && m->hooks->post_start)
        handler_tick(sup, m->hooks->post_start, now);
    if (m->hooks && m->hooks->pre_stop)
        handler_tick(sup, m->hooks->pre_stop, now);
    if (m->hooks && m->hooks->pre_stop && lifecycle_ms_between(now, &m->hooks->pre_stop_end) <= 0) {
        handler_cancel(sup, m->hooks->pre_stop);
        m->hooks->pre_stop = NULL;
        supervisor_emit_reason(sup, m->c->name, "FailedPreStopHook",
                               "preStop hook did not finish within the grace period");
        after_pre_stop(sup, m);
    }
    probes_tick(sup, m, now);
}
