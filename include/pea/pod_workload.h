/* A manifest file as `pea pod apply` takes it: any number of Pods, the controllers that run a pod template on a
 * cluster (Deployment, ReplicaSet, StatefulSet, DaemonSet: apps/v1; Job: batch/v1), kind: List, and ConfigMaps and
 * Secrets, checked together so that every error of the file is reported at once, in document order. Each object
 * becomes Pod manifests (pod_manifest.h) named as Kubernetes would name them on one node: NAME-0, NAME-1, ... */
#ifndef PEA_POD_WORKLOAD_H
#define PEA_POD_WORKLOAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "pea/error.h"
#include "pea/pod_manifest.h"

/* Errors of a file, each "path: what is wrong" (with "document N: " before it in a file of several), in document
 * order. */
struct pea_manifest_errors {
    char **lines; /* NULL-terminated; NULL when there are none */
    size_t n;
};
void manifest_errors_free(struct pea_manifest_errors *e);

enum pea_workload_kind {
    PEA_WORKLOAD_POD,
    PEA_WORKLOAD_DEPLOYMENT,
    PEA_WORKLOAD_REPLICA_SET,
    PEA_WORKLOAD_STATEFUL_SET,
    PEA_WORKLOAD_DAEMON_SET,
    PEA_WORKLOAD_JOB,
};

/* The annotation naming a pod's owner, "Kind/name" ("Deployment/web"), as ownerReferences would. */
#define PEA_OWNER_ANNOTATION "run.pea.owner"

struct pea_workload {
    enum pea_workload_kind kind;
    char *name;
    long long replicas;                /* pods that run at once: spec.replicas [1]; 1 for a Pod or a DaemonSet; a
                                          Job's parallelism [1] */
    long long completions;             /* Job: successful pods wanted [1] */
    long long backoff_limit;           /* Job: failures (failed pods and container restarts) allowed [6] */
    long long active_deadline_seconds; /* Job: -1 when absent */
    long long first_index;             /* the first pod's number: StatefulSet's spec.ordinals.start [0] */
    json_t *pod;                       /* the Pod made from the template, metadata.name not set */
    char *spec_json;                   /* canonical JSON of the object's spec: a Job's may not change */
};

struct pea_manifest_objects {
    struct pea_workload *items; /* in document order */
    size_t n;
    /* What every pod's manifest carries before its Pod: the ConfigMaps and Secrets of --configmap/--secret files
     * and, for a file of several objects, those of the file, one JSON line each. */
    char *configs;
    size_t configs_len;
    /* The file is one Pod (with its ConfigMaps and Secrets): its text is applied as written. */
    bool is_single_pod;
    char *text;
    size_t text_len;
    char **notices; /* fields accepted that mean nothing on one node, one line each, NULL-terminated */
};

/* Read and check every object of path ("-": stdin), with the ConfigMaps of configmap_files and the Secrets of
 * secret_files (NULL-terminated lists, may be NULL). A failure to read is err; errors of the manifest go to
 * *errors, every one (err then says how many). */
struct pea_manifest_objects *manifest_load_objects(const char *path, char *const *configmap_files,
                                                   char *const *secret_files, struct pea_manifest_errors *errors,
                                                   struct pea_error *err);
/* The same from text (named "manifest" in the messages). */
struct pea_manifest_objects *manifest_parse_objects(const char *text, size_t len, struct pea_manifest_errors *errors,
                                                    struct pea_error *err);
/* Pod number index (from 0) of w, as a manifest of its own: named NAME-index (NAME for a Pod), labelled as
 * Kubernetes' controllers label theirs, with PEA_OWNER_ANNOTATION. */
struct pea_pod_manifest *manifest_workload_pod(const struct pea_manifest_objects *o, const struct pea_workload *w,
                                               long long index, struct pea_error *err);
/* "Deployment", ...; and the kind from kubectl's TYPE ("deployment", "deployments", "deploy", "job", ...), -1
 * when it is none of them. */
const char *manifest_workload_kind_name(enum pea_workload_kind kind);
int manifest_workload_kind_from_type(const char *type);
void manifest_objects_free(struct pea_manifest_objects *o);
static inline void manifest_objects_free_p(struct pea_manifest_objects **o) { manifest_objects_free(*o); }
#define AUTO_MANIFEST_OBJECTS __attribute__((cleanup(manifest_objects_free_p)))

#endif
