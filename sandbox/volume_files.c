/* Volumes of files pea writes (configMap, secret, downwardAPI, projected), laid out as the kubelet's atomic writer
 * lays them out, so that an update is one rename the container sees all at once:
 *
 *     VOLUME/..2026_04_01_12_00_00.1234567890/KEY   the files of one version, in a timestamped directory
 *     VOLUME/..data -> ..2026_04_01_12_00_00.1234567890
 *     VOLUME/KEY -> ..data/KEY                        one symlink per top-level name
 *
 * Secrets, downward API and projected volumes are on a tmpfs (as the kubelet puts them): their contents never touch
 * the disk. Everything is done relative to the volume's directory fd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pea/pod_env.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "pea/volume.h"
#include "pod_security.h"

#define DATA_LINK "..data"
#define DATA_LINK_NEW "..data_tmp"

bool volume_is_written(const struct pea_pod_volume *v)
{
    return v->type == PEA_VOLUME_CONFIG_MAP || v->type == PEA_VOLUME_SECRET || v->type == PEA_VOLUME_DOWNWARD_API ||
           v->type == PEA_VOLUME_PROJECTED;
}

static bool is_on_tmpfs(const struct pea_pod_volume *v) { return v->type != PEA_VOLUME_CONFIG_MAP; }

/* ---- what to write ---- */

struct payload_file {
    char *path;
    char *data;
    size_t len;
    uint32_t mode;
};

struct payload {
    struct payload_file *files;
    size_t n;
};

static void payload_free(struct payload *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->files[i].path);
        /* Secret bytes are not left in freed memory. */
        explicit_bzero(p->files[i].data, p->files[i].len);
        free(p->files[i].data);
    }
    free(p->files);
    *p = (struct payload){0};
}

/* A later projection of the same path replaces an earlier one, as in the kubelet's projected volumes. */
static void payload_add(struct payload *p, const char *path, char *data, size_t len, uint32_t mode)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->files[i].path, path) == 0) {
            explicit_bzero(p->files[i].data, p->files[i].len);
            free(p->files[i].data);
            p->files[i].data = data;
            p->files[i].len = len;
            p->files[i].mode = mode;
            return;
        }
    p->files = xrealloc(p->files, (p->n + 1) * sizeof *p->files);
    p->files[p->n++] = (struct payload_file){xstrdup(path), data, len, mode};
}

static char *copy_bytes(const char *data, size_t len)
{
    char *copy = xmalloc(len + 1);
    memcpy(copy, data, len);
    copy[len] = '\0';
    return copy;
}

static int add_object(const struct pea_pod_manifest *m, const struct pea_pod_volume *v,
                      const struct pea_projection *proj, struct payload *p, struct pea_error *err)
{
    bool is_secret = proj->kind == PEA_PROJECT_SECRET;
    const char *kind = is_secret ? "Secret" : "ConfigMap";
    const struct pea_config_object *o = manifest_config_find(m, proj->name, is_secret);
    if (!o)
        return proj->is_optional ? 0 : pea_fail(err, 0, "volume %s: %s \"%s\" not found", v->name, kind, proj->name);
    if (!proj->has_items) {
        for (size_t i = 0; i < o->n_entries; i++)
            payload_add(p, o->entries[i].key, copy_bytes(o->entries[i].value, o->entries[i].len), o->entries[i].len,
                        v->default_mode);
        return 0;
    }
    for (size_t i = 0; i < proj->n_items; i++) {
        const struct pea_projection_item *it = &proj->items[i];
        const struct pea_config_entry *e = manifest_config_entry(o, it->key);
        if (!e) {
            if (proj->is_optional)
                continue;
            return pea_fail(err, 0, "volume %s: key \"%s\" not found in %s \"%s\"", v->name, it->key, kind,
                            proj->name);
        }
        payload_add(p, it->path, copy_bytes(e->value, e->len), e->len, it->has_mode ? it->mode : v->default_mode);
    }
    return 0;
}

static int add_downward(const struct pea_pod *pod, const struct pea_pod_manifest *m, const struct pea_pod_volume *v,
                        const struct pea_projection *proj, struct payload *p, struct pea_error *err)
{
    for (size_t i = 0; i < proj->n_items; i++) {
        const struct pea_projection_item *it = &proj->items[i];
        char *value = NULL;
        if (it->ref.source == PEA_VALUE_FIELD)
            value = pod_field_value(pod, m, it->ref.key);
        else if (pod_resource_value(pod, m, NULL, &it->ref, &value, err) < 0)
            return pea_wrap(err, "volume %s", v->name);
        payload_add(p, it->path, value, strlen(value), it->has_mode ? it->mode : v->default_mode);
    }
    return 0;
}

