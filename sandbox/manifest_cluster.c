/* Fields that only a cluster gives meaning to (a scheduler, an API server, Services, controllers): accepted so that
 * manifests written for Kubernetes run, each with one notice saying it has no effect here, never dropped silently.
 * Accepted, not unread: each is checked against the shape its API type gives it (JSON types, known keys, the values
 * Kubernetes' validation allows), so that a manifest the API server would refuse is refused here too. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "pea/util.h"

/* ---- shapes: what the Kubernetes API types say each field holds ---- */

enum shape_kind {
    SHAPE_OBJECT,       /* fields */
    SHAPE_LIST,         /* of item */
    SHAPE_LABELS,       /* label keys to label values (nodeSelector, matchLabels) */
    SHAPE_RESOURCES,    /* resource names to quantities (a ResourceList) */
    SHAPE_STRING,       /* any string, or one of names */
    SHAPE_INTEGER,      /* min .. max */
    SHAPE_BOOLEAN,
};

struct shape_field;

struct shape {
    enum shape_kind kind;
    const struct shape_field *fields;
    const struct shape *item;
    const char *const *names; /* NULL-terminated */
    bool is_empty_allowed;    /* "" as well as names: Kubernetes defaults it */
    bool is_nonempty;         /* a list of at least one item */
    long long min, max;
    /* What validation checks across an object's fields, once each field has its shape. */
    int (*check)(json_t *obj, const char *path, struct pea_error *err);
};

struct shape_field {
    const char *key;
    const struct shape *shape;
    bool is_required;
};

static const struct shape string_shape = {.kind = SHAPE_STRING};
static const struct shape strings_shape = {.kind = SHAPE_LIST, .item = &string_shape};
static const struct shape boolean_shape = {.kind = SHAPE_BOOLEAN};
static const struct shape int32_shape = {.kind = SHAPE_INTEGER, .min = INT32_MIN, .max = INT32_MAX};
static const struct shape int64_shape = {.kind = SHAPE_INTEGER, .min = INT64_MIN, .max = INT64_MAX};
static const struct shape positive_int32_shape = {.kind = SHAPE_INTEGER, .min = 1, .max = INT32_MAX};
static const struct shape weight_shape = {.kind = SHAPE_INTEGER, .min = 1, .max = 100};
static const struct shape labels_shape = {.kind = SHAPE_LABELS};
static const struct shape resources_shape = {.kind = SHAPE_RESOURCES};

#define ENUM_SHAPE(name, ...)                                                                                         \
    static const char *const name##_names[] = {__VA_ARGS__, NULL};                                                  \
    static const struct shape name = {.kind = SHAPE_STRING, .names = name##_names}
#define ENUM_OR_EMPTY_SHAPE(name, ...)                                                                                \
    static const char *const name##_names[] = {__VA_ARGS__, NULL};                                                  \
    static const struct shape name = {.kind = SHAPE_STRING, .names = name##_names, .is_empty_allowed = true}

ENUM_SHAPE(node_operator_shape, "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt");
ENUM_SHAPE(label_operator_shape, "In", "NotIn", "Exists", "DoesNotExist");
ENUM_OR_EMPTY_SHAPE(toleration_operator_shape, "Exists", "Equal", "Gt", "Lt");
ENUM_OR_EMPTY_SHAPE(taint_effect_shape, "NoSchedule", "PreferNoSchedule", "NoExecute");
ENUM_SHAPE(unsatisfiable_shape, "DoNotSchedule", "ScheduleAnyway");
ENUM_SHAPE(inclusion_policy_shape, "Honor", "Ignore");
ENUM_SHAPE(preemption_shape, "PreemptLowerPriority", "Never");
ENUM_OR_EMPTY_SHAPE(message_policy_shape, "File", "FallbackToLogsOnError");
ENUM_SHAPE(resize_resource_shape, "cpu", "memory");
ENUM_SHAPE(resize_restart_shape, "NotRequired", "RestartContainer");

static int check_node_requirement(json_t *obj, const char *path, struct pea_error *err);
static int check_set_requirement(json_t *obj, const char *path, struct pea_error *err);
static int check_toleration(json_t *obj, const char *path, struct pea_error *err);

/* NodeSelectorRequirement */
static const struct shape node_requirement_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"key", &string_shape, true},
                                           {"operator", &node_operator_shape, true},
                                           {"values", &strings_shape, false},
                                           {NULL, NULL, false}},
    .check = check_node_requirement,
};
static const struct shape node_requirements_shape = {.kind = SHAPE_LIST, .item = &node_requirement_shape};
/* NodeSelectorTerm */
static const struct shape node_term_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"matchExpressions", &node_requirements_shape, false},
                                           {"matchFields", &node_requirements_shape, false},
                                           {NULL, NULL, false}},
};
static const struct shape node_terms_shape = {.kind = SHAPE_LIST, .item = &node_term_shape, .is_nonempty = true};
/* NodeSelector */
static const struct shape node_selector_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"nodeSelectorTerms", &node_terms_shape, true}, {NULL, NULL, false}},
};
/* PreferredSchedulingTerm */
static const struct shape preferred_node_term_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"weight", &weight_shape, true},
                                           {"preference", &node_term_shape, true},
                                           {NULL, NULL, false}},
};
static const struct shape preferred_node_terms_shape = {.kind = SHAPE_LIST, .item = &preferred_node_term_shape};
static const struct shape node_affinity_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"requiredDuringSchedulingIgnoredDuringExecution", &node_selector_shape,
                                            false},
                                           {"preferredDuringSchedulingIgnoredDuringExecution",
                                            &preferred_node_terms_shape, false},
                                           {NULL, NULL, false}},
};

