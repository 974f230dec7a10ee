/* Layers: a blob (tar, gzip or zstd) decompressed, hashed twice (the blob's digest, the tar's diff ID), unpacked into
 * the work directory and published under its diff ID by one rename. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/log.h"
#include "pea/util.h"

#define LAYER_BUFFER (128 * 1024)

/* The compressed side: bytes from the source, hashed as they pass. */
struct blob_reader {
    const struct layer_source *src;
    struct pea_hasher *hasher;
    uint64_t bytes;
    char buf[LAYER_BUFFER];
    struct pea_error err; /* why the source failed: kept apart from what libarchive says next */
    bool failed;
};

static la_ssize_t blob_read(struct archive *a, void *ctx, const void **buf)
{
    (void)a;
    struct blob_reader *r = ctx;
    ssize_t n = r->src->read(r->src->ctx, r->buf, sizeof r->buf, &r->err);
    if (n < 0) {
        r->failed = true;
        return -1;
    }
    pea_hasher_update(r->hasher, r->buf, (size_t)n);
    r->bytes += (uint64_t)n;
    *buf = r->buf;
    return n;
}

/* The uncompressed side: what the decompressor gives, hashed for the diff ID and counted against the limit. */
struct tar_reader {
    struct archive *raw; /* decompressing, format "raw" */
    struct pea_hasher *hasher;
    uint64_t bytes, limit;
    char buf[LAYER_BUFFER];
    bool too_large, failed;
};

static la_ssize_t tar_read(struct archive *a, void *ctx, const void **buf)
{
    (void)a;
    struct tar_reader *r = ctx;
    la_ssize_t n = archive_read_data(r->raw, r->buf, sizeof r->buf);
    if (n < 0) {
        r->failed = true;
        return -1;
    }
    if (r->bytes + (uint64_t)n > r->limit) {
        r->too_large = true;
        return -1;
    }
    pea_hasher_update(r->hasher, r->buf, (size_t)n);
    r->bytes += (uint64_t)n;
    *buf = r->buf;
    return n;
}

struct layer_job {
    struct pea_image_store *s;
    const struct layer_expect *expect;
    struct blob_reader blob;
    struct tar_reader tar;
    struct archive *raw, *tarball;
    struct unpack_stats stats;
    char blob_digest[PEA_DIGEST_SIZE], diff_id[PEA_DIGEST_SIZE];
};

/* Why the pipeline stopped: our callbacks' reasons before libarchive's words for them. */
static int pipeline_error(struct layer_job *j, struct archive *a, const char *doing, struct pea_error *err)
{
    if (j->blob.failed) {
        *err = j->blob.err;
        return -1;
    }
    if (j->tar.too_large)
        return pea_fail(err, 0, "more than %" PRIu64 " bytes uncompressed: refused (limit PEA_IMAGE_MAX_LAYER_BYTES)",
                        j->tar.limit);
    if (j->tar.failed)
        return pea_fail(err, 0, "decompress the layer: %s",
                        archive_error_string(j->raw) ? archive_error_string(j->raw) : "unreadable data");
    return pea_fail(err, 0, "%s: %s", doing, archive_error_string(a) ? archive_error_string(a) : "unreadable data");
}

static int open_pipeline(struct layer_job *j, struct pea_error *err)
{
    j->raw = archive_read_new();
    j->tarball = archive_read_new();
    if (!j->raw || !j->tarball)
        abort();
    archive_read_support_filter_gzip(j->raw);
    archive_read_support_filter_zstd(j->raw);
    archive_read_support_format_raw(j->raw);
    if (archive_read_open(j->raw, &j->blob, NULL, blob_read, NULL) != ARCHIVE_OK)
        return pipeline_error(j, j->raw, "read the layer blob", err);
    struct archive_entry *entry;
    int r = archive_read_next_header(j->raw, &entry);
    if (r == ARCHIVE_EOF)
        return pea_fail(err, 0, "the layer blob is empty");
    if (r != ARCHIVE_OK)
        return pipeline_error(j, j->raw, "decompress the layer", err);
    int filter = archive_filter_code(j->raw, 0);
    if (filter != ARCHIVE_FILTER_NONE && filter != ARCHIVE_FILTER_GZIP && filter != ARCHIVE_FILTER_ZSTD)
        return pea_fail(err, 0, "layer compressed with %s: only gzip and zstd are supported",
                        archive_filter_name(j->raw, 0));
    j->tar.raw = j->raw;
    archive_read_support_format_tar(j->tarball);
    if (archive_read_open(j->tarball, &j->tar, NULL, tar_read, NULL) != ARCHIVE_OK)
        return pipeline_error(j, j->tarball, "read the layer's tar", err);
    return 0;
}

