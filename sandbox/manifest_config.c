/* ConfigMaps and Secrets beside the Pod: the documents of a file (JSON values, then YAML documents), their parsing
 * and checks as the API server makes them, --configmap / --secret files joined to the manifest's source, and the
 * check that everything the pod names exists (the kubelet would keep such a container waiting with
 * CreateContainerConfigError until it appears; on one machine nothing else will make it appear, so pea fails at
 * once). Secret values never reach an error message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_internal.h"
#include "manifest_sources.h"
#include "pea/util.h"

/* ---- documents ---- */

json_t *manifest_documents(const char *text, size_t len, struct manifest_env_lists *env_lists, struct pea_error *err)
{
    AUTO_JSON json_t *docs = json_array();
    size_t pos = 0, line = 0, line_start = 0;
    for (;;) {
        while (pos < len && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r' || text[pos] == '\n')) {
            if (text[pos] == '\n') {
                line++;
                line_start = pos + 1;
            }
            pos++;
        }
        if (pos == len)
            return take_ptr(&docs);
        if (text[pos] != '{')
            break;
        json_error_t jerr;
        json_t *doc = json_loadb(text + pos, len - pos, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &jerr);
        if (!doc) {
            pea_fail(err, 0, "line %zu column %d: %s", line + (size_t)jerr.line, jerr.column, jerr.text);
            return NULL;
        }
        json_array_append_new(docs, doc);
        for (size_t end = pos + (size_t)jerr.position; pos < end; pos++)
            if (text[pos] == '\n') {
                line++;
                line_start = pos + 1;
            }
        line_start = pos > line_start ? pos : line_start;
    }
    /* From the start of the line: a YAML document's indentation counts. */
    json_t *rest = manifest_yaml_documents(text + line_start, len - line_start, line, env_lists, err);
    if (!rest)
        return NULL;
    json_array_extend(docs, rest);
    json_decref(rest);
    return take_ptr(&docs);
}

struct pea_pod_manifest *manifest_from_text(const char *text, size_t len, bool check_references,
                                            struct pea_error *err)
{
    __attribute__((cleanup(manifest_env_lists_free))) struct manifest_env_lists env_lists = {0};
    AUTO_JSON json_t *docs = manifest_documents(text, len, &env_lists, err);
    if (!docs)
        return NULL;
    manifest_env_lists_use(&env_lists);
    struct pea_pod_manifest *m = manifest_from_documents(docs, check_references, err);
    manifest_env_lists_use(NULL);
    return m;
}

/* ---- base64 ---- */

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int manifest_base64_decode(const char *text, size_t len, char **out, size_t *out_len)
{
    AUTO_FREE char *buf = xmalloc(len / 4 * 3 + 4);
    size_t n = 0, quad = 0, pad = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        /* Go's decoder, which reads Secret data, skips line breaks. */
        if (c == '\r' || c == '\n')
            continue;
        int v = base64_value(c);
        if (c == '=') {
            /* Padding only in the last two places of the last quad. */
            if (quad < 2)
                return -1;
            pad++;
            v = 0;
        } else if (v < 0 || pad) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++quad < 4)
            continue;
        buf[n++] = (char)(acc >> 16);
        if (pad < 2)
            buf[n++] = (char)(acc >> 8);
        if (pad < 1)
            buf[n++] = (char)acc;
        /* Anything after padding is an error, as for Go's StdEncoding. */
        if (pad)
            for (size_t j = i + 1; j < len; j++)
                if (text[j] != '\r' && text[j] != '\n')
                    return -1;
        quad = 0;
        acc = 0;
    }
    if (quad != 0)
        return -1;
    buf[n] = '\0';
    *out_len = n;
    *out = take_ptr(&buf);
    return 0;
}

/* ---- ConfigMap and Secret ---- */

/* Kubernetes' limit on a ConfigMap's or Secret's data (MaxSecretSize, and the ConfigMap check beside it). */
#define CONFIG_MAX_BYTES (1024 * 1024)

