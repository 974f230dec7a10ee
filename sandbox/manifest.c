/* Pod manifest → struct pea_pod_manifest: the top level, metadata, the pod spec and its volumes, and loading a file.
 * Strict like `kubectl --validate=strict`: a field pea does not know is an error, since silently ignoring, say,
 * a misspelt readOnly would run the pod with less isolation than its author asked for. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "manifest_security.h"
#include "manifest_sources.h"
#include "pea/image_ref.h"
#include "pea/pod_image.h"
#include "pea/util.h"

/* ---- volumes ---- */

static void volume_free(struct pea_pod_volume *v)
{
    free(v->name);
    free(v->host_path);
    free(v->claim_name);
    free(v->image_ref);
    pod_image_free(v->image);
    manifest_file_volume_free(v);
}

static int parse_empty_dir(json_t *volume, const char *item, struct pea_pod_volume *v, struct pea_error *err)
{
    static const char *const fields[] = {"medium", "sizeLimit", "mode", NULL};
    static const char *const media[] = {"", "Memory", NULL};
    json_t *dir = json_object_get(volume, "emptyDir");
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, item, "emptyDir");
    int medium = 0;
    v->type = PEA_VOLUME_EMPTY_DIR;
    if (field_check_known(dir, path, fields, err) < 0 || field_get_enum(dir, path, "medium", media, &medium, err) < 0 ||
        field_get_quantity(dir, path, "sizeLimit", false, &v->has_size_limit, &v->size_limit_bytes, err) < 0)
        return -1;
    v->is_memory = medium == 1;
    /* Kubernetes' emptyDir.mode (EmptyDirVolumeMode): the directory's permission bits, sticky bit included, in
     * place of the 0777 it has otherwise; fsGroup still adds its group bits. */
    long long mode = 0777;
    if (field_get_int(dir, path, "mode", LLONG_MIN, LLONG_MAX, NULL, &mode, err) < 0)
        return -1;
    if (mode < 0 || mode > 01777)
        return field_fail(err, path, "mode", "must be between 0000 and 01777 (octal), not %lld", mode);
    v->empty_dir_mode = (mode_t)mode;
    return 0;
}

static int parse_host_path(json_t *volume, const char *item, struct pea_pod_volume *v, struct pea_error *err)
{
    static const char *const fields[] = {"path", "type", NULL};
    /* In the order of enum pea_host_path_type. */
    static const char *const types[] = {"",     "DirectoryOrCreate", "Directory",  "FileOrCreate", "File",
                                        "Socket", "CharDevice",      "BlockDevice", NULL};
    json_t *host = json_object_get(volume, "hostPath");
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, item, "hostPath");
    int type = 0;
    v->type = PEA_VOLUME_HOST_PATH;
    if (field_check_known(host, path, fields, err) < 0 ||
        field_get_string(host, path, "path", true, &v->host_path, err) < 0 ||
        field_get_enum(host, path, "type", types, &type, err) < 0)
        return -1;
    if (v->host_path[0] != '/')
        return field_fail(err, path, "path", "must be an absolute path");
    v->host_path_type = (enum pea_host_path_type)type;
    return 0;
}

/* Kubernetes' PersistentVolumeClaim names are DNS subdomains; here the name is also a directory's. */
static int parse_claim(json_t *volume, const char *item, struct pea_pod_volume *v, struct pea_error *err)
{
    static const char *const fields[] = {"claimName", "readOnly", NULL};
    json_t *claim = json_object_get(volume, "persistentVolumeClaim");
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, item, "persistentVolumeClaim");
    v->type = PEA_VOLUME_PERSISTENT_CLAIM;
    if (field_check_known(claim, path, fields, err) < 0 ||
        field_get_string(claim, path, "claimName", true, &v->claim_name, err) < 0 ||
        field_get_bool(claim, path, "readOnly", &v->is_read_only, err) < 0)
        return -1;
    if (!name_is_dns_subdomain(v->claim_name, 253))
        return field_fail(err, path, "claimName", "must be a DNS subdomain, not \"%s\"", v->claim_name);
    return 0;
}

