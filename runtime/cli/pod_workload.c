/* pea pod apply of a whole file: every error first, then each object in document order. A Pod is applied as
 * before; a Deployment, ReplicaSet, StatefulSet or DaemonSet keeps `replicas` pods NAME-0 ... under
 * pea-shim, each applied as a Pod (so a changed template changes them in place), and removes the pods above that
 * count from the highest number down, as a StatefulSet scales down; a Job goes to its controller (pod_job.c).
 * Each pod carries its owner in the run.pea.owner annotation: `pea pod rm deployment/web` finds them by it, and a
 * pod is never taken over by another owner. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pod_client.h"
#include "pod_job.h"
#include "pea/log.h"
#include "pea/pod_workload.h"
#include "pea/util.h"

/* "deployment.apps", as kubectl names a kind in its output. */
const char *pod_workload_resource(enum pea_workload_kind kind)
{
    static const char *const names[] = {"pod", "deployment.apps", "replicaset.apps", "statefulset.apps",
                                        "daemonset.apps", "job.batch"};
    return names[kind];
}

static const char *owner_of(const struct pea_pod *pod)
{
    return json_string_value(json_object_get(pod->manifest->annotations, PEA_OWNER_ANNOTATION));
}

/* The number after a pod name's last '-' (-1 when none), to order a controller's pods. */
static long long pod_index(const char *name)
{
    const char *dash = strrchr(name, '-');
    long long n;
    return dash && parse_int64(dash + 1, &n) == 0 ? n : -1;
}

static int compare_by_index(const void *a, const void *b)
{
    long long x = pod_index(*(char *const *)a), y = pod_index(*(char *const *)b);
    return x < y ? -1 : x > y;
}

char **pod_owned_by(const struct cli_globals *g, const char *owner)
{
    struct pea_error err = {0};
    AUTO_STRV char **names = pod_list_names(g->root, &err);
    char **owned = xcalloc(1, sizeof *owned);
    for (size_t i = 0; names && names[i]; i++) {
        AUTO_POD struct pea_pod *pod = NULL;
        if (pod_open(g->root, names[i], &pod, &err) == 0 && owner_of(pod) && strcmp(owner_of(pod), owner) == 0)
            strv_append(&owned, names[i]);
    }
    qsort(owned, strv_len(owned), sizeof *owned, compare_by_index);
    return owned;
}

int pod_check_owner(const struct cli_globals *g, const char *name, const char *owner, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", g->root, name);
    AUTO_POD struct pea_pod *pod = NULL;
    if (access(dir, F_OK) != 0 || pod_open(g->root, name, &pod, err) < 0)
        return access(dir, F_OK) != 0 ? 0 : -1;
    const char *had = owner_of(pod);
    if ((had || owner) && (!had || !owner || strcmp(had, owner) != 0))
        return pea_fail(err, 0, "pod %s belongs to %s, not to %s: remove it first", name, had ? had : "no controller",
                        owner ? owner : "a Pod of that name");
    return 0;
}

