/* Image archives: docker-archive (docker save, podman save: manifest.json, configs, layer tars) and oci-archive (an
 * OCI layout in a tar). The members are spooled into the work directory under names of our own — never under the
 * paths the archive gives — so that a pipe works and members may come in any order; the layout or docker manifest
 * is then read from there. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/image_ref.h"
#include "pea/util.h"

#define MAX_LINK_HOPS 8

struct spooled {
    struct pea_image_store *s;
    json_t *members; /* cleaned path -> {"file": NAME} | {"link": cleaned target} */
};

static int spool_member(struct spooled *sp, struct archive *a, const char *path, uint64_t *total,
                        struct pea_error *err)
{
    AUTO_FREE char *name = store_new_work_name(sp->s, "member");
    AUTO_FD int fd = openat(sp->s->work_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pea_fail(err, errno, "spool archive member %s", path);
    char buf[128 * 1024];
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, sizeof buf);
        if (n < 0)
            return pea_fail(err, 0, "read archive member %s: %s", path, archive_error_string(a));
        if (n == 0)
            break;
        *total += (uint64_t)n;
        if (*total > sp->s->limits.max_layer_bytes)
            return pea_fail(err, 0, "archive larger than %" PRIu64 " bytes unpacked: refused "
                            "(limit PEA_IMAGE_MAX_LAYER_BYTES)", sp->s->limits.max_layer_bytes);
        if (write_all(fd, buf, (size_t)n) < 0)
            return pea_fail(err, errno, "spool archive member %s", path);
    }
    json_object_set_new(sp->members, path, json_pack("{s:s}", "file", name));
    return 0;
}

/* A link's target as a path from the archive's top: a symlink's relative to its own directory. */
static int link_target(const char *member, const char *target, bool is_symlink, char *out, size_t len)
{
    char joined[PATH_MAX * 2];
    const char *slash = strrchr(member, '/');
    if (is_symlink && target[0] != '/' && slash)
        snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - member), member, target);
    else
        snprintf(joined, sizeof joined, "%s", target);
    /* Lexically, as within the archive: "a/../b" is "b", and nothing climbs above the top. */
    char *parts[PATH_MAX / 2];
    size_t n = 0;
    char *save = NULL;
    for (char *p = strtok_r(joined, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (strcmp(p, ".") == 0 || !*p)
            continue;
        if (strcmp(p, "..") == 0) {
            if (n == 0)
                return -1;
            n--;
            continue;
        }
        if (n == ARRAY_SIZE(parts))
            return -1;
        parts[n++] = p;
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, len - used, "%s%s", i ? "/" : "", parts[i]);
        if (w < 0 || (size_t)w >= len - used)
            return -1;
        used += (size_t)w;
    }
    return 0;
}

static int spool_archive(struct spooled *sp, int fd, struct pea_error *err)
{
    struct archive *a = archive_read_new();
    if (!a)
        abort();
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    int r = 0;
    if (archive_read_open_fd(a, fd, 128 * 1024) != ARCHIVE_OK)
        r = pea_fail(err, 0, "read the archive: %s", archive_error_string(a));
    uint64_t total = 0, count = 0;
    struct archive_entry *e;
    while (r == 0) {
        int h = archive_read_next_header(a, &e);
        if (h == ARCHIVE_EOF)
            break;
        if (h != ARCHIVE_OK && h != ARCHIVE_WARN) {
            r = pea_fail(err, 0, "read the archive: %s", archive_error_string(a));
            break;
        }
        if (++count > sp->s->limits.max_layer_entries) {
            r = pea_fail(err, 0, "archive of more than %" PRIu64 " members: refused", sp->s->limits.max_layer_entries);
            break;
        }
        const char *raw = archive_entry_pathname(e);
        char path[PATH_MAX], target[PATH_MAX];
        if (!raw || unpack_clean_path(raw, path, sizeof path) < 0) {
            r = pea_fail(err, 0, "archive member %s: path leaves the archive (..): refused", raw ? raw : "?");
            break;
        }
        const char *hardlink = archive_entry_hardlink(e);
        const char *symlink = archive_entry_symlink(e);
        if (hardlink || (symlink && archive_entry_filetype(e) == AE_IFLNK)) {
            if (link_target(path, hardlink ? hardlink : symlink, !hardlink, target, sizeof target) < 0) {
                r = pea_fail(err, 0, "archive member %s: link leaves the archive: refused", path);
                break;
            }
            json_object_set_new(sp->members, path, json_pack("{s:s}", "link", target));
        } else if (archive_entry_filetype(e) == AE_IFREG) {
            r = spool_member(sp, a, path, &total, err);
        }
    }
    archive_read_free(a);
    return r;
}

