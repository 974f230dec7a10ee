/* Entering the root filesystem: pivot_root (the old root detached), --no-pivot (the rootfs moved onto "/" and the
 * old root's mounts detached, then chroot), or chroot alone when the container shares our mount namespace. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/rootfs.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "rootfs_internal.h"

/* ---- --no-pivot: the old root stays the namespace's root mount, under the rootfs ---- */

static uint64_t mount_id_of(int fd)
{
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0 || !(stx.stx_mask & STATX_MNT_ID))
        return 0;
    return stx.stx_mnt_id;
}

struct mount_entry {
    uint64_t id, parent;
    char *point;       /* as /proc/self/mountinfo shows it, unescaped: from our root */
    bool is_revealing; /* procfs or sysfs, which the kernel lets a user namespace mount again if one is visible */
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

static void free_mount_entries(struct mount_entry *mounts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(mounts[i].point);
    free(mounts);
}

/* The mounts our root reaches, read through a procfs we verified; NULL with errno on failure. */
static struct mount_entry *read_mount_entries(int proc_fd, size_t *n_out)
{
    AUTO_FREE char *text = read_file_at(proc_fd, "self/mountinfo", 16u << 20, NULL);
    if (!text)
        return NULL;
    struct mount_entry *mounts = NULL;
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        uint64_t id, parent;
        int point_start = 0, point_end = 0;
        const char *sep = strstr(line, " - ");
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %*s %*s %n%*s%n", &id, &parent, &point_start, &point_end) < 2 ||
            point_end <= point_start || !sep)
            continue;
        mounts = xrealloc(mounts, (n + 1) * sizeof *mounts);
        mounts[n].id = id;
        mounts[n].parent = parent;
        mounts[n].point = xasprintf("%.*s", point_end - point_start, line + point_start);
        unescape_octal(mounts[n].point);
        mounts[n].is_revealing = strncmp(sep + 3, "proc ", 5) == 0 || strncmp(sep + 3, "sysfs ", 6) == 0;
        n++;
    }
    *n_out = n;
    if (!mounts)
        errno = ENOENT;
    return mounts;
}

/* umount2 takes a path: the fd's own /proc/self/fd entry, looked up from a procfs we verified (the working
 * directory for the call), so that it is the mount the fd holds that goes, not whatever a path leads to now. */
static int detach_by_fd(int proc_fd, int fd)
{
    char name[32];
    snprintf(name, sizeof name, "self/fd/%d", fd);
    if (fchdir(proc_fd) < 0)
        return -1;
    return umount2(name, MNT_DETACH);
}

static bool contains_id(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* With the rootfs moved onto "/" (and before chroot, while "/" still leads into the old root), detach every other
 * mount of the old root: out of the chroot's reach they would still be in the container's mount namespace, where
 * a procfs or sysfs of the host's counts as "fully visible" and lets a nested user namespace mount a fresh,
 * unmasked one. A mount hidden under another is reached once that one is gone; one the kernel will not let go
 * (locked, in a user namespace) is covered with an empty tmpfs when it is a procfs or sysfs, as runc does. */
static int detach_old_root_mounts(int proc_fd, int rootfs_fd, struct pea_error *err)
{
    uint64_t rootfs_id = mount_id_of(rootfs_fd);
    if (!rootfs_id)
        return pea_fail(err, errno, "mount id of the rootfs");
    AUTO_FREE uint64_t *kept = NULL;
    size_t n_kept = 0;
    for (;;) {
        size_t n = 0;
        struct mount_entry *mounts = read_mount_entries(proc_fd, &n);
        if (!mounts)
            return pea_fail(err, errno, "read the mount table");
        uint64_t old_root = 0;
        for (size_t i = 0; i < n; i++)
            if (mounts[i].id == rootfs_id)
                old_root = mounts[i].parent;
        bool is_progress = false;
        AUTO_FREE char *out_of_reach = NULL;
        int failed = 0;
        for (size_t i = 0; i < n && !failed; i++) {
            const struct mount_entry *e = &mounts[i];
            if (e->parent != old_root || e->id == rootfs_id || contains_id(kept, n_kept, e->id))
                continue;
            AUTO_FD int fd = open(e->point, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || mount_id_of(fd) != e->id) {
                if (e->is_revealing && !out_of_reach)
                    out_of_reach = xstrdup(e->point);
                continue;
            }
            if (detach_by_fd(proc_fd, fd) == 0) {
                is_progress = true;
                continue;
            }
            AUTO_FD int cover = -1;
            if (errno != EINVAL && errno != EPERM)
                failed = pea_fail(err, errno, "detach the old root's mount on %s", e->point);
            else if (e->is_revealing && ((cover = rootfs_open_empty_tmpfs()) < 0 || rootfs_attach_tree(cover, fd) < 0))
                failed = pea_fail(err, errno, "cover the old root's mount on %s", e->point);
            kept = xrealloc(kept, (n_kept + 1) * sizeof *kept);
            kept[n_kept++] = e->id;
            is_progress = true;
        }
        free_mount_entries(mounts, n);
        if (failed)
            return -1;
        if (!out_of_reach)
            return 0;
        if (!is_progress)
            return pea_fail(err, 0, "detach the old root's mount on %s: out of reach", out_of_reach);
    }
}

int rootfs_enter(const struct pea_spec *spec, const char *rootfs, bool no_pivot, struct pea_error *err)
{
    AUTO_FD int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || fchdir(root) < 0)
        return pea_fail(err, errno, "enter rootfs %s", rootfs);
    if (!rootfs_has_mount_namespace(spec)) {
        /* Our own mount namespace (the config lists none: it is inherited, as runc does): its root is not ours to
         * pivot or to move anything onto, whatever --no-pivot says. */
        if (chroot(".") < 0)
            return pea_fail(err, errno, "chroot into rootfs %s", rootfs);
    } else if (no_pivot) {
        AUTO_FD int proc_fd = sys_open_procfs();
        if (proc_fd < 0)
            return pea_fail(err, errno, "/proc is not a procfs");
        /* "/" is the old root until chroot: private first, so that the rootfs moved onto it does not propagate to
         * its peers (the host's "/" with rootfsPropagation rshared); then it loses the mounts it has */
        if (mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0)
            return pea_fail(err, errno, "make the old root private");
        if (move_mount(root, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return pea_fail(err, errno, "move rootfs onto /");
        if (detach_old_root_mounts(proc_fd, root, err) < 0)
            return -1;
        if (fchdir(root) < 0 || chroot(".") < 0)
            return pea_fail(err, errno, "chroot");
    } else {
        /* pivot_root refuses a shared current root (rootfsPropagation rshared): the old root goes away, its
         * propagation with it. */
        AUTO_FD int old_root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (old_root < 0 || mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0)
            return pea_fail(err, errno, "make the old root private");
        /* pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching it leaves the new root
         * with no way back, and no directory for the old root is needed inside the container. */
        if (sys_pivot_root(".", ".") < 0)
            return pea_fail(err, errno, "pivot_root");
        /* "." is the new root still: the old one is reached through its fd, so that only its mounts turn slaves
         * (our unmounts must not propagate to the host) and the container's keep their propagation. */
        if (fchdir(old_root) < 0 || mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
            return pea_fail(err, errno, "make the old root rslave");
        if (umount2(".", MNT_DETACH) < 0)
            return pea_fail(err, errno, "detach the old root");
    }
    if (chdir("/") < 0)
        return pea_fail(err, errno, "chdir /");
    return 0;
}
