/* Importing from an OCI image layout (a directory, or an archive's members): index → (index →) manifest → config
 * and layers, every document and blob checked against its descriptor's digest and size, every layer against its
 * diff ID, and the image recorded only once all of it is in the store. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/image_ref.h"
#include "pea/sys.h"
#include "pea/util.h"

#define MAX_INDEX_DEPTH 4
#define ANNOTATION_REF_NAME "org.opencontainers.image.ref.name"
#define ANNOTATION_CONTAINERD_NAME "io.containerd.image.name"

int import_read_document(struct pea_image_store *s, int fd, const char *what, const char *digest, int64_t size,
                         char **data, size_t *len, struct pea_error *err)
{
    size_t max = s->limits.max_document_bytes, n = 0;
    if (size >= 0 && (uint64_t)size > max)
        return pea_fail(err, 0, "%s: %" PRId64 " bytes, more than the %zu allowed: refused", what, size, max);
    AUTO_FREE char *text = read_fd_all(fd, max + 1, &n);
    if (!text)
        return pea_fail(err, errno, "read %s", what);
    if (n > max)
        return pea_fail(err, 0, "%s: more than %zu bytes: refused", what, max);
    if (size >= 0 && n != (size_t)size)
        return pea_fail(err, 0, "%s: %zu bytes, not the %" PRId64 " its descriptor says", what, n, size);
    if (digest) {
        char actual[PEA_DIGEST_SIZE];
        pea_digest_buffer(text, n, actual);
        if (strcmp(actual, digest) != 0)
            return pea_fail(err, 0, "%s: content does not match its digest (it hashes to %s)", what, actual);
    }
    *data = take_ptr(&text);
    *len = n;
    return 0;
}

static ssize_t fd_read(void *ctx, void *buf, size_t len, struct pea_error *err)
{
    int fd = *(int *)ctx;
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        pea_fail(err, errno, "read the layer blob");
    return n;
}

int import_layer_from_fd(struct pea_image_store *s, int fd, const struct layer_expect *expect, uint64_t *tar_size,
                         const struct pea_image_import_options *o, struct pea_error *err)
{
    struct layer_source src = {.read = fd_read, .ctx = &fd};
    int r = store_unpack_layer(s, &src, expect, tar_size, err);
    if (r < 0)
        return -1;
    if (r == 0 && o && o->on_layer)
        o->on_layer(o->ctx, expect->diff_id, *tar_size);
    return 0;
}

struct import_job {
    struct pea_image_store *s;
    const struct layout_source *src;
    const struct pea_image_import_options *o;
    struct image_platform platform;
    char ***loaded;
};

/* A descriptor's digest, checked before it becomes a file name, and its size (-1 when absent). */
static int descriptor(json_t *desc, const char *what, const char **digest, int64_t *size, struct pea_error *err)
{
    *digest = json_string_value(json_object_get(desc, "digest"));
    if (!pea_digest_is_valid(*digest))
        return pea_fail(err, 0, "%s: digest \"%s\" is not sha256: and 64 lowercase hex digits", what,
                        *digest ? *digest : "");
    json_t *sz = json_object_get(desc, "size");
    if (sz && (!json_is_integer(sz) || json_integer_value(sz) < 0))
        return pea_fail(err, 0, "%s %s: bad size", what, *digest);
    *size = sz ? json_integer_value(sz) : -1;
    return 0;
}

static int open_blob(struct import_job *j, const char *digest, struct pea_error *err)
{
    AUTO_FREE char *path = xasprintf("blobs/sha256/%s", pea_digest_hex(digest));
    int fd = j->src->open(j->src->ctx, path, err);
    if (fd < 0 && err->errnum == ENOENT)
        return store_fail(err, ENOENT, "%s: blob %s is missing", j->src->shown, digest);
    return fd;
}