/* LabelSelectorRequirement, LabelSelector */
static const struct shape label_requirement_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"key", &string_shape, true},
                                           {"operator", &label_operator_shape, true},
                                           {"values", &strings_shape, false},
                                           {NULL, NULL, false}},
    .check = check_set_requirement, /* In, NotIn, Exists, DoesNotExist only */
};
static const struct shape label_requirements_shape = {.kind = SHAPE_LIST, .item = &label_requirement_shape};
static const struct shape label_selector_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"matchLabels", &labels_shape, false},
                                           {"matchExpressions", &label_requirements_shape, false},
                                           {NULL, NULL, false}},
};
/* PodAffinityTerm, WeightedPodAffinityTerm, PodAffinity (PodAntiAffinity has the same fields) */
static const struct shape pod_term_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"labelSelector", &label_selector_shape, false},
                                           {"namespaceSelector", &label_selector_shape, false},
                                           {"namespaces", &strings_shape, false},
                                           {"topologyKey", &string_shape, true},
                                           {"matchLabelKeys", &strings_shape, false},
                                           {"mismatchLabelKeys", &strings_shape, false},
                                           {NULL, NULL, false}},
};
static const struct shape pod_terms_shape = {.kind = SHAPE_LIST, .item = &pod_term_shape};
static const struct shape weighted_pod_term_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"weight", &weight_shape, true},
                                           {"podAffinityTerm", &pod_term_shape, true},
                                           {NULL, NULL, false}},
};
static const struct shape weighted_pod_terms_shape = {.kind = SHAPE_LIST, .item = &weighted_pod_term_shape};
static const struct shape pod_affinity_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"requiredDuringSchedulingIgnoredDuringExecution", &pod_terms_shape, false},
                                           {"preferredDuringSchedulingIgnoredDuringExecution",
                                            &weighted_pod_terms_shape, false},
                                           {NULL, NULL, false}},
};
/* Affinity */
static const struct shape affinity_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"nodeAffinity", &node_affinity_shape, false},
                                           {"podAffinity", &pod_affinity_shape, false},
                                           {"podAntiAffinity", &pod_affinity_shape, false},
                                           {NULL, NULL, false}},
};

/* Toleration */
static const struct shape toleration_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"key", &string_shape, false},
                                           {"operator", &toleration_operator_shape, false},
                                           {"value", &string_shape, false},
                                           {"effect", &taint_effect_shape, false},
                                           {"tolerationSeconds", &int64_shape, false},
                                           {NULL, NULL, false}},
    .check = check_toleration,
};
static const struct shape tolerations_shape = {.kind = SHAPE_LIST, .item = &toleration_shape};

/* TopologySpreadConstraint */
static const struct shape spread_shape = {
    .kind = SHAPE_OBJECT,
    .fields = (const struct shape_field[]){{"maxSkew", &positive_int32_shape, true},
                                           {"topologyKey", &string_shape, true},
                                           {"whenUnsatisfiable", &unsatisfiable_shape, true},
                                           {"labelSelector", &label_selector_shape, false},
                                           {"minDomains", &positive_int32_shape, false},
                                           {"nodeAffinityPolicy", &inclusion_policy_shape, false},
                                           {"nodeTaintsPolicy", &inclusion_policy_shape, false},
                                           {"matchLabelKeys", &strings_shape, false},
                                           {NULL, NULL, false}},
};
static const struct shape spreads_shape = {.kind = SHAPE_LIST, .item = &spread_shape};