/* Whether one path is a directory the other needs ("a" and "a/b"): the two cannot both be written. */
static bool paths_collide(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '/';
}

static int payload_build(const struct pea_pod *pod, const struct pea_pod_manifest *m, const struct pea_pod_volume *v,
                         struct payload *p, struct pea_error *err)
{
    *p = (struct payload){0};
    for (size_t i = 0; i < v->n_projections; i++) {
        const struct pea_projection *proj = &v->projections[i];
        int r = proj->kind == PEA_PROJECT_DOWNWARD_API ? add_downward(pod, m, v, proj, p, err)
                                                       : add_object(m, v, proj, p, err);
        if (r < 0) {
            payload_free(p);
            return -1;
        }
    }
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->n; j++)
            if (i != j && paths_collide(p->files[i].path, p->files[j].path)) {
                pea_fail(err, 0, "volume %s: \"%s\" would be both a file and a directory", v->name,
                         p->files[i].path);
                payload_free(p);
                return -1;
            }
    return 0;
}

static bool payload_equal(const struct payload *a, const struct payload *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->files[i].path, b->files[i].path) != 0 || a->files[i].len != b->files[i].len ||
            a->files[i].mode != b->files[i].mode || memcmp(a->files[i].data, b->files[i].data, a->files[i].len) != 0)
            return false;
    return true;
}

/* ---- writing ---- */

/* One file at path below dir_fd, its directories made on the way (0755, as the kubelet's). */
static int write_one(int dir_fd, const struct payload_file *f, struct pea_error *err)
{
    AUTO_FREE char *path = xstrdup(f->path);
    AUTO_FD int dir = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    char *name = path;
    for (char *slash; (slash = strchr(name, '/')); name = slash + 1) {
        *slash = '\0';
        if (!*name)
            continue;
        if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST)
            return pea_fail(err, errno, "create directory %s", f->path);
        int next = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return pea_fail(err, errno, "open directory %s", f->path);
        close(dir);
        dir = next;
    }
    AUTO_FD int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, f->data, f->len) < 0 || fchmod(fd, f->mode) < 0)
        return pea_fail(err, errno, "write %s", f->path);
    return 0;
}

/* "..2026_04_01_12_00_00.1234567890": the time of writing and random digits, as the kubelet names them. */
static char *timestamped_name(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    uint32_t random = 0;
    if (getrandom(&random, sizeof random, 0) != (ssize_t)sizeof random)
        random = (uint32_t)now.tv_nsec;
    return xasprintf("..%04d_%02d_%02d_%02d_%02d_%02d.%010u", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, random);
}

static bool is_top_level_name(const struct payload *p, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < p->n; i++)
        if (strncmp(p->files[i].path, name, n) == 0 && (p->files[i].path[n] == '\0' || p->files[i].path[n] == '/'))
            return true;
    return false;
}

/* Make the user-visible symlinks of the new version, then drop what the old one had and the new has not: old
 * versions' directories, and symlinks of names no longer there. */
static int relink(const char *dir_path, int dir_fd, const char *current, const struct payload *p,
                  struct pea_error *err)
{
    for (size_t i = 0; i < p->n; i++) {
        AUTO_FREE char *top = xasprintf("%.*s", (int)strcspn(p->files[i].path, "/"), p->files[i].path);
        AUTO_FREE char *target = xasprintf(DATA_LINK "/%s", top);
        if (symlinkat(target, dir_fd, top) < 0 && errno != EEXIST)
            return pea_fail(err, errno, "link %s", top);
    }
    int list_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!d) {
        if (list_fd >= 0)
            close(list_fd);
        return pea_fail(err, errno, "list %s", dir_path);
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, DATA_LINK) == 0 ||
            strcmp(name, current) == 0)
            continue;
        if (strncmp(name, "..", 2) == 0) {
            /* Through the directory listed, not its path: the version removed is the one found here. */
            AUTO_FREE char *old = xasprintf("%s/%s", dir_path, name);
            r = remove_tree_at(dir_fd, name, old, err);
        } else if (!is_top_level_name(p, name) && unlinkat(dir_fd, name, 0) < 0) {
            r = pea_fail(err, errno, "remove %s/%s", dir_path, name);
        }
    }
    closedir(d);
    return r;
}

