/* Named volumes (persistentVolumeClaim) under the data root; see include/pea/volume_named.h for the layout.
 *
 * A pod marks its use under its own data directory, so that the mark goes when the pod's data goes, whatever way the
 * pod was torn down. The volume's directory is the lock: a pod takes it shared while it makes the volume and its
 * mark, `pea volume rm` exclusive while it looks for marks and removes; so no pod can start using a volume that is
 * being removed, and a pod that waited for the lock sees the volume is gone (unlinked) and makes it anew. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "manifest_internal.h"
#include "pea/state.h"
#include "pea/util.h"
#include "pea/volume_named.h"
#include "pod_internal.h"
#include "pod_security.h"

bool volume_named_name_is_valid(const char *name) { return name_is_dns_subdomain(name, 253); }

char *volume_named_data_path(const struct pea_pod *pod, const struct pea_pod_volume *v)
{
    AUTO_FREE char *data_root = pod_data_root_of(pod->data_dir);
    return xasprintf("%s/" VOLUME_NAMED_DIR "/%s/data", data_root, v->claim_name);
}

/* path below dir_fd without any symlink (nor "..", nor a magic link) on the way: what is planted below the data root
 * is never followed. */
static int open_no_symlinks(int dir_fd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd;
    do
        fd = (int)syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    while (fd < 0 && errno == EAGAIN);
    return fd;
}

