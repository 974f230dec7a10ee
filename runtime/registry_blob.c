/* Blobs into the image layout: fetched a few at a time over one curl multi handle, each hashed and counted as
 * it streams to a temporary name, and renamed to its digest only once size and digest both match. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pea/util.h"
#include "registry_internal.h"

#define DEFAULT_PARALLEL 4
#define ERROR_BODY_MAX 4096
#define MAX_ATTEMPTS 3

static int blobs_dir(struct registry_layout *layout, enum pea_digest_algorithm alg, struct pea_error *err)
{
    if (layout->blobs_fd[alg] >= 0)
        return layout->blobs_fd[alg];
    const char *name = alg == PEA_DIGEST_SHA512 ? "blobs/sha512" : "blobs/sha256";
    if ((mkdirat(layout->dir_fd, "blobs", 0755) < 0 && errno != EEXIST) ||
        (mkdirat(layout->dir_fd, name, 0755) < 0 && errno != EEXIST))
        return pea_fail(err, errno, "create %s in the layout", name);
    int fd = openat(layout->dir_fd, name, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_PATH);
    if (fd < 0)
        return pea_fail(err, errno, "open %s in the layout", name);
    layout->blobs_fd[alg] = fd;
    return fd;
}

static const char *digest_hex(const char *digest)
{
    return strchr(digest, ':') + 1;
}

int registry_layout_put(struct registry_layout *layout, const char *digest, const void *data, size_t len,
                        struct pea_error *err)
{
    enum pea_digest_algorithm alg;
    if (pea_digest_verify(data, len, digest, "blob", err) < 0 || pea_digest_check(digest, &alg, err) < 0)
        return -1;
    int dir = blobs_dir(layout, alg, err);
    if (dir < 0)
        return -1;
    AUTO_FREE char *tmp = xasprintf(".partial-%s", digest_hex(digest));
    AUTO_FD int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return pea_fail(err, errno, "create blob %s", digest);
    if (write_all(fd, data, len) < 0 || renameat(dir, tmp, dir, digest_hex(digest)) < 0) {
        int saved = errno;
        unlinkat(dir, tmp, 0);
        return pea_fail(err, saved, "write blob %s", digest);
    }
    return 0;
}

/* ---- parallel fetch ---- */

struct blob_transfer {
    struct registry_request rq;
    const struct registry_descriptor *desc;
    enum pea_digest_algorithm alg;
    int dir_fd; /* the layout's blobs/ALG (not owned) */
    int fd;     /* .partial-HEX, -1 when not open */
    struct pea_hasher *hasher;
    uint64_t received;
    bool is_too_large, has_write_error, has_reauthenticated, is_done;
    int write_errno, attempts;
    struct registry_response reply; /* headers, and the body of a refusal */
};

static size_t blob_write(char *data, size_t size, size_t n, void *userp)
{
    struct blob_transfer *t = userp;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(t->rq.easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* keep the start of an error body for the message */
        size_t keep = t->reply.len < ERROR_BODY_MAX ? ERROR_BODY_MAX - t->reply.len : 0;
        keep = keep < len ? keep : len;
        t->reply.body = xrealloc(t->reply.body, t->reply.len + keep + 1);
        memcpy(t->reply.body + t->reply.len, data, keep);
        t->reply.len += keep;
        t->reply.body[t->reply.len] = '\0';
        return len;
    }
    if (len > t->desc->size - t->received) {
        t->is_too_large = true;
        return 0;
    }
    if (write_all(t->fd, data, len) < 0) {
        t->has_write_error = true;
        t->write_errno = errno;
        return 0;
    }
    pea_hasher_update(t->hasher, data, len);
    t->received += len;
    return len;
}

static size_t blob_header(char *data, size_t size, size_t n, void *userp)
{
    struct blob_transfer *t = userp;
    return registry_header_line(data, size, n, &t->reply);
}

static void partial_name(const struct blob_transfer *t, char *out, size_t size)
{
    snprintf(out, size, ".partial-%s", digest_hex(t->desc->digest));
}