/* After the tar's end marker: hash what is left (padding after the end blocks, then the rest of the blob). */
static int drain_pipeline(struct layer_job *j, struct pea_error *err)
{
    const void *buf;
    while (true) {
        la_ssize_t n = tar_read(j->tarball, &j->tar, &buf);
        if (n < 0)
            return pipeline_error(j, j->raw, "read the end of the layer", err);
        if (n == 0)
            break;
    }
    while (true) {
        la_ssize_t n = blob_read(j->raw, &j->blob, &buf);
        if (n < 0)
            return pipeline_error(j, j->raw, "read the layer blob", err);
        if (n == 0)
            return 0;
    }
}

static int verify(struct layer_job *j, struct pea_error *err)
{
    const struct layer_expect *e = j->expect;
    pea_hasher_finish(j->blob.hasher, j->blob_digest);
    pea_hasher_finish(j->tar.hasher, j->diff_id);
    j->blob.hasher = j->tar.hasher = NULL;
    if (e->blob_size >= 0 && j->blob.bytes != (uint64_t)e->blob_size)
        return pea_fail(err, 0, "blob %s: %" PRIu64 " bytes, not the %" PRId64 " its descriptor says",
                        e->blob_digest ? e->blob_digest : "", j->blob.bytes, e->blob_size);
    if (e->blob_digest && strcmp(j->blob_digest, e->blob_digest) != 0)
        return pea_fail(err, 0, "blob %s: content does not match its digest (it hashes to %s)", e->blob_digest,
                        j->blob_digest);
    if (strcmp(j->diff_id, e->diff_id) != 0)
        return pea_fail(err, 0, "uncompressed content does not match the diff ID %s in the image config (it hashes "
                        "to %s)", e->diff_id, j->diff_id);
    return 0;
}

static int write_layer_info(int layer_fd, const struct layer_job *j, struct pea_error *err)
{
    /* The blob's digest too: a pull skips fetching a blob whose layer the store has (store_layer_blobs). */
    AUTO_JSON json_t *info = json_pack("{s:s, s:s, s:I, s:I}", "diffID", j->diff_id, "blob", j->blob_digest, "size",
                                       (json_int_t)j->tar.bytes, "entries", (json_int_t)j->stats.entries);
    AUTO_FREE char *text = json_dumps(info, JSON_COMPACT);
    if (!text || write_file_atomic_at(layer_fd, "layer.json", text, strlen(text), 0644) < 0)
        return pea_fail(err, errno, "write layer.json");
    return 0;
}

