/* The objects of a manifest file for `pea pod apply`: Pods, the controllers that run a pod template (Deployment,
 * ReplicaSet, StatefulSet, DaemonSet, Job), kind: List, ConfigMaps and Secrets. Every object is checked, and every
 * error kept (manifest_errors.c), before anything runs. A controller's template becomes a Pod document checked by
 * the Pod parser itself, its errors' paths put under spec.template. What a controller does across a cluster
 * (rollout strategies, revision history, its service's DNS) means nothing on one node: such fields are accepted
 * with one notice each. */
#include <stdio.h>
#include <string.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "manifest_sources.h"
#include "pea/pod_workload.h"
#include "pea/util.h"

struct kind_info {
    const char *kind, *api_version;
    const char *types[4];               /* kubectl's names for it */
    const char *const *fields;          /* of its spec */
    const char *const *without_effect;  /* accepted with a notice */
    const char *const *unsupported;     /* an error unless absent (or as Kubernetes' default, see below) */
};

static const char *const deployment_fields[] = {"replicas", "selector", "template", "strategy", "minReadySeconds",
                                                "revisionHistoryLimit", "progressDeadlineSeconds", "paused", NULL};
static const char *const deployment_without_effect[] = {"strategy", "minReadySeconds", "revisionHistoryLimit",
                                                        "progressDeadlineSeconds", "paused", NULL};
static const char *const replica_set_fields[] = {"replicas", "selector", "template", "minReadySeconds", NULL};
static const char *const replica_set_without_effect[] = {"minReadySeconds", NULL};
static const char *const stateful_set_fields[] = {
    "replicas", "selector", "template", "serviceName", "podManagementPolicy", "updateStrategy",
    "revisionHistoryLimit", "minReadySeconds", "persistentVolumeClaimRetentionPolicy", "ordinals",
    "volumeClaimTemplates", NULL};
static const char *const stateful_set_without_effect[] = {
    "serviceName", "podManagementPolicy", "updateStrategy", "revisionHistoryLimit", "minReadySeconds",
    "persistentVolumeClaimRetentionPolicy", NULL};
static const char *const stateful_set_unsupported[] = {"volumeClaimTemplates", NULL};
static const char *const daemon_set_fields[] = {"selector", "template", "updateStrategy", "minReadySeconds",
                                                "revisionHistoryLimit", NULL};
static const char *const daemon_set_without_effect[] = {"updateStrategy", "minReadySeconds", "revisionHistoryLimit",
                                                        NULL};
static const char *const job_fields[] = {
    "parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "selector", "manualSelector", "template",
    "ttlSecondsAfterFinished", "completionMode", "suspend", "podFailurePolicy", "backoffLimitPerIndex",
    "maxFailedIndexes", "podReplacementPolicy", "successPolicy", "managedBy", NULL};
static const char *const job_without_effect[] = {"ttlSecondsAfterFinished", "podReplacementPolicy", "managedBy",
                                                 NULL};
static const char *const job_unsupported[] = {"podFailurePolicy", "backoffLimitPerIndex", "maxFailedIndexes",
                                              "successPolicy", NULL};
static const char *const none[] = {NULL};

static const struct kind_info kinds[] = {
    [PEA_WORKLOAD_POD] = {"Pod", "v1", {"pod", "pods", "po"}, none, none, none},
    [PEA_WORKLOAD_DEPLOYMENT] = {"Deployment", "apps/v1", {"deployment", "deployments", "deploy"},
                                 deployment_fields, deployment_without_effect, none},
    [PEA_WORKLOAD_REPLICA_SET] = {"ReplicaSet", "apps/v1", {"replicaset", "replicasets", "rs"}, replica_set_fields,
                                  replica_set_without_effect, none},
    [PEA_WORKLOAD_STATEFUL_SET] = {"StatefulSet", "apps/v1", {"statefulset", "statefulsets", "sts"},
                                   stateful_set_fields, stateful_set_without_effect, stateful_set_unsupported},
    [PEA_WORKLOAD_DAEMON_SET] = {"DaemonSet", "apps/v1", {"daemonset", "daemonsets", "ds"}, daemon_set_fields,
                                 daemon_set_without_effect, none},
    [PEA_WORKLOAD_JOB] = {"Job", "batch/v1", {"job", "jobs"}, job_fields, job_without_effect, job_unsupported},
};