/* (Re)start t: an empty temporary file, a fresh hash, a new easy handle in multi. */
static int transfer_start(struct registry_session *s, CURLM *multi, struct blob_transfer *t, struct pea_error *err)
{
    char tmp[160];
    partial_name(t, tmp, sizeof tmp);
    if (t->fd < 0) {
        t->fd = openat(t->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (t->fd < 0)
            return pea_fail(err, errno, "create blob %s", t->desc->digest);
    } else if (ftruncate(t->fd, 0) < 0 || lseek(t->fd, 0, SEEK_SET) < 0) {
        return pea_fail(err, errno, "truncate blob %s", t->desc->digest);
    }
    pea_hasher_free(t->hasher);
    t->hasher = pea_hasher_new(t->alg);
    t->received = 0;
    t->is_too_large = t->has_write_error = false;
    registry_response_free(&t->reply);
    registry_request_done(&t->rq);
    t->attempts++;

    AUTO_FREE char *suffix = xasprintf("blobs/%s", t->desc->digest);
    AUTO_FREE char *url = registry_url(s, suffix);
    CURL *h = registry_easy_new(s, &t->rq, url, NULL, true);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, blob_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, blob_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_PRIVATE, t);
    if (curl_multi_add_handle(multi, h) != CURLM_OK)
        return pea_fail(err, 0, "blob %s: curl_multi_add_handle failed", t->desc->digest);
    return 0;
}

static bool is_transient(CURLcode rc, long status)
{
    if (rc == CURLE_OK)
        return status == 500 || status == 502 || status == 503 || status == 504;
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_HTTP2_STREAM;
}

enum transfer_outcome { TRANSFER_DONE, TRANSFER_RETRY, TRANSFER_FAILED };

static enum transfer_outcome transfer_finish(struct registry_session *s, struct blob_transfer *t, CURLcode rc,
                                             struct pea_error *err)
{
    long status = 0;
    curl_easy_getinfo(t->rq.easy, CURLINFO_RESPONSE_CODE, &status);
    const char *digest = t->desc->digest;
    if (t->is_too_large) {
        pea_fail(err, 0, "blob %s: the registry sent more than the %llu bytes the manifest gives", digest,
                 (unsigned long long)t->desc->size);
        return TRANSFER_FAILED;
    }
    if (t->has_write_error) {
        pea_fail(err, t->write_errno, "write blob %s", digest);
        return TRANSFER_FAILED;
    }
    if (rc == CURLE_OK && status == 401 && !t->has_reauthenticated) {
        /* A token may expire during a long pull: answer the challenge once more and start over. */
        t->has_reauthenticated = true;
        if (registry_authenticate(s, t->reply.challenge, err) < 0) {
            pea_wrap(err, "blob %s", digest);
            return TRANSFER_FAILED;
        }
        return TRANSFER_RETRY;
    }
    if (is_transient(rc, status) && t->attempts < MAX_ATTEMPTS)
        return TRANSFER_RETRY;
    if (rc != CURLE_OK || status != 200) {
        char what[180];
        snprintf(what, sizeof what, "blob %s", digest);
        registry_fail_transfer(err, &t->rq, rc, status, t->reply.body, t->reply.len, what);
        return TRANSFER_FAILED;
    }
    if (t->received != t->desc->size) {
        pea_fail(err, 0, "blob %s: the registry sent %llu bytes, the manifest gives %llu", digest,
                 (unsigned long long)t->received, (unsigned long long)t->desc->size);
        return TRANSFER_FAILED;
    }
    char actual[REGISTRY_DIGEST_MAX];
    pea_hasher_finish(t->hasher, actual);
    t->hasher = NULL;
    if (strcmp(actual, digest) != 0) {
        pea_fail(err, 0, "blob %s: content has digest %s", digest, actual);
        return TRANSFER_FAILED;
    }
    char tmp[160];
    partial_name(t, tmp, sizeof tmp);
    close(t->fd);
    t->fd = -1;
    if (renameat(t->dir_fd, tmp, t->dir_fd, digest_hex(digest)) < 0) {
        pea_fail(err, errno, "rename blob %s into place", digest);
        return TRANSFER_FAILED;
    }
    t->is_done = true;
    return TRANSFER_DONE;
}