/* PodSchedulingGate, PodReadinessGate, LocalObjectReference, ContainerResizePolicy */
static const struct shape gates_shape = {
    .kind = SHAPE_LIST,
    .item = &(const struct shape){.kind = SHAPE_OBJECT,
                                  .fields = (const struct shape_field[]){{"name", &string_shape, true},
                                                                         {NULL, NULL, false}}},
};
static const struct shape readiness_gates_shape = {
    .kind = SHAPE_LIST,
    .item = &(const struct shape){.kind = SHAPE_OBJECT,
                                  .fields = (const struct shape_field[]){{"conditionType", &string_shape, true},
                                                                         {NULL, NULL, false}}},
};
static const struct shape references_shape = {
    .kind = SHAPE_LIST,
    .item = &(const struct shape){.kind = SHAPE_OBJECT,
                                  .fields = (const struct shape_field[]){{"name", &string_shape, false},
                                                                         {NULL, NULL, false}}},
};
static const struct shape resize_policies_shape = {
    .kind = SHAPE_LIST,
    .item = &(const struct shape){.kind = SHAPE_OBJECT,
                                  .fields = (const struct shape_field[]){{"resourceName", &resize_resource_shape, true},
                                                                         {"restartPolicy", &resize_restart_shape, true},
                                                                         {NULL, NULL, false}}},
};

/* ---- checks across an object's fields, as Kubernetes' validation makes them ---- */

/* JSON null counts as absent, as in Kubernetes. */
static bool is_absent(json_t *value) { return !value || json_is_null(value); }

static size_t values_count(json_t *obj)
{
    return json_array_size(json_object_get(obj, "values"));
}

static bool operator_is(json_t *obj, const char *name)
{
    const char *op = json_string_value(json_object_get(obj, "operator"));
    return op && strcmp(op, name) == 0;
}

static int check_set_requirement(json_t *obj, const char *path, struct pea_error *err)
{
    if ((operator_is(obj, "In") || operator_is(obj, "NotIn")) && values_count(obj) == 0)
        return field_fail(err, path, "values", "must hold at least one value when operator is In or NotIn");
    if ((operator_is(obj, "Exists") || operator_is(obj, "DoesNotExist")) && values_count(obj) != 0)
        return field_fail(err, path, "values", "must be empty when operator is Exists or DoesNotExist");
    return 0;
}

/* As Go's ParseInt reads a 64-bit integer: an optional sign, then digits only. */
static bool is_integer_text(const char *text)
{
    if (!text || !text[0] || !strchr("+-0123456789", text[0]))
        return false;
    char *end;
    errno = 0;
    (void)strtoll(text, &end, 10);
    return errno == 0 && end != text && isdigit((unsigned char)end[-1]) && *end == '\0';
}

/* Gt and Lt compare a node label with one integer. */
static int check_node_requirement(json_t *obj, const char *path, struct pea_error *err)
{
    if (!operator_is(obj, "Gt") && !operator_is(obj, "Lt"))
        return check_set_requirement(obj, path, err);
    json_t *values = json_object_get(obj, "values");
    if (values_count(obj) != 1 || !is_integer_text(json_string_value(json_array_get(values, 0))))
        return field_fail(err, path, "values", "must hold one integer when operator is Gt or Lt");
    return 0;
}

/* An empty key matches every taint, so only with Exists; Exists matches any value, so names none; Gt and Lt compare
 * with an integer; only a NoExecute taint evicts, after tolerationSeconds. */
static int check_toleration(json_t *obj, const char *path, struct pea_error *err)
{
    const char *key = json_string_value(json_object_get(obj, "key"));
    const char *value = json_string_value(json_object_get(obj, "value"));
    if ((!key || !key[0]) && !operator_is(obj, "Exists"))
        return field_fail(err, path, "operator", "must be Exists when key is empty");
    if (operator_is(obj, "Exists") && value && value[0])
        return field_fail(err, path, "value", "must be empty when operator is Exists");
    if ((operator_is(obj, "Gt") || operator_is(obj, "Lt")) && !is_integer_text(value))
        return field_fail(err, path, "value", "must be an integer when operator is Gt or Lt");
    const char *effect = json_string_value(json_object_get(obj, "effect"));
    if (!is_absent(json_object_get(obj, "tolerationSeconds")) && (!effect || strcmp(effect, "NoExecute") != 0))
        return field_fail(err, path, "effect", "must be NoExecute when tolerationSeconds is set");
    return 0;
}