/* Kubernetes' image volume: an image of the store by reference (never a directory: that is a hostPath), pulled as a
 * container's image is, with the same default policy (Always for a "latest" tag, written or implied). */
static int parse_image_volume(json_t *volume, const char *item, struct pea_pod_volume *v, struct pea_error *err)
{
    static const char *const fields[] = {"reference", "pullPolicy", NULL};
    static const char *const policies[] = {"Always", "IfNotPresent", "Never", NULL};
    json_t *image = json_object_get(volume, "image");
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, item, "image");
    v->type = PEA_VOLUME_IMAGE;
    v->is_read_only = true;
    struct pea_image_ref ref;
    struct pea_error why = {0};
    if (field_check_known(image, path, fields, err) < 0 ||
        field_get_string(image, path, "reference", true, &v->image_ref, err) < 0)
        return -1;
    if (v->image_ref[0] == '/' || v->image_ref[0] == '.')
        return field_fail(err, path, "reference", "\"%s\" is a path, not an image reference (a directory is a "
                          "hostPath volume)", v->image_ref);
    if (pea_image_ref_parse(v->image_ref, &ref, &why) < 0)
        return field_fail(err, path, "reference", "%s", why.msg);
    int policy = strcmp(ref.tag, "latest") == 0 ? PEA_PULL_ALWAYS : PEA_PULL_IF_NOT_PRESENT;
    if (field_get_enum(image, path, "pullPolicy", policies, &policy, err) < 0)
        return -1;
    v->image_pull_policy = (enum pea_pull_policy)policy;
    return 0;
}

static int parse_volume(json_t *j, const char *item, struct pea_pod_volume *v, json_t *volume_names, size_t i,
                        struct pea_error *err)
{
    static const char *const fields[] = {"name",   "emptyDir",    "hostPath",  "configMap",            "secret",
                                         "downwardAPI", "projected", "persistentVolumeClaim", "image", NULL};
    static const char *const file_kinds[] = {"configMap", "secret", "downwardAPI", "projected"};
    json_t *empty_dir, *host_path, *claim, *image;
    if (!json_is_object(j))
        return pea_fail(err, 0, "%s: must be an object", item);
    if (field_check_known(j, item, fields, err) < 0 || field_get_string(j, item, "name", true, &v->name, err) < 0)
        return -1;
    if (!name_is_dns_label(v->name))
        return field_fail(err, item, "name", "must be a DNS label, not \"%s\"", v->name);
    if (json_object_get(volume_names, v->name))
        return field_fail(err, item, "name", "duplicate volume name \"%s\"", v->name);
    json_object_set_new_nocheck(volume_names, v->name, json_integer((json_int_t)i));
    if (field_get_object(j, item, "emptyDir", false, &empty_dir, err) < 0 ||
        field_get_object(j, item, "hostPath", false, &host_path, err) < 0 ||
        field_get_object(j, item, "persistentVolumeClaim", false, &claim, err) < 0 ||
        field_get_object(j, item, "image", false, &image, err) < 0)
        return -1;
    const char *file_kind = NULL;
    size_t n_kinds = (empty_dir != NULL) + (host_path != NULL) + (claim != NULL) + (image != NULL);
    for (size_t k = 0; k < ARRAY_SIZE(file_kinds); k++) {
        json_t *source = json_object_get(j, file_kinds[k]);
        if (source && !json_is_null(source)) {
            file_kind = file_kinds[k];
            n_kinds++;
        }
    }
    if (n_kinds != 1)
        return pea_fail(err, 0, "%s: needs exactly one of emptyDir, hostPath, configMap, secret, downwardAPI, "
                        "projected, persistentVolumeClaim, image", item);
    if (file_kind ? manifest_parse_file_volume(j, item, file_kind, v, err) < 0
        : claim     ? parse_claim(j, item, v, err) < 0
        : image     ? parse_image_volume(j, item, v, err) < 0
        : empty_dir ? parse_empty_dir(j, item, v, err) < 0
                    : parse_host_path(j, item, v, err) < 0)
        return -1;
    return 0;
}

