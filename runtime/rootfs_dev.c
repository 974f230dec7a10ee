/* /dev: the default nodes and links on a /dev tmpfs of the config, linux.devices, and a read-only /dev, which is
 * filled first and made read-only last, once the console is bound in the container (as runc does). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pea/sys.h"
#include "pea/util.h"
#include "rootfs_internal.h"

static const struct {
    const char *name;
    unsigned major, minor;
} default_devices[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static const struct {
    const char *name, *target;
} default_links[] = {
    {"fd", "/proc/self/fd"},     {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
};

/* mknod a device below the root; where mknod is not allowed (a user namespace), bind the host's node instead. Returns
 * an O_PATH fd of what stands at the path then, for its owner to be set on that very object: the rootfs may be
 * shared with a running container that swaps names in it. */
static int make_device(int root_fd, const char *path, mode_t type, unsigned major, unsigned minor, mode_t mode,
                       struct pea_error *err)
{
    AUTO_FREE char *copy = xstrdup(path);
    char *slash = strrchr(copy, '/');
    *slash = '\0';
    AUTO_FD int dir = sys_mkdir_in_root(root_fd, copy[0] ? copy : "/", 0755);
    if (dir < 0)
        return pea_fail(err, errno, "create parent of %s", path);
    const char *name = slash + 1;
    /* The mode given whole at creation (no chmod by name afterwards, which a symlink swapped in could redirect). */
    mode_t saved_umask = umask(0);
    int r = mknodat(dir, name, type | mode, makedev(major, minor));
    int saved_errno = errno;
    umask(saved_umask);
    if (r == 0 || saved_errno == EEXIST) {
        /* What stands there already (the image's, or pea's /dev/ptmx link) is kept, as runc keeps it; a symlink is
         * opened itself, never followed, so an owner asked for lands on the link and nowhere else. */
        int node = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        return node >= 0 ? node : pea_fail(err, errno, "open %s", path);
    }
    if (saved_errno != EPERM || type == S_IFIFO)
        return pea_fail(err, saved_errno, "mknod %s", path);
    AUTO_FD int target = sys_mkfile_in_root(root_fd, path, 0600);
    AUTO_FD int tree = target < 0 ? -1 : open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0 || rootfs_attach_tree(tree, target) < 0)
        return pea_fail(err, errno, "bind host device %s", path);
    return take_fd(&tree);
}

static bool has_dev_tmpfs(const struct pea_spec *spec)
{
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (rootfs_is_dev_mount(&spec->mounts[i]) && spec->mounts[i].type && strcmp(spec->mounts[i].type, "tmpfs") == 0)
            return true;
    return false;
}

int rootfs_setup_dev(int root_fd, const struct pea_spec *spec, struct pea_error *err)
{
    if (has_dev_tmpfs(spec)) {
        for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
            char path[32];
            snprintf(path, sizeof path, "/dev/%s", default_devices[i].name);
            AUTO_FD int node =
                make_device(root_fd, path, S_IFCHR, default_devices[i].major, default_devices[i].minor, 0666, err);
            if (node < 0)
                return -1;
        }
        AUTO_FD int dev = sys_open_in_root(root_fd, "/dev", O_PATH | O_DIRECTORY, 0);
        if (dev < 0)
            return pea_fail(err, errno, "open /dev");
        for (size_t i = 0; i < ARRAY_SIZE(default_links); i++)
            if (symlinkat(default_links[i].target, dev, default_links[i].name) < 0 && errno != EEXIST)
                return pea_fail(err, errno, "symlink /dev/%s", default_links[i].name);
    }
    for (size_t i = 0; i < spec->n_devices; i++) {
        const struct pea_device *d = &spec->devices[i];
        mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
        mode_t mode = d->has_file_mode ? d->file_mode & 07777 : 0666;
        AUTO_FD int node = make_device(root_fd, d->path, type, (unsigned)d->major, (unsigned)d->minor, mode, err);
        if (node < 0)
            return -1;
        if ((d->has_uid || d->has_gid) && fchownat(node, "", d->has_uid ? d->uid : (uid_t)-1,
                                                   d->has_gid ? d->gid : (gid_t)-1, AT_EMPTY_PATH) < 0)
            return pea_fail(err, errno, "chown %s", d->path);
    }
    return 0;
}

bool rootfs_is_dev_mount(const struct pea_mount *m) { return strcmp(m->destination, "/dev") == 0; }

struct pea_mount rootfs_mount_as_made(const struct pea_mount *m)
{
    struct pea_mount made = *m;
    if (rootfs_is_dev_mount(m)) {
        made.flags &= ~(unsigned long)MS_RDONLY;
        made.rec_attr_set &= ~(uint64_t)MOUNT_ATTR_RDONLY;
    }
    return made;
}

int rootfs_finalize_dev(const struct pea_spec *spec, struct pea_error *err)
{
    /* The last mount on /dev is the one the container sees. */
    const struct pea_mount *dev = NULL;
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (rootfs_is_dev_mount(&spec->mounts[i]))
            dev = &spec->mounts[i];
    bool is_readonly = dev && (dev->flags & MS_RDONLY);
    bool is_recursive_readonly = dev && (dev->rec_attr_set & MOUNT_ATTR_RDONLY);
    if (!is_readonly && !is_recursive_readonly)
        return 0;
    /* Resolved as its mount was, inside the root: the mount on it is ours (nothing in the container ran yet). */
    AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    AUTO_FD int fd = root < 0 ? -1 : sys_open_in_root(root, "/dev", O_PATH | O_DIRECTORY, 0);
    struct statx stx;
    if (fd < 0 || statx(fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
        return pea_fail(err, errno, "remount /dev read-only");
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return pea_fail(err, 0, "remount /dev read-only: /dev in the container is not a mount");
    /* "ro" is the /dev mount alone (its submounts, /dev/pts and /dev/shm, stay writable); "rro" all of them. */
    if (rootfs_set_mount_attr(fd, is_recursive_readonly ? AT_RECURSIVE : 0, MOUNT_ATTR_RDONLY, 0, 0) < 0)
        return pea_fail(err, errno, "remount /dev read-only");
    return 0;
}