const char *manifest_workload_kind_name(enum pea_workload_kind kind) { return kinds[kind].kind; }

int manifest_workload_kind_from_type(const char *type)
{
    for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
        for (size_t t = 0; t < ARRAY_SIZE(kinds[k].types) && kinds[k].types[t]; t++)
            if (strcmp(type, kinds[k].types[t]) == 0)
                return (int)k;
    return -1;
}

static int kind_from_name(const char *kind)
{
    for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
        if (strcmp(kind, kinds[k].kind) == 0)
            return (int)k;
    return -1;
}

/* ---- selectors ---- */

/* metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist), checked as the API
 * server checks them; *matches says whether labels satisfy it. */
static int check_selector(json_t *selector, json_t *labels, bool *matches, struct pea_error *err)
{
    static const char *const fields[] = {"matchLabels", "matchExpressions", NULL};
    static const char *const expression_fields[] = {"key", "operator", "values", NULL};
    static const char *const operators[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};
    const char *path = "spec.selector";
    AUTO_JSON json_t *match_labels = NULL;
    json_t *expressions;
    if (field_check_known(selector, path, fields, err) < 0 ||
        field_get_string_map(selector, path, "matchLabels", &match_labels, err) < 0 ||
        field_get_array(selector, path, "matchExpressions", &expressions, err) < 0)
        return -1;
    if (json_object_size(match_labels) == 0 && json_array_size(expressions) == 0)
        return pea_fail(err, 0, "%s: must not be empty (it would select every pod)", path);
    *matches = true;
    const char *key;
    json_t *value;
    json_object_foreach(match_labels, key, value) {
        if (!name_is_qualified(key) || !label_value_is_valid(json_string_value(value)))
            return field_fail(err, "spec.selector.matchLabels", key, "not a valid label");
        *matches &= json_equal(json_object_get(labels, key), value);
    }
    for (size_t i = 0; i < json_array_size(expressions); i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.matchExpressions[%zu]", path, i);
        json_t *e = json_array_get(expressions, i);
        AUTO_FREE char *label = NULL;
        AUTO_STRV char **values = NULL;
        int op = -1;
        if (!json_is_object(e))
            return pea_fail(err, 0, "%s: must be an object", item);
        if (field_check_known(e, item, expression_fields, err) < 0 ||
            field_get_string(e, item, "key", true, &label, err) < 0 ||
            field_get_enum(e, item, "operator", operators, &op, err) < 0 ||
            field_get_strv(e, item, "values", &values, err) < 0)
            return -1;
        if (op < 0)
            return field_fail(err, item, "operator", "missing");
        bool is_set_op = op <= 1;
        if (is_set_op && strv_len(values) == 0)
            return field_fail(err, item, "values", "must be non-empty for %s", operators[op]);
        if (!is_set_op && strv_len(values) != 0)
            return field_fail(err, item, "values", "must be empty for %s", operators[op]);
        json_t *have = json_object_get(labels, label);
        bool is_in = false;
        for (size_t v = 0; values && values[v]; v++)
            is_in |= have && strcmp(json_string_value(have), values[v]) == 0;
        *matches &= op == 0 ? is_in : op == 1 ? !is_in : op == 2 ? have != NULL : have == NULL;
    }
    return 0;
}

/* ---- one controller ---- */

struct parse_context {
    struct manifest_collector *c;
    struct pea_error *err;
    char ***notices;
    const char *label; /* "file: document 2: " */
};

static void notice(struct parse_context *ctx, const char *path, const char *kind, const char *name, const char *why)
{
    AUTO_FREE char *line = xasprintf("%s%s%s: %s (%s %s)", ctx->label, ctx->c->prefix, path, why, kind, name);
    strv_append(ctx->notices, line);
}

