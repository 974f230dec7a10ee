/* The supervisor's control operations for pea-shim: records, stop/start/restart/kill, apply, exec. None blocks the
 * loop. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pea/cgroup.h"
#include "pea/container.h"
#include "pea/log.h"
#include "pea/pod_image.h"
#include "pea/util.h"
#include "pea/volume.h"
#include "supervise_internal.h"

json_t *supervisor_containers(const struct pod_supervisor *sup)
{
    json_t *list = json_array();
    for (size_t i = 0; i < sup->n_members; i++)
        if (!sup->members[i]->is_removed)
            json_array_append_new(list, supervisor_member_json(sup->members[i]));
    return list;
}

json_t *supervisor_pod_status(const struct pod_supervisor *sup)
{
    const char *status = sup->is_stopping         ? "stopping"
                         : sup->is_restarting_all ? "restarting"
                         : sup->is_finished       ? "finished"
                         : sup->apps_started ? "running"
                                             : "starting";
    unsigned restarts = 0;
    for (size_t i = 0; i < sup->n_members; i++)
        restarts += sup->members[i]->restarts;
    json_t *created = json_object_get(sup->pod->state, "created");
    return json_pack("{s:s, s:s, s:i, s:O, s:i, s:o}", "name", sup->pod->name, "status", status, "infraPid",
                     (int)sup->pod->infra_pid, "created", created ? created : json_null(), "restarts", (int)restarts,
                     "containers", supervisor_containers(sup));
}

static struct member *find_or_fail(const struct pod_supervisor *sup, const char *name, struct pea_error *err)
{
    struct member *m = supervisor_find(sup, name);
    if (!m)
        pea_fail(err, 0, "no container %s in pod %s", name, sup->pod->name);
    return m;
}

/* What would start something: refused once the pod is stopping, so that its teardown does not race a new process. */
static int fail_if_stopping(const struct pod_supervisor *sup, struct pea_error *err)
{
    if (sup->is_stopping)
        return pea_fail(err, 0, "pod %s is being stopped", sup->pod->name);
    /* Its containers start again in order (restartPolicyRules' RestartAllContainers): none out of turn. */
    if (sup->is_restarting_all)
        return pea_fail(err, 0, "pod %s is restarting all its containers", sup->pod->name);
    return 0;
}

bool supervisor_is_stopping(const struct pod_supervisor *sup) { return sup->is_stopping; }

long long supervisor_stop_grace_seconds(const struct pod_supervisor *sup)
{
    return sup->has_stop_grace ? sup->stop_grace_seconds : sup->pod->manifest->termination_grace_seconds;
}

/* *deadline = the earlier of itself and ms from now. */
static void hurry_deadline(struct timespec *deadline, long long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += ms % 1000 * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    if (t.tv_sec < deadline->tv_sec || (t.tv_sec == deadline->tv_sec && t.tv_nsec < deadline->tv_nsec))
        *deadline = t;
}

void supervisor_request_stop_within(struct pod_supervisor *sup, long long grace_seconds)
{
    if (!sup->has_stop_grace || grace_seconds < sup->stop_grace_seconds) {
        sup->has_stop_grace = true;
        sup->stop_grace_seconds = grace_seconds;
    }
    sup->is_stopping = true;
    /* Members already given a longer grace period (a pod stop before this rm --force) get this one. */
    for (size_t i = 0; i < sup->n_members; i++)
        if (sup->members[i]->is_stopping && sup->members[i]->phase == PHASE_RUNNING)
            hurry_deadline(&sup->members[i]->kill_at, sup->stop_grace_seconds * 1000);
    if (sup->has_stop_deadline)
        hurry_deadline(&sup->stop_deadline, sup->stop_grace_seconds * 1000 + POD_STOP_SETTLE_MS);
}

bool supervisor_container_is_ending(const struct pod_supervisor *sup, const char *name)
{
    const struct member *m = supervisor_find(sup, name);
    return !m || m->phase != PHASE_RUNNING || m->is_stopping;
}

int supervisor_container_stop(struct pod_supervisor *sup, const char *name, long long timeout_seconds,
                              struct pea_error *err)
{
    struct member *m = find_or_fail(sup, name, err);
    if (!m)
        return -1;
    m->start_after_stop = false;
    supervisor_stop_member(sup, m, timeout_seconds);
    return 0;
}

int supervisor_container_start(struct pod_supervisor *sup, const char *name, struct pea_error *err)
{
    struct member *m = find_or_fail(sup, name, err);
    if (!m || fail_if_stopping(sup, err) < 0)
        return -1;
    if (m->phase == PHASE_RUNNING)
        return pea_fail(err, 0, "container %s is already running", name);
    if (m->phase == PHASE_WAITING && m->is_init)
        return pea_fail(err, 0, "init container %s has not had its turn yet", name);
    m->backoff_ms = 0;
    sup->is_finished = false;
    if (m->has_exited)
        m->restarts++;
    supervisor_start_member(sup, m);
    return 0;
}

