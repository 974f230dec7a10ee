/* A container's env (value, or valueFrom fieldRef / resourceFieldRef / configMapKeyRef / secretKeyRef) and envFrom,
 * and the fieldRef and resourceFieldRef that downwardAPI volume items share, validated as the API server does. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "manifest_sources.h"
#include "pea/util.h"

void manifest_value_ref_free(struct pea_value_ref *r)
{
    free(r->name);
    free(r->key);
}

/* e->value, when set, lives in e->name's allocation. */
static void env_entry_free(struct pea_pod_env *e)
{
    free(e->name);
    free(e->entry_json);
    manifest_value_ref_free(&e->from);
}

void manifest_env_free(struct pea_pod_container *c)
{
    for (size_t i = 0; i < c->n_env; i++)
        env_entry_free(&c->env[i]);
    free(c->env);
    for (size_t i = 0; i < c->n_env_from; i++) {
        free(c->env_from[i].name);
        free(c->env_from[i].prefix);
    }
    free(c->env_from);
}

/* Kubernetes' rule for env names (IsRelaxedEnvVarName, the default since 1.32): printable ASCII but '='. It sets no
 * length limit: the kernel's for the whole entry is checked with the value. */
static bool env_name_is_valid(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '=')
            return false;
    return true;
}

/* execve refuses an environment string of 32 pages or more with its NUL (MAX_ARG_STRLEN). */
static size_t env_entry_max(void) { return (size_t)sysconf(_SC_PAGESIZE) * 32; }

/* ---- fieldRef ---- */

/* "metadata.labels['key']" → key (malloc'd) when path is prefix['key'], else NULL. */
static char *subscript_of(const char *path, const char *prefix)
{
    size_t n = strlen(prefix), len = strlen(path);
    if (strncmp(path, prefix, n) != 0 || strncmp(path + n, "['", 2) != 0 || len < n + 4 ||
        strcmp(path + len - 2, "']") != 0)
        return NULL;
    return xasprintf("%.*s", (int)(len - n - 4), path + n + 2);
}

static bool field_path_is_supported(const char *path, bool is_volume)
{
    static const char *const both[] = {"metadata.name", "metadata.namespace", "metadata.uid", NULL};
    static const char *const env_only[] = {"spec.nodeName", "status.hostIP",  "status.hostIPs", "status.podIP",
                                           "status.podIPs", "spec.serviceAccountName", NULL};
    static const char *const volume_only[] = {"metadata.labels", "metadata.annotations", NULL};
    for (const char *const *p = both; *p; p++)
        if (strcmp(path, *p) == 0)
            return true;
    for (const char *const *p = is_volume ? volume_only : env_only; *p; p++)
        if (strcmp(path, *p) == 0)
            return true;
    static const char *const maps[] = {"metadata.labels", "metadata.annotations"};
    for (size_t i = 0; i < ARRAY_SIZE(maps); i++) {
        AUTO_FREE char *key = subscript_of(path, maps[i]);
        if (key)
            return name_is_qualified(key);
    }
    return false;
}