/* The Pod a template makes: its labels and annotations and the controller's, metadata.name left to the caller. */
static json_t *pod_from_template(json_t *template, const char *namespace, const struct pea_workload *w)
{
    json_t *meta = json_object_get(template, "metadata");
    json_t *labels = json_deep_copy(json_object_get(meta, "labels"));
    json_t *annotations = json_deep_copy(json_object_get(meta, "annotations"));
    if (!json_is_object(labels)) {
        json_decref(labels);
        labels = json_object();
    }
    if (!json_is_object(annotations)) {
        json_decref(annotations);
        annotations = json_object();
    }
    /* The labels Kubernetes' Job controller puts on its pods. */
    if (w->kind == PEA_WORKLOAD_JOB) {
        json_object_set_new(labels, "batch.kubernetes.io/job-name", json_string(w->name));
        json_object_set_new(labels, "job-name", json_string(w->name));
    }
    json_object_set_new(annotations, PEA_OWNER_ANNOTATION,
                        json_sprintf("%s/%s", kinds[w->kind].kind, w->name));
    json_t *pod_meta = json_pack("{s:o, s:o}", "labels", labels, "annotations", annotations);
    if (namespace)
        json_object_set_new(pod_meta, "namespace", json_string(namespace));
    json_t *spec = json_object_get(template, "spec");
    return json_pack("{s:s, s:s, s:o, s:O}", "apiVersion", "v1", "kind", "Pod", "metadata", pod_meta, "spec",
                     spec ? spec : json_null());
}

/* metadata of a controller: name (a DNS subdomain short enough for NAME-N to name a pod), namespace, labels,
 * annotations. */
static int parse_controller_metadata(json_t *doc, struct pea_workload *w, long long last_index, char **namespace,
                                     struct pea_error *err)
{
    static const char *const fields[] = {"name", "namespace", "labels", "annotations", NULL};
    json_t *meta;
    AUTO_JSON json_t *labels = NULL, *annotations = NULL;
    if (field_get_object(doc, "", "metadata", true, &meta, err) < 0 ||
        field_check_known(meta, "metadata", fields, err) < 0 ||
        field_get_string(meta, "metadata", "name", true, &w->name, err) < 0 ||
        field_get_string(meta, "metadata", "namespace", false, namespace, err) < 0 ||
        field_get_string_map(meta, "metadata", "labels", &labels, err) < 0 ||
        field_get_string_map(meta, "metadata", "annotations", &annotations, err) < 0)
        return -1;
    /* The pods' names must be DNS subdomains of at most 63 (they name cgroups): NAME-N, N up to last_index. */
    int longest = snprintf(NULL, 0, "%s-%lld", w->name, last_index);
    if (!name_is_dns_subdomain(w->name, 63) || longest > 63)
        return field_fail(err, "metadata", "name",
                          "must be a DNS subdomain short enough for its pods' names (\"%s-%lld\") to have at most "
                          "63 characters", w->name, last_index);
    return 0;
}

static int parse_template(json_t *spec, const struct pea_workload *w, struct parse_context *ctx, json_t **template)
{
    static const char *const fields[] = {"metadata", "spec", NULL};
    static const char *const metadata_fields[] = {"name", "namespace", "generateName", "labels", "annotations", NULL};
    json_t *meta;
    if (field_get_object(spec, "spec", "template", true, template, ctx->err) < 0 ||
        field_check_known(*template, "spec.template", fields, ctx->err) < 0 ||
        field_get_object(*template, "spec.template", "metadata", false, &meta, ctx->err) < 0 ||
        (meta && field_check_known(meta, "spec.template.metadata", metadata_fields, ctx->err) < 0))
        return -1;
    /* A pod's name and namespace are its controller's to give, on a cluster too. */
    for (size_t i = 0; meta && i < 3; i++)
        if (json_object_get(meta, metadata_fields[i])) {
            char path[FIELD_PATH_MAX];
            field_path(path, sizeof path, "spec.template.metadata", metadata_fields[i]);
            notice(ctx, path, kinds[w->kind].kind, w->name, "ignored: the controller names its pods");
        }
    json_t *pod_spec = json_object_get(*template, "spec");
    json_t *restart = json_object_get(pod_spec, "restartPolicy");
    const char *policy = json_is_string(restart) ? json_string_value(restart) : NULL;
    if (w->kind == PEA_WORKLOAD_JOB && !restart)
        return pea_fail(ctx->err, 0, "spec.template.spec.restartPolicy: missing: a Job's pods need \"Never\" or "
                        "\"OnFailure\"");
    if (w->kind == PEA_WORKLOAD_JOB && policy && strcmp(policy, "Never") != 0 && strcmp(policy, "OnFailure") != 0)
        return pea_fail(ctx->err, 0, "spec.template.spec.restartPolicy: must be \"Never\" or \"OnFailure\" for a "
                        "Job, not \"%s\"", policy);
    if (w->kind != PEA_WORKLOAD_JOB && policy && strcmp(policy, "Always") != 0)
        return pea_fail(ctx->err, 0, "spec.template.spec.restartPolicy: must be \"Always\" for a %s, not \"%s\"",
                        kinds[w->kind].kind, policy);
    return 0;
}

