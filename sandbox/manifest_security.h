/* The manifest parser's security parts (manifest_security.c), called from the pod spec and container parsers. */
#ifndef PEA_MANIFEST_SECURITY_H
#define PEA_MANIFEST_SECURITY_H

#include <jansson.h>
#include <stdbool.h>

#include "pea/error.h"
#include "pea/pod_manifest.h"

/* The fields a securityContext (at path) may hold beyond those of manifest_container.c, for the known-fields lists. */
#define MANIFEST_SECURITY_EXTRA_FIELDS "runAsNonRoot", "appArmorProfile"
#define MANIFEST_CONTAINER_SECURITY_EXTRA_FIELDS MANIFEST_SECURITY_EXTRA_FIELDS, "procMount"
#define MANIFEST_POD_SECURITY_EXTRA_FIELDS                                                                             \
    MANIFEST_SECURITY_EXTRA_FIELDS, "fsGroup", "fsGroupChangePolicy", "supplementalGroups",                         \
        "supplementalGroupsPolicy", "seccompProfile"

struct manifest_collector;

/* runAsNonRoot, appArmorProfile, and for a container procMount. */
int manifest_parse_security_extras(json_t *security, const char *path, bool is_container, struct pea_pod_security *s,
                                   struct pea_error *err);
/* seccompProfile of a securityContext (manifest_container.c). */
int manifest_parse_seccomp_profile(json_t *security, const char *path, struct pea_pod_security *s,
                                   struct pea_error *err);
/* spec.securityContext: runAsUser and runAsGroup, seccompProfile, appArmorProfile and runAsNonRoot (into *pod, the
 * containers' defaults), fsGroup, supplementalGroups and their policies (into m->groups), and sysctls. With a
 * collector (errors, may be NULL) each field's error is kept there and the parse goes on; without, the first ends
 * it. */
int manifest_parse_pod_security(json_t *spec, struct pea_pod_manifest *m, struct pea_pod_security *pod,
                                struct manifest_collector *errors, struct pea_error *err);
/* spec.hostUsers. */
int manifest_parse_host_users(json_t *spec, struct pea_pod_manifest *m, struct pea_error *err);
/* Once the whole pod is read (network included): the pod's defaults into containers that set none, and the checks
 * that need the whole pod (procMount, hostUsers, sysctls), each error kept by errors as above. */
int manifest_apply_pod_security(struct pea_pod_manifest *m, const struct pea_pod_security *pod,
                                struct manifest_collector *errors, struct pea_error *err);
void manifest_pod_security_free(struct pea_pod_manifest *m);
/* The strings of a pod-level struct pea_pod_security (the containers' defaults, copied into each). */
void manifest_security_defaults_free(struct pea_pod_security *s);
#define AUTO_POD_SECURITY __attribute__((cleanup(manifest_security_defaults_free)))

#endif
