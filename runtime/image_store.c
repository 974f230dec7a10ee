/* The image store's directory: opening it, its locks, per-process work directories, and reading blobs and layers
 * (their documents checked again against their digests). Part of libpea: no libarchive or libcrypto here. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/log.h"
#include "pea/state.h"
#include "pea/util.h"

#define GIB (1024ULL * 1024 * 1024)

void pea_image_limits_default(struct pea_image_limits *l)
{
    l->max_layer_bytes = 32 * GIB;
    l->max_layer_entries = 2000000;
    l->max_document_bytes = 8 * 1024 * 1024;
}

static int limit_from_env(const char *name, uint64_t *value, struct pea_error *err)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return 0;
    unsigned long long v;
    if (parse_uint64(text, &v) < 0 || v == 0)
        return pea_fail(err, 0, "%s=%s: not a positive number", name, text);
    *value = v;
    return 0;
}

int pea_image_limits_from_env(struct pea_image_limits *l, struct pea_error *err)
{
    pea_image_limits_default(l);
    if (limit_from_env("PEA_IMAGE_MAX_LAYER_BYTES", &l->max_layer_bytes, err) < 0 ||
        limit_from_env("PEA_IMAGE_MAX_LAYER_ENTRIES", &l->max_layer_entries, err) < 0)
        return -1;
    return 0;
}

/* Root of the initial user namespace: only there are device nodes and foreign file owners ours to create. */
static bool is_privileged(void)
{
    if (geteuid() != 0)
        return false;
    AUTO_FREE char *map = read_file_at(AT_FDCWD, "/proc/self/uid_map", 4096, NULL);
    unsigned inside, outside, count;
    return map && sscanf(map, "%u %u %u", &inside, &outside, &count) == 3 && inside == 0 && outside == 0 &&
           count == 4294967295U;
}

static int open_subdir(int parent, const char *name, const char *shown, struct pea_error *err)
{
    if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s", shown);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "open %s", shown);
    return fd;
}

int pea_image_store_open(const char *data_root, const struct pea_image_limits *limits,
                         struct pea_image_store **out, struct pea_error *err)
{
    *out = NULL;
    AUTO_FD int root_fd = state_private_dir_open(data_root, "data root", err);
    if (root_fd < 0)
        return -1;
    char real[PATH_MAX];
    if (!realpath(data_root, real))
        return pea_fail(err, errno, "resolve data root %s", data_root);
    struct pea_image_store *s = xcalloc(1, sizeof *s);
    s->dir_fd = s->blobs_fd = s->layers_fd = s->tmp_fd = s->work_fd = s->gc_lock_fd = -1;
    s->path = xasprintf("%s/images", real);
    if (limits)
        s->limits = *limits;
    else
        pea_image_limits_default(&s->limits);
    s->is_privileged = is_privileged();
    AUTO_FD int blobs = -1, layers = -1;
    if ((s->dir_fd = open_subdir(root_fd, "images", s->path, err)) < 0 ||
        (blobs = open_subdir(s->dir_fd, "blobs", "blobs", err)) < 0 ||
        (s->blobs_fd = open_subdir(blobs, "sha256", "blobs/sha256", err)) < 0 ||
        (layers = open_subdir(s->dir_fd, "layers", "layers", err)) < 0 ||
        (s->layers_fd = open_subdir(layers, "sha256", "layers/sha256", err)) < 0 ||
        (s->tmp_fd = open_subdir(s->dir_fd, "tmp", "tmp", err)) < 0) {
        pea_image_store_close(s);
        return pea_wrap(err, "image store %s/images", data_root);
    }
    *out = s;
    return 0;
}

