/* Fields that only a cluster gives meaning to (a scheduler, an API server, Services, controllers): accepted so that
 * manifests written for Kubernetes run, each with one notice saying it has no effect here, never dropped silently. */
#include <stdio.h>

#include "manifest_internal.h"
#include "pea/util.h"

struct cluster_field {
    const char *key, *why;
};

static const struct cluster_field pod_fields[] = {
    {"affinity", "a scheduler's field"},
    {"nodeSelector", "a scheduler's field"},
    {"tolerations", "a scheduler's field"},
    {"topologySpreadConstraints", "a scheduler's field"},
    {"schedulerName", "a scheduler's field"},
    {"schedulingGates", "a scheduler's field"},
    {"nodeName", "a scheduler's field"},
    {"priorityClassName", "a scheduler's field"},
    {"priority", "a scheduler's field"},
    {"preemptionPolicy", "a scheduler's field"},
    {"readinessGates", "conditions that cluster controllers set"},
    {"enableServiceLinks", "there are no Services on one node"},
    {"automountServiceAccountToken", "there is no API server to issue a token"},
    {"imagePullSecrets", "pea image pull reads the credentials of the auth files"},
    {"overhead", "set by RuntimeClass admission"},
    {NULL, NULL},
};

static const struct cluster_field container_fields[] = {
    {"terminationMessagePath", "pea keeps no termination message"},
    {"terminationMessagePolicy", "pea keeps no termination message"},
    {"resizePolicy", "pea applies a resources change in place without a restart"},
    {NULL, NULL},
};

static void note(json_t *obj, const char *path, const struct cluster_field *fields, char ***notices)
{
    for (const struct cluster_field *f = fields; f->key; f++) {
        json_t *value = json_object_get(obj, f->key);
        if (!value || json_is_null(value))
            continue;
        char line[FIELD_PATH_MAX + 128];
        snprintf(line, sizeof line, "%s.%s: accepted, without effect on a single node (%s)", path, f->key, f->why);
        strv_append(notices, line);
    }
}

void manifest_note_cluster_pod_fields(json_t *spec, char ***notices) { note(spec, "spec", pod_fields, notices); }

void manifest_note_cluster_container_fields(json_t *container, const char *path, char ***notices)
{
    note(container, path, container_fields, notices);
}
