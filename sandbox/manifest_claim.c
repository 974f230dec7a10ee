/* A PersistentVolumeClaim beside the Pod: it declares a named volume (volume_named.c). pea has one node and one kind
 * of storage, a directory under the data root, so what the claim asks of a storage system (size, access modes, a
 * storage class) is checked for its form and has no effect. */
#include <string.h>

#include "manifest_internal.h"
#include "pea/util.h"

bool manifest_is_claim_kind(const char *kind) { return kind && strcmp(kind, "PersistentVolumeClaim") == 0; }

static int check_access_modes(json_t *spec, const char *path, struct pea_error *err)
{
    static const char *const modes[] = {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod", NULL};
    json_t *list, *mode;
    size_t i;
    if (field_get_array(spec, path, "accessModes", &list, err) < 0)
        return -1;
    json_array_foreach(list, i, mode) {
        bool is_known = false;
        for (size_t k = 0; json_is_string(mode) && modes[k]; k++)
            is_known |= strcmp(json_string_value(mode), modes[k]) == 0;
        if (!is_known)
            return pea_fail(err, 0, "%s.accessModes[%zu]: must be one of ReadWriteOnce, ReadOnlyMany, ReadWriteMany, "
                            "ReadWriteOncePod", path, i);
    }
    return 0;
}

static int check_resources(json_t *spec, const char *path, bool *has_storage, struct pea_error *err)
{
    static const char *const fields[] = {"requests", "limits", NULL};
    static const char *const amounts[] = {"storage", NULL};
    json_t *resources;
    char where[FIELD_PATH_MAX];
    field_path(where, sizeof where, path, "resources");
    if (field_get_object(spec, path, "resources", false, &resources, err) < 0)
        return -1;
    if (!resources)
        return 0;
    if (field_check_known(resources, where, fields, err) < 0)
        return -1;
    for (size_t i = 0; fields[i]; i++) {
        json_t *amount;
        char amount_path[FIELD_PATH_MAX];
        field_path(amount_path, sizeof amount_path, where, fields[i]);
        bool present = false;
        uint64_t bytes;
        if (field_get_object(resources, where, fields[i], false, &amount, err) < 0)
            return -1;
        if (amount && (field_check_known(amount, amount_path, amounts, err) < 0 ||
                       field_get_quantity(amount, amount_path, "storage", false, &present, &bytes, err) < 0))
            return -1;
        *has_storage |= present;
    }
    return 0;
}

int manifest_check_claim(json_t *doc, const char *where, bool *has_storage, char **name, struct pea_error *err)
{
    static const char *const fields[] = {"apiVersion", "kind", "metadata", "spec", "status", NULL};
    static const char *const meta_fields[] = {"name", "namespace", "labels", "annotations", NULL};
    static const char *const spec_fields[] = {"accessModes", "resources", "storageClassName", "volumeMode",
                                              "volumeName", NULL};
    static const char *const volume_modes[] = {"Filesystem", NULL};
    json_t *meta, *spec;
    AUTO_FREE char *api_version = NULL;
    AUTO_JSON json_t *labels = NULL, *annotations = NULL;
    int volume_mode = 0;
    *has_storage = false;
    *name = NULL;
    if (field_check_known(doc, "", fields, err) < 0 ||
        field_get_string(doc, "", "apiVersion", true, &api_version, err) < 0)
        return pea_wrap(err, "%s", where);
    if (strcmp(api_version, "v1") != 0)
        return pea_fail(err, 0, "%s: apiVersion: must be \"v1\" for a PersistentVolumeClaim", where);
    if (field_get_object(doc, "", "metadata", true, &meta, err) < 0 ||
        field_check_known(meta, "metadata", meta_fields, err) < 0 ||
        field_get_string(meta, "metadata", "name", true, name, err) < 0 ||
        field_get_string(meta, "metadata", "namespace", false, NULL, err) < 0 ||
        field_get_string_map(meta, "metadata", "labels", &labels, err) < 0 ||
        field_get_string_map(meta, "metadata", "annotations", &annotations, err) < 0)
        return pea_wrap(err, "%s", where);
    if (!name_is_dns_subdomain(*name, 253))
        return pea_fail(err, 0, "%s: metadata.name: must be a DNS subdomain, not \"%s\"", where, *name);
    /* volumeMode Block would hand the container a device; pea has only directories. */
    if (field_get_object(doc, "", "spec", false, &spec, err) < 0 ||
        (spec && (field_check_known(spec, "spec", spec_fields, err) < 0 || check_access_modes(spec, "spec", err) < 0 ||
                  check_resources(spec, "spec", has_storage, err) < 0 ||
                  field_get_string(spec, "spec", "storageClassName", false, NULL, err) < 0 ||
                  field_get_string(spec, "spec", "volumeName", false, NULL, err) < 0 ||
                  field_get_enum(spec, "spec", "volumeMode", volume_modes, &volume_mode, err) < 0)))
        return pea_wrap(err, "%s", where);
    return 0;
}