static json_t *read_json_blob(struct import_job *j, const char *what, const char *digest, int64_t size, char **raw,
                              size_t *raw_len, struct pea_error *err)
{
    AUTO_FD int fd = open_blob(j, digest, err);
    if (fd < 0)
        return NULL;
    AUTO_FREE char *what_digest = xasprintf("%s %s", what, digest);
    AUTO_FREE char *text = NULL;
    size_t len = 0;
    if (import_read_document(j->s, fd, what_digest, digest, size, &text, &len, err) < 0)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        pea_fail(err, 0, "%s: not a JSON object%s%s", what_digest, doc ? "" : ": ", doc ? "" : jerr.text);
        return NULL;
    }
    *raw = take_ptr(&text);
    *raw_len = len;
    return doc;
}

static bool is_layer_media_type(const char *t)
{
    static const char *const known[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    };
    for (size_t i = 0; t && i < ARRAY_SIZE(known); i++)
        if (strcmp(t, known[i]) == 0)
            return true;
    return false;
}

static int import_layers(struct import_job *j, json_t *layers, json_t *diff_ids, uint64_t *total,
                         struct pea_error *err)
{
    size_t i;
    json_t *layer;
    json_array_foreach(layers, i, layer) {
        const char *digest, *media_type = json_string_value(json_object_get(layer, "mediaType"));
        const char *diff_id = json_string_value(json_array_get(diff_ids, i));
        int64_t size;
        if (descriptor(layer, "layer", &digest, &size, err) < 0)
            return -1;
        if (!is_layer_media_type(media_type))
            return pea_fail(err, 0, "layer %s: media type \"%s\" is not supported", digest,
                            media_type ? media_type : "");
        if (!pea_digest_is_valid(diff_id))
            return pea_fail(err, 0, "image config: diff ID %zu is not sha256: and 64 lowercase hex digits", i);
        uint64_t bytes = 0;
        if (store_has_layer(j->s, diff_id)) {
            if (store_layer_size(j->s, diff_id, &bytes, err) < 0)
                return -1;
        } else {
            AUTO_FD int fd = open_blob(j, digest, err);
            struct layer_expect expect = {.blob_digest = digest, .blob_size = size, .diff_id = diff_id};
            if (fd < 0 || import_layer_from_fd(j->s, fd, &expect, &bytes, j->o, err) < 0)
                return -1;
        }
        *total += bytes;
    }
    return 0;
}

static int import_manifest(struct import_job *j, const char *digest, const char *raw, size_t raw_len, json_t *doc,
                           char **names, char **index_chain, struct pea_error *err)
{
    json_t *layers = json_object_get(doc, "layers");
    if (json_integer_value(json_object_get(doc, "schemaVersion")) != 2 || !json_is_array(layers))
        return pea_fail(err, 0, "manifest %s: not a schema 2 image manifest", digest);
    const char *config_digest;
    int64_t config_size;
    if (descriptor(json_object_get(doc, "config"), "image config", &config_digest, &config_size, err) < 0)
        return -1;
    AUTO_FREE char *config_raw = NULL;
    size_t config_len = 0;
    AUTO_JSON json_t *config = read_json_blob(j, "image config", config_digest, config_size, &config_raw,
                                              &config_len, err);
    if (!config)
        return -1;
    json_t *rootfs = json_object_get(config, "rootfs");
    json_t *diff_ids = json_object_get(rootfs, "diff_ids");
    const char *rootfs_type = json_string_value(json_object_get(rootfs, "type"));
    if (!rootfs_type || strcmp(rootfs_type, "layers") != 0 || !json_is_array(diff_ids))
        return pea_fail(err, 0, "image config %s: rootfs is not of type layers with diff_ids", config_digest);
    if (json_array_size(diff_ids) != json_array_size(layers))
        return pea_fail(err, 0, "manifest %s: %zu layers but the config lists %zu diff IDs", digest,
                        json_array_size(layers), json_array_size(diff_ids));
    uint64_t total = 0;
    if (import_layers(j, layers, diff_ids, &total, err) < 0)
        return -1;
    if (pea_blob_store_buffer(j->s, config_raw, config_len, config_digest, NULL, err) < 0 ||
        pea_blob_store_buffer(j->s, raw, raw_len, digest, NULL, err) < 0)
        return -1;
    AUTO_STRV char **diff_id_list = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(diff_ids, i, v)
        strv_push(&diff_id_list, json_string_value(v));
    struct image_commit c = {.manifest_digest = digest, .config_digest = config_digest, .diff_ids = diff_id_list,
                             .size = total, .index_digests = index_chain, .names = names};
    return catalog_commit(j->s, &c, j->loaded, err);
}

