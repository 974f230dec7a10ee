/* Volumes made of files pea writes: configMap, secret, downwardAPI and projected, each parsed into a list of
 * projections (a configMap volume is a projected volume of one configMap source). */
#include <stdio.h>
#include <string.h>

#include "manifest_internal.h"
#include "manifest_sources.h"
#include "pea/util.h"

/* Kubernetes' default for every file volume's defaultMode (ConfigMap-, Secret-, DownwardAPI-, Projected-
 * VolumeSourceDefaultMode). */
#define FILE_VOLUME_DEFAULT_MODE 0644

void manifest_file_volume_free(struct pea_pod_volume *v)
{
    for (size_t p = 0; p < v->n_projections; p++) {
        struct pea_projection *proj = &v->projections[p];
        free(proj->name);
        for (size_t i = 0; i < proj->n_items; i++) {
            free(proj->items[i].key);
            free(proj->items[i].path);
            manifest_value_ref_free(&proj->items[i].ref);
        }
        free(proj->items);
    }
    free(v->projections);
}

static int get_mode(json_t *obj, const char *path, const char *key, bool *present, uint32_t *mode,
                    struct pea_error *err)
{
    long long value = 0;
    if (field_get_int(obj, path, key, 0, 0777, present, &value, err) < 0)
        return -1;
    *mode = (uint32_t)value;
    return 0;
}

/* validateLocalNonReservedPath: relative, no ".." component, not starting with "..". */
static int check_item_path(const char *item, const char *p, struct pea_error *err)
{
    if (!p[0] || p[0] == '/' || !path_is_confined(p) || strncmp(p, "..", 2) == 0)
        return field_fail(err, item, "path", "must be a relative path without \"..\" and not starting with \"..\"");
    return 0;
}

static int parse_items(json_t *source, const char *path, bool is_downward, struct pea_projection *proj,
                       struct pea_error *err)
{
    static const char *const key_fields[] = {"key", "path", "mode", NULL};
    static const char *const downward_fields[] = {"path", "fieldRef", "resourceFieldRef", "mode", NULL};
    json_t *list;
    if (field_get_array(source, path, "items", &list, err) < 0)
        return -1;
    proj->has_items = list != NULL;
    if (!list)
        return 0;
    proj->n_items = json_array_size(list);
    proj->items = xcalloc(proj->n_items ? proj->n_items : 1, sizeof *proj->items);
    for (size_t i = 0; i < proj->n_items; i++) {
        struct pea_projection_item *it = &proj->items[i];
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "%s.items[%zu]", path, i);
        json_t *j = json_array_get(list, i);
        if (!json_is_object(j))
            return pea_fail(err, 0, "%s: must be an object", item);
        if (field_check_known(j, item, is_downward ? downward_fields : key_fields, err) < 0 ||
            (!is_downward && field_get_string(j, item, "key", true, &it->key, err) < 0) ||
            field_get_string(j, item, "path", true, &it->path, err) < 0 ||
            get_mode(j, item, "mode", &it->has_mode, &it->mode, err) < 0 || check_item_path(item, it->path, err) < 0)
            return -1;
        if (!is_downward)
            continue;
        json_t *field = json_object_get(j, "fieldRef"), *resource = json_object_get(j, "resourceFieldRef");
        bool has_field = field && !json_is_null(field), has_resource = resource && !json_is_null(resource);
        if (has_field == has_resource)
            return pea_fail(err, 0, "%s: needs exactly one of fieldRef, resourceFieldRef", item);
        if (has_field ? manifest_parse_field_ref(j, item, true, &it->ref, err) < 0
                      : manifest_parse_resource_ref(j, item, true, &it->ref, err) < 0)
            return -1;
    }
    return 0;
}

/* A configMap or secret source: name_key names the object ("name"; "secretName" in a secret volume). */
static int parse_object_source(json_t *source, const char *path, enum pea_projection_kind kind, const char *name_key,
                               bool is_volume, struct pea_projection *proj, struct pea_error *err)
{
    static const char *const config_map_volume[] = {"name", "items", "defaultMode", "optional", NULL};
    static const char *const secret_volume[] = {"secretName", "items", "defaultMode", "optional", NULL};
    static const char *const projection[] = {"name", "items", "optional", NULL};
    const char *const *fields = !is_volume                  ? projection
                                : kind == PEA_PROJECT_SECRET ? secret_volume
                                                             : config_map_volume;
    proj->kind = kind;
    if (field_check_known(source, path, fields, err) < 0 ||
        field_get_string(source, path, name_key, true, &proj->name, err) < 0 ||
        field_get_bool(source, path, "optional", &proj->is_optional, err) < 0)
        return -1;
    return parse_items(source, path, false, proj, err);
}