/* The spooled file of an archive member, following the archive's own links. */
static int spooled_open(void *ctx, const char *path, struct pea_error *err)
{
    struct spooled *sp = ctx;
    const char *at = path;
    for (int hop = 0; hop <= MAX_LINK_HOPS; hop++) {
        json_t *m = json_object_get(sp->members, at);
        if (!m)
            return pea_fail(err, ENOENT, "archive member %s", path);
        const char *file = json_string_value(json_object_get(m, "file"));
        if (file) {
            int fd = openat(sp->s->work_fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            return fd < 0 ? pea_fail(err, errno, "open spooled member %s", path) : fd;
        }
        at = json_string_value(json_object_get(m, "link"));
    }
    return pea_fail(err, ELOOP, "archive member %s", path);
}

static int read_member_document(struct spooled *sp, const char *path, char **text, size_t *len,
                                struct pea_error *err)
{
    AUTO_FD int fd = spooled_open(sp, path, err);
    if (fd < 0)
        return -1;
    return import_read_document(sp->s, fd, path, NULL, -1, text, len, err);
}

static json_t *layer_descriptor(const char *diff_id, uint64_t size)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", "application/vnd.oci.image.layer.v1.tar", "digest", diff_id,
                     "size", (json_int_t)size);
}

/* One image of a docker archive. It has no manifest of its own: we write an OCI manifest describing its layers
 * uncompressed (digest = diff ID), the same for the same archive, so that loading it twice gives one image. */
static int import_docker_image(struct spooled *sp, json_t *item, const struct pea_image_import_options *o,
                               char ***loaded, struct pea_error *err)
{
    const char *config_path = json_string_value(json_object_get(item, "Config"));
    json_t *layers = json_object_get(item, "Layers");
    if (!config_path || !json_is_array(layers))
        return pea_fail(err, 0, "manifest.json: an entry without Config or Layers");
    AUTO_FREE char *config_raw = NULL;
    size_t config_len = 0;
    if (read_member_document(sp, config_path, &config_raw, &config_len, err) < 0)
        return -1;
    char config_digest[PEA_DIGEST_SIZE];
    pea_digest_buffer(config_raw, config_len, config_digest);
    AUTO_JSON json_t *config = json_loadb(config_raw, config_len, 0, NULL);
    json_t *diff_ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
    if (!json_is_array(diff_ids) || json_array_size(diff_ids) != json_array_size(layers))
        return pea_fail(err, 0, "image config %s: its diff IDs do not match the %zu layers of manifest.json",
                        config_path, json_array_size(layers));
    AUTO_JSON json_t *descriptors = json_array();
    AUTO_STRV char **diff_id_list = NULL, **names = NULL;
    uint64_t total = 0;
    size_t i;
    json_t *layer;
    json_array_foreach(layers, i, layer) {
        const char *diff_id = json_string_value(json_array_get(diff_ids, i));
        const char *path = json_string_value(layer);
        if (!pea_digest_is_valid(diff_id) || !path)
            return pea_fail(err, 0, "image config %s: diff ID %zu is not sha256: and 64 lowercase hex digits",
                            config_path, i);
        uint64_t bytes = 0;
        if (store_has_layer(sp->s, diff_id)) {
            if (store_layer_size(sp->s, diff_id, &bytes, err) < 0)
                return -1;
        } else {
            AUTO_FD int fd = spooled_open(sp, path, err);
            struct layer_expect expect = {.blob_digest = NULL, .blob_size = -1, .diff_id = diff_id};
            if (fd < 0 || import_layer_from_fd(sp->s, fd, &expect, &bytes, o, err) < 0)
                return -1;
        }
        total += bytes;
        json_array_append_new(descriptors, layer_descriptor(diff_id, bytes));
        strv_push(&diff_id_list, diff_id);
    }
    AUTO_JSON json_t *manifest = json_pack(
        "{s:i, s:s, s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2, "mediaType",
        "application/vnd.oci.image.manifest.v1+json", "config", "mediaType", "application/vnd.oci.image.config.v1+json",
        "digest", config_digest, "size", (json_int_t)config_len, "layers", descriptors);
    AUTO_FREE char *manifest_raw = json_dumps(manifest, JSON_COMPACT);
    char manifest_digest[PEA_DIGEST_SIZE];
    if (pea_blob_store_buffer(sp->s, config_raw, config_len, config_digest, NULL, err) < 0 ||
        pea_blob_store_buffer(sp->s, manifest_raw, strlen(manifest_raw), NULL, manifest_digest, err) < 0)
        return -1;
    json_t *tag;
    char normal[PEA_IMAGE_REF_TEXT_MAX];
    if (o && o->name) {
        if (catalog_normalise_name(o->name, normal, sizeof normal, err) < 0)
            return -1;
        strv_push(&names, normal);
    } else {
        json_array_foreach(json_object_get(item, "RepoTags"), i, tag) {
            if (!json_is_string(tag) || catalog_normalise_name(json_string_value(tag), normal, sizeof normal, err) < 0)
                return pea_wrap(err, "manifest.json: RepoTags");
            strv_push(&names, normal);
        }
    }
    struct image_commit c = {.manifest_digest = manifest_digest, .config_digest = config_digest,
                             .diff_ids = diff_id_list, .size = total, .names = names};
    return catalog_commit(sp->s, &c, loaded, err);
}

