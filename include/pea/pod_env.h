/* Where a container's values come from when it is made: its environment as the kubelet builds it (envFrom, then
 * env with $(VAR) expansion, valueFrom of pod fields, resources, ConfigMap and Secret keys), and the downward API's
 * values, shared with the downwardAPI volumes. */
#ifndef PEA_POD_ENV_H
#define PEA_POD_ENV_H

#include <jansson.h>

#include "pea/error.h"
#include "pea/pod.h"

/* Kubernetes' $(VAR) expansion of input against vars (an object of strings): "$$" gives "$", "$(NAME)" NAME's
 * value when vars has it and is left as written when not; everything else stays as written. */
char *pod_env_expand(const char *input, const json_t *vars);

/* A volumeMount's subPathExpr expanded as the kubelet does (ExpandContainerVolumeMounts): every $(VAR) must have
 * a value in vars that is not empty, and the result must be a relative path without ".." components. *out is
 * malloc'd; the caller still opens it below the volume, never by joining paths. */
int pod_env_expand_sub_path(const char *expr, const json_t *vars, char **out, struct pea_error *err);

/* process.env for the container (a JSON array of "NAME=VALUE": PATH and HOSTNAME defaults unless the container
 * sets them, then envFrom and env), and in *vars the container's own variables (name → value) that command and args
 * expand from. */
int pod_env_build(const struct pea_pod *pod, const struct pea_pod_container *c, const char *default_path,
                  const char *hostname, json_t **env, json_t **vars, struct pea_error *err);

/* A fieldRef's value (fieldPath as the parser allows it); metadata.labels and metadata.annotations whole are
 * key="value" lines, as in a downwardAPI volume file. */
char *pod_field_value(const struct pea_pod *pod, const struct pea_pod_manifest *m, const char *field_path);
/* A resourceFieldRef's value for container c (or the one it names): the limit (the node's allocatable when not set)
 * or the request, divided by the divisor and rounded up. */
int pod_resource_value(const struct pea_pod *pod, const struct pea_pod_manifest *m,
                       const struct pea_pod_container *c, const struct pea_value_ref *r, char **out,
                       struct pea_error *err);

#endif