void manifest_config_free(struct pea_config_object *o)
{
    free(o->name);
    for (size_t i = 0; i < o->n_entries; i++) {
        free(o->entries[i].key);
        free(o->entries[i].value);
    }
    free(o->entries);
}

/* IsConfigMapKey: [-._a-zA-Z0-9]+, at most 253, not "." or "..", not starting with "..". */
static bool config_key_is_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 253 || strspn(key, "-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
        return false;
    return strcmp(key, ".") != 0 && strncmp(key, "..", 2) != 0;
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const struct pea_config_entry *)a)->key, ((const struct pea_config_entry *)b)->key);
}

const struct pea_config_entry *manifest_config_entry(const struct pea_config_object *o, const char *key)
{
    struct pea_config_entry wanted = {.key = (char *)key};
    return o ? bsearch(&wanted, o->entries, o->n_entries, sizeof wanted, compare_entries) : NULL;
}

/* A key given again replaces the earlier value (a Secret's stringData over its data). */
static bool has_key(const struct pea_config_object *o, const char *key)
{
    for (size_t i = 0; i < o->n_entries; i++)
        if (strcmp(o->entries[i].key, key) == 0)
            return true;
    return false;
}

static void add_entry(struct pea_config_object *o, const char *key, char *value, size_t len, bool is_binary)
{
    for (size_t i = 0; i < o->n_entries; i++)
        if (strcmp(o->entries[i].key, key) == 0) {
            free(o->entries[i].value);
            o->entries[i].value = value;
            o->entries[i].len = len;
            o->entries[i].is_binary = is_binary;
            return;
        }
    o->entries = xrealloc(o->entries, (o->n_entries + 1) * sizeof *o->entries);
    o->entries[o->n_entries++] = (struct pea_config_entry){xstrdup(key), value, len, is_binary};
}

/* One of data, binaryData, stringData: an object of strings, each base64 when is_base64. */
static int read_entries(json_t *doc, const char *where, const char *field, bool is_base64, bool is_binary,
                        struct pea_config_object *o, struct pea_error *err)
{
    json_t *map = json_object_get(doc, field);
    if (!map || json_is_null(map))
        return 0;
    if (!json_is_object(map))
        return pea_fail(err, 0, "%s: %s: must be an object", where, field);
    const char *key;
    json_t *value;
    json_object_foreach(map, key, value) {
        if (!config_key_is_valid(key))
            return pea_fail(err, 0, "%s: %s.%s: a key must be at most 253 of [-._a-zA-Z0-9], not \".\", \"..\" "
                            "or starting with \"..\"", where, field, key);
        if (!json_is_string(value))
            return pea_fail(err, 0, "%s: %s.%s: must be a string", where, field, key);
        if (is_binary && has_key(o, key))
            return pea_fail(err, 0, "%s: key %s is in both data and binaryData", where, key);
        char *bytes;
        size_t len;
        if (is_base64) {
            if (manifest_base64_decode(json_string_value(value), json_string_length(value), &bytes, &len) < 0)
                return pea_fail(err, 0, "%s: %s.%s: not valid base64", where, field, key);
        } else {
            len = json_string_length(value);
            bytes = xmalloc(len + 1);
            memcpy(bytes, json_string_value(value), len + 1);
        }
        add_entry(o, key, bytes, len, is_binary);
    }
    return 0;
}

