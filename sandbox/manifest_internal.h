/* Strict typed getters shared by the parts of the manifest parser. A field is named by its parent's path and its
 * key; every failure reads "<parent>.<key>: <what is wrong>". JSON null counts as absent, as in Kubernetes. */
#ifndef PEA_MANIFEST_INTERNAL_H
#define PEA_MANIFEST_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pea/error.h"
#include "pea/pod_manifest.h"

/* Room for any path the parser builds itself: known keys and indices, never a user's key. */
#define FIELD_PATH_MAX 256

/* "parent.key" (or "key" at the top) into buf. */
void field_path(char *buf, size_t len, const char *parent, const char *key);
int field_fail(struct pea_error *err, const char *parent, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The keys manifest_cluster.c accepts with a notice, for the known lists of the pod spec and of a container. */
#define MANIFEST_CLUSTER_POD_FIELDS                                                                                  \
    "affinity", "nodeSelector", "tolerations", "topologySpreadConstraints", "schedulerName", "schedulingGates",    \
        "nodeName", "priorityClassName", "priority", "preemptionPolicy", "readinessGates", "enableServiceLinks",    \
        "automountServiceAccountToken", "imagePullSecrets", "overhead"
#define MANIFEST_CLUSTER_CONTAINER_FIELDS "terminationMessagePath", "terminationMessagePolicy", "resizePolicy"
struct manifest_collector;
/* Each such field present in spec (or a container at path) checked against its Kubernetes API type: one notice per
 * well-formed field appended to *notices, each error of a malformed one kept by the collector (errors, may be NULL:
 * then the first error ends the check, -1). */
int manifest_check_cluster_pod_fields(json_t *spec, char ***notices, struct manifest_collector *errors,
                                      struct pea_error *err);
int manifest_check_cluster_container_fields(json_t *container, const char *path, char ***notices,
                                            struct manifest_collector *errors, struct pea_error *err);
/* obj's resources (limits and requests of cpu and memory; a pod's also limits.pids), at path.resources; with a
 * collector (errors, may be NULL) each part's error is kept there, as manifest_parse_container's are. */
int manifest_parse_resources(json_t *obj, const char *path, bool is_pod, struct pea_pod_resources *r,
                             struct manifest_collector *errors, struct pea_error *err);

/* Every key of obj must be in known (NULL-terminated): "<path>.<key>: unknown field". */
int field_check_known(json_t *obj, const char *path, const char *const *known, struct pea_error *err);

/* out may be NULL: a field pea accepts but does not use, checked for its type only. */
int field_get_string(json_t *obj, const char *parent, const char *key, bool required, char **out,
                     struct pea_error *err);
int field_get_bool(json_t *obj, const char *parent, const char *key, bool *out, struct pea_error *err);
int field_get_int(json_t *obj, const char *parent, const char *key, long long min, long long max, bool *present,
                  long long *out, struct pea_error *err);
/* Object or array fields: *out is borrowed, NULL when absent (an error when required). */
int field_get_object(json_t *obj, const char *parent, const char *key, bool required, json_t **out,
                     struct pea_error *err);
int field_get_array(json_t *obj, const char *parent, const char *key, json_t **out, struct pea_error *err);
/* A list of strings, NULL-terminated; *out stays NULL when absent. */
int field_get_strv(json_t *obj, const char *parent, const char *key, char ***out, struct pea_error *err);
/* An object whose values are strings (labels, annotations): a new reference, an empty object when absent. */
int field_get_string_map(json_t *obj, const char *parent, const char *key, json_t **out, struct pea_error *err);
/* A Kubernetes quantity given as a string or a number. */
int field_get_quantity(json_t *obj, const char *parent, const char *key, bool is_cpu, bool *present, uint64_t *out,
                       struct pea_error *err);
/* A uid or gid: 0 .. 2^32-2 (-1 means "unchanged" to the kernel). */
int field_get_id(json_t *obj, const char *parent, const char *key, bool *present, uint32_t *out,
                 struct pea_error *err);
/* One of names (NULL-terminated), as its index; *out is left alone when absent. */
int field_get_enum(json_t *obj, const char *parent, const char *key, const char *const *names, int *out,
                   struct pea_error *err);

/* [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters. */
bool name_is_dns_label(const char *s);
/* DNS labels joined by dots, at most max characters. */
bool name_is_dns_subdomain(const char *s, size_t max);
/* Kubernetes' qualified name, as label and annotation keys are: [DNS subdomain of at most 253 "/"] then at most 63 of
 * ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]. */
bool name_is_qualified(const char *s);
/* A label value: empty, or at most 63 characters like a qualified name's last part. */
bool label_value_is_valid(const char *s);
/* No ".." component. */
bool path_is_confined(const char *s);
/* s without repeated or trailing slashes: two paths equal so are the same path. */
char *path_normalize(const char *s);

/* Canonical JSON (compact, keys sorted) of any value, to compare two manifests' parts without their trees. */
char *manifest_canonical_json(const json_t *value);

void manifest_container_free(struct pea_pod_container *c);
/* One container of spec.containers or spec.initContainers; volume_names holds the pod's volumes' names. With a
 * collector (errors, may be NULL) every field's error is kept there and the parse goes on; without, the first ends
 * it. */
int manifest_parse_container(json_t *obj, const char *path, bool is_init, json_t *volume_names,
                             struct pea_pod_container *c, struct manifest_collector *errors, struct pea_error *err);

/* livenessProbe, readinessProbe, startupProbe and lifecycle of one container (c->is_sidecar already read), each
 * field's error kept by errors (may be NULL: the first ends the parse);
 * manifest_check_lifecycle checks the hooks against the pod's grace period, once both are read. */
int manifest_parse_probes(json_t *obj, const char *path, bool is_init, struct pea_pod_container *c,
                          struct manifest_collector *errors, struct pea_error *err);
void manifest_probes_free(struct pea_pod_container *c);
int manifest_check_lifecycle(const struct pea_pod_manifest *m, struct pea_error *err);

/* A document of kind PersistentVolumeClaim beside the Pod (manifest_claim.c), checked; *name (malloc'd) is the
 * claim's, *has_storage whether it requests or limits storage (which pea does not enforce). where names the
 * document in errors ("document 2"). */
bool manifest_is_claim_kind(const char *kind);
int manifest_check_claim(json_t *doc, const char *where, bool *has_storage, char **name, struct pea_error *err);

/* pea.network, with spec.hostNetwork already read. */
int manifest_parse_network(json_t *root, bool is_host_network, struct pea_pod_manifest *m, struct pea_error *err);
/* spec.dnsPolicy and spec.dnsConfig; spec.hostAliases (manifest_dns.c). */
int manifest_parse_dns(json_t *spec, struct pea_pod_manifest *m, struct pea_error *err);
int manifest_parse_host_aliases(json_t *spec, struct pea_pod_manifest *m, struct pea_error *err);

#endif
