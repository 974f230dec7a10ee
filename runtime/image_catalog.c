/* The catalogue of images (images.json): which manifest each name points to, and what each image uses. Changed only
 * under meta.lock, replaced by rename, so readers need no lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/image_ref.h"
#include "pea/util.h"

#define CATALOG_FILE "images.json"
#define CATALOG_MAX (64 * 1024 * 1024)
#define ID_PREFIX_MIN 3

void strv_push(char ***v, const char *s)
{
    size_t n = *v ? strv_len(*v) : 0;
    *v = xrealloc(*v, (n + 2) * sizeof **v);
    (*v)[n] = xstrdup(s);
    (*v)[n + 1] = NULL;
}

json_t *catalog_load(struct pea_image_store *s, struct pea_error *err)
{
    size_t len = 0;
    AUTO_FREE char *text = store_read_file(s->dir_fd, CATALOG_FILE, CATALOG_MAX, &len, err);
    if (!text) {
        if (errno == ENOENT)
            return json_pack("{s:[]}", "images");
        pea_wrap(err, "image store %s", s->path);
        return NULL;
    }
    json_error_t jerr;
    json_t *catalog = json_loadb(text, len, 0, &jerr);
    if (!catalog || !json_is_array(json_object_get(catalog, "images"))) {
        json_decref(catalog);
        pea_fail(err, 0, "image store %s: %s is damaged: %s", s->path, CATALOG_FILE, catalog ? "no images" : jerr.text);
        return NULL;
    }
    return catalog;
}

json_t *catalog_load_locked(struct pea_image_store *s, int *lock, struct pea_error *err)
{
    *lock = store_lock(s, STORE_LOCK_META, true, err);
    return *lock < 0 ? NULL : catalog_load(s, err);
}

int catalog_save(struct pea_image_store *s, json_t *catalog, struct pea_error *err)
{
    AUTO_FREE char *text = json_dumps(catalog, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!text || write_file_atomic_at(s->dir_fd, CATALOG_FILE, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "write %s/%s", s->path, CATALOG_FILE);
    return 0;
}

int catalog_normalise_name(const char *name, char *out, size_t len, struct pea_error *err)
{
    struct pea_image_ref ref;
    if (pea_image_ref_parse(name, &ref, err) < 0)
        return -1;
    pea_image_ref_format(&ref, out, len);
    return 0;
}

static bool array_has(json_t *array, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    return false;
}

static void array_remove(json_t *array, const char *s)
{
    for (size_t i = json_array_size(array); i-- > 0;) {
        const char *v = json_string_value(json_array_get(array, i));
        if (v && strcmp(v, s) == 0)
            json_array_remove(array, i);
    }
}

static bool is_hex(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static json_t *find_by_digest(json_t *images, const char *digest)
{
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img) {
        const char *m = json_string_value(json_object_get(img, "manifest"));
        const char *c = json_string_value(json_object_get(img, "config"));
        if ((m && strcmp(m, digest) == 0) || (c && strcmp(c, digest) == 0) ||
            array_has(json_object_get(img, "indexes"), digest))
            return img;
    }
    return NULL;
}

json_t *catalog_find(json_t *catalog, const char *what, struct pea_error *err)
{
    json_t *images = json_object_get(catalog, "images");
    if (pea_digest_is_valid(what)) {
        json_t *img = find_by_digest(images, what);
        if (!img)
            store_fail(err, ENOENT, "image %s not known", what);
        return img;
    }
    struct pea_image_ref ref;
    struct pea_error ref_err = {0};
    if (pea_image_ref_parse(what, &ref, &ref_err) == 0) {
        char name[PEA_IMAGE_REF_TEXT_MAX];
        pea_image_ref_format(&ref, name, sizeof name);
        size_t i;
        json_t *img;
        json_array_foreach(images, i, img)
            if (array_has(json_object_get(img, "names"), name))
                return img;
        if (ref.digest[0] && (img = find_by_digest(images, ref.digest)))
            return img;
    }
    if (is_hex(what) && strlen(what) >= ID_PREFIX_MIN && strlen(what) <= 64) {
        json_t *found = NULL, *img;
        size_t i;
        json_array_foreach(images, i, img) {
            const char *config = json_string_value(json_object_get(img, "config"));
            if (!config || strncmp(pea_digest_hex(config), what, strlen(what)) != 0)
                continue;
            if (found) {
                pea_fail(err, 0, "image ID %s is ambiguous: give more digits", what);
                return NULL;
            }
            found = img;
        }
        if (found)
            return found;
    }
    if (ref_err.msg[0] && !is_hex(what))
        *err = ref_err;
    else
        store_fail(err, ENOENT, "image %s not known", what);
    err->errnum = ENOENT;
    return NULL;
}

static json_t *strv_to_json(char **v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static void take_name(json_t *images, json_t *owner, const char *name)
{
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img)
        if (img != owner)
            array_remove(json_object_get(img, "names"), name);
    if (!array_has(json_object_get(owner, "names"), name))
        json_array_append_new(json_object_get(owner, "names"), json_string(name));
}

int catalog_commit(struct pea_image_store *s, const struct image_commit *c, char ***loaded, struct pea_error *err)
{
    AUTO_FD int lock = -1;
    AUTO_JSON json_t *catalog = catalog_load_locked(s, &lock, err);
    if (!catalog)
        return -1;
    json_t *images = json_object_get(catalog, "images");
    json_t *img = NULL, *each;
    size_t i;
    json_array_foreach(images, i, each) {
        const char *m = json_string_value(json_object_get(each, "manifest"));
        if (m && strcmp(m, c->manifest_digest) == 0)
            img = each;
    }
    if (!img) {
        char now[40];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        format_rfc3339_nano(&ts, now, sizeof now);
        img = json_pack("{s:s, s:s, s:o, s:I, s:[], s:[], s:s}", "manifest", c->manifest_digest, "config",
                        c->config_digest, "layers", strv_to_json(c->diff_ids), "size", (json_int_t)c->size,
                        "indexes", "names", "loaded", now);
        json_array_append_new(images, img);
    }
    for (size_t k = 0; c->index_digests && c->index_digests[k]; k++)
        if (!array_has(json_object_get(img, "indexes"), c->index_digests[k]))
            json_array_append_new(json_object_get(img, "indexes"), json_string(c->index_digests[k]));
    for (size_t k = 0; c->names && c->names[k]; k++)
        take_name(images, img, c->names[k]);
    if (catalog_save(s, catalog, err) < 0)
        return -1;
    if (c->names && c->names[0])
        for (size_t k = 0; c->names[k]; k++)
            strv_push(loaded, c->names[k]);
    else
        strv_push(loaded, c->manifest_digest);
    return 0;
}

static char **json_to_strv(json_t *array)
{
    size_t n = json_array_size(array);
    char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = xstrdup(json_string_value(json_array_get(array, i)) ? json_string_value(json_array_get(array, i)) : "");
    return v;
}

void pea_image_free(struct pea_image *image)
{
    if (!image)
        return;
    strv_free(image->names);
    strv_free(image->index_digests);
    strv_free(image->diff_ids);
    strv_free(image->layer_dirs);
    json_decref(image->config);
    json_decref(image->manifest);
    free(image);
}

static json_t *read_json_blob(struct pea_image_store *s, const char *digest, struct pea_error *err)
{
    AUTO_FREE char *data = NULL;
    size_t len = 0;
    if (pea_blob_read(s, digest, s->limits.max_document_bytes, &data, &len, err) < 0)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(data, len, 0, &jerr);
    if (!doc)
        pea_fail(err, 0, "blob %s: %s", digest, jerr.text);
    return doc;
}

static struct pea_image *image_from_record(struct pea_image_store *s, json_t *rec, struct pea_error *err)
{
    struct pea_image *img = xcalloc(1, sizeof *img);
    snprintf(img->manifest_digest, sizeof img->manifest_digest, "%s",
             json_string_value(json_object_get(rec, "manifest")) ?: "");
    snprintf(img->config_digest, sizeof img->config_digest, "%s",
             json_string_value(json_object_get(rec, "config")) ?: "");
    snprintf(img->loaded_at, sizeof img->loaded_at, "%s", json_string_value(json_object_get(rec, "loaded")) ?: "");
    img->size = (uint64_t)json_integer_value(json_object_get(rec, "size"));
    img->names = json_to_strv(json_object_get(rec, "names"));
    img->index_digests = json_to_strv(json_object_get(rec, "indexes"));
    img->diff_ids = json_to_strv(json_object_get(rec, "layers"));
    img->n_layers = strv_len(img->diff_ids);
    img->layer_dirs = xcalloc(img->n_layers + 1, sizeof *img->layer_dirs);
    for (size_t i = 0; i < img->n_layers; i++) {
        if (!store_has_layer(s, img->diff_ids[i])) {
            pea_fail(err, 0, "image %s: layer %s is missing from the store", img->manifest_digest, img->diff_ids[i]);
            pea_image_free(img);
            return NULL;
        }
        img->layer_dirs[i] = xasprintf("%s/layers/sha256/%s/diff", s->path, pea_digest_hex(img->diff_ids[i]));
    }
    if (!(img->manifest = read_json_blob(s, img->manifest_digest, err)) ||
        !(img->config = read_json_blob(s, img->config_digest, err))) {
        pea_wrap(err, "image %s", img->manifest_digest);
        pea_image_free(img);
        return NULL;
    }
    return img;
}

int pea_image_resolve(struct pea_image_store *s, const char *what, struct pea_image **out, struct pea_error *err)
{
    *out = NULL;
    AUTO_JSON json_t *catalog = catalog_load(s, err);
    if (!catalog)
        return -1;
    json_t *rec = catalog_find(catalog, what, err);
    if (!rec)
        return -1;
    *out = image_from_record(s, rec, err);
    return *out ? 0 : -1;
}

void pea_image_list_free(struct pea_image **images, size_t n)
{
    for (size_t i = 0; images && i < n; i++)
        pea_image_free(images[i]);
    free(images);
}

int pea_image_list(struct pea_image_store *s, struct pea_image ***out, size_t *n_out, struct pea_error *err)
{
    *out = NULL;
    *n_out = 0;
    AUTO_JSON json_t *catalog = catalog_load(s, err);
    if (!catalog)
        return -1;
    json_t *images = json_object_get(catalog, "images");
    size_t n = json_array_size(images);
    struct pea_image **list = xcalloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        if (!(list[i] = image_from_record(s, json_array_get(images, i), err))) {
            pea_image_list_free(list, i);
            return -1;
        }
    }
    *out = list;
    *n_out = n;
    return 0;
}

int pea_image_tag(struct pea_image_store *s, const char *what, const char *dst, struct pea_error *err)
{
    char name[PEA_IMAGE_REF_TEXT_MAX];
    struct pea_image_ref ref;
    if (pea_image_ref_parse(dst, &ref, err) < 0)
        return -1;
    if (ref.digest[0])
        return pea_fail(err, 0, "tag %s: a new name cannot carry a digest", dst);
    pea_image_ref_format(&ref, name, sizeof name);
    AUTO_FD int lock = -1;
    AUTO_JSON json_t *catalog = catalog_load_locked(s, &lock, err);
    if (!catalog)
        return -1;
    json_t *img = catalog_find(catalog, what, err);
    if (!img)
        return -1;
    take_name(json_object_get(catalog, "images"), img, name);
    return catalog_save(s, catalog, err);
}
