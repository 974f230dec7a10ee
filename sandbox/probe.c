/* Liveness, readiness and startup probes with the kubelet's semantics: the first run initialDelaySeconds after the
 * container started, then one every periodSeconds (never two at once); failureThreshold consecutive failures fail a
 * probe, successThreshold consecutive successes pass it; while a startup probe has not passed, the others do not
 * run; a failed startup or liveness probe kills the container and the restart policy decides; readiness only flips
 * READY. Every failed run is an Unhealthy event. */
#include <stdlib.h>
#include <string.h>

#include "lifecycle_internal.h"
#include "pea/util.h"

enum probe_kind { PROBE_STARTUP, PROBE_LIVENESS, PROBE_READINESS, PROBE_KINDS };

static const char *const probe_names[PROBE_KINDS] = {"Startup", "Liveness", "Readiness"};
static const char *const probe_words[PROBE_KINDS] = {"startup", "liveness", "readiness"};

struct probe_state {
    enum probe_kind kind;
    bool is_active;
    int successes, failures; /* consecutive */
    struct timespec next_at, last_started;
    struct handler_run *run;
};

struct member_probes {
    struct probe_state probes[PROBE_KINDS];
};

static const struct pea_pod_probe *probe_spec(const struct member *m, enum probe_kind kind)
{
    /* Through m->c every time: an apply that keeps the container moves it to the new manifest. */
    switch (kind) {
    case PROBE_STARTUP: return &m->c->startup_probe;
    case PROBE_LIVENESS: return &m->c->liveness_probe;
    default: return &m->c->readiness_probe;
    }
}

static bool has_probe(const struct member *m, enum probe_kind kind)
{
    return probe_spec(m, kind)->handler.type != PEA_HANDLER_NONE;
}

static void set_ready(struct pod_supervisor *sup, struct member *m, bool is_started, bool is_ready)
{
    if (m->is_started == is_started && m->is_ready == is_ready)
        return;
    bool was_started = m->is_started;
    m->is_started = is_started;
    m->is_ready = is_ready;
    supervisor_record(sup, m);
    /* A sidecar lets the next init container start once it has started. */
    if (is_started && !was_started && m->is_init)
        supervisor_advance(sup);
}

/* Active from now on; the first run not before initialDelaySeconds after the container started. */
static void activate(struct member *m, struct probe_state *p)
{
    const struct pea_pod_probe *spec = probe_spec(m, p->kind);
    struct timespec now, first = m->started_at;
    lifecycle_now(&now);
    lifecycle_add_ms(&first, spec->initial_delay_seconds * 1000LL);
    p->is_active = true;
    p->successes = p->failures = 0;
    p->next_at = lifecycle_ms_between(&now, &first) > 0 ? first : now;
}

void probes_start(struct pod_supervisor *sup, struct member *m)
{
    probes_stop(sup, m);
    bool has_startup = has_probe(m, PROBE_STARTUP);
    bool has_any = has_startup || has_probe(m, PROBE_LIVENESS) || has_probe(m, PROBE_READINESS);
    if (has_any) {
        m->probes = xcalloc(1, sizeof *m->probes);
        for (int k = 0; k < PROBE_KINDS; k++)
            m->probes->probes[k].kind = (enum probe_kind)k;
        if (has_startup) {
            activate(m, &m->probes->probes[PROBE_STARTUP]);
        } else {
            for (int k = PROBE_LIVENESS; k < PROBE_KINDS; k++)
                if (has_probe(m, (enum probe_kind)k))
                    activate(m, &m->probes->probes[k]);
        }
    }
    set_ready(sup, m, !has_startup, !has_startup && !has_probe(m, PROBE_READINESS));
}

void probes_stop(struct pod_supervisor *sup, struct member *m)
{
    struct member_probes *probes = m->probes;
    if (!probes)
        return;
    m->probes = NULL;
    for (int k = 0; k < PROBE_KINDS; k++)
        if (probes->probes[k].run)
            handler_cancel(sup, probes->probes[k].run);
    free(probes);
}