static bool is_index(json_t *doc, const char *media_type)
{
    if (media_type && (strcmp(media_type, "application/vnd.oci.image.index.v1+json") == 0 ||
                       strcmp(media_type, "application/vnd.docker.distribution.manifest.list.v2+json") == 0))
        return true;
    return json_is_array(json_object_get(doc, "manifests")) && !json_object_get(doc, "layers");
}

static int import_descriptor(struct import_job *j, json_t *desc, char **names, char ***index_chain, int depth,
                             struct pea_error *err)
{
    const char *digest;
    int64_t size;
    if (descriptor(desc, "manifest", &digest, &size, err) < 0)
        return -1;
    AUTO_FREE char *raw = NULL;
    size_t raw_len = 0;
    AUTO_JSON json_t *doc = read_json_blob(j, "manifest", digest, size, &raw, &raw_len, err);
    if (!doc)
        return -1;
    const char *media_type = json_string_value(json_object_get(desc, "mediaType"));
    if (!media_type)
        media_type = json_string_value(json_object_get(doc, "mediaType"));
    if (!is_index(doc, media_type)) {
        if (json_integer_value(json_object_get(doc, "schemaVersion")) == 1)
            return pea_fail(err, 0, "manifest %s: Docker schema 1 images are not supported", digest);
        return import_manifest(j, digest, raw, raw_len, doc, names, *index_chain, err);
    }
    if (depth >= MAX_INDEX_DEPTH)
        return pea_fail(err, 0, "index %s: indexes nested more than %d deep: refused", digest, MAX_INDEX_DEPTH);
    json_t *manifests = json_object_get(doc, "manifests");
    int pick = image_platform_pick(manifests, &j->platform, err);
    if (pick < 0)
        return pea_wrap(err, "index %s", digest);
    if (pea_blob_store_buffer(j->s, raw, raw_len, digest, NULL, err) < 0)
        return -1;
    strv_push(index_chain, digest);
    return import_descriptor(j, json_array_get(manifests, (size_t)pick), names, index_chain, depth + 1, err);
}

/* The names an index.json entry gives its image: containerd's image-name annotation, else a ref.name that is a
 * whole reference ("busybox:1.36", not only "latest"). */
static int names_from_annotations(json_t *desc, char ***names, struct pea_error *err)
{
    json_t *annotations = json_object_get(desc, "annotations");
    const char *name = json_string_value(json_object_get(annotations, ANNOTATION_CONTAINERD_NAME));
    if (!name) {
        name = json_string_value(json_object_get(annotations, ANNOTATION_REF_NAME));
        if (name && !strpbrk(name, "/:@"))
            name = NULL;
    }
    if (!name)
        return 0;
    char normal[PEA_IMAGE_REF_TEXT_MAX];
    if (catalog_normalise_name(name, normal, sizeof normal, err) < 0)
        return pea_wrap(err, "image name in index.json");
    strv_push(names, normal);
    return 0;
}

static int check_layout(struct import_job *j, struct pea_error *err)
{
    AUTO_FD int fd = j->src->open(j->src->ctx, "oci-layout", err);
    if (fd < 0)
        return err->errnum == ENOENT ? pea_fail(err, 0, "%s: not an OCI image layout (no oci-layout file)",
                                                j->src->shown)
                                     : -1;
    AUTO_FREE char *text = NULL;
    size_t len = 0;
    if (import_read_document(j->s, fd, "oci-layout", NULL, -1, &text, &len, err) < 0)
        return -1;
    AUTO_JSON json_t *doc = json_loadb(text, len, 0, NULL);
    if (!json_is_string(json_object_get(doc, "imageLayoutVersion")))
        return pea_fail(err, 0, "%s: oci-layout has no imageLayoutVersion", j->src->shown);
    return 0;
}