static int parse_job(json_t *spec, struct pea_workload *w, struct pea_error *err)
{
    bool has_parallelism, has_completions, has_deadline, has_backoff, is_suspended = false, is_manual = false;
    long long parallelism = 1, completions = 1;
    AUTO_FREE char *mode = NULL;
    w->backoff_limit = 6;
    if (field_get_int(spec, "spec", "parallelism", 0, INT32_MAX, &has_parallelism, &parallelism, err) < 0 ||
        field_get_int(spec, "spec", "completions", 0, INT32_MAX, &has_completions, &completions, err) < 0 ||
        field_get_int(spec, "spec", "activeDeadlineSeconds", 1, INT64_MAX / 1000, &has_deadline,
                      &w->active_deadline_seconds, err) < 0 ||
        field_get_int(spec, "spec", "backoffLimit", 0, INT32_MAX, &has_backoff, &w->backoff_limit, err) < 0 ||
        field_get_bool(spec, "spec", "suspend", &is_suspended, err) < 0 ||
        field_get_bool(spec, "spec", "manualSelector", &is_manual, err) < 0 ||
        field_get_string(spec, "spec", "completionMode", false, &mode, err) < 0)
        return -1;
    if (!has_deadline)
        w->active_deadline_seconds = -1;
    if (mode && strcmp(mode, "NonIndexed") != 0)
        return field_fail(err, "spec", "completionMode", "only \"NonIndexed\" is supported by pea, not \"%s\"",
                          mode);
    if (is_suspended)
        return field_fail(err, "spec", "suspend", "true is not supported by pea (nothing would resume the Job)");
    json_t *selector = json_object_get(spec, "selector");
    if (selector && !json_is_null(selector) && !is_manual)
        return field_fail(err, "spec", "selector", "given without manualSelector: true (a Job's selector is made "
                          "from its template)");
    /* As Kubernetes defaults them: both absent are 1 and 1; parallelism alone leaves completions unset, a work
     * queue (-1 here) that is done once one pod has succeeded and none runs. */
    w->replicas = parallelism;
    w->completions = has_parallelism && !has_completions ? -1 : completions;
    return 0;
}