/* ---- progress, on a terminal only ---- */

struct progress {
    bool is_shown;
    struct timespec last;
    uint64_t total;
    size_t n_blobs, n_done;
};

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void progress_update(struct progress *p, const struct blob_transfer *t, size_t n, bool force)
{
    if (!p->is_shown)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed_ms = (now.tv_sec - p->last.tv_sec) * 1000 + (now.tv_nsec - p->last.tv_nsec) / 1000000;
    if (!force && elapsed_ms < 250)
        return;
    p->last = now;
    uint64_t received = 0;
    for (size_t i = 0; i < n; i++)
        received += t[i].is_done ? t[i].desc->size : t[i].received;
    fprintf(stderr, "\rFetching blobs: %zu of %zu done, %.1f of %.1f MiB\033[K", p->n_done, p->n_blobs,
            mib(received), mib(p->total));
    fflush(stderr);
}

static void progress_blob_done(struct progress *p, const struct blob_transfer *t)
{
    if (!p->is_shown)
        return;
    p->n_done++;
    fprintf(stderr, "\rFetched %.19s %10.1f MiB\033[K\n", t->desc->digest, mib(t->desc->size));
}

int registry_fetch_blobs(struct registry_session *s, struct registry_layout *layout,
                         struct registry_descriptor *const *blobs, size_t n, const struct registry_pull_request *req,
                         struct pea_error *err)
{
    if (n == 0)
        return 0;
    struct blob_transfer *transfers = xcalloc(n, sizeof *transfers);
    struct progress progress = {.is_shown = req->show_progress && isatty(STDERR_FILENO), .n_blobs = n};
    for (size_t i = 0; i < n; i++) {
        transfers[i].desc = blobs[i];
        transfers[i].fd = -1;
        progress.total += blobs[i]->size;
    }
    CURLM *multi = curl_multi_init();
    if (!multi)
        abort(); /* only fails when out of memory */
    size_t max_active = req->max_parallel ? req->max_parallel : DEFAULT_PARALLEL;
    size_t next = 0, active = 0, done = 0;
    int r = 0;
    while (r == 0 && done < n) {
        while (active < max_active && next < n) {
            struct blob_transfer *t = &transfers[next++];
            int dir = pea_digest_check(t->desc->digest, &t->alg, err) < 0 ? -1 : blobs_dir(layout, t->alg, err);
            if (dir < 0 || (t->dir_fd = dir, transfer_start(s, multi, t, err)) < 0) {
                r = -1;
                break;
            }
            active++;
        }
        if (r < 0)
            break;
        int running;
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            r = pea_fail(err, 0, "fetch blobs: %s", curl_multi_strerror(mc));
            break;
        }
        CURLMsg *msg;
        int queued;
        while (r == 0 && (msg = curl_multi_info_read(multi, &queued))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct blob_transfer *t;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            CURLcode rc = msg->data.result;
            curl_multi_remove_handle(multi, msg->easy_handle);
            switch (transfer_finish(s, t, rc, err)) {
            case TRANSFER_DONE:
                active--, done++;
                progress_blob_done(&progress, t);
                break;
            case TRANSFER_RETRY:
                r = transfer_start(s, multi, t, err);
                break;
            case TRANSFER_FAILED:
                r = -1;
                break;
            }
        }
        progress_update(&progress, transfers, n, false);
        if (r == 0 && done < n)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    if (progress.is_shown)
        fprintf(stderr, "\r\033[K");
    for (size_t i = 0; i < n; i++) {
        struct blob_transfer *t = &transfers[i];
        if (t->rq.easy)
            curl_multi_remove_handle(multi, t->rq.easy);
        registry_request_done(&t->rq);
        if (t->fd >= 0) { /* unfinished or refused: nothing of it stays */
            char tmp[160];
            partial_name(t, tmp, sizeof tmp);
            close(t->fd);
            unlinkat(t->dir_fd, tmp, 0);
        }
        pea_hasher_free(t->hasher);
        registry_response_free(&t->reply);
    }
    curl_multi_cleanup(multi);
    free(transfers);
    return r;
}