int import_layout_source(struct pea_image_store *s, const struct layout_source *src,
                         const struct pea_image_import_options *o, char ***loaded, struct pea_error *err)
{
    static const struct pea_image_import_options none = {0};
    if (!o)
        o = &none;
    struct import_job j = {.s = s, .src = src, .o = o, .loaded = loaded};
    if (image_platform_parse(o->platform, &j.platform, err) < 0 || store_hold_gc_shared(s, err) < 0)
        return -1;
    store_sweep_work_dirs(s);
    if (check_layout(&j, err) < 0)
        return -1;
    AUTO_FD int fd = src->open(src->ctx, "index.json", err);
    if (fd < 0)
        return pea_wrap(err, "%s: index.json", src->shown);
    AUTO_FREE char *text = NULL;
    size_t len = 0;
    if (import_read_document(s, fd, "index.json", NULL, -1, &text, &len, err) < 0)
        return pea_wrap(err, "%s", src->shown);
    json_error_t jerr;
    AUTO_JSON json_t *index = json_loadb(text, len, 0, &jerr);
    json_t *manifests = json_object_get(index, "manifests");
    if (!json_is_array(manifests))
        return pea_fail(err, 0, "%s: index.json has no manifests%s%s", src->shown, index ? "" : ": ",
                        index ? "" : jerr.text);
    AUTO_JSON json_t *chosen = json_array();
    size_t i;
    json_t *desc;
    json_array_foreach(manifests, i, desc) {
        const char *ref = json_string_value(json_object_get(json_object_get(desc, "annotations"), ANNOTATION_REF_NAME));
        if (!o->layout_ref || (ref && strcmp(ref, o->layout_ref) == 0))
            json_array_append(chosen, desc);
    }
    if (json_array_size(chosen) == 0)
        return store_fail(err, ENOENT, "%s: %s", src->shown,
                        o->layout_ref ? "no image with that ref.name in index.json" : "index.json lists no image");
    if (o->name && json_array_size(chosen) > 1)
        return pea_fail(err, 0, "%s holds %zu images: choose one (by its ref.name) to give it a name", src->shown,
                        json_array_size(chosen));
    json_array_foreach(chosen, i, desc) {
        AUTO_STRV char **names = NULL, **index_chain = NULL;
        char normal[PEA_IMAGE_REF_TEXT_MAX];
        if (o->index_digest) {
            if (!pea_digest_is_valid(o->index_digest))
                return pea_fail(err, 0, "index digest \"%s\": not sha256: and 64 lowercase hex digits",
                                o->index_digest);
            strv_push(&index_chain, o->index_digest);
        }
        if (o->name) {
            if (catalog_normalise_name(o->name, normal, sizeof normal, err) < 0)
                return -1;
            strv_push(&names, normal);
        } else if (names_from_annotations(desc, &names, err) < 0) {
            return pea_wrap(err, "%s", src->shown);
        }
        if (import_descriptor(&j, desc, names, &index_chain, 0, err) < 0)
            return pea_wrap(err, "%s", src->shown);
    }
    return 0;
}

int import_take_regular_file(int fd_in, const char *path, struct pea_error *err)
{
    if (fd_in < 0)
        return pea_fail(err, errno, "open %s", path);
    AUTO_FD int fd = fd_in;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return pea_fail(err, 0, "%s is not a regular file", path);
    if (fcntl(fd, F_SETFL, 0) < 0)
        return pea_fail(err, errno, "open %s", path);
    return take_fd(&fd);
}

static int dir_open(void *ctx, const char *path, struct pea_error *err)
{
    return import_take_regular_file(sys_open_in_root(*(int *)ctx, path, O_RDONLY | O_NONBLOCK, 0), path, err);
}

int pea_image_import_layout(struct pea_image_store *s, const char *dir, const struct pea_image_import_options *o,
                            char ***loaded, struct pea_error *err)
{
    *loaded = NULL;
    AUTO_FD int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open image layout %s", dir);
    struct layout_source src = {.open = dir_open, .ctx = &dir_fd, .shown = dir};
    if (import_layout_source(s, &src, o, loaded, err) < 0) {
        strv_free(*loaded);
        *loaded = NULL;
        return -1;
    }
    return 0;
}