static int parse_controller(json_t *doc, struct pea_workload *w, struct parse_context *ctx)
{
    static const char *const top_fields[] = {"apiVersion", "kind", "metadata", "spec", NULL};
    struct pea_error *err = ctx->err;
    const struct kind_info *k = &kinds[w->kind];
    AUTO_FREE char *api_version = NULL, *namespace = NULL;
    json_t *spec, *template = NULL;
    w->replicas = 1;
    w->active_deadline_seconds = -1;
    if (field_check_known(doc, "", top_fields, err) < 0 ||
        field_get_string(doc, "", "apiVersion", true, &api_version, err) < 0)
        return -1;
    if (strcmp(api_version, k->api_version) != 0)
        return pea_fail(err, 0, "apiVersion: must be \"%s\" for a %s, not \"%s\"", k->api_version, k->kind,
                        api_version);
    if (field_get_object(doc, "", "spec", true, &spec, err) < 0 || field_check_known(spec, "spec", k->fields, err) < 0)
        return -1;
    if (w->kind == PEA_WORKLOAD_JOB) {
        if (parse_job(spec, w, err) < 0)
            return -1;
    } else if (w->kind != PEA_WORKLOAD_DAEMON_SET &&
               field_get_int(spec, "spec", "replicas", 0, INT32_MAX, NULL, &w->replicas, err) < 0) {
        return -1;
    }
    json_t *ordinals = json_object_get(spec, "ordinals");
    if (ordinals && !json_is_null(ordinals)) {
        static const char *const ordinal_fields[] = {"start", NULL};
        if (!json_is_object(ordinals))
            return field_fail(err, "spec", "ordinals", "must be an object");
        if (field_check_known(ordinals, "spec.ordinals", ordinal_fields, err) < 0 ||
            field_get_int(ordinals, "spec.ordinals", "start", 0, INT32_MAX, NULL, &w->first_index, err) < 0)
            return -1;
    }
    /* A Job's pods are numbered on as they are retried: its names are checked up to its first pod's. */
    long long last = w->first_index + (w->kind == PEA_WORKLOAD_JOB || w->replicas == 0 ? 0 : w->replicas - 1);
    if (parse_controller_metadata(doc, w, last, &namespace, err) < 0)
        return -1;
    for (const char *const *f = k->unsupported; *f; f++)
        if (json_object_get(spec, *f) && !json_is_null(json_object_get(spec, *f)))
            return field_fail(err, "spec", *f, "not supported by pea%s", w->kind == PEA_WORKLOAD_STATEFUL_SET
                              ? " (a pod's own claims are not made from templates: name a claim in a "
                                "persistentVolumeClaim volume, which every replica then shares)" : "");
    if (parse_template(spec, w, ctx, &template) < 0)
        return -1;
    json_t *selector;
    if (field_get_object(spec, "spec", "selector", w->kind != PEA_WORKLOAD_JOB, &selector, err) < 0)
        return -1;
    bool matches = true;
    json_t *labels = json_object_get(json_object_get(template, "metadata"), "labels");
    if (selector && check_selector(selector, json_is_object(labels) ? labels : NULL, &matches, err) < 0)
        return -1;
    /* Kubernetes' words; the template is checked all the same. */
    if (!matches) {
        pea_fail(err, 0, "spec.template.metadata.labels: `selector` does not match template `labels`");
        manifest_collect(ctx->c, err);
    }
    for (const char *const *f = k->without_effect; *f; f++)
        if (json_object_get(spec, *f)) {
            char path[FIELD_PATH_MAX];
            field_path(path, sizeof path, "spec", *f);
            notice(ctx, path, k->kind, w->name, "accepted, without effect on a single node");
        }
    w->pod = pod_from_template(template, namespace, w);
    w->spec_json = manifest_canonical_json(spec);
    return 0;
}

/* ---- the file ---- */

struct objects_builder {
    struct pea_manifest_objects *o;
    struct pea_pod_manifest *configs; /* the ConfigMaps and Secrets read so far, for the pods' references */
    struct manifest_collector c;
    size_t n_documents;     /* that are not empty */
    size_t n_pod_documents; /* that hold something else than ConfigMaps and Secrets */
};

static void workload_free(struct pea_workload *w)
{
    free(w->name);
    json_decref(w->pod);
    free(w->spec_json);
}

/* A pod-making object (a Pod or a controller): checked, its pod checked (template errors under spec.template),
 * and added. */
static void add_pod_maker(struct objects_builder *b, json_t *doc, int kind, struct parse_context *ctx)
{
    struct pea_workload w = {.kind = (enum pea_workload_kind)kind};
    struct pea_error *err = ctx->err;
    size_t prefix_len = strlen(b->c.prefix);
    if (kind == PEA_WORKLOAD_POD) {
        w.replicas = 1;
        w.active_deadline_seconds = -1;
        w.pod = json_deep_copy(doc);
        w.name = xstrdup(json_string_value(json_object_get(json_object_get(doc, "metadata"), "name")) ?: "");
    } else if (parse_controller(doc, &w, ctx) < 0) {
        manifest_collect(&b->c, err);
        workload_free(&w);
        return;
    } else {
        snprintf(b->c.prefix + prefix_len, sizeof b->c.prefix - prefix_len, "spec.template.");
        json_object_set_new(json_object_get(w.pod, "metadata"), "name",
                            json_sprintf("%s-%lld", w.name, w.first_index));
    }
    /* A Pod is read from its document, whose env lists (placeholders) are the ones env_lists knows, not a copy. */
    AUTO_MANIFEST struct pea_pod_manifest *m =
        manifest_from_pod_json_collecting(kind == PEA_WORKLOAD_POD ? doc : w.pod, &b->c, err);
    if (m) {
        for (char **n = m->notices; n && *n; n++) {
            AUTO_FREE char *line = xasprintf("%s%s%s", ctx->label, b->c.prefix, *n);
            strv_append(ctx->notices, line);
        }
        /* The references are to the file's ConfigMaps and Secrets, wherever they stand in it. */
        m->configs = b->configs->configs;
        m->n_configs = b->configs->n_configs;
        if (manifest_check_references(m, err) < 0)
            manifest_collect(&b->c, err);
        m->configs = NULL;
        m->n_configs = 0;
    }
    b->c.prefix[prefix_len] = '\0';
    for (size_t i = 0; i < b->o->n; i++)
        if (b->o->items[i].kind == w.kind && strcmp(b->o->items[i].name, w.name) == 0) {
            pea_fail(err, 0, "metadata.name: %s \"%s\" is given twice", kinds[kind].kind, w.name);
            manifest_collect(&b->c, err);
        }
    b->o->items = xrealloc(b->o->items, (b->o->n + 1) * sizeof *b->o->items);
    b->o->items[b->o->n++] = w;
}