int manifest_parse_config(json_t *doc, const char *where, bool is_secret, struct pea_config_object *o,
                          struct pea_error *err)
{
    static const char *const config_map_fields[] = {"apiVersion", "kind", "metadata", "data", "binaryData",
                                                    "immutable", NULL};
    static const char *const secret_fields[] = {"apiVersion", "kind", "metadata", "data", "stringData", "type",
                                                "immutable", NULL};
    static const char *const metadata_fields[] = {"name", "namespace", "labels", "annotations", NULL};
    char path[FIELD_PATH_MAX];
    snprintf(path, sizeof path, "%s", where);
    o->is_secret = is_secret;
    AUTO_FREE char *api_version = NULL;
    json_t *meta;
    if (field_check_known(doc, "", is_secret ? secret_fields : config_map_fields, err) < 0 ||
        field_get_string(doc, "", "apiVersion", true, &api_version, err) < 0 ||
        field_get_object(doc, "", "metadata", true, &meta, err) < 0 ||
        field_check_known(meta, "metadata", metadata_fields, err) < 0 ||
        field_get_string(meta, "metadata", "name", true, &o->name, err) < 0 ||
        field_get_string(meta, "metadata", "namespace", false, NULL, err) < 0 ||
        field_get_bool(doc, "", "immutable", &o->is_immutable, err) < 0 ||
        (is_secret && field_get_string(doc, "", "type", false, NULL, err) < 0))
        return pea_wrap(err, "%s", path);
    AUTO_JSON json_t *labels = NULL, *annotations = NULL;
    if (field_get_string_map(meta, "metadata", "labels", &labels, err) < 0 ||
        field_get_string_map(meta, "metadata", "annotations", &annotations, err) < 0)
        return pea_wrap(err, "%s", path);
    if (strcmp(api_version, "v1") != 0)
        return pea_fail(err, 0, "%s: apiVersion: must be \"v1\", not \"%s\"", path, api_version);
    if (!name_is_dns_subdomain(o->name, 253))
        return pea_fail(err, 0, "%s: metadata.name: must be a DNS subdomain, not \"%s\"", path, o->name);
    snprintf(path, sizeof path, "%s %s", is_secret ? "Secret" : "ConfigMap", o->name);
    if (read_entries(doc, path, "data", is_secret, false, o, err) < 0)
        return -1;
    if (is_secret) {
        /* stringData is merged into data, its values winning. */
        if (read_entries(doc, path, "stringData", false, false, o, err) < 0)
            return -1;
    } else if (read_entries(doc, path, "binaryData", true, true, o, err) < 0) {
        return -1;
    }
    size_t total = 0;
    for (size_t i = 0; i < o->n_entries; i++)
        total += strlen(o->entries[i].key) + o->entries[i].len;
    if (total > CONFIG_MAX_BYTES)
        return pea_fail(err, 0, "%s: %zu bytes of data, more than Kubernetes' 1 MiB", path, total);
    if (o->n_entries)
        qsort(o->entries, o->n_entries, sizeof *o->entries, compare_entries);
    return 0;
}

const struct pea_config_object *manifest_config_find(const struct pea_pod_manifest *m, const char *name,
                                                     bool is_secret)
{
    for (size_t i = 0; i < m->n_configs; i++)
        if (m->configs[i].is_secret == is_secret && strcmp(m->configs[i].name, name) == 0)
            return &m->configs[i];
    return NULL;
}

static bool same_entries(const struct pea_config_object *a, const struct pea_config_object *b)
{
    if (a->n_entries != b->n_entries)
        return false;
    for (size_t i = 0; i < a->n_entries; i++)
        if (strcmp(a->entries[i].key, b->entries[i].key) != 0 || a->entries[i].len != b->entries[i].len ||
            a->entries[i].is_binary != b->entries[i].is_binary ||
            memcmp(a->entries[i].value, b->entries[i].value, a->entries[i].len) != 0)
            return false;
    return true;
}

int manifest_check_immutable(const struct pea_pod_manifest *old, const struct pea_pod_manifest *new,
                             struct pea_error *err)
{
    for (size_t i = 0; i < old->n_configs; i++) {
        const struct pea_config_object *before = &old->configs[i];
        const struct pea_config_object *after = manifest_config_find(new, before->name, before->is_secret);
        /* Deleting an immutable object is allowed, changing it is not. */
        if (!before->is_immutable || !after)
            continue;
        if (!after->is_immutable || !same_entries(before, after))
            return pea_fail(err, 0, "%s %s is immutable: its data cannot change (apply --recreate makes the pod anew)",
                            before->is_secret ? "Secret" : "ConfigMap", before->name);
    }
    return 0;
}