int supervisor_container_restart(struct pod_supervisor *sup, const char *name, struct pea_error *err)
{
    struct member *m = find_or_fail(sup, name, err);
    if (!m || fail_if_stopping(sup, err) < 0)
        return -1;
    sup->is_finished = false;
    m->start_after_stop = true;
    supervisor_stop_member(sup, m, sup->pod->manifest->termination_grace_seconds);
    return 0;
}

int supervisor_container_kill(struct pod_supervisor *sup, const char *name, int sig, struct pea_error *err)
{
    struct member *m = find_or_fail(sup, name, err);
    if (!m)
        return -1;
    if (m->phase != PHASE_RUNNING)
        return pea_fail(err, 0, "container %s is not running", name);
    return container_kill(sup->pod->oci_root, name, sig, false, err);
}

int supervisor_exec_check(const struct pod_supervisor *sup, const char *name, struct pea_error *err)
{
    struct member *m = find_or_fail(sup, name, err);
    if (!m || fail_if_stopping(sup, err) < 0)
        return -1;
    if (m->phase != PHASE_RUNNING && m->start_error[0])
        return pea_fail(err, 0, "container %s failed to start: %s", name, m->start_error);
    if (m->phase != PHASE_RUNNING)
        return pea_fail(err, 0, "container %s is not running", name);
    if (m->is_stopping)
        return pea_fail(err, 0, "container %s is being stopped", name);
    return 0;
}

int supervisor_exec(struct pod_supervisor *sup, const char *name, json_t *process, const int stdio[3], pid_t *pid,
                    int *pidfd, int *console_master, struct pea_error *err)
{
    if (supervisor_exec_check(sup, name, err) < 0)
        return -1;
    AUTO_FD int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return pea_fail(err, errno, "open /dev/null");
    struct pea_exec_options o = {.root = sup->pod->oci_root, .id = name, .process = process, .has_stdio_fds = true};
    for (int i = 0; i < 3; i++)
        o.stdio_fds[i] = stdio && stdio[i] >= 0 ? stdio[i] : null_fd;
    return container_exec_child(&o, pid, pidfd, console_master, err);
}

/* ---- attach ---- */

void supervisor_close_stdin(struct member *m)
{
    if (m->stdin_fd >= 0)
        close(m->stdin_fd);
    m->stdin_fd = -1;
}