static int import_docker_archive(struct spooled *sp, const struct pea_image_import_options *o, char ***loaded,
                                 struct pea_error *err)
{
    AUTO_FREE char *text = NULL;
    size_t len = 0;
    if (read_member_document(sp, "manifest.json", &text, &len, err) < 0)
        return -1;
    json_error_t jerr;
    AUTO_JSON json_t *items = json_loadb(text, len, 0, &jerr);
    if (!json_is_array(items) || json_array_size(items) == 0)
        return pea_fail(err, 0, "manifest.json: not a list of images%s%s", items ? "" : ": ", items ? "" : jerr.text);
    if (o && o->name && json_array_size(items) > 1)
        return pea_fail(err, 0, "the archive holds %zu images: a name can be given to one only", json_array_size(items));
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
        if (import_docker_image(sp, item, o, loaded, err) < 0)
            return -1;
    return 0;
}

int pea_image_load_archive(struct pea_image_store *s, int fd, const struct pea_image_import_options *o,
                           char ***loaded, struct pea_error *err)
{
    *loaded = NULL;
    if (store_hold_gc_shared(s, err) < 0 || store_work_dir(s, err) < 0)
        return -1;
    store_sweep_work_dirs(s);
    struct spooled sp = {.s = s, .members = json_object()};
    int r = spool_archive(&sp, fd, err);
    if (r == 0) {
        struct layout_source src = {.open = spooled_open, .ctx = &sp, .shown = "oci-archive"};
        if (json_object_get(sp.members, "oci-layout"))
            r = import_layout_source(s, &src, o, loaded, err);
        else if (json_object_get(sp.members, "manifest.json"))
            r = import_docker_archive(&sp, o, loaded, err);
        else
            r = pea_fail(err, 0, "neither a docker-archive (manifest.json) nor an oci-archive (oci-layout)");
    }
    /* The spooled members go now, whatever happened. */
    const char *path;
    json_t *m;
    json_object_foreach(sp.members, path, m) {
        const char *file = json_string_value(json_object_get(m, "file"));
        if (file)
            unlinkat(s->work_fd, file, 0);
    }
    json_decref(sp.members);
    if (r < 0) {
        strv_free(*loaded);
        *loaded = NULL;
        return pea_wrap(err, "load image archive");
    }
    return 0;
}