/* ---- what the pod names ---- */

static const char *kind_name(bool is_secret) { return is_secret ? "Secret" : "ConfigMap"; }

#define WAITING_NOTE "the kubelet would keep the container waiting (CreateContainerConfigError); pea fails at once"

static int check_key(const struct pea_pod_manifest *m, const char *where, const char *name, const char *key,
                     bool is_secret, bool is_optional, bool data_only, struct pea_error *err)
{
    const struct pea_config_object *o = manifest_config_find(m, name, is_secret);
    if (!o)
        return is_optional ? 0 : pea_fail(err, 0, "%s: %s \"%s\" not found (" WAITING_NOTE ")", where,
                                          kind_name(is_secret), name);
    const struct pea_config_entry *e = key ? manifest_config_entry(o, key) : NULL;
    /* A ConfigMap's binaryData is for files only; env reads data. */
    if (key && (!e || (data_only && !is_secret && e->is_binary)) && !is_optional)
        return pea_fail(err, 0, "%s: key \"%s\" not found in %s \"%s\" (" WAITING_NOTE ")", where, key,
                        kind_name(is_secret), name);
    return 0;
}

static bool has_container(const struct pea_pod_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_containers; i++)
        if (strcmp(m->containers[i].name, name) == 0)
            return true;
    for (size_t i = 0; i < m->n_init_containers; i++)
        if (strcmp(m->init_containers[i].name, name) == 0)
            return true;
    return false;
}

static int check_resource_container(const struct pea_pod_manifest *m, const char *where,
                                    const struct pea_value_ref *r, struct pea_error *err)
{
    if (r->source == PEA_VALUE_RESOURCE && r->name && !has_container(m, r->name))
        return pea_fail(err, 0, "%s.resourceFieldRef.containerName: no container \"%s\" in the pod", where, r->name);
    return 0;
}