/* groups: fsGroup, applied to the new version before it is switched to, as the kubelet after its atomic writer. */
static int write_payload(int dir_fd, const char *dir_path, const struct payload *p,
                         const struct pea_pod_groups *groups, struct pea_error *err)
{
    AUTO_FREE char *version = timestamped_name();
    if (mkdirat(dir_fd, version, 0755) < 0)
        return pea_fail(err, errno, "create %s/%s", dir_path, version);
    AUTO_FD int version_fd = openat(dir_fd, version, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* 0755 whatever the umask: every user of the container reads through it. */
    if (version_fd < 0 || fchmod(version_fd, 0755) < 0)
        return pea_fail(err, errno, "open %s/%s", dir_path, version);
    for (size_t i = 0; i < p->n; i++)
        if (write_one(version_fd, &p->files[i], err) < 0)
            return pea_wrap(err, "%s/%s", dir_path, version);
    if (pod_security_own_volume(version_fd, groups, true, err) < 0)
        return pea_wrap(err, "%s/%s", dir_path, version);
    /* The swap: a new link renamed over the old, one atomic step for a reader. */
    if ((unlinkat(dir_fd, DATA_LINK_NEW, 0) < 0 && errno != ENOENT) ||
        symlinkat(version, dir_fd, DATA_LINK_NEW) < 0 || renameat(dir_fd, DATA_LINK_NEW, dir_fd, DATA_LINK) < 0)
        return pea_fail(err, errno, "switch %s/" DATA_LINK " to %s", dir_path, version);
    return relink(dir_path, dir_fd, version, p, err);
}

/* ---- entry points ---- */

/* The volume's directory is made and opened once below volumes_dir (no symlink followed), and its tmpfs, mode and
 * files all go through that fd. */
int volume_prepare_written(const struct pea_pod *pod, const struct pea_pod_volume *v, int volumes_dir,
                           struct pea_error *err)
{
    AUTO_FREE char *path = volume_host_path(pod, v);
    if (mkdirat(volumes_dir, v->name, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "volume %s: create %s", v->name, path);
    AUTO_FD int dir = sys_open_no_symlinks(volumes_dir, v->name, O_RDONLY | O_DIRECTORY);
    if (dir < 0)
        return pea_fail(err, errno, "volume %s: open %s", v->name, path);
    if (is_on_tmpfs(v)) {
        int root = volume_mount_tmpfs(dir, v->name, 0755, false, 0, err);
        if (root < 0)
            return -1;
        close(dir);
        dir = root;
    }
    if (fchmod(dir, 0755) < 0)
        return pea_fail(err, errno, "volume %s: chmod %s", v->name, path);
    struct payload p;
    if (payload_build(pod, pod->manifest, v, &p, err) < 0)
        return -1;
    int r = write_payload(dir, path, &p, &pod->manifest->groups, err);
    payload_free(&p);
    return r < 0 ? pea_wrap(err, "volume %s", v->name) : 0;
}

int volume_update_written(const struct pea_pod *pod, const struct pea_pod_manifest *old, struct pea_error *err)
{
    for (size_t i = 0; i < pod->manifest->n_volumes; i++) {
        const struct pea_pod_volume *v = &pod->manifest->volumes[i];
        const struct pea_pod_volume *before = volume_find(old, v->name);
        if (!volume_is_written(v))
            continue;
        struct payload now, then = {0};
        if (payload_build(pod, pod->manifest, v, &now, err) < 0)
            return -1;
        struct pea_error ignored = {0};
        bool is_same = before && payload_build(pod, old, before, &then, &ignored) == 0 && payload_equal(&now, &then);
        AUTO_FREE char *path = volume_host_path(pod, v);
        AUTO_FD int dir = is_same ? -1 : sys_open_no_symlinks(AT_FDCWD, path, O_PATH | O_DIRECTORY);
        int r = is_same ? 0
                : dir < 0 ? pea_fail(err, errno, "open %s", path)
                          : write_payload(dir, path, &now, &pod->manifest->groups, err);
        payload_free(&now);
        payload_free(&then);
        if (r < 0)
            return pea_wrap(err, "volume %s", v->name);
    }
    return 0;
}