static const char *kind_of(json_t *doc) { return json_string_value(json_object_get(doc, "kind")); }

static bool is_config_kind(const char *kind)
{
    return kind && (strcmp(kind, "ConfigMap") == 0 || strcmp(kind, "Secret") == 0);
}

/* A PersistentVolumeClaim declares a named volume, made on first use by the pod that names it. */
static void add_claim(struct parse_context *ctx, json_t *object, bool is_list)
{
    bool has_storage;
    AUTO_FREE char *name = NULL;
    AUTO_FREE char *where = xasprintf("document %zu%s%.*s", ctx->c->doc_index + 1, is_list ? ": " : "",
                                      is_list ? (int)strlen(ctx->c->prefix) - 1 : 0, ctx->c->prefix);
    if (manifest_check_claim(object, where, &has_storage, &name, ctx->err) < 0) {
        manifest_collect_text(ctx->c, ctx->err->msg);
        return;
    }
    if (has_storage)
        notice(ctx, "spec.resources", "PersistentVolumeClaim", name,
               "accepted; pea does not enforce a named volume's size");
}

/* Every object of one document (a List's items, or itself), configs (is_configs) or the rest. */
static void add_document(struct objects_builder *b, json_t *doc, size_t index, bool is_configs, const char *file)
{
    struct pea_error err = {0};
    char label[64] = "";
    if (b->n_pod_documents > 1)
        snprintf(label, sizeof label, "document %zu: ", index + 1);
    AUTO_FREE char *where = xasprintf("%s%s", file, label);
    struct parse_context ctx = {&b->c, &err, &b->o->notices, where};
    b->c.doc = doc;
    b->c.doc_index = index;
    snprintf(b->c.label, sizeof b->c.label, "%s", label);
    b->c.prefix[0] = '\0';
    const char *kind = kind_of(doc);
    bool is_list = kind && strcmp(kind, "List") == 0;
    if (!json_is_object(doc) || !kind) {
        if (!is_configs) {
            pea_fail(&err, 0, "must be an object with a kind");
            manifest_collect(&b->c, &err);
        }
        return;
    }
    json_t *items = is_list ? json_object_get(doc, "items") : NULL;
    if (is_list && !is_configs) {
        static const char *const list_fields[] = {"apiVersion", "kind", "metadata", "items", NULL};
        AUTO_FREE char *api_version = NULL;
        if (field_check_known(doc, "", list_fields, &err) < 0 ||
            field_get_string(doc, "", "apiVersion", true, &api_version, &err) < 0 ||
            (strcmp(api_version, "v1") != 0 && pea_fail(&err, 0, "apiVersion: must be \"v1\" for a List") < 0) ||
            field_get_array(doc, "", "items", &items, &err) < 0)
            manifest_collect(&b->c, &err);
    }
    size_t n = is_list ? json_array_size(items) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *object = is_list ? json_array_get(items, i) : doc;
        const char *object_kind = kind_of(object);
        if (is_list)
            snprintf(b->c.prefix, sizeof b->c.prefix, "items[%zu].", i);
        if (is_config_kind(object_kind) != is_configs)
            continue;
        if (is_configs) {
            /* As a Pod's file has always named them: "document 2", here also "document 1: items[3]". */
            char config_where[96];
            snprintf(config_where, sizeof config_where, "document %zu%s%.*s", index + 1, is_list ? ": " : "",
                     is_list ? (int)strlen(b->c.prefix) - 1 : 0, b->c.prefix);
            if (manifest_add_config(b->configs, object, config_where, strcmp(object_kind, "Secret") == 0, &err) < 0)
                manifest_collect_text(&b->c, err.msg);
            AUTO_FREE char *line = json_dumps(object, JSON_COMPACT | JSON_ENCODE_ANY);
            size_t line_len = strlen(line);
            b->o->configs = xrealloc(b->o->configs, b->o->configs_len + line_len + 2);
            memcpy(b->o->configs + b->o->configs_len, line, line_len);
            b->o->configs_len += line_len;
            b->o->configs[b->o->configs_len++] = '\n';
            b->o->configs[b->o->configs_len] = '\0';
            continue;
        }
        if (manifest_is_claim_kind(object_kind)) {
            add_claim(&ctx, object, is_list);
            continue;
        }
        int k = object_kind ? kind_from_name(object_kind) : -1;
        if (k < 0) {
            if (!json_is_object(object) || !object_kind)
                pea_fail(&err, 0, "must be an object with a kind");
            else
                pea_fail(&err, 0, "kind: \"%s\" is not supported (pea applies Pod, Deployment, ReplicaSet, "
                         "StatefulSet, DaemonSet, Job, List, ConfigMap, Secret and PersistentVolumeClaim)",
                         object_kind);
            manifest_collect(&b->c, &err);
            continue;
        }
        add_pod_maker(b, object, k, &ctx);
    }
}