int supervisor_attach(struct pod_supervisor *sup, const char *name, bool wants_stdin, bool *has_tty, int *input_fd,
                      struct pea_error *err)
{
    *input_fd = -1;
    if (supervisor_exec_check(sup, name, err) < 0)
        return -1;
    struct member *m = supervisor_find(sup, name);
    *has_tty = m->c->has_tty;
    if (!wants_stdin)
        return 0;
    if (!m->c->has_stdin)
        return pea_fail(err, 0, "container %s does not keep stdin open (set stdin: true to attach with -i)", name);
    if (m->is_stdin_closed || m->stdin_fd < 0)
        return pea_fail(err, 0, "container %s closed its stdin after its first attach session (stdinOnce)", name);
    if ((*input_fd = fcntl(m->stdin_fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return pea_fail(err, errno, "attach to %s: copy its stdin", name);
    return 0;
}

void supervisor_attach_ended(struct pod_supervisor *sup, const char *name, const char *instance)
{
    struct member *m = supervisor_find(sup, name);
    if (!m || !m->c->is_stdin_once || m->phase != PHASE_RUNNING || strcmp(m->started_at_text, instance) != 0)
        return;
    /* The kubelet's stdinOnce: the first session's end is the container's EOF (a pty's input just stops). */
    m->is_stdin_closed = true;
    supervisor_close_stdin(m);
}

/* ---- apply ---- */

static const struct pea_pod_container *find_container(const struct pea_pod_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_containers; i++)
        if (strcmp(m->containers[i].name, name) == 0)
            return &m->containers[i];
    return NULL;
}

/* The resources to write for a live change: the new limits, and "unlimited" for a limit that went away. */
static json_t *resources_update(const struct pea_pod_resources *old, const struct pea_pod_resources *new)
{
    json_t *res = pod_config_resources(new);
    if (old->has_memory_limit && !new->has_memory_limit)
        json_object_set_new(res, "memory", json_pack("{s:i}", "limit", -1));
    if (old->has_cpu_limit && !new->has_cpu_limit) {
        json_t *cpu = json_object_get(res, "cpu");
        if (!cpu)
            json_object_set_new(res, "cpu", cpu = json_object());
        json_object_set_new(cpu, "quota", json_integer(-1));
    }
    if (old->has_cpu_request && !new->has_cpu_request) {
        json_t *cpu = json_object_get(res, "cpu");
        if (!cpu)
            json_object_set_new(res, "cpu", cpu = json_object());
        json_object_set_new(cpu, "shares", json_integer(1024));
    }
    return res;
}

static int update_pod_limits(struct pod_supervisor *sup, const struct pea_pod_manifest *new, struct pea_error *err)
{
    AUTO_JSON json_t *old_limits = pod_config_limits(sup->pod->manifest);
    AUTO_JSON json_t *new_limits = pod_config_limits(new);
    if ((!old_limits && !new_limits) || (old_limits && new_limits && json_equal(old_limits, new_limits)))
        return 0;
    AUTO_JSON json_t *res = new_limits ? json_incref(new_limits)
                                       : json_pack("{s:{s:i}, s:{s:i}}", "memory", "limit", -1, "cpu", "quota", -1);
    if (cgroup_apply_resources(sup->pod->cgroup, res, err) < 0)
        return pea_wrap(err, "pod %s: update the pod cgroup", sup->pod->name);
    return 0;
}

int supervisor_apply(struct pod_supervisor *sup, struct pea_pod_manifest *manifest, json_t **summary,
                     struct pea_error *err)
{
    if (fail_if_stopping(sup, err) < 0)
        return -1;
    struct pea_pod_manifest *old = sup->pod->manifest;
    const char *sandbox_change = manifest_sandbox_change(old, manifest);
    if (sandbox_change)
        return pea_fail(err, 0, "%s: changing it needs a new sandbox (apply --recreate)", sandbox_change);
    if (manifest_check_immutable(old, manifest, err) < 0)
        return -1;
    AUTO_JSON json_t *recreated = json_array(), *updated = json_array(), *added = json_array(),
                     *removed = json_array(), *unchanged = json_array();
    /* The images of new and changed containers, resolved and held before anything changes; an unchanged one keeps
     * the image it runs. */
    AUTO_JSON json_t *images_before = pod_images_record(sup->pod);
    if (pod_images_attach(sup->pod, manifest, old, err) < 0)
        return -1;
    /* Live resource updates first (the pod cgroup before its children): if the cgroup refuses one, nothing else has
     * changed yet. */
    if (update_pod_limits(sup, manifest, err) < 0) {
        pod_images_restore(sup->pod, images_before);
        return -1;
    }
    for (size_t i = 0; i < manifest->n_containers; i++) {
        const struct pea_pod_container *c = &manifest->containers[i];
        const struct pea_pod_container *before = find_container(old, c->name);
        if (!before || !manifest_container_same_but_resources(before, c))
            continue;
        if (manifest_container_same_resources(before, c)) {
            json_array_append_new(unchanged, json_string(c->name));
            continue;
        }
        AUTO_JSON json_t *res = resources_update(&before->resources, &c->resources);
        if (container_update(sup->pod->oci_root, c->name, res, err) < 0) {
            pod_images_restore(sup->pod, images_before);
            return pea_wrap(err, "container %s: update resources", c->name);
        }
        json_array_append_new(updated, json_string(c->name));
    }

    /* From here on the new manifest is the pod's: members point into it. */
    sup->pod->manifest = manifest;
    struct pea_error save_err = {0};
    if (pod_save_manifest(sup->pod, &save_err) < 0)
        log_warn("%s", save_err.msg);
    /* ConfigMap, Secret and downward API files change under running containers, as the kubelet's do. */
    struct pea_error volume_err = {0};
    if (volume_update_written(sup->pod, old, &volume_err) < 0)
        supervisor_emit(sup, sup->pod->name, "volume update failed: %s", volume_err.msg);
    for (size_t i = 0; i < sup->n_members; i++) {
        struct member *m = sup->members[i];
        if (m->is_removed)
            continue;
        if (m->is_init) {
            m->c = &manifest->init_containers[i < manifest->n_init_containers ? i : 0];
            continue;
        }
        const struct pea_pod_container *c = find_container(manifest, m->c->name);
        if (!c) {
            json_array_append_new(removed, json_string(m->c->name));
            m->remove_after_stop = true;
            supervisor_stop_member(sup, m, manifest->termination_grace_seconds);
            continue;
        }
        bool is_recreated = !manifest_container_same_but_resources(m->c, c);
        m->c = c;
        if (is_recreated) {
            json_array_append_new(recreated, json_string(c->name));
            /* One that has not started yet just starts from the new spec when its turn comes. */
            if (m->phase != PHASE_WAITING) {
                m->start_after_stop = true;
                supervisor_stop_member(sup, m, manifest->termination_grace_seconds);
            }
        }
    }
    for (size_t i = 0; i < manifest->n_containers; i++) {
        const struct pea_pod_container *c = &manifest->containers[i];
        if (find_container(old, c->name))
            continue;
        struct member *m = supervisor_member_new(c, false);
        sup->members = xrealloc(sup->members, (sup->n_members + 1) * sizeof *sup->members);
        sup->members[sup->n_members++] = m;
        json_array_append_new(added, json_string(c->name));
        sup->is_finished = false;
        if (sup->apps_started && !sup->is_restarting_all)
            supervisor_start_member(sup, m);
    }
    manifest_free(old);
    if (pod_save(sup->pod, &save_err) < 0)
        log_warn("%s", save_err.msg);
    /* Images no container of the pod names any more go free (a replaced container may still be stopping). */
    pod_images_release_dropped(sup->pod, images_before);
    *summary = json_pack("{s:O, s:O, s:O, s:O, s:O}", "recreated", recreated, "updated", updated, "added", added,
                         "removed", removed, "unchanged", unchanged);
    return 0;
}
