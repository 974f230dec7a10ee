/* Kubernetes' container restart rules in the supervising loop: a container's own restartPolicy, restartPolicyRules
 * matched against exit codes, and RestartAllContainers, which starts the whole pod again in its sandbox. */
#include <signal.h>

#include "pea/container.h"
#include "pea/log.h"
#include "lifecycle_internal.h"
#include "supervise_internal.h"

/* The container's own restartPolicy, else the pod's. */
enum pea_restart_policy supervisor_restart_policy(const struct pod_supervisor *sup, const struct member *m)
{
    return m->c->has_restart_policy ? m->c->restart_policy : sup->pod->manifest->restart_policy;
}

/* The first of m's restartPolicyRules whose exit codes match code, NULL when none does. An init container that
 * exits 0 has done its work: no rule applies to it. */
const struct pea_restart_rule *supervisor_matching_rule(const struct member *m, int code, size_t *index)
{
    if (code < 0 || (m->is_init && !m->c->is_sidecar && code == 0))
        return NULL;
    for (size_t i = 0; i < m->c->n_restart_rules; i++) {
        const struct pea_restart_rule *r = &m->c->restart_rules[i];
        bool is_listed = false;
        for (size_t v = 0; v < r->n_values && !is_listed; v++)
            is_listed = r->values[v] == code;
        if (is_listed != r->is_not_in) {
            *index = i;
            return r;
        }
    }
    return NULL;
}

/* A container killed as unhealthy (a probe, its postStart hook) starts again unless the policy is Never, whatever
 * it exited with, as the kubelet does. */
bool supervisor_restarts_after_kill(const struct pod_supervisor *sup, const struct member *m)
{
    return m->c->is_sidecar || supervisor_restart_policy(sup, m) != PEA_RESTART_NEVER;
}

/* The back-off before the pod starts again, doubled each time as a container's, and reset once the pod ran
 * POD_BACKOFF_RESET_MS since it last started again. */
static void schedule_restart_all(struct pod_supervisor *sup)
{
    struct timespec now;
    lifecycle_now(&now);
    if (sup->restart_all_backoff_ms && lifecycle_ms_between(&sup->restarted_all_at, &now) >= POD_BACKOFF_RESET_MS)
        sup->restart_all_backoff_ms = 0;
    sup->restart_all_backoff_ms = sup->restart_all_backoff_ms ? sup->restart_all_backoff_ms * 2 : POD_BACKOFF_FIRST_MS;
    if (sup->restart_all_backoff_ms > POD_BACKOFF_MAX_MS)
        sup->restart_all_backoff_ms = POD_BACKOFF_MAX_MS;
    sup->restart_all_at = now;
    lifecycle_add_ms(&sup->restart_all_at, sup->restart_all_backoff_ms);
}

/* RestartAllContainers (KEP-5532): kill every running member at once, without preStop or grace period, as the
 * kubelet does; the sandbox (namespaces, address, pause process) and the volumes stay. The pod starts again from
 * its first init container once none runs and the back-off is over (supervisor_restart_all_begin). */
void supervisor_restart_all_kill(struct pod_supervisor *sup, struct member *trigger, int code, size_t rule)
{
    supervisor_emit_reason(sup, trigger->c->name, "RestartAllContainers",
                           "exited with code %d, matching restartPolicyRules[%zu]: restarting all containers", code,
                           rule);
    sup->is_restarting_all = true;
    schedule_restart_all(sup);
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        /* A stop asked for by a user that would start it again gives way; one that removes it goes on. */
        m->start_after_stop = false;
        if (!m->remove_after_stop)
            m->is_stopping = false;
        if (m->is_removed || m->phase != PHASE_RUNNING)
            continue;
        lifecycle_member_gone(sup, m);
        m->is_probe_kill = false;
        struct pea_error err = {0};
        if (container_kill(sup->pod->oci_root, m->c->name, SIGKILL, true, &err) < 0)
            log_debug("kill %s: %s", m->c->name, err.msg);
        supervisor_emit_reason(sup, m->c->name, "Killing", "Stopping container %s: all containers restart",
                               m->c->name);
    }
    supervisor_emit(sup, sup->pod->name, "restarting all containers in %lld.%03llds",
                    sup->restart_all_backoff_ms / 1000, sup->restart_all_backoff_ms % 1000);
}

bool supervisor_has_running_member(const struct pod_supervisor *sup)
{
    for (size_t i = 0; i < sup->n_members; i++)
        if (!sup->members[i]->is_removed && sup->members[i]->phase == PHASE_RUNNING)
            return true;
    return false;
}

/* Every member is gone and the back-off over: the pod starts again as it first did, init containers in order. A
 * member held by a stop request stays held. */
void supervisor_restart_all_begin(struct pod_supervisor *sup)
{
    sup->is_restarting_all = false;
    lifecycle_now(&sup->restarted_all_at);
    sup->next_init = 0;
    sup->apps_started = false;
    sup->is_finished = false;
    sup->exit_code = 0;
    supervisor_emit(sup, sup->pod->name, "starting all containers again");
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        if (m->is_removed || m->phase == PHASE_STOPPED)
            continue;
        m->phase = PHASE_WAITING;
        m->restarts++;
        m->backoff_ms = 0;
        supervisor_record(sup, m);
    }
    supervisor_advance(sup);
}