/* ---- the walk ---- */

/* Every error is kept by the collector (when there is one) and the walk goes on: 0. Without one: -1 at the first. */
static int keep(int r, struct manifest_collector *errors, struct pea_error *err)
{
    return r < 0 ? manifest_collect(errors, err) : 0;
}

static int check_value(json_t *value, const char *path, const struct shape *shape, struct manifest_collector *errors,
                       struct pea_error *err);

static int check_object(json_t *obj, const char *path, const struct shape *shape, struct manifest_collector *errors,
                        struct pea_error *err)
{
    if (!json_is_object(obj))
        return keep(pea_fail(err, 0, "%s: must be an object", path), errors, err);
    size_t errors_before = errors ? errors->n : 0;
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        const struct shape_field *f = shape->fields;
        while (f->key && strcmp(f->key, key) != 0)
            f++;
        if (!f->key) {
            if (keep(field_fail(err, path, key, "unknown field"), errors, err) < 0)
                return -1;
            continue;
        }
        if (json_is_null(value))
            continue;
        char field[FIELD_PATH_MAX];
        field_path(field, sizeof field, path, key);
        if (check_value(value, field, f->shape, errors, err) < 0)
            return -1;
    }
    for (const struct shape_field *f = shape->fields; f->key; f++)
        if (f->is_required && is_absent(json_object_get(obj, f->key)) &&
            keep(field_fail(err, path, f->key, "missing"), errors, err) < 0)
            return -1;
    /* The checks across fields read them as their shapes say: only when each had its shape. */
    if (shape->check && (!errors || errors->n == errors_before))
        return keep(shape->check(obj, path, err), errors, err);
    return 0;
}

static int check_map(json_t *map, const char *path, bool is_resources, struct manifest_collector *errors,
                     struct pea_error *err)
{
    if (!json_is_object(map))
        return keep(pea_fail(err, 0, "%s: must be an object", path), errors, err);
    const char *key;
    json_t *value;
    json_object_foreach(map, key, value) {
        int r;
        if (!name_is_qualified(key)) {
            r = field_fail(err, path, key, "key must be [DNS subdomain of at most 253/]name of at most 63 of "
                                           "[A-Za-z0-9._-], beginning and ending alphanumeric");
        } else if (is_resources) {
            bool present;
            uint64_t quantity;
            r = field_get_quantity(map, path, key, strcmp(key, "cpu") == 0, &present, &quantity, err);
        } else if (!json_is_string(value) || strlen(json_string_value(value)) != json_string_length(value)) {
            r = field_fail(err, path, key, "must be a string");
        } else if (!label_value_is_valid(json_string_value(value))) {
            r = field_fail(err, path, key,
                           "value must be empty or at most 63 of [A-Za-z0-9._-], beginning and ending alphanumeric");
        } else {
            r = 0;
        }
        if (keep(r, errors, err) < 0)
            return -1;
    }
    return 0;
}

static int check_string(json_t *value, const char *path, const struct shape *shape, struct pea_error *err)
{
    if (!json_is_string(value))
        return pea_fail(err, 0, "%s: must be a string", path);
    const char *s = json_string_value(value);
    if (strlen(s) != json_string_length(value))
        return pea_fail(err, 0, "%s: must not contain NUL", path);
    if (!shape->names || (shape->is_empty_allowed && !s[0]))
        return 0;
    char allowed[256] = "";
    for (size_t i = 0; shape->names[i]; i++) {
        if (strcmp(shape->names[i], s) == 0)
            return 0;
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s\"%s\"", i ? ", " : "",
                 shape->names[i]);
    }
    return pea_fail(err, 0, "%s: must be one of %s, not \"%.128s\"", path, allowed, s);
}