static int parse_downward_source(json_t *source, const char *path, bool is_volume, struct pea_projection *proj,
                                 struct pea_error *err)
{
    static const char *const volume_fields[] = {"items", "defaultMode", NULL};
    static const char *const projection_fields[] = {"items", NULL};
    proj->kind = PEA_PROJECT_DOWNWARD_API;
    if (field_check_known(source, path, is_volume ? volume_fields : projection_fields, err) < 0)
        return -1;
    return parse_items(source, path, true, proj, err);
}

static int parse_projected(json_t *projected, const char *path, struct pea_pod_volume *v, struct pea_error *err)
{
    static const char *const fields[] = {"sources", "defaultMode", NULL};
    static const char *const source_fields[] = {"configMap", "secret", "downwardAPI", "serviceAccountToken",
                                                "clusterTrustBundle", "podCertificate", NULL};
    json_t *sources;
    if (field_check_known(projected, path, fields, err) < 0 ||
        field_get_array(projected, path, "sources", &sources, err) < 0)
        return -1;
    v->n_projections = json_array_size(sources);
    v->projections = xcalloc(v->n_projections ? v->n_projections : 1, sizeof *v->projections);
    for (size_t i = 0; i < v->n_projections; i++) {
        char item[FIELD_PATH_MAX + 32], sub[FIELD_PATH_MAX + 64];
        snprintf(item, sizeof item, "%s.sources[%zu]", path, i);
        json_t *j = json_array_get(sources, i);
        if (!json_is_object(j))
            return pea_fail(err, 0, "%s: must be an object", item);
        if (field_check_known(j, item, source_fields, err) < 0)
            return -1;
        if (json_object_size(j) != 1)
            return pea_fail(err, 0, "%s: needs exactly one of configMap, secret, downwardAPI", item);
        const char *key = json_object_iter_key(json_object_iter(j));
        json_t *source = json_object_get(j, key);
        field_path(sub, sizeof sub, item, key);
        if (strcmp(key, "serviceAccountToken") == 0 || strcmp(key, "clusterTrustBundle") == 0 ||
            strcmp(key, "podCertificate") == 0)
            return pea_fail(err, 0, "%s: not supported: pea has no API server to issue it (project a secret "
                            "holding it instead)", sub);
        if (!json_is_object(source))
            return pea_fail(err, 0, "%s: must be an object", sub);
        struct pea_projection *proj = &v->projections[i];
        int r = strcmp(key, "downwardAPI") == 0
                    ? parse_downward_source(source, sub, false, proj, err)
                    : parse_object_source(source, sub, strcmp(key, "secret") == 0 ? PEA_PROJECT_SECRET
                                                                                  : PEA_PROJECT_CONFIG_MAP,
                                          "name", false, proj, err);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Two items of a volume writing the same path. */
static int check_duplicate_paths(const struct pea_pod_volume *v, const char *path, struct pea_error *err)
{
    AUTO_JSON json_t *seen = json_object();
    for (size_t p = 0; p < v->n_projections; p++)
        for (size_t i = 0; i < v->projections[p].n_items; i++) {
            AUTO_FREE char *normalized = path_normalize(v->projections[p].items[i].path);
            if (json_object_get(seen, normalized))
                return pea_fail(err, 0, "%s: path \"%s\" is given twice", path, v->projections[p].items[i].path);
            json_object_set_new(seen, normalized, json_true());
        }
    return 0;
}

int manifest_parse_file_volume(json_t *volume, const char *item, const char *key, struct pea_pod_volume *v,
                               struct pea_error *err)
{
    json_t *source;
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, item, key);
    if (field_get_object(volume, item, key, true, &source, err) < 0)
        return -1;
    bool has_default_mode;
    v->default_mode = FILE_VOLUME_DEFAULT_MODE;
    if (get_mode(source, path, "defaultMode", &has_default_mode, &v->default_mode, err) < 0)
        return -1;
    if (!has_default_mode)
        v->default_mode = FILE_VOLUME_DEFAULT_MODE;
    int r;
    if (strcmp(key, "projected") == 0) {
        v->type = PEA_VOLUME_PROJECTED;
        r = parse_projected(source, path, v, err);
    } else {
        v->n_projections = 1;
        v->projections = xcalloc(1, sizeof *v->projections);
        if (strcmp(key, "downwardAPI") == 0) {
            v->type = PEA_VOLUME_DOWNWARD_API;
            r = parse_downward_source(source, path, true, v->projections, err);
        } else {
            bool is_secret = strcmp(key, "secret") == 0;
            v->type = is_secret ? PEA_VOLUME_SECRET : PEA_VOLUME_CONFIG_MAP;
            r = parse_object_source(source, path, is_secret ? PEA_PROJECT_SECRET : PEA_PROJECT_CONFIG_MAP,
                                    is_secret ? "secretName" : "name", true, v->projections, err);
        }
    }
    return r < 0 ? -1 : check_duplicate_paths(v, path, err);
}