/* A Deployment, ReplicaSet, StatefulSet or DaemonSet: its pods NAME-first ... made or changed, the rest removed. */
static int apply_controller(const struct cli_globals *g, const struct pea_manifest_objects *objects,
                            const struct pea_workload *w, const struct pod_apply_options *o)
{
    AUTO_FREE char *owner = xasprintf("%s/%s", manifest_workload_kind_name(w->kind), w->name);
    AUTO_STRV char **had = pod_owned_by(g, owner);
    int status = 0;
    for (long long i = w->first_index; i < w->first_index + w->replicas; i++) {
        struct pea_error err = {0};
        struct pea_pod_manifest *m = manifest_workload_pod(objects, w, i, &err);
        if (!m || pod_check_owner(g, m->name, owner, &err) < 0) {
            manifest_free(m);
            status = cli_fail(&err);
            continue;
        }
        status |= pod_apply_manifest(g, m, o);
    }
    /* Scaled down: the highest numbers go first. */
    for (size_t i = strv_len(had); i-- > 0;) {
        long long index = pod_index(had[i]);
        if (index >= w->first_index && index < w->first_index + w->replicas)
            continue;
        struct pea_error err = {0};
        if (o->is_dry_run)
            printf("pod/%s deleted (dry run)\n", had[i]);
        else if (pod_rm_one(g, had[i], false, -1, &err) < 0)
            status = cli_fail(&err);
        else if (!o->is_name_only)
            printf("pod %s removed\n", had[i]);
    }
    if (o->is_name_only)
        printf("%s/%s\n", pod_workload_resource(w->kind), w->name);
    else
        printf("%s/%s %s: %lld pod%s\n", pod_workload_resource(w->kind), w->name,
               o->is_dry_run ? "checked (dry run)" : "applied", w->replicas, w->replicas == 1 ? "" : "s");
    return status;
}

static int apply_pod(const struct cli_globals *g, const struct pea_manifest_objects *objects,
                     const struct pea_workload *w, const struct pod_apply_options *o)
{
    struct pea_error err = {0};
    struct pea_pod_manifest *m = manifest_workload_pod(objects, w, 0, &err);
    if (!m || pod_check_owner(g, m->name, NULL, &err) < 0) {
        manifest_free(m);
        return cli_fail(&err);
    }
    return pod_apply_manifest(g, m, o);
}

int pod_apply_file(const struct cli_globals *g, const char *file, char *const *configmap_files,
                   char *const *secret_files, const struct pod_apply_options *o)
{
    struct pea_error err = {0};
    struct pea_manifest_errors errors = {0};
    AUTO_MANIFEST_OBJECTS struct pea_manifest_objects *objects =
        manifest_load_objects(file, configmap_files, secret_files, &errors, &err);
    if (!objects) {
        const char *name = strcmp(file, "-") == 0 ? "stdin" : file;
        for (size_t i = 0; i < errors.n; i++)
            log_error("%s: %s", name, errors.lines[i]);
        int status = errors.n ? 1 : cli_fail(&err);
        manifest_errors_free(&errors);
        return status;
    }
    for (char **n = objects->notices; *n; n++)
        log_warn("%s", *n);
    int status = 0;
    for (size_t i = 0; i < objects->n; i++) {
        const struct pea_workload *w = &objects->items[i];
        status |= w->kind == PEA_WORKLOAD_POD   ? apply_pod(g, objects, w, o)
                  : w->kind == PEA_WORKLOAD_JOB ? pod_job_apply(g, objects, w, o)
                                                : apply_controller(g, objects, w, o);
    }
    return status;
}

int pod_rm_owner(const struct cli_globals *g, int kind, const char *name, bool force, long long grace_seconds,
                 struct pea_error *err)
{
    AUTO_FREE char *owner = xasprintf("%s/%s", manifest_workload_kind_name((enum pea_workload_kind)kind), name);
    /* A Job's controller first, so that it makes no pod while they go. */
    bool had_job = false;
    if (kind == PEA_WORKLOAD_JOB && pod_job_remove(g, name, &had_job, err) < 0)
        return -1;
    AUTO_STRV char **pods = pod_owned_by(g, owner);
    if (!pods[0] && !had_job)
        return pea_fail(err, 0, "%s \"%s\" does not exist (no pod belongs to it)",
                        pod_workload_resource((enum pea_workload_kind)kind), name);
    size_t n_failed = 0;
    for (size_t i = strv_len(pods); i-- > 0;) {
        struct pea_error one = {0};
        if (pod_rm_one(g, pods[i], force, grace_seconds, &one) < 0) {
            cli_fail(&one);
            n_failed++;
        }
    }
    if (n_failed)
        return pea_fail(err, 0, "%s: %zu of its %zu pods could not be removed", owner, n_failed, strv_len(pods));
    return 0;
}