/* Each field's error kept by errors (NULL: the first ends the parse). */
static int parse_field_ref(json_t *obj, const char *parent, bool is_volume, struct pea_value_ref *r,
                           struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"apiVersion", "fieldPath", NULL};
    json_t *ref;
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, parent, "fieldRef");
    AUTO_FREE char *api_version = NULL;
    if (field_get_object(obj, parent, "fieldRef", true, &ref, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (manifest_check_known_each(ref, path, fields, errors, err) < 0)
        return -1;
    int version = field_get_string(ref, path, "apiVersion", false, &api_version, err);
    if (manifest_keep_error(version, errors, err) < 0)
        return -1;
    int field = field_get_string(ref, path, "fieldPath", true, &r->key, err);
    if (manifest_keep_error(field, errors, err) < 0)
        return -1;
    r->source = PEA_VALUE_FIELD;
    if (version == 0 && api_version && strcmp(api_version, "v1") != 0 &&
        manifest_keep_error(field_fail(err, path, "apiVersion", "must be \"v1\", not \"%s\"", api_version), errors,
                            err) < 0)
        return -1;
    if (field == 0 && !field_path_is_supported(r->key, is_volume) &&
        manifest_keep_error(
            field_fail(err, path, "fieldPath",
                       is_volume ? "\"%s\" is not supported (metadata.name, metadata.namespace, metadata.uid, "
                                   "metadata.labels, metadata.annotations, metadata.labels['KEY'], "
                                   "metadata.annotations['KEY'])"
                                 : "\"%s\" is not supported (metadata.name, metadata.namespace, metadata.uid, "
                                   "metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, "
                                   "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, "
                                   "status.podIPs)",
                       r->key),
            errors, err) < 0)
        return -1;
    return 0;
}

int manifest_parse_field_ref(json_t *obj, const char *parent, bool is_volume, struct pea_value_ref *r,
                             struct pea_error *err)
{
    return parse_field_ref(obj, parent, is_volume, r, NULL, err);
}

/* ---- resourceFieldRef ---- */

static bool divisor_is_valid(uint64_t divisor, bool is_cpu)
{
    if (is_cpu)
        return divisor == 1 || divisor == 1000;
    /* 1, then k M G T P E and Ki Mi Gi Ti Pi Ei. */
    uint64_t decimal = 1;
    for (unsigned power = 0; power <= 6; power++, decimal *= 1000)
        if (divisor == decimal || (power > 0 && divisor == 1ULL << (10 * power)))
            return true;
    return false;
}

static int parse_resource_ref(json_t *obj, const char *parent, bool is_volume, struct pea_value_ref *r,
                              struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"containerName", "resource", "divisor", NULL};
    static const char *const resources[] = {"limits.cpu",    "limits.memory",   "limits.ephemeral-storage",
                                            "requests.cpu", "requests.memory", "requests.ephemeral-storage",
                                            NULL};
    json_t *ref;
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, parent, "resourceFieldRef");
    int which = -1;
    if (field_get_object(obj, parent, "resourceFieldRef", true, &ref, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (manifest_check_known_each(ref, path, fields, errors, err) < 0)
        return -1;
    int name = field_get_string(ref, path, "containerName", false, &r->name, err);
    if (manifest_keep_error(name, errors, err) < 0)
        return -1;
    r->source = PEA_VALUE_RESOURCE;
    int resource = !json_object_get(ref, "resource") || json_is_null(json_object_get(ref, "resource"))
                       ? field_fail(err, path, "resource", "missing")
                       : field_get_enum(ref, path, "resource", resources, &which, err);
    if (manifest_keep_error(resource, errors, err) < 0)
        return -1;
    if (resource == 0)
        r->key = xstrdup(resources[which]);
    if (is_volume && name == 0 && !r->name &&
        manifest_keep_error(field_fail(err, path, "containerName",
                                       "missing (a volume's resourceFieldRef must name a container)"),
                            errors, err) < 0)
        return -1;
    /* The divisor's unit depends on the resource: read only once that is known. */
    if (resource < 0)
        return 0;
    bool is_cpu = strstr(r->key, ".cpu") != NULL, has_divisor;
    if (field_get_quantity(ref, path, "divisor", is_cpu, &has_divisor, &r->divisor, err) < 0)
        return manifest_keep_error(-1, errors, err);
    /* An absent or zero divisor is 1 (one core, one byte), as the kubelet takes it. */
    if (!has_divisor || r->divisor == 0)
        r->divisor = is_cpu ? 1000 : 1;
    else if (!divisor_is_valid(r->divisor, is_cpu))
        return manifest_keep_error(
            field_fail(err, path, "divisor",
                       is_cpu ? "must be 1m or 1 for cpu"
                              : "must be one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"),
            errors, err);
    return 0;
}

int manifest_parse_resource_ref(json_t *obj, const char *parent, bool is_volume, struct pea_value_ref *r,
                                struct pea_error *err)
{
    return parse_resource_ref(obj, parent, is_volume, r, NULL, err);
}

/* ---- env ---- */

/* configMapKeyRef / secretKeyRef: {name, key, optional}. */
static int parse_key_ref(json_t *from, const char *parent, const char *key, struct pea_value_ref *r,
                         struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"name", "key", "optional", NULL};
    json_t *ref;
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, parent, key);
    if (field_get_object(from, parent, key, true, &ref, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (manifest_check_known_each(ref, path, fields, errors, err) < 0 ||
        manifest_keep_error(field_get_string(ref, path, "name", true, &r->name, err), errors, err) < 0 ||
        manifest_keep_error(field_get_string(ref, path, "key", true, &r->key, err), errors, err) < 0 ||
        manifest_keep_error(field_get_bool(ref, path, "optional", &r->is_optional, err), errors, err) < 0)
        return -1;
    r->source = strcmp(key, "secretKeyRef") == 0 ? PEA_VALUE_SECRET_KEY : PEA_VALUE_CONFIG_MAP_KEY;
    return 0;
}

static int parse_value_from(json_t *e, const char *item, struct pea_value_ref *r, struct manifest_collector *errors,
                            struct pea_error *err)
{
    static const char *const kinds[] = {"fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", NULL};
    json_t *from;
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, item, "valueFrom");
    if (field_get_object(e, item, "valueFrom", true, &from, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (manifest_check_known_each(from, path, kinds, errors, err) < 0)
        return -1;
    const char *kind = NULL;
    for (size_t i = 0; kinds[i]; i++) {
        json_t *k = json_object_get(from, kinds[i]);
        if (!k || json_is_null(k))
            continue;
        if (kind)
            return manifest_keep_error(pea_fail(err, 0, "%s: may not have more than one of fieldRef, "
                                                "resourceFieldRef, configMapKeyRef, secretKeyRef", path),
                                       errors, err);
        kind = kinds[i];
    }
    if (!kind)
        return manifest_keep_error(pea_fail(err, 0, "%s: must have one of fieldRef, resourceFieldRef, "
                                            "configMapKeyRef, secretKeyRef", path),
                                   errors, err);
    if (strcmp(kind, "fieldRef") == 0)
        return parse_field_ref(from, path, false, r, errors, err);
    if (strcmp(kind, "resourceFieldRef") == 0)
        return parse_resource_ref(from, path, false, r, errors, err);
    return parse_key_ref(from, path, kind, r, errors, err);
}

/* The name and the value in one allocation: a manifest of many small entries is mostly these. */
static void env_entry_pack(struct pea_pod_env *e, const char *value)
{
    size_t name_len = strlen(e->name), value_len = strlen(value);
    char *both = xmalloc(name_len + value_len + 2);
    memcpy(both, e->name, name_len + 1);
    memcpy(both + name_len + 1, value, value_len + 1);
    free(e->name);
    e->name = both;
    e->value = both + name_len + 1;
}

/* An entry of env, at item ("spec.containers[0].env[3]", or "env[3]" while the YAML is read), each field's error
 * kept by errors (NULL: the first ends the parse). */
static int parse_env_entry(json_t *j, const char *item, struct pea_pod_env *e, struct manifest_collector *errors,
                           struct pea_error *err)
{
    static const char *const env_fields[] = {"name", "value", "valueFrom", NULL};
    AUTO_FREE char *value = NULL;
    if (!json_is_object(j))
        return manifest_keep_error(pea_fail(err, 0, "%s: must be an object", item), errors, err);
    if (manifest_check_known_each(j, item, env_fields, errors, err) < 0)
        return -1;
    int name = field_get_string(j, item, "name", true, &e->name, err);
    if (manifest_keep_error(name, errors, err) < 0)
        return -1;
    int has_value = field_get_string(j, item, "value", false, &value, err);
    if (manifest_keep_error(has_value, errors, err) < 0)
        return -1;
    if (name == 0 && !env_name_is_valid(e->name)) {
        name = field_fail(err, item, "name", "must be printable ASCII characters other than '=', at least one");
        if (manifest_keep_error(name, errors, err) < 0)
            return -1;
    }
    json_t *from = json_object_get(j, "valueFrom");
    bool has_from = from && !json_is_null(from);
    /* As Kubernetes: valueFrom only with an empty value, which it then replaces. */
    if (has_from && value && value[0] &&
        manifest_keep_error(field_fail(err, item, "valueFrom", "may not be given when value is not empty"), errors,
                            err) < 0)
        return -1;
    if (has_from && parse_value_from(j, item, &e->from, errors, err) < 0)
        return -1;
    if (!has_from && name == 0 && has_value == 0) {
        if (strlen(e->name) + 1 + (value ? strlen(value) : 0) >= env_entry_max())
            return manifest_keep_error(
                pea_fail(err, 0, "%s: NAME=VALUE longer than %zu bytes, the kernel's limit for one environment entry",
                         item, env_entry_max() - 1),
                errors, err);
        env_entry_pack(e, value ? value : "");
    }
    /* {name, value} as two strings is all there is to compare; anything else is compared as written. */
    if (json_object_size(j) != 2 || !json_is_string(json_object_get(j, "value")))
        e->entry_json = manifest_canonical_json(j);
    return 0;
}

/* ---- env lists read as the YAML is parsed ---- */

/* The lists the parse of one manifest may take (manifest_env_lists_use): pea parses on one thread, but a second
 * thread would have its own. */
static _Thread_local const struct manifest_env_lists *lists_in_use;

void manifest_env_lists_use(const struct manifest_env_lists *lists) { lists_in_use = lists; }

struct manifest_env_list *manifest_env_lists_add(struct manifest_env_lists *lists, json_t *placeholder)
{
    lists->lists = xrealloc(lists->lists, (lists->n + 1) * sizeof *lists->lists);
    struct manifest_env_list *l = xcalloc(1, sizeof *l);
    l->placeholder = placeholder;
    lists->lists[lists->n++] = l;
    return l;
}

/* Every entry is parsed for its errors; once one had any, the entries after it are parsed for theirs alone and
 * dropped (the manifest fails: they would only take memory). */
void manifest_env_list_read(struct manifest_env_list *l, json_t *entry)
{
    size_t index = l->n_read++;
    struct pea_pod_env dropped = {0}, *e = &dropped;
    if (!l->has_error) {
        if (l->n_env == l->capacity) {
            l->capacity = l->capacity ? 2 * l->capacity : 16;
            l->env = xrealloc(l->env, l->capacity * sizeof *l->env);
        }
        e = &l->env[l->n_env];
        *e = (struct pea_pod_env){0};
    }
    char item[FIELD_PATH_MAX];
    snprintf(item, sizeof item, "env[%zu]", index);
    /* The entry under its own path, so that its errors come in the order of its fields, as from the tree. */
    AUTO_JSON json_t *doc = json_pack("{s:O}", item, entry);
    struct manifest_collector found = {.doc = doc};
    struct pea_error err = {0};
    parse_env_entry(entry, item, e, &found, &err);
    if (found.n) {
        struct pea_manifest_errors lines;
        manifest_collector_finish(&found, &lines);
        l->errors = xrealloc(l->errors, (l->n_errors + lines.n + 1) * sizeof *l->errors);
        for (size_t i = 0; i < lines.n; i++)
            l->errors[l->n_errors++] = lines.lines[i];
        l->errors[l->n_errors] = NULL;
        free(lines.lines);
        l->has_error = true;
    }
    if (e == &dropped || found.n)
        env_entry_free(e);
    else
        l->n_env++;
    json_decref(entry);
}

void manifest_env_lists_free(struct manifest_env_lists *lists)
{
    for (size_t i = 0; i < lists->n; i++) {
        struct manifest_env_list *l = lists->lists[i];
        for (size_t k = 0; k < l->n_env; k++)
            env_entry_free(&l->env[k]);
        free(l->env);
        strv_free(l->errors);
        free(l);
    }
    free(lists->lists);
    *lists = (struct manifest_env_lists){0};
}

static struct manifest_env_list *env_list_read_for(json_t *env)
{
    for (size_t i = 0; lists_in_use && i < lists_in_use->n; i++)
        if (lists_in_use->lists[i]->placeholder == env)
            return lists_in_use->lists[i];
    return NULL;
}

/* The list read as the YAML was parsed: its bad entries' errors, named from path, as the loop below would have
 * said them; else its entries, moved to c. */
static int env_list_take(struct manifest_env_list *l, const char *path, struct pea_pod_container *c,
                         struct manifest_collector *errors, struct pea_error *err)
{
    if (l->has_error) {
        for (size_t i = 0; i < l->n_errors; i++)
            if (manifest_keep_error(pea_fail(err, 0, "%s.%s", path, l->errors[i]), errors, err) < 0)
                return -1;
        return 0;
    }
    c->n_env = l->n_env;
    c->env = l->n_env ? xrealloc(take_ptr(&l->env), l->n_env * sizeof *c->env) : xcalloc(0, sizeof *c->env);
    l->n_env = l->capacity = 0;
    return 0;
}

static int parse_env_list(json_t *obj, const char *path, struct pea_pod_container *c,
                          struct manifest_collector *errors, struct pea_error *err)
{
    json_t *env;
    if (field_get_array(obj, path, "env", &env, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (!env)
        return 0;
    struct manifest_env_list *read = env_list_read_for(env);
    if (read)
        return env_list_take(read, path, c, errors, err);
    c->n_env = json_array_size(env);
    c->env = xcalloc(c->n_env, sizeof *c->env);
    for (size_t i = 0; i < c->n_env; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.env[%zu]", path, i);
        if (parse_env_entry(json_array_get(env, i), item, &c->env[i], errors, err) < 0)
            return -1;
    }
    return 0;
}

/* One entry of envFrom, each field's error kept by errors. */
static int parse_env_from_entry(json_t *j, const char *item, struct pea_pod_env_from *f,
                                struct manifest_collector *errors, struct pea_error *err)
{
    static const char *const fields[] = {"prefix", "configMapRef", "secretRef", NULL};
    static const char *const ref_fields[] = {"name", "optional", NULL};
    json_t *config_map = NULL, *secret = NULL;
    char ref_path[FIELD_PATH_MAX];
    if (!json_is_object(j))
        return manifest_keep_error(pea_fail(err, 0, "%s: must be an object", item), errors, err);
    if (manifest_check_known_each(j, item, fields, errors, err) < 0)
        return -1;
    int prefix = field_get_string(j, item, "prefix", false, &f->prefix, err);
    if (manifest_keep_error(prefix, errors, err) < 0)
        return -1;
    int refs = field_get_object(j, item, "configMapRef", false, &config_map, err);
    if (manifest_keep_error(refs, errors, err) < 0)
        return -1;
    int secret_ref = field_get_object(j, item, "secretRef", false, &secret, err);
    if (manifest_keep_error(secret_ref, errors, err) < 0)
        return -1;
    refs = refs < 0 || secret_ref < 0 ? -1 : 0;
    if (refs == 0 && !config_map == !secret) {
        refs = pea_fail(err, 0, "%s: needs exactly one of configMapRef, secretRef", item);
        if (manifest_keep_error(refs, errors, err) < 0)
            return -1;
    }
    if (prefix == 0 && f->prefix && f->prefix[0] && !env_name_is_valid(f->prefix) &&
        manifest_keep_error(field_fail(err, item, "prefix", "must be printable ASCII characters other than '='"),
                            errors, err) < 0)
        return -1;
    if (refs < 0)
        return 0;
    f->is_secret = secret != NULL;
    json_t *ref = secret ? secret : config_map;
    field_path(ref_path, sizeof ref_path, item, secret ? "secretRef" : "configMapRef");
    if (manifest_check_known_each(ref, ref_path, ref_fields, errors, err) < 0 ||
        manifest_keep_error(field_get_string(ref, ref_path, "name", true, &f->name, err), errors, err) < 0 ||
        manifest_keep_error(field_get_bool(ref, ref_path, "optional", &f->is_optional, err), errors, err) < 0)
        return -1;
    return 0;
}

static int parse_env_from(json_t *obj, const char *path, struct pea_pod_container *c,
                          struct manifest_collector *errors, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(obj, path, "envFrom", &list, err) < 0)
        return manifest_keep_error(-1, errors, err);
    if (!list)
        return 0;
    c->n_env_from = json_array_size(list);
    c->env_from = xcalloc(c->n_env_from, sizeof *c->env_from);
    for (size_t i = 0; i < c->n_env_from; i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.envFrom[%zu]", path, i);
        if (parse_env_from_entry(json_array_get(list, i), item, &c->env_from[i], errors, err) < 0)
            return -1;
    }
    return 0;
}

int manifest_parse_env(json_t *obj, const char *path, struct pea_pod_container *c,
                       struct manifest_collector *errors, struct pea_error *err)
{
    return parse_env_from(obj, path, c, errors, err) < 0 ? -1 : parse_env_list(obj, path, c, errors, err);
}