static int check_container(const struct pea_pod_manifest *m, const struct pea_pod_container *c, const char *path,
                           struct pea_error *err)
{
    char where[FIELD_PATH_MAX];
    for (size_t i = 0; i < c->n_env; i++) {
        const struct pea_value_ref *r = &c->env[i].from;
        snprintf(where, sizeof where, "%s.env[%zu].valueFrom", path, i);
        if (check_resource_container(m, where, r, err) < 0)
            return -1;
        if ((r->source == PEA_VALUE_CONFIG_MAP_KEY || r->source == PEA_VALUE_SECRET_KEY) &&
            check_key(m, where, r->name, r->key, r->source == PEA_VALUE_SECRET_KEY, r->is_optional, true, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < c->n_env_from; i++) {
        const struct pea_pod_env_from *f = &c->env_from[i];
        snprintf(where, sizeof where, "%s.envFrom[%zu]", path, i);
        if (check_key(m, where, f->name, NULL, f->is_secret, f->is_optional, true, err) < 0)
            return -1;
    }
    return 0;
}

static int check_volume(const struct pea_pod_manifest *m, size_t index, struct pea_error *err)
{
    const struct pea_pod_volume *v = &m->volumes[index];
    for (size_t p = 0; p < v->n_projections; p++) {
        const struct pea_projection *proj = &v->projections[p];
        char where[FIELD_PATH_MAX];
        snprintf(where, sizeof where, "spec.volumes[%zu] (%s)", index, v->name);
        for (size_t i = 0; i < proj->n_items; i++)
            if (check_resource_container(m, where, &proj->items[i].ref, err) < 0)
                return -1;
        if (proj->kind == PEA_PROJECT_DOWNWARD_API)
            continue;
        bool is_secret = proj->kind == PEA_PROJECT_SECRET;
        if (check_key(m, where, proj->name, NULL, is_secret, proj->is_optional, false, err) < 0)
            return -1;
        for (size_t i = 0; i < proj->n_items; i++)
            if (check_key(m, where, proj->name, proj->items[i].key, is_secret, proj->is_optional, false, err) < 0)
                return -1;
    }
    return 0;
}

int manifest_check_references(const struct pea_pod_manifest *m, struct pea_error *err)
{
    for (size_t i = 0; i < m->n_volumes; i++)
        if (check_volume(m, i, err) < 0)
            return -1;
    char path[FIELD_PATH_MAX];
    for (size_t i = 0; i < m->n_init_containers; i++) {
        snprintf(path, sizeof path, "spec.initContainers[%zu]", i);
        if (check_container(m, &m->init_containers[i], path, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < m->n_containers; i++) {
        snprintf(path, sizeof path, "spec.containers[%zu]", i);
        if (check_container(m, &m->containers[i], path, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- a file of documents ---- */

static const char *doc_kind(json_t *doc) { return json_string_value(json_object_get(doc, "kind")); }

/* Add a ConfigMap or Secret document to m; where names it ("document 3", "cm.yaml: document 1"). */
int manifest_add_config(struct pea_pod_manifest *m, json_t *doc, const char *where, bool is_secret,
                        struct pea_error *err)
{
    struct pea_config_object o = {0};
    if (manifest_parse_config(doc, where, is_secret, &o, err) < 0) {
        manifest_config_free(&o);
        return -1;
    }
    if (manifest_config_find(m, o.name, is_secret)) {
        pea_fail(err, 0, "%s: %s \"%s\" is given twice", where, kind_name(is_secret), o.name);
        manifest_config_free(&o);
        return -1;
    }
    m->configs = xrealloc(m->configs, (m->n_configs + 1) * sizeof *m->configs);
    m->configs[m->n_configs++] = o;
    return 0;
}

struct pea_pod_manifest *manifest_from_documents(json_t *docs, bool check_references, struct pea_error *err)
{
    size_t n = json_array_size(docs);
    json_t *pod_doc = NULL;
    size_t pod_index = 0;
    /* One document is the Pod, whatever it says: its own errors name its fields. */
    if (n <= 1)
        pod_doc = n ? json_array_get(docs, 0) : json_null();
    for (size_t i = 0; n > 1 && i < n; i++) {
        json_t *doc = json_array_get(docs, i);
        const char *kind = doc_kind(doc);
        if (json_is_null(doc))
            continue; /* an empty document, as between two "---" */
        if (!json_is_object(doc) || !kind) {
            pea_fail(err, 0, "document %zu: must be an object with a kind", i + 1);
            return NULL;
        }
        if (strcmp(kind, "Pod") == 0) {
            if (pod_doc) {
                pea_fail(err, 0, "document %zu: a second Pod (documents %zu and %zu); pea runs one Pod per file",
                         i + 1, pod_index + 1, i + 1);
                return NULL;
            }
            pod_doc = doc;
            pod_index = i;
        } else if (strcmp(kind, "ConfigMap") != 0 && strcmp(kind, "Secret") != 0 && !manifest_is_claim_kind(kind)) {
            pea_fail(err, 0, "document %zu: kind \"%s\" is not supported beside a Pod (ConfigMap, Secret and "
                     "PersistentVolumeClaim are)", i + 1, kind);
            return NULL;
        }
    }
    if (!pod_doc) {
        pea_fail(err, 0, "no Pod among the %zu documents", n);
        return NULL;
    }
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest_from_pod_json(pod_doc, err);
    if (!m)
        return NULL;
    for (size_t i = 0; n > 1 && i < n; i++) {
        json_t *doc = json_array_get(docs, i);
        if (i == pod_index || json_is_null(doc))
            continue;
        char where[64];
        snprintf(where, sizeof where, "document %zu", i + 1);
        if (manifest_is_claim_kind(doc_kind(doc))) {
            bool has_storage;
            AUTO_FREE char *claim = NULL;
            if (manifest_check_claim(doc, where, &has_storage, &claim, err) < 0)
                return NULL;
            continue;
        }
        if (manifest_add_config(m, doc, where, strcmp(doc_kind(doc), "Secret") == 0, err) < 0)
            return NULL;
    }
    if (check_references && manifest_check_references(m, err) < 0)
        return NULL;
    return take_ptr(&m);
}

/* A --configmap or --secret file, checked on its own (errors name it and its lines), as compact JSON lines. */
int manifest_read_config_file(const char *path, bool is_secret, struct pea_pod_manifest *scratch, char **lines,
                              size_t *lines_len, struct pea_error *err)
{
    size_t len;
    AUTO_FREE char *text = manifest_read_file(path, &len, err);
    if (!text)
        return -1;
    AUTO_JSON json_t *docs = manifest_documents(text, len, NULL, err);
    if (!docs)
        return pea_wrap(err, "%s", path);
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
        if (json_is_null(doc))
            continue;
        const char *kind = doc_kind(doc);
        char where[64];
        snprintf(where, sizeof where, "document %zu", i + 1);
        if (!kind || strcmp(kind, kind_name(is_secret)) != 0)
            return pea_fail(err, 0, "%s: %s: kind must be %s (given with --%s)", path, where, kind_name(is_secret),
                            is_secret ? "secret" : "configmap");
        if (manifest_add_config(scratch, doc, where, is_secret, err) < 0)
            return pea_wrap(err, "%s", path);
        AUTO_FREE char *line = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t n = strlen(line);
        *lines = xrealloc(*lines, *lines_len + n + 2);
        memcpy(*lines + *lines_len, line, n);
        (*lines)[*lines_len + n] = '\n';
        *lines_len += n + 1;
        (*lines)[*lines_len] = '\0';
    }
    return 0;
}

struct pea_pod_manifest *manifest_load_with_configs(const char *path, char *const *configmap_files,
                                                    char *const *secret_files, struct pea_error *err)
{
    if (strv_len(configmap_files) + strv_len(secret_files) == 0)
        return manifest_load(path, err);
    /* The Pod's file first, on its own and without the reference checks: its errors then carry its own lines. */
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
    size_t pod_len;
    AUTO_FREE char *pod_text = manifest_read_file(path, &pod_len, err);
    if (!pod_text)
        return NULL;
    AUTO_MANIFEST struct pea_pod_manifest *alone = manifest_from_text(pod_text, pod_len, false, err);
    if (!alone) {
        pea_wrap(err, "%s", name);
        return NULL;
    }
    /* The other files' documents go first, one JSON line each: the reader takes JSON values before YAML, so the
     * Pod's text follows as given, YAML or JSON. */
    AUTO_FREE char *lines = xstrdup("");
    size_t lines_len = 0;
    for (size_t k = 0; k < 2; k++) {
        char *const *files = k ? secret_files : configmap_files;
        for (size_t i = 0; files && files[i]; i++)
            if (manifest_read_config_file(files[i], k == 1, alone, &lines, &lines_len, err) < 0)
                return NULL;
    }
    if (lines_len + pod_len > PEA_MANIFEST_MAX_SIZE) {
        pea_fail(err, 0, "%s with its ConfigMaps and Secrets: %zu bytes, larger than %d (" PEA_MANIFEST_LIMIT_TEXT
                 ")", name, lines_len + pod_len, PEA_MANIFEST_MAX_SIZE);
        return NULL;
    }
    char *combined = xmalloc(lines_len + pod_len + 1);
    memcpy(combined, lines, lines_len);
    memcpy(combined + lines_len, pod_text, pod_len);
    combined[lines_len + pod_len] = '\0';
    struct pea_pod_manifest *m = manifest_parse_owned(combined, lines_len + pod_len, err);
    if (!m)
        pea_wrap(err, "%s", name);
    return m;
}