/* volume_names: each volume's name (to its index), for the containers' volumeMounts. Each volume's error is kept
 * by the collector c (when given) and the next volume read. */
static int parse_volumes(json_t *spec, struct pea_pod_manifest *m, json_t *volume_names,
                         struct manifest_collector *c, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(spec, "spec", "volumes", &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    m->n_volumes = json_array_size(list);
    m->volumes = xcalloc(m->n_volumes, sizeof *m->volumes);
    for (size_t i = 0; i < m->n_volumes; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "spec.volumes[%zu]", i);
        if (parse_volume(json_array_get(list, i), item, &m->volumes[i], volume_names, i, err) < 0 &&
            manifest_collect(c, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- containers ---- */

static int parse_container_list(json_t *spec, const char *key, bool is_init, json_t *volume_names,
                                struct pea_pod_container **out, size_t *n_out, char ***notices,
                                struct manifest_collector *c, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(spec, "spec", key, &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    *n_out = json_array_size(list);
    *out = xcalloc(*n_out, sizeof **out);
    for (size_t i = 0; i < *n_out; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "spec.%s[%zu]", key, i);
        if (manifest_parse_container(json_array_get(list, i), item, is_init, volume_names, &(*out)[i], c, err) < 0 &&
            manifest_collect(c, err) < 0)
            return -1;
        if (json_is_object(json_array_get(list, i)) &&
            manifest_check_cluster_container_fields(json_array_get(list, i), item, notices, c, err) < 0)
            return -1;
    }
    return 0;
}

/* Init containers first, then app containers, as one list. */
static struct pea_pod_container *container_at(const struct pea_pod_manifest *m, size_t i)
{
    return i < m->n_init_containers ? &m->init_containers[i] : &m->containers[i - m->n_init_containers];
}

/* Names are unique across init and app containers: they name the containers' state and logs. */
static int check_container_names(const struct pea_pod_manifest *m, struct pea_error *err)
{
    AUTO_JSON json_t *seen = json_object();
    for (size_t i = 0; i < m->n_init_containers + m->n_containers; i++) {
        const char *name = container_at(m, i)->name;
        if (json_object_get(seen, name)) {
            bool is_init = i < m->n_init_containers;
            return pea_fail(err, 0, "spec.%s[%zu].name: duplicate container name \"%s\"",
                            is_init ? "initContainers" : "containers", is_init ? i : i - m->n_init_containers, name);
        }
        json_object_set_new_nocheck(seen, name, json_true());
    }
    return 0;
}

/* spec.securityContext.runAsUser/runAsGroup are defaults for the containers that do not set their own. */
static void apply_pod_identity(struct pea_pod_manifest *m, const struct pea_pod_security *pod)
{
    for (size_t i = 0; i < m->n_init_containers + m->n_containers; i++) {
        struct pea_pod_security *s = &container_at(m, i)->security;
        if (!s->has_run_as_user && pod->has_run_as_user) {
            s->has_run_as_user = true;
            s->run_as_user = pod->run_as_user;
        }
        if (!s->has_run_as_group && pod->has_run_as_group) {
            s->has_run_as_group = true;
            s->run_as_group = pod->run_as_group;
        }
    }
}

/* ---- pod-level settings ---- */

/* Each part of the spec that can be read on its own is: its error is kept by the collector c (when given) and the
 * next part read. What compares the containers with each other runs only when every container could be read. */
static int parse_spec(json_t *root, struct pea_pod_manifest *m, struct manifest_collector *c, struct pea_error *err)
{
    static const char *const fields[] = {
        "hostname",        "shareProcessNamespace", "hostNetwork", "restartPolicy", "terminationGracePeriodSeconds",
        "initContainers",  "containers",            "volumes",     "securityContext", "dnsConfig",
        "serviceAccountName", "hostUsers", "dnsPolicy", "resources", "hostAliases", MANIFEST_CLUSTER_POD_FIELDS, NULL};
    static const char *const restart_policies[] = {"Always", "OnFailure", "Never", NULL};
    json_t *spec;
    bool is_host_network = false, has_grace;
    long long grace = 30;
    int restart = PEA_RESTART_ALWAYS;
    AUTO_POD_SECURITY struct pea_pod_security pod_identity = {0};
    if (field_get_object(root, "", "spec", true, &spec, err) < 0)
        return -1;
    if (field_check_known(spec, "spec", fields, err) < 0 && manifest_collect(c, err) < 0)
        return -1;
    if (manifest_check_cluster_pod_fields(spec, &m->notices, c, err) < 0)
        return -1;
    if ((field_get_string(spec, "spec", "hostname", false, &m->hostname, err) < 0 ||
         (m->hostname && !name_is_dns_label(m->hostname) &&
          field_fail(err, "spec", "hostname", "must be a DNS label, not \"%s\"", m->hostname) < 0)) &&
        manifest_collect(c, err) < 0)
        return -1;
    if ((field_get_bool(spec, "spec", "shareProcessNamespace", &m->share_process_namespace, err) < 0 &&
         manifest_collect(c, err) < 0) ||
        (field_get_bool(spec, "spec", "hostNetwork", &is_host_network, err) < 0 && manifest_collect(c, err) < 0) ||
        (field_get_enum(spec, "spec", "restartPolicy", restart_policies, &restart, err) < 0 &&
         manifest_collect(c, err) < 0) ||
        (field_get_int(spec, "spec", "terminationGracePeriodSeconds", 0, INT32_MAX, &has_grace, &grace, err) < 0 &&
         manifest_collect(c, err) < 0))
        return -1;
    m->restart_policy = (enum pea_restart_policy)restart;
    m->termination_grace_seconds = grace;
    /* Read through the downward API (spec.serviceAccountName); "default" is what a cluster's admission sets. */
    if (field_get_string(spec, "spec", "serviceAccountName", false, &m->service_account_name, err) < 0 &&
        manifest_collect(c, err) < 0)
        return -1;
    if (!m->service_account_name)
        m->service_account_name = xstrdup("default");
    AUTO_JSON json_t *volume_names = json_object();
    size_t errors_before = c ? c->n : 0;
    if ((parse_volumes(spec, m, volume_names, c, err) < 0 && manifest_collect(c, err) < 0) ||
        (parse_container_list(spec, "initContainers", true, volume_names, &m->init_containers,
                              &m->n_init_containers, &m->notices, c, err) < 0 && manifest_collect(c, err) < 0) ||
        (parse_container_list(spec, "containers", false, volume_names, &m->containers, &m->n_containers,
                              &m->notices, c, err) < 0 && manifest_collect(c, err) < 0))
        return -1;
    bool are_containers_read = !c || c->n == errors_before;
    /* A containers field of the wrong type has had its error. */
    json_t *containers = json_object_get(spec, "containers");
    bool is_wrong_type = containers && !json_is_null(containers) && !json_is_array(containers);
    if (m->n_containers == 0 && !is_wrong_type &&
        pea_fail(err, 0, "spec.containers: must hold at least one element") < 0 && manifest_collect(c, err) < 0)
        return -1;
    if (are_containers_read && m->n_containers > 0 &&
        (check_container_names(m, err) < 0 || manifest_check_lifecycle(m, err) < 0) && manifest_collect(c, err) < 0)
        return -1;
    if (manifest_parse_pod_security(spec, m, &pod_identity, c, err) < 0 ||
        (manifest_parse_dns(spec, m, err) < 0 && manifest_collect(c, err) < 0) ||
        (manifest_parse_host_aliases(spec, m, err) < 0 && manifest_collect(c, err) < 0) ||
        (manifest_parse_resources(spec, "spec", true, &m->resources, c, err) < 0) ||
        (manifest_parse_host_users(spec, m, err) < 0 && manifest_collect(c, err) < 0))
        return -1;
    apply_pod_identity(m, &pod_identity);
    if (manifest_parse_network(root, is_host_network, m, err) < 0)
        return -1;
    return manifest_apply_pod_security(m, &pod_identity, c, err);
}

/* Kubernetes' limit on the sum of every annotation's key and value (TotalAnnotationSizeLimitB). */
#define ANNOTATIONS_MAX_BYTES (256 * 1024)

/* Labels and annotations as Kubernetes validates them (ValidateLabels, ValidateAnnotations). */
static int check_labels_and_annotations(const struct pea_pod_manifest *m, struct pea_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(m->labels, key, value) {
        if (!name_is_qualified(key))
            return field_fail(err, "metadata.labels", key,
                              "key must be [DNS subdomain of at most 253/]name of at most 63 of "
                              "[A-Za-z0-9._-], beginning and ending alphanumeric");
        if (!label_value_is_valid(json_string_value(value)))
            return field_fail(err, "metadata.labels", key,
                              "value must be empty or at most 63 of [A-Za-z0-9._-], beginning and ending alphanumeric");
    }
    size_t total = 0;
    json_object_foreach(m->annotations, key, value) {
        if (!name_is_qualified(key))
            return field_fail(err, "metadata.annotations", key,
                              "key must be [DNS subdomain of at most 253/]name of at most 63 of "
                              "[A-Za-z0-9._-], beginning and ending alphanumeric");
        total += strlen(key) + json_string_length(value);
    }
    if (total > ANNOTATIONS_MAX_BYTES)
        return pea_fail(err, 0, "metadata.annotations: %zu bytes of keys and values, more than Kubernetes' %d", total,
                        ANNOTATIONS_MAX_BYTES);
    return 0;
}

static int parse_metadata(json_t *root, struct pea_pod_manifest *m, struct pea_error *err)
{
    static const char *const fields[] = {"name", "namespace", "labels", "annotations", NULL};
    json_t *meta;
    if (field_get_object(root, "", "metadata", true, &meta, err) < 0 ||
        field_check_known(meta, "metadata", fields, err) < 0 ||
        field_get_string(meta, "metadata", "name", true, &m->name, err) < 0)
        return -1;
    if (!name_is_dns_subdomain(m->name, 63))
        return field_fail(err, "metadata", "name",
                          "must be a DNS subdomain (lower case letters, digits, '-' and '.', at most 63), not \"%s\"",
                          m->name);
    if (field_get_string(meta, "metadata", "namespace", false, &m->namespace, err) < 0)
        return -1;
    if (m->namespace && !name_is_dns_label(m->namespace))
        return field_fail(err, "metadata", "namespace", "must be a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63), not \"%s\"",
                          m->namespace);
    if (!m->namespace)
        m->namespace = xstrdup("default");
    if (field_get_string_map(meta, "metadata", "labels", &m->labels, err) < 0 ||
        field_get_string_map(meta, "metadata", "annotations", &m->annotations, err) < 0)
        return -1;
    return check_labels_and_annotations(m, err);
}

/* A required string with one allowed value. */
static int check_constant(json_t *root, const char *key, const char *wanted, struct pea_error *err)
{
    AUTO_FREE char *value = NULL;
    if (field_get_string(root, "", key, true, &value, err) < 0)
        return -1;
    if (strcmp(value, wanted) != 0)
        return field_fail(err, "", key, "must be \"%s\", not \"%s\"", wanted, value);
    return 0;
}

/* ---- what only a new sandbox can change ---- */

/* As paths into the manifest, in the order of sandbox_json; spec.initContainers is compared through the
 * containers' identities, between spec.volumes and spec.securityContext. */
static const struct {
    const char *parent, *key, *path;
} sandbox_fields[PEA_MANIFEST_SANDBOX_FIELDS] = {
    {"metadata", "name", "metadata.name"},
    {"spec", "hostname", "spec.hostname"},
    {"spec", "shareProcessNamespace", "spec.shareProcessNamespace"},
    {"spec", "hostNetwork", "spec.hostNetwork"},
    {"spec", "volumes", "spec.volumes"},
    {"spec", "securityContext", "spec.securityContext"},
    {"spec", "dnsConfig", "spec.dnsConfig"},
    {"pea", NULL, "pea"},
    {"spec", "hostUsers", "spec.hostUsers"},
    {"spec", "dnsPolicy", "spec.dnsPolicy"},
    {"spec", "resources", "spec.resources"},
    {"spec", "hostAliases", "spec.hostAliases"},
};
#define SANDBOX_FIELD_BEFORE_INIT_CONTAINERS 5

char *manifest_canonical_json(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void record_sandbox_fields(json_t *root, struct pea_pod_manifest *m)
{
    for (size_t i = 0; i < PEA_MANIFEST_SANDBOX_FIELDS; i++) {
        json_t *j = json_object_get(root, sandbox_fields[i].parent);
        if (sandbox_fields[i].key)
            j = json_object_get(j, sandbox_fields[i].key);
        m->sandbox_json[i] = j ? manifest_canonical_json(j) : NULL;
    }
}

static bool same_text(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static bool same_init_containers(const struct pea_pod_manifest *a, const struct pea_pod_manifest *b)
{
    if (a->n_init_containers != b->n_init_containers)
        return false;
    for (size_t i = 0; i < a->n_init_containers; i++)
        if (!manifest_container_same_but_resources(&a->init_containers[i], &b->init_containers[i]) ||
            !manifest_container_same_resources(&a->init_containers[i], &b->init_containers[i]))
            return false;
    return true;
}

const char *manifest_sandbox_change(const struct pea_pod_manifest *a, const struct pea_pod_manifest *b)
{
    for (size_t i = 0; i < PEA_MANIFEST_SANDBOX_FIELDS; i++) {
        if (i == SANDBOX_FIELD_BEFORE_INIT_CONTAINERS && !same_init_containers(a, b))
            return "spec.initContainers";
        if (!same_text(a->sandbox_json[i], b->sandbox_json[i]))
            return sandbox_fields[i].path;
    }
    return NULL;
}

/* Entry by entry, as canonical JSON would compare them: a {name, value} pair of strings by the two, anything else
 * by its text. */
static bool same_env(const struct pea_pod_container *a, const struct pea_pod_container *b)
{
    if (a->n_env != b->n_env)
        return false;
    for (size_t i = 0; i < a->n_env; i++) {
        const struct pea_pod_env *x = &a->env[i], *y = &b->env[i];
        if (!same_text(x->entry_json, y->entry_json) ||
            (!x->entry_json && (strcmp(x->name, y->name) != 0 || strcmp(x->value, y->value) != 0)))
            return false;
    }
    return true;
}

bool manifest_container_same_but_resources(const struct pea_pod_container *a, const struct pea_pod_container *b)
{
    return same_text(a->identity, b->identity) && same_env(a, b);
}

bool manifest_container_same_resources(const struct pea_pod_container *a, const struct pea_pod_container *b)
{
    return same_text(a->resources_json, b->resources_json);
}

/* ---- the whole manifest ---- */

struct pea_pod_manifest *manifest_from_pod_json_collecting(json_t *root, struct manifest_collector *c,
                                                           struct pea_error *err)
{
    static const char *const fields[] = {"apiVersion", "kind", "metadata", "spec", "pea", NULL};
    if (!json_is_object(root)) {
        pea_fail(err, 0, "manifest: must be an object (a mapping)");
        manifest_collect(c, err);
        return NULL;
    }
    size_t errors_before = c ? c->n : 0;
    AUTO_MANIFEST struct pea_pod_manifest *m = xcalloc(1, sizeof *m);
    if ((field_check_known(root, "", fields, err) < 0 && manifest_collect(c, err) < 0) ||
        (check_constant(root, "apiVersion", "v1", err) < 0 && manifest_collect(c, err) < 0) ||
        (check_constant(root, "kind", "Pod", err) < 0 && manifest_collect(c, err) < 0) ||
        (parse_metadata(root, m, err) < 0 && manifest_collect(c, err) < 0) ||
        (parse_spec(root, m, c, err) < 0 && manifest_collect(c, err) < 0))
        return NULL;
    if (c && c->n != errors_before)
        return NULL;
    record_sandbox_fields(root, m);
    return take_ptr(&m);
}

struct pea_pod_manifest *manifest_from_pod_json(json_t *root, struct pea_error *err)
{
    return manifest_from_pod_json_collecting(root, NULL, err);
}

/* ---- entry points ---- */

static bool is_too_large(size_t len, struct pea_error *err)
{
    if (len <= PEA_MANIFEST_MAX_SIZE)
        return false;
    pea_fail(err, 0, "manifest: %zu bytes, larger than %d (" PEA_MANIFEST_LIMIT_TEXT ")", len, PEA_MANIFEST_MAX_SIZE);
    return true;
}

/* Parse text (len bytes and a NUL), which becomes the manifest's source: one copy of it, not two. The parse tree
 * lives only as long as this call. */
struct pea_pod_manifest *manifest_parse_owned(char *text, size_t len, struct pea_error *err)
{
    AUTO_FREE char *owned = text;
    if (is_too_large(len, err))
        return NULL;
    struct pea_pod_manifest *m = manifest_from_text(text, len, true, err);
    if (m) {
        m->source = take_ptr(&owned);
        m->source_len = len;
    }
    return m;
}

struct pea_pod_manifest *manifest_parse(const char *text, size_t len, struct pea_error *err)
{
    if (is_too_large(len, err))
        return NULL;
    char *copy = xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return manifest_parse_owned(copy, len, err);
}

/* stdin may also be a pipe; a named file must be a regular file, so that a FIFO, a device or a directory given by
 * mistake is refused at once instead of blocking or reading without end. */
static bool is_readable_kind(mode_t mode, bool is_stdin)
{
    return S_ISREG(mode) || (is_stdin && (S_ISFIFO(mode) || S_ISSOCK(mode)));
}

char *manifest_read_file(const char *path, size_t *len_out, struct pea_error *err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "stdin" : path;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    AUTO_FD int fd = is_stdin ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0)
                              : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        pea_fail(err, errno, "open %s", name);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        pea_fail(err, errno, "stat %s", name);
        return NULL;
    }
    if (!is_readable_kind(st.st_mode, is_stdin)) {
        pea_fail(err, 0, "%s: not a regular file%s", name, is_stdin ? " or a pipe" : "");
        return NULL;
    }
    if (st.st_size > PEA_MANIFEST_MAX_SIZE) {
        pea_fail(err, 0, "%s: %lld bytes, larger than %d (" PEA_MANIFEST_LIMIT_TEXT ")", name,
                 (long long)st.st_size, PEA_MANIFEST_MAX_SIZE);
        return NULL;
    }
    size_t len;
    char *text = read_fd_all(fd, PEA_MANIFEST_MAX_SIZE, &len);
    if (!text) {
        if (errno == EFBIG)
            pea_fail(err, 0, "%s: larger than %d bytes (" PEA_MANIFEST_LIMIT_TEXT ")", name, PEA_MANIFEST_MAX_SIZE);
        else
            pea_fail(err, errno, "read %s", name);
        return NULL;
    }
    *len_out = len;
    /* read_fd_all doubles its buffer as it reads: give back the slack of the copy that stays. */
    return xrealloc(text, len + 1);
}

struct pea_pod_manifest *manifest_load(const char *path, struct pea_error *err)
{
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
    size_t len;
    char *text = manifest_read_file(path, &len, err);
    if (!text)
        return NULL;
    struct pea_pod_manifest *m = manifest_parse_owned(text, len, err);
    if (!m)
        pea_wrap(err, "%s", name);
    return m;
}

/* What makes a memfd's content fixed: then a reader of it can neither block nor see it change between its checks
 * and its read. */
#define MANIFEST_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

int manifest_source_memfd(const struct pea_pod_manifest *m, struct pea_error *err)
{
    AUTO_FD int fd = memfd_create("pea-manifest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return pea_fail(err, errno, "create a memfd for the manifest");
    if (!m->source || write_all(fd, m->source, m->source_len) < 0 ||
        fcntl(fd, F_ADD_SEALS, MANIFEST_SEALS | F_SEAL_SEAL) < 0)
        return pea_fail(err, m->source ? errno : 0, "write the manifest to a memfd");
    return take_fd(&fd);
}

struct pea_pod_manifest *manifest_load_sealed(int fd, const char *name, struct pea_error *err)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & MANIFEST_SEALS) != MANIFEST_SEALS || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        pea_fail(err, 0, "%s: not a sealed memfd", name);
        return NULL;
    }
    if (st.st_size > PEA_MANIFEST_MAX_SIZE) {
        pea_fail(err, 0, "%s: %lld bytes, larger than %d (" PEA_MANIFEST_LIMIT_TEXT ")", name, (long long)st.st_size,
                 PEA_MANIFEST_MAX_SIZE);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    AUTO_FREE char *text = xmalloc(len + 1);
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, text + done, len - done, (off_t)done);
        if (n <= 0) {
            pea_fail(err, n < 0 ? errno : EIO, "read %s", name);
            return NULL;
        }
        done += (size_t)n;
    }
    text[len] = '\0';
    struct pea_pod_manifest *m = manifest_parse_owned(take_ptr(&text), len, err);
    if (!m)
        pea_wrap(err, "%s", name);
    return m;
}

void manifest_free(struct pea_pod_manifest *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->namespace);
    free(m->service_account_name);
    for (size_t i = 0; i < m->n_configs; i++)
        manifest_config_free(&m->configs[i]);
    free(m->configs);
    json_decref(m->labels);
    json_decref(m->annotations);
    free(m->hostname);
    for (size_t i = 0; i < m->n_init_containers; i++)
        manifest_container_free(&m->init_containers[i]);
    free(m->init_containers);
    for (size_t i = 0; i < m->n_containers; i++)
        manifest_container_free(&m->containers[i]);
    free(m->containers);
    for (size_t i = 0; i < m->n_volumes; i++)
        volume_free(&m->volumes[i]);
    free(m->volumes);
    for (size_t i = 0; i < m->n_sysctls; i++) {
        free(m->sysctls[i].name);
        free(m->sysctls[i].value);
    }
    free(m->sysctls);
    manifest_pod_security_free(m);
    strv_free(m->dns_nameservers);
    strv_free(m->dns_searches);
    strv_free(m->dns_options);
    for (size_t i = 0; i < m->n_host_aliases; i++) {
        free(m->host_aliases[i].ip);
        strv_free(m->host_aliases[i].hostnames);
    }
    free(m->host_aliases);
    strv_free(m->notices);
    free(m->netns_path);
    free(m->bridge);
    free(m->address);
    free(m->gateway);
    for (size_t i = 0; i < PEA_MANIFEST_SANDBOX_FIELDS; i++)
        free(m->sandbox_json[i]);
    free(m->source);
    free(m);
}

void manifest_release_source(struct pea_pod_manifest *m)
{
    free(m->source);
    m->source = NULL;
    m->source_len = 0;
}