void manifest_objects_free(struct pea_manifest_objects *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        workload_free(&o->items[i]);
    free(o->items);
    free(o->configs);
    free(o->text);
    strv_free(o->notices);
    free(o);
}

/* Whether docs hold one Pod (and perhaps ConfigMaps and Secrets): then it is applied from its own text. */
static bool is_one_pod(json_t *docs)
{
    size_t i, n_pods = 0, n_others = 0;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
        const char *kind = json_is_null(doc) ? NULL : kind_of(doc);
        if (kind && strcmp(kind, "Pod") == 0)
            n_pods++;
        else if (!json_is_null(doc) && !is_config_kind(kind))
            n_others++;
    }
    return n_pods == 1 && n_others == 0;
}

/* Parse o->text (read from name) with the ConfigMaps and Secrets already in configs and o->configs. */
static struct pea_manifest_objects *parse_objects(struct pea_manifest_objects *o, struct pea_pod_manifest *configs,
                                                  const char *name, struct pea_manifest_errors *errors,
                                                  struct pea_error *err)
{
    AUTO_MANIFEST_OBJECTS struct pea_manifest_objects *owned = o;
    size_t files_configs_len = o->configs_len;
    struct objects_builder b = {.o = o, .configs = configs};
    /* A Pod's containers' env lists go to env_lists, not into the tree (manifest_sources.h): the tree of a large
     * manifest then stays small. Only a file that is one Pod can be read so, since everything else is later dumped
     * from its tree and parsed again: such a file is read a second time, whole. */
    __attribute__((cleanup(manifest_env_lists_free))) struct manifest_env_lists env_lists = {0};
    AUTO_JSON json_t *docs = o->text_len > PEA_MANIFEST_MAX_SIZE
                                 ? NULL
                                 : manifest_documents(o->text, o->text_len, &env_lists, err);
    if (o->text_len > PEA_MANIFEST_MAX_SIZE)
        pea_fail(err, 0, "manifest: %zu bytes, larger than %d (" PEA_MANIFEST_LIMIT_TEXT ")", o->text_len,
                 PEA_MANIFEST_MAX_SIZE);
    if (docs && !is_one_pod(docs)) {
        json_decref(docs);
        manifest_env_lists_free(&env_lists);
        env_lists = (struct manifest_env_lists){0};
        docs = manifest_documents(o->text, o->text_len, NULL, err);
    }
    manifest_env_lists_use(&env_lists);
    if (!docs) {
        manifest_collect_text(&b.c, err->msg);
    } else {
        size_t i;
        json_t *doc;
        json_array_foreach(docs, i, doc) {
            b.n_documents += !json_is_null(doc);
            b.n_pod_documents += !json_is_null(doc) && !is_config_kind(kind_of(doc));
        }
        AUTO_FREE char *file = xasprintf("%s: ", name);
        /* ConfigMaps and Secrets first, wherever they stand: a pod may name one given after it. */
        for (size_t pass = 0; pass < 2; pass++)
            json_array_foreach(docs, i, doc)
                if (!json_is_null(doc))
                    add_document(&b, doc, i, pass == 0, file);
        if (b.n_documents == 0)
            manifest_collect_text(&b.c, "no object in the file");
    }
    manifest_env_lists_use(NULL);
    size_t n_errors = b.c.n;
    manifest_collector_finish(&b.c, errors);
    if (n_errors) {
        pea_fail(err, 0, "%s: %zu error%s", name, n_errors, n_errors == 1 ? "" : "s");
        return NULL;
    }
    /* One Pod alone, with its ConfigMaps and Secrets in separate documents: applied as written, as before. */
    json_t *first = json_array_get(docs, 0);
    o->is_single_pod = o->n == 1 && o->items[0].kind == PEA_WORKLOAD_POD &&
                       !(kind_of(first) && strcmp(kind_of(first), "List") == 0);
    if (o->is_single_pod)
        o->configs[o->configs_len = files_configs_len] = '\0';
    return take_ptr(&owned);
}