static int check_value(json_t *value, const char *path, const struct shape *shape, struct manifest_collector *errors,
                       struct pea_error *err)
{
    switch (shape->kind) {
    case SHAPE_OBJECT:
        return check_object(value, path, shape, errors, err);
    case SHAPE_LIST:
        if (!json_is_array(value))
            return keep(pea_fail(err, 0, "%s: must be a list", path), errors, err);
        if (shape->is_nonempty && json_array_size(value) == 0)
            return keep(pea_fail(err, 0, "%s: must hold at least one element", path), errors, err);
        for (size_t i = 0; i < json_array_size(value); i++) {
            char item[FIELD_PATH_MAX];
            snprintf(item, sizeof item, "%s[%zu]", path, i);
            if (check_value(json_array_get(value, i), item, shape->item, errors, err) < 0)
                return -1;
        }
        return 0;
    case SHAPE_LABELS:
    case SHAPE_RESOURCES:
        return check_map(value, path, shape->kind == SHAPE_RESOURCES, errors, err);
    case SHAPE_STRING:
        return keep(check_string(value, path, shape, err), errors, err);
    case SHAPE_INTEGER:
        if (!json_is_integer(value))
            return keep(pea_fail(err, 0, "%s: must be an integer", path), errors, err);
        if (json_integer_value(value) < shape->min || json_integer_value(value) > shape->max)
            return keep(pea_fail(err, 0, "%s: must be between %lld and %lld", path, shape->min, shape->max), errors,
                        err);
        return 0;
    case SHAPE_BOOLEAN:
        return json_is_boolean(value) ? 0 : keep(pea_fail(err, 0, "%s: must be a boolean", path), errors, err);
    }
    return 0;
}

/* ---- the fields, their shapes and their notices ---- */

struct cluster_field {
    const char *key, *why;
    const struct shape *shape;
};

static const struct cluster_field pod_fields[] = {
    {"affinity", "a scheduler's field", &affinity_shape},
    {"nodeSelector", "a scheduler's field", &labels_shape},
    {"tolerations", "a scheduler's field", &tolerations_shape},
    {"topologySpreadConstraints", "a scheduler's field", &spreads_shape},
    {"schedulerName", "a scheduler's field", &string_shape},
    {"schedulingGates", "a scheduler's field", &gates_shape},
    {"nodeName", "a scheduler's field", &string_shape},
    {"priorityClassName", "a scheduler's field", &string_shape},
    {"priority", "a scheduler's field", &int32_shape},
    {"preemptionPolicy", "a scheduler's field", &preemption_shape},
    {"readinessGates", "conditions that cluster controllers set", &readiness_gates_shape},
    {"enableServiceLinks", "there are no Services on one node", &boolean_shape},
    {"automountServiceAccountToken", "there is no API server to issue a token", &boolean_shape},
    {"imagePullSecrets", "pea image pull reads the credentials of the auth files", &references_shape},
    {"overhead", "set by RuntimeClass admission", &resources_shape},
    {NULL, NULL, NULL},
};

static const struct cluster_field container_fields[] = {
    {"terminationMessagePath", "pea keeps no termination message", &string_shape},
    {"terminationMessagePolicy", "pea keeps no termination message", &message_policy_shape},
    {"resizePolicy", "pea applies a resources change in place without a restart", &resize_policies_shape},
    {NULL, NULL, NULL},
};

/* A well-formed field gets its notice; a malformed one its errors instead. */
static int check_and_note(json_t *obj, const char *path, const struct cluster_field *fields, char ***notices,
                          struct manifest_collector *errors, struct pea_error *err)
{
    for (const struct cluster_field *f = fields; f->key; f++) {
        json_t *value = json_object_get(obj, f->key);
        if (is_absent(value))
            continue;
        char field[FIELD_PATH_MAX];
        field_path(field, sizeof field, path, f->key);
        size_t errors_before = errors ? errors->n : 0;
        if (check_value(value, field, f->shape, errors, err) < 0)
            return -1;
        if (errors && errors->n != errors_before)
            continue;
        char line[FIELD_PATH_MAX + 128];
        snprintf(line, sizeof line, "%s: accepted, without effect on a single node (%s)", field, f->why);
        strv_append(notices, line);
    }
    return 0;
}

int manifest_check_cluster_pod_fields(json_t *spec, char ***notices, struct manifest_collector *errors,
                                      struct pea_error *err)
{
    return check_and_note(spec, "spec", pod_fields, notices, errors, err);
}

int manifest_check_cluster_container_fields(json_t *container, const char *path, char ***notices,
                                            struct manifest_collector *errors, struct pea_error *err)
{
    return check_and_note(container, path, container_fields, notices, errors, err);
}