void pea_image_store_close(struct pea_image_store *s)
{
    if (!s)
        return;
    if (s->work_fd >= 0) {
        struct pea_error ignored;
        remove_tree(s->work_path, &ignored);
        close(s->work_fd);
    }
    int fds[] = {s->dir_fd, s->blobs_fd, s->layers_fd, s->tmp_fd, s->gc_lock_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(s->work_path);
    free(s->path);
    free(s);
}

const char *pea_image_store_path(const struct pea_image_store *s) { return s->path; }

int store_lock(struct pea_image_store *s, enum store_lock which, bool exclusive, struct pea_error *err)
{
    const char *name = which == STORE_LOCK_GC ? "gc.lock" : "meta.lock";
    AUTO_FD int fd = openat(s->dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pea_fail(err, errno, "open %s/%s", s->path, name);
    while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0)
        if (errno != EINTR)
            return pea_fail(err, errno, "lock %s/%s", s->path, name);
    return take_fd(&fd);
}

int store_hold_gc_shared(struct pea_image_store *s, struct pea_error *err)
{
    if (s->gc_lock_fd >= 0)
        return 0;
    s->gc_lock_fd = store_lock(s, STORE_LOCK_GC, false, err);
    return s->gc_lock_fd < 0 ? -1 : 0;
}

int store_work_dir(struct pea_image_store *s, struct pea_error *err)
{
    if (s->work_fd >= 0)
        return s->work_fd;
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned char rnd[6];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return pea_fail(err, errno, "get random bytes");
        char name[64];
        snprintf(name, sizeof name, "%d-%02x%02x%02x%02x%02x%02x", (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3],
                 rnd[4], rnd[5]);
        if (mkdirat(s->tmp_fd, name, 0700) < 0) {
            if (errno == EEXIST)
                continue;
            return pea_fail(err, errno, "create a work directory in %s/tmp", s->path);
        }
        AUTO_FD int fd = openat(s->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            continue; /* swept before we could lock it */
        if (fd < 0 || flock(fd, LOCK_EX) < 0)
            return pea_fail(err, errno, "lock work directory %s/tmp/%s", s->path, name);
        /* A sweeper may have taken the directory between mkdir and flock: then it is gone, and we start over. */
        struct stat held, named;
        if (fstat(fd, &held) < 0 || fstatat(s->tmp_fd, name, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
            held.st_ino != named.st_ino || held.st_dev != named.st_dev)
            continue;
        s->work_path = xasprintf("%s/tmp/%s", s->path, name);
        s->work_fd = take_fd(&fd);
        return s->work_fd;
    }
    return pea_fail(err, EAGAIN, "create a work directory in %s/tmp", s->path);
}

char *store_new_work_name(struct pea_image_store *s, const char *what)
{
    return xasprintf("%s-%u", what, s->work_seq++);
}

void store_sweep_work_dirs(struct pea_image_store *s)
{
    DIR *dir = fdopendir(dup(s->tmp_fd));
    if (!dir)
        return;
    const char *own = s->work_path ? strrchr(s->work_path, '/') + 1 : "";
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, own) == 0)
            continue;
        AUTO_FD int fd = openat(s->tmp_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
            continue; /* its owner lives */
        AUTO_FREE char *path = xasprintf("%s/tmp/%s", s->path, de->d_name);
        struct pea_error err;
        if (remove_tree(path, &err) < 0)
            log_warn("sweep the image store's work directories: %s", err.msg);
    }
    closedir(dir);
}

char *store_read_file(int dir_fd, const char *name, size_t max, size_t *len, struct pea_error *err)
{
    AUTO_FD int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            pea_fail(err, errno, "open %s", name);
        return NULL;
    }
    size_t n = 0;
    char *data = read_fd_all(fd, max + 1, &n);
    if (!data) {
        pea_fail(err, errno, "read %s", name);
        errno = EIO;
        return NULL;
    }
    if (n > max) {
        free(data);
        pea_fail(err, 0, "%s is larger than %zu bytes", name, max);
        errno = EFBIG;
        return NULL;
    }
    if (len)
        *len = n;
    return data;
}

/* ---- reading blobs and layers -------------------------------------------------------------------------------------- */

bool pea_blob_exists(struct pea_image_store *s, const char *digest)
{
    struct stat st;
    return pea_digest_is_valid(digest) && fstatat(s->blobs_fd, pea_digest_hex(digest), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode);
}

int pea_blob_read(struct pea_image_store *s, const char *digest, size_t max, char **data, size_t *len,
                  struct pea_error *err)
{
    *data = NULL;
    if (!pea_digest_is_valid(digest))
        return pea_fail(err, 0, "blob digest \"%s\": not sha256: and 64 lowercase hex digits", digest);
    size_t n = 0;
    AUTO_FREE char *content = store_read_file(s->blobs_fd, pea_digest_hex(digest), max, &n, err);
    if (!content)
        return errno == ENOENT ? pea_fail(err, ENOENT, "blob %s", digest) : pea_wrap(err, "blob %s", digest);
    char actual[PEA_DIGEST_SIZE];
    pea_digest_buffer(content, n, actual);
    if (strcmp(actual, digest) != 0)
        return pea_fail(err, 0, "blob %s in the store is damaged (it hashes to %s)", digest, actual);
    *data = take_ptr(&content);
    if (len)
        *len = n;
    return 0;
}

bool store_has_layer(struct pea_image_store *s, const char *diff_id)
{
    if (!pea_digest_is_valid(diff_id))
        return false;
    AUTO_FREE char *info = xasprintf("%s/layer.json", pea_digest_hex(diff_id));
    struct stat st;
    return fstatat(s->layers_fd, info, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

int store_layer_size(struct pea_image_store *s, const char *diff_id, uint64_t *size, struct pea_error *err)
{
    AUTO_FREE char *name = xasprintf("%s/layer.json", pea_digest_hex(diff_id));
    AUTO_FREE char *text = store_read_file(s->layers_fd, name, 4096, NULL, err);
    if (!text)
        return errno == ENOENT ? pea_fail(err, ENOENT, "layer %s", diff_id) : pea_wrap(err, "layer %s", diff_id);
    AUTO_JSON json_t *info = json_loads(text, 0, NULL);
    json_t *bytes = json_object_get(info, "size");
    if (!json_is_integer(bytes) || json_integer_value(bytes) < 0)
        return pea_fail(err, 0, "layer %s: layer.json has no size", diff_id);
    *size = (uint64_t)json_integer_value(bytes);
    return 0;
}