static int unpack_and_publish(struct layer_job *j, int work, const char *name, struct pea_error *err)
{
    struct pea_image_store *s = j->s;
    if (mkdirat(work, name, 0700) < 0)
        return pea_fail(err, errno, "create %s/%s", s->work_path, name);
    AUTO_FD int layer_fd = openat(work, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (layer_fd < 0 || mkdirat(layer_fd, "diff", 0755) < 0)
        return pea_fail(err, errno, "create %s/%s/diff", s->work_path, name);
    AUTO_FD int diff_fd = openat(layer_fd, "diff", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (diff_fd < 0)
        return pea_fail(err, errno, "open %s/%s/diff", s->work_path, name);
    if (open_pipeline(j, err) < 0)
        return -1;
    if (unpack_tar_into(s, j->tarball, diff_fd, &j->stats, err) < 0)
        return j->blob.failed || j->tar.too_large || j->tar.failed ? pipeline_error(j, j->tarball, "read the layer's tar", err)
                                                                   : -1;
    if (drain_pipeline(j, err) < 0 || verify(j, err) < 0 || write_layer_info(layer_fd, j, err) < 0)
        return -1;
    if (j->stats.skipped_devices)
        log_warn("layer %s: %" PRIu64 " device nodes not created (only root outside a user namespace may)",
                 j->diff_id, j->stats.skipped_devices);
    if (renameat2(work, name, s->layers_fd, pea_digest_hex(j->diff_id), RENAME_NOREPLACE) < 0) {
        /* Another import published the same layer meanwhile: it is complete (published by rename too). */
        if (errno != EEXIST && errno != ENOTEMPTY)
            return pea_fail(err, errno, "publish layer %s", j->diff_id);
        AUTO_FREE char *path = xasprintf("%s/%s", s->work_path, name);
        struct pea_error ignored;
        remove_tree(path, &ignored);
    }
    return 0;
}

/* Imports of one layer take turns (flock on locks/HEX), so that it is unpacked once: the one that waited finds it
 * published. The lock files are removed only under gc.lock held alone (store_remove_layer_locks), and every importer
 * holds gc.lock shared before it opens one, so nobody can be holding a lock file that goes. */
static int lock_layer(struct pea_image_store *s, const char *diff_id, struct pea_error *err)
{
    if (mkdirat(s->dir_fd, LAYER_LOCKS_DIR, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s/" LAYER_LOCKS_DIR, s->path);
    AUTO_FD int dir = openat(s->dir_fd, LAYER_LOCKS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return pea_fail(err, errno, "open %s/" LAYER_LOCKS_DIR, s->path);
    AUTO_FD int fd = openat(dir, pea_digest_hex(diff_id), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pea_fail(err, errno, "open the lock of layer %s", diff_id);
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            return pea_fail(err, errno, "lock layer %s", diff_id);
    return take_fd(&fd);
}

json_t *store_layer_blobs(struct pea_image_store *s)
{
    json_t *map = json_object();
    DIR *dir = fdopendir(dup(s->layers_fd));
    if (!dir)
        return map;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        AUTO_FREE char *name = xasprintf("%s/layer.json", de->d_name);
        struct pea_error ignored;
        AUTO_FREE char *text = store_read_file(s->layers_fd, name, 4096, NULL, &ignored);
        AUTO_JSON json_t *info = text ? json_loads(text, 0, NULL) : NULL;
        const char *blob = json_string_value(json_object_get(info, "blob"));
        const char *diff_id = json_string_value(json_object_get(info, "diffID"));
        if (pea_digest_is_valid(blob) && pea_digest_is_valid(diff_id) &&
            strcmp(pea_digest_hex(diff_id), de->d_name) == 0)
            json_object_set_new(map, blob, json_string(diff_id));
    }
    closedir(dir);
    return map;
}

int store_unpack_layer(struct pea_image_store *s, const struct layer_source *src, const struct layer_expect *expect,
                       uint64_t *tar_size, struct pea_error *err)
{
    if (!pea_digest_is_valid(expect->diff_id))
        return pea_fail(err, 0, "layer diff ID \"%s\": not sha256: and 64 lowercase hex digits", expect->diff_id);
    if (store_hold_gc_shared(s, err) < 0)
        return -1;
    AUTO_FD int lock = lock_layer(s, expect->diff_id, err);
    if (lock < 0)
        return -1;
    if (store_has_layer(s, expect->diff_id)) {
        uint64_t size = 0;
        if (store_layer_size(s, expect->diff_id, &size, err) < 0)
            return -1;
        if (tar_size)
            *tar_size = size;
        return 1;
    }
    int work = store_work_dir(s, err);
    if (work < 0)
        return -1;
    struct layer_job *j = xcalloc(1, sizeof *j);
    j->s = s;
    j->expect = expect;
    j->blob.src = src;
    j->blob.hasher = pea_hasher_new(PEA_DIGEST_SHA256);
    j->tar.hasher = pea_hasher_new(PEA_DIGEST_SHA256);
    j->tar.limit = s->limits.max_layer_bytes;
    AUTO_FREE char *name = store_new_work_name(s, "layer");
    int r = unpack_and_publish(j, work, name, err);
    if (r < 0) {
        pea_wrap(err, "layer %s", expect->diff_id);
        AUTO_FREE char *path = xasprintf("%s/%s", s->work_path, name);
        struct pea_error ignored;
        remove_tree(path, &ignored);
    } else if (tar_size) {
        *tar_size = j->tar.bytes;
    }
    if (j->tarball)
        archive_read_free(j->tarball);
    if (j->raw)
        archive_read_free(j->raw);
    pea_hasher_free(j->blob.hasher);
    pea_hasher_free(j->tar.hasher);
    free(j);
    return r;
}
