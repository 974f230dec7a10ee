/* Blobs written into the store: into this process's work directory, hashed as they pass (libcrypto), verified and
 * renamed into blobs/ on commit. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/util.h"

struct pea_blob_writer {
    struct pea_image_store *store;
    int fd;
    char *name; /* in the work directory */
    struct pea_hasher *hasher;
    char expected[PEA_DIGEST_SIZE];
    int64_t expected_size;
    uint64_t written;
};

int pea_blob_begin(struct pea_image_store *s, const char *expected_digest, int64_t expected_size,
                   struct pea_blob_writer **out, struct pea_error *err)
{
    *out = NULL;
    if (expected_digest && !pea_digest_is_valid(expected_digest))
        return pea_fail(err, 0, "blob digest \"%s\": not sha256: and 64 lowercase hex digits", expected_digest);
    if (store_hold_gc_shared(s, err) < 0)
        return -1;
    int work = store_work_dir(s, err);
    if (work < 0)
        return -1;
    struct pea_blob_writer *w = xcalloc(1, sizeof *w);
    w->store = s;
    w->name = store_new_work_name(s, "blob");
    w->fd = openat(work, w->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        pea_fail(err, errno, "create %s/%s", s->work_path, w->name);
        free(w->name);
        free(w);
        return -1;
    }
    w->hasher = pea_hasher_new(PEA_DIGEST_SHA256);
    snprintf(w->expected, sizeof w->expected, "%s", expected_digest ? expected_digest : "");
    w->expected_size = expected_size;
    *out = w;
    return 0;
}

int pea_blob_write(struct pea_blob_writer *w, const void *buf, size_t len, struct pea_error *err)
{
    if (w->expected_size >= 0 && w->written + len > (uint64_t)w->expected_size)
        return pea_fail(err, 0, "blob %s: more than the %" PRId64 " bytes announced", w->expected, w->expected_size);
    if (write_all(w->fd, buf, len) < 0)
        return pea_fail(err, errno, "write blob %s", w->expected[0] ? w->expected : w->name);
    pea_hasher_update(w->hasher, buf, len);
    w->written += len;
    return 0;
}

void pea_blob_abort(struct pea_blob_writer *w)
{
    if (!w)
        return;
    close(w->fd);
    unlinkat(w->store->work_fd, w->name, 0);
    pea_hasher_free(w->hasher);
    free(w->name);
    free(w);
}

int pea_blob_commit(struct pea_blob_writer *w, char digest_out[PEA_DIGEST_SIZE], struct pea_error *err)
{
    char digest[PEA_DIGEST_SIZE];
    pea_hasher_finish(w->hasher, digest);
    w->hasher = NULL;
    int r = 0;
    if (w->expected_size >= 0 && w->written != (uint64_t)w->expected_size)
        r = pea_fail(err, 0, "blob %s: %" PRIu64 " bytes, not the %" PRId64 " announced", digest, w->written,
                     w->expected_size);
    else if (w->expected[0] && strcmp(digest, w->expected) != 0)
        r = pea_fail(err, 0, "blob %s: content does not match its digest (it hashes to %s)", w->expected, digest);
    else if (renameat2(w->store->work_fd, w->name, w->store->blobs_fd, pea_digest_hex(digest), RENAME_NOREPLACE) < 0 &&
             errno != EEXIST)
        r = pea_fail(err, errno, "store blob %s", digest);
    if (r == 0 && digest_out)
        memcpy(digest_out, digest, PEA_DIGEST_SIZE);
    pea_blob_abort(w); /* the file is gone when renamed; else it goes now */
    return r;
}

int pea_blob_store_fd(struct pea_image_store *s, int fd, const char *expected_digest, int64_t expected_size,
                      char digest_out[PEA_DIGEST_SIZE], struct pea_error *err)
{
    struct pea_blob_writer *w;
    if (pea_blob_begin(s, expected_digest, expected_size, &w, err) < 0)
        return -1;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            pea_blob_abort(w);
            return pea_fail(err, errno, "read blob %s", expected_digest ? expected_digest : "");
        }
        if (n == 0)
            break;
        if (pea_blob_write(w, buf, (size_t)n, err) < 0) {
            pea_blob_abort(w);
            return -1;
        }
    }
    return pea_blob_commit(w, digest_out, err);
}

int pea_blob_store_buffer(struct pea_image_store *s, const void *buf, size_t len, const char *expected_digest,
                          char digest_out[PEA_DIGEST_SIZE], struct pea_error *err)
{
    char digest[PEA_DIGEST_SIZE];
    pea_digest_buffer(buf, len, digest);
    if (expected_digest && strcmp(digest, expected_digest) != 0)
        return pea_fail(err, 0, "blob %s: content does not match its digest (it hashes to %s)", expected_digest,
                        digest);
    if (digest_out)
        memcpy(digest_out, digest, PEA_DIGEST_SIZE);
    if (pea_blob_exists(s, digest))
        return 0;
    struct pea_blob_writer *w;
    if (pea_blob_begin(s, digest, (int64_t)len, &w, err) < 0)
        return -1;
    if (pea_blob_write(w, buf, len, err) < 0) {
        pea_blob_abort(w);
        return -1;
    }
    return pea_blob_commit(w, NULL, err);
}