/* <data root>/volumes-named, made 0700 when missing; an existing one must be this user's and private. */
static int open_named_dir(int root_fd, bool create, struct pea_error *err)
{
    if (create && mkdirat(root_fd, VOLUME_NAMED_DIR, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create " VOLUME_NAMED_DIR);
    AUTO_FD int fd = open_no_symlinks(root_fd, VOLUME_NAMED_DIR, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno == ENOENT && !create ? -1 : pea_fail(err, errno, "open " VOLUME_NAMED_DIR);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "stat " VOLUME_NAMED_DIR);
    if (st.st_uid != geteuid() || (st.st_mode & 077))
        return pea_fail(err, 0, VOLUME_NAMED_DIR " must belong to uid %u and be private (0700)", (unsigned)geteuid());
    return take_fd(&fd);
}

/* The pods (their names) whose data directory under data_root marks the volume name as used, NULL-terminated. */
static char **volume_users(const char *data_root, const char *name, struct pea_error *err)
{
    AUTO_FREE char *pods_dir = xasprintf("%s/pods", data_root);
    AUTO_STRV char **pods = pod_dir_names(pods_dir, err);
    if (!pods)
        return NULL;
    AUTO_FD int pods_fd = open(pods_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    char **users = xcalloc(1, sizeof *users);
    for (char **p = pods; pods_fd >= 0 && *p; p++) {
        AUTO_FREE char *mark = xasprintf("%s/claims/%s", *p, name);
        if (faccessat(pods_fd, mark, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            strv_append(&users, *p);
    }
    return users;
}

/* The volume's directory, locked (how: LOCK_SH or LOCK_EX); errno ENOENT when there is none. */
static int open_locked(int named_fd, const char *name, int how)
{
    AUTO_FD int fd = open_no_symlinks(named_fd, name, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || flock(fd, how) < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    /* Removed while we waited for the lock. */
    if (st.st_nlink == 0) {
        errno = ENOENT;
        return -1;
    }
    return take_fd(&fd);
}

static int mark_user(const struct pea_pod *pod, const char *name, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/claims", pod->data_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s", dir);
    AUTO_FREE char *mark = xasprintf("%s/%s", dir, name);
    AUTO_FD int fd = open(mark, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    return fd < 0 ? pea_fail(err, errno, "create %s", mark) : 0;
}

int volume_named_prepare(const struct pea_pod *pod, const struct pea_pod_volume *v, struct pea_error *err)
{
    const char *name = v->claim_name;
    AUTO_FREE char *data_root = pod_data_root_of(pod->data_dir);
    AUTO_FD int root_fd = state_private_dir_open(data_root, "data root", err);
    if (root_fd < 0)
        return pea_wrap(err, "volume %s", v->name);
    AUTO_FD int named_fd = open_named_dir(root_fd, true, err);
    if (named_fd < 0)
        return pea_wrap(err, "volume %s: claim %s", v->name, name);
    AUTO_FD int claim_fd = -1;
    /* A removal may win the race for the lock a few times; each time the volume is made anew. */
    for (int attempt = 0; claim_fd < 0 && attempt < 5; attempt++) {
        if (mkdirat(named_fd, name, 0700) < 0 && errno != EEXIST)
            return pea_fail(err, errno, "volume %s: create named volume %s", v->name, name);
        claim_fd = open_locked(named_fd, name, LOCK_SH);
        if (claim_fd < 0 && errno != ENOENT)
            return pea_fail(err, errno, "volume %s: open named volume %s", v->name, name);
    }
    if (claim_fd < 0)
        return pea_fail(err, ENOENT, "volume %s: open named volume %s", v->name, name);
    bool is_new = mkdirat(claim_fd, "data", 0777) == 0;
    if (!is_new && errno != EEXIST)
        return pea_fail(err, errno, "volume %s: create named volume %s", v->name, name);
    AUTO_FD int data_fd = open_no_symlinks(claim_fd, "data", O_RDONLY | O_DIRECTORY);
    if (data_fd < 0)
        return pea_fail(err, errno, "volume %s: open named volume %s", v->name, name);
    /* Writable by any user of any container, whatever the umask, as a provisioner's fresh volume is. */
    if (is_new && fchmod(data_fd, 0777) < 0)
        return pea_fail(err, errno, "volume %s: chmod named volume %s", v->name, name);
    if (pod_security_own_volume(data_fd, &pod->manifest->groups, v->is_read_only, err) < 0)
        return pea_wrap(err, "volume %s", v->name);
    return mark_user(pod, name, err) < 0 ? pea_wrap(err, "volume %s", v->name) : 0;
}

int volume_named_open(const struct pea_pod *pod, const struct pea_pod_volume *v, struct pea_error *err)
{
    AUTO_FREE char *data_root = pod_data_root_of(pod->data_dir);
    AUTO_FD int root_fd = open(data_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return pea_fail(err, errno, "volume %s: open data root %s", v->name, data_root);
    AUTO_FREE char *path = xasprintf(VOLUME_NAMED_DIR "/%s/data", v->claim_name);
    int fd = open_no_symlinks(root_fd, path, O_PATH | O_DIRECTORY);
    return fd < 0 ? pea_fail(err, errno, "volume %s: open named volume %s", v->name, v->claim_name) : fd;
}

static json_t *describe(int named_fd, const char *data_root, const char *name, struct pea_error *err)
{
    AUTO_FD int fd = open_no_symlinks(named_fd, name, O_PATH | O_DIRECTORY);
    if (fd < 0)
        return NULL; /* not a volume pea made (a symlink, a file): not listed */
    struct statx stx;
    char created[40] = "";
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BTIME | STATX_MTIME, &stx) == 0) {
        struct statx_timestamp t = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime : stx.stx_mtime;
        struct timespec ts = {.tv_sec = t.tv_sec, .tv_nsec = t.tv_nsec};
        format_rfc3339_nano(&ts, created, sizeof created);
    }
    AUTO_STRV char **users = volume_users(data_root, name, err);
    if (!users)
        return NULL;
    json_t *pods = json_array();
    for (char **u = users; *u; u++)
        json_array_append_new(pods, json_string(*u));
    return json_pack("{s:s, s:o, s:s}", "name", name, "pods", pods, "created", created);
}

json_t *volume_named_list(const char *data_root, struct pea_error *err)
{
    AUTO_FD int root_fd = open(data_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0 && errno != ENOENT)
        return pea_fail(err, errno, "open data root %s", data_root), NULL;
    json_t *list = json_array();
    err->msg[0] = '\0';
    AUTO_FD int named_fd = root_fd < 0 ? -1 : open_named_dir(root_fd, false, err);
    if (named_fd < 0) {
        if (err->msg[0]) {
            json_decref(list);
            return NULL;
        }
        return list;
    }
    AUTO_STRV char **names = NULL;
    {
        AUTO_FREE char *dir = xasprintf("%s/" VOLUME_NAMED_DIR, data_root);
        names = pod_dir_names(dir, err);
    }
    if (!names) {
        json_decref(list);
        return NULL;
    }
    for (char **n = names; *n; n++) {
        if (!volume_named_name_is_valid(*n))
            continue;
        json_t *one = describe(named_fd, data_root, *n, err);
        if (one)
            json_array_append_new(list, one);
    }
    return list;
}

int volume_named_remove(const char *data_root, const char *name, bool is_missing_ok, struct pea_error *err)
{
    if (!volume_named_name_is_valid(name))
        return pea_fail(err, 0, "volume %s: a volume's name is a DNS subdomain", name);
    AUTO_FD int root_fd = open(data_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return errno == ENOENT && is_missing_ok ? 0 : pea_fail(err, errno, "open data root %s", data_root);
    err->msg[0] = '\0';
    AUTO_FD int named_fd = open_named_dir(root_fd, false, err);
    if (named_fd < 0 && err->msg[0])
        return -1;
    AUTO_FD int claim_fd = named_fd < 0 ? -1 : open_locked(named_fd, name, LOCK_EX);
    if (claim_fd < 0) {
        if (named_fd < 0 || errno == ENOENT)
            return is_missing_ok ? 0 : pea_fail(err, 0, "volume %s: no such volume", name);
        return pea_fail(err, errno, "volume %s", name);
    }
    AUTO_STRV char **users = volume_users(data_root, name, err);
    if (!users)
        return pea_wrap(err, "volume %s", name);
    if (users[0])
        return pea_fail(err, 0, "volume %s is in use by pod %s%s", name, users[0],
                        users[1] ? " and others" : "");
    /* What is removed by name must be the directory locked and checked (nothing but the data root's owner can
     * change names below volumes-named, and remove_tree_at follows no symlink, but a swap is refused all the
     * same). */
    struct stat locked, named;
    if (fstat(claim_fd, &locked) < 0 || fstatat(named_fd, name, &named, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "volume %s", name);
    if (locked.st_dev != named.st_dev || locked.st_ino != named.st_ino)
        return pea_fail(err, 0, "volume %s: replaced while it was being removed: refused", name);
    /* Still holding the lock: a pod that waits for it finds the directory unlinked. */
    return remove_tree_at(named_fd, name, name, err) < 0 ? pea_wrap(err, "remove volume %s", name) : 0;
}