static void probe_passed(struct pod_supervisor *sup, struct member *m, struct probe_state *p)
{
    const struct pea_pod_probe *spec = probe_spec(m, p->kind);
    p->failures = 0;
    p->successes++;
    if (p->successes < spec->success_threshold)
        return;
    if (p->kind == PROBE_STARTUP) {
        /* Started: liveness and readiness take over. */
        p->is_active = false;
        for (int k = PROBE_LIVENESS; k < PROBE_KINDS; k++)
            if (has_probe(m, (enum probe_kind)k))
                activate(m, &m->probes->probes[k]);
        set_ready(sup, m, true, !has_probe(m, PROBE_READINESS));
    } else if (p->kind == PROBE_READINESS) {
        set_ready(sup, m, m->is_started, true);
    }
}

static void probe_failed(struct pod_supervisor *sup, struct member *m, struct probe_state *p, const char *message)
{
    const struct pea_pod_probe *spec = probe_spec(m, p->kind);
    p->successes = 0;
    p->failures++;
    supervisor_emit_reason(sup, m->c->name, "Unhealthy", "%s probe failed: %s", probe_names[p->kind], message);
    if (p->failures < spec->failure_threshold)
        return;
    if (p->kind == PROBE_READINESS) {
        set_ready(sup, m, m->is_started, false);
        return;
    }
    bool is_restarted = supervisor_restarts_after_kill(sup, m);
    supervisor_emit_reason(sup, m->c->name, "Killing", "Container %s failed %s probe%s", m->c->name,
                           probe_words[p->kind], is_restarted ? ", will be restarted" : "");
    long long grace = spec->termination_grace_seconds >= 0 ? spec->termination_grace_seconds
                                                           : sup->pod->manifest->termination_grace_seconds;
    /* This frees m->probes, p with them. */
    lifecycle_kill_unhealthy(sup, m, grace);
}

static void probe_done(struct pod_supervisor *sup, struct member *m, void *ctx, bool is_ok, const char *message)
{
    struct probe_state *p = ctx;
    p->run = NULL;
    /* The next run one period after this one began, or now if this one took longer. */
    struct timespec now;
    lifecycle_now(&now);
    p->next_at = p->last_started;
    lifecycle_add_ms(&p->next_at, probe_spec(m, p->kind)->period_seconds * 1000LL);
    if (lifecycle_ms_between(&now, &p->next_at) < 0)
        p->next_at = now;
    if (is_ok)
        probe_passed(sup, m, p);
    else
        probe_failed(sup, m, p, message);
}

bool probes_due(const struct member *m, struct timespec *due)
{
    bool has_due = false;
    if (!m->probes)
        return false;
    for (int k = 0; k < PROBE_KINDS; k++) {
        const struct probe_state *p = &m->probes->probes[k];
        struct timespec t;
        if (p->run && handler_due(p->run, &t))
            lifecycle_earliest(due, &has_due, &t);
        else if (!p->run && p->is_active)
            lifecycle_earliest(due, &has_due, &p->next_at);
    }
    return has_due;
}

void probes_tick(struct pod_supervisor *sup, struct member *m, const struct timespec *now)
{
    for (int k = 0; k < PROBE_KINDS; k++) {
        struct member_probes *probes = m->probes;
        if (!probes)
            return;
        struct probe_state *p = &probes->probes[k];
        if (p->run) {
            /* May end the run, and through it the probes (a kill). */
            handler_tick(sup, p->run, now);
            continue;
        }
        if (!p->is_active || lifecycle_ms_between(now, &p->next_at) > 0)
            continue;
        const struct pea_pod_probe *spec = probe_spec(m, p->kind);
        p->last_started = *now;
        p->run = handler_start(sup, m, &spec->handler, spec->timeout_seconds * 1000LL, probe_done, p);
    }
}