static struct pea_manifest_objects *objects_new(void)
{
    struct pea_manifest_objects *o = xcalloc(1, sizeof *o);
    o->notices = xcalloc(1, sizeof *o->notices);
    o->configs = xstrdup("");
    return o;
}

struct pea_manifest_objects *manifest_parse_objects(const char *text, size_t len, struct pea_manifest_errors *errors,
                                                    struct pea_error *err)
{
    *errors = (struct pea_manifest_errors){0};
    AUTO_MANIFEST struct pea_pod_manifest *configs = xcalloc(1, sizeof *configs);
    struct pea_manifest_objects *o = objects_new();
    o->text = xmalloc(len + 1);
    memcpy(o->text, text, len);
    o->text[len] = '\0';
    o->text_len = len;
    return parse_objects(o, configs, "manifest", errors, err);
}

struct pea_manifest_objects *manifest_load_objects(const char *path, char *const *configmap_files,
                                                   char *const *secret_files, struct pea_manifest_errors *errors,
                                                   struct pea_error *err)
{
    *errors = (struct pea_manifest_errors){0};
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
    AUTO_MANIFEST_OBJECTS struct pea_manifest_objects *o = objects_new();
    AUTO_MANIFEST struct pea_pod_manifest *configs = xcalloc(1, sizeof *configs);
    for (size_t k = 0; k < 2; k++) {
        char *const *files = k ? secret_files : configmap_files;
        for (size_t i = 0; files && files[i]; i++)
            if (manifest_read_config_file(files[i], k == 1, configs, &o->configs, &o->configs_len, err) < 0)
                return NULL;
    }
    o->text = manifest_read_file(path, &o->text_len, err);
    if (!o->text)
        return NULL;
    return parse_objects(take_ptr(&o), configs, name, errors, err);
}

struct pea_pod_manifest *manifest_workload_pod(const struct pea_manifest_objects *o, const struct pea_workload *w,
                                               long long index, struct pea_error *err)
{
    AUTO_FREE char *pod_text = NULL;
    const char *source = o->text; /* a single Pod: its own text, not a copy (it may be 1.5 MiB) */
    size_t pod_len = o->text_len;
    if (!o->is_single_pod) {
        AUTO_JSON json_t *pod = json_deep_copy(w->pod);
        json_t *meta = json_object_get(pod, "metadata");
        if (w->kind != PEA_WORKLOAD_POD)
            json_object_set_new(meta, "name", json_sprintf("%s-%lld", w->name, index));
        /* The labels Kubernetes' StatefulSet controller puts on each pod. */
        if (w->kind == PEA_WORKLOAD_STATEFUL_SET) {
            json_t *labels = json_object_get(meta, "labels");
            json_object_set_new(labels, "statefulset.kubernetes.io/pod-name",
                                json_sprintf("%s-%lld", w->name, index));
            json_object_set_new(labels, "apps.kubernetes.io/pod-index", json_sprintf("%lld", index));
        }
        pod_text = json_dumps(pod, JSON_COMPACT);
        source = pod_text;
        pod_len = strlen(pod_text);
    }
    size_t len = o->configs_len + pod_len;
    char *text = xmalloc(len + 1);
    memcpy(text, o->configs, o->configs_len);
    memcpy(text + o->configs_len, source, pod_len + 1);
    return manifest_parse_owned(text, len, err);
}
