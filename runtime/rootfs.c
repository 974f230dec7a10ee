/* The container's root filesystem. Every destination is resolved inside the rootfs by the kernel (openat2
 * RESOLVE_IN_ROOT) into an O_PATH fd. A mount is built detached (open_tree for a bind, fsopen/fsmount for a
 * filesystem), given its flags and recursive attributes through its own fd, and attached onto the resolved fd with
 * move_mount: no path is walked twice, so a symlink or a swapped path component cannot move a mount, and nothing
 * after the rootfs is entered depends on the container's own /proc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pea/rootfs.h"
#include "pea/sys.h"
#include "pea/util.h"

/* "/proc/self/fd/N" for an fd, valid while our verified /proc is mounted at /proc (before the rootfs is entered). */
struct fd_path {
    char text[40];
};

static struct fd_path fd_path(int fd)
{
    struct fd_path p;
    snprintf(p.text, sizeof p.text, "/proc/self/fd/%d", fd);
    return p;
}

/* MOUNT_ATTR_* of per-mount MS_* flags, read as mount(2) reads them (strictatime wins over noatime). */
static uint64_t mount_attr_of(unsigned long flags)
{
    uint64_t attr = 0;
    if (flags & MS_RDONLY)
        attr |= MOUNT_ATTR_RDONLY;
    if (flags & MS_NOSUID)
        attr |= MOUNT_ATTR_NOSUID;
    if (flags & MS_NODEV)
        attr |= MOUNT_ATTR_NODEV;
    if (flags & MS_NOEXEC)
        attr |= MOUNT_ATTR_NOEXEC;
    if (flags & MS_NODIRATIME)
        attr |= MOUNT_ATTR_NODIRATIME;
    if (flags & MS_STRICTATIME)
        attr |= MOUNT_ATTR_STRICTATIME;
    else if (flags & MS_NOATIME)
        attr |= MOUNT_ATTR_NOATIME;
    return attr;
}

/* Flags the kernel locks on a mount (in a user namespace, or inherited from the source): a change must keep them
 * or it fails with EPERM. */
static unsigned long locked_flags(int fd)
{
    struct statvfs sv;
    if (fstatvfs(fd, &sv) < 0)
        return 0;
    unsigned long f = 0;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_RDONLY)
        f |= MS_RDONLY;
    return f;
}

/* mount_setattr on the mount whose root fd names (attached or not); at_flags 0 or AT_RECURSIVE. */
static int set_mount_attr(int fd, unsigned at_flags, uint64_t set, uint64_t clear, uint64_t propagation)
{
    struct mount_attr attr = {.attr_set = set, .attr_clr = clear, .propagation = propagation};
    return mount_setattr(fd, "", AT_EMPTY_PATH | at_flags, &attr, sizeof attr);
}

/* Give the mount at fd exactly the per-mount FLAGS, as a bind remount (MS_BIND | MS_REMOUNT) does: what FLAGS
 * leaves out is cleared, except what the kernel locked. */
static int set_mount_flags(int fd, unsigned long flags)
{
    const uint64_t all = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                         MOUNT_ATTR_NODIRATIME | MOUNT_ATTR__ATIME;
    if (set_mount_attr(fd, 0, mount_attr_of(flags), all, 0) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    return set_mount_attr(fd, 0, mount_attr_of(flags | locked_flags(fd)), all, 0);
}

/* Attach the detached mount tree onto the object target names (the topmost mount there, as mount(2) would). */
static int attach_tree(int tree, int target)
{
    return move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* A read-only, empty tmpfs that can hold nothing, detached: what hides a directory. */
static int open_empty_tmpfs(void)
{
    AUTO_FD int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "source", "tmpfs", 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "size", "0k", 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "1", 0) < 0 || fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -1;
    return fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
}

static bool is_type(const struct pea_mount *m, const char *type) { return m->type && strcmp(m->type, type) == 0; }

static bool is_allowed_proc_target(const char *destination)
{
    static const char *const allowed[] = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                                          "/proc/swaps",   "/proc/uptime",    "/proc/loadavg", "/proc/slabinfo",
                                          "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"};
    for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
        if (strcmp(destination, allowed[i]) == 0)
            return true;
    return false;
}

/* Copy the tree below FROM (a directory fd) into TO: directories, regular files, symlinks, with owner and mode.
 * For "tmpcopyup": a tmpfs mounted over an image directory (/run, /tmp) starts with that directory's content. */
static int copy_tree(int from, int to, int depth)
{
    if (depth > 64)
        return errno = ELOOP, -1;
    AUTO_FD int dir_fd = openat(from, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = dir_fd < 0 ? NULL : fdopendir(dir_fd);
    if (!dir)
        return -1;
    dir_fd = -1; /* owned by dir now */
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(dir))) {
        const char *n = e->d_name;
        struct stat st;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        if (fstatat(dirfd(dir), n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -1;
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(to, n, st.st_mode & 07777) < 0 && errno != EEXIST) {
                r = -1;
                break;
            }
            AUTO_FD int sub_from = openat(dirfd(dir), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            AUTO_FD int sub_to = openat(to, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            r = sub_from < 0 || sub_to < 0 ? -1 : copy_tree(sub_from, sub_to, depth + 1);
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t len = readlinkat(dirfd(dir), n, target, sizeof target - 1);
            if (len < 0) {
                r = -1;
                break;
            }
            target[len] = '\0';
            r = symlinkat(target, to, n);
        } else if (S_ISREG(st.st_mode)) {
            AUTO_FD int in = openat(dirfd(dir), n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            AUTO_FD int out = openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777);
            if (in < 0 || out < 0) {
                r = -1;
                break;
            }
            char buf[65536];
            ssize_t got;
            while ((got = read(in, buf, sizeof buf)) > 0)
                if (write_all(out, buf, (size_t)got) < 0)
                    break;
            r = got != 0 ? -1 : 0;
        } else {
            continue; /* devices, fifos, sockets: not copied */
        }
        if (r == 0 && (fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                       (!S_ISLNK(st.st_mode) && fchmodat(to, n, st.st_mode & 07777, 0) < 0)))
            r = -1;
    }
    int saved = errno;
    closedir(dir);
    errno = saved;
    return r;
}

/* Where a mount goes: its destination resolved inside the rootfs (created when missing). procfs and sysfs go on
 * an ordinary directory only: a symlink there (runc refuses it too) would put them wherever the image chose. */
static int open_destination(int root_fd, const struct pea_mount *m, const char *what, bool is_file_source,
                            struct pea_error *err)
{
    const char *dest = m->destination;
    if (!is_type(m, "proc") && !is_type(m, "sysfs")) {
        int fd = is_file_source ? sys_mkfile_in_root(root_fd, dest, 0644) : sys_mkdir_in_root(root_fd, dest, 0755);
        return fd >= 0 ? fd : pea_fail(err, errno, "mount %s on %s: resolve destination", what, dest);
    }
    AUTO_FD int fd = sys_open_in_root(root_fd, dest, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0 && errno == ENOENT) {
        AUTO_FD int made = sys_mkdir_in_root(root_fd, dest, 0755);
        fd = made < 0 ? -1 : sys_open_in_root(root_fd, dest, O_PATH | O_NOFOLLOW, 0);
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return pea_fail(err, errno, "mount %s on %s: resolve destination", what, dest);
    if (S_ISLNK(st.st_mode))
        return pea_fail(err, 0, "mount %s on %s: %s in the rootfs is a symlink: refused", what, dest, dest);
    if (!S_ISDIR(st.st_mode))
        return pea_fail(err, 0, "mount %s on %s: %s in the rootfs is not a directory: refused", what, dest, dest);
    return take_fd(&fd);
}

/* fsconfig carries a value of at most 255 bytes. */
#define FSCONFIG_VALUE_MAX 255

static bool has_long_option(const struct pea_mount *m)
{
    if (m->source && strlen(m->source) > FSCONFIG_VALUE_MAX)
        return true;
    for (const char *p = m->data; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len > FSCONFIG_VALUE_MAX)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

/* A new filesystem of TYPE as a detached mount. The data (the options that are not mount flags) goes to the
 * filesystem one comma-separated piece at a time, "key=value" or "key", as mount(2) splits it for the
 * filesystem. */
static int open_filesystem(const struct pea_mount *m, const char *type, struct pea_error *err)
{
    static const struct {
        unsigned long flag;
        const char *name;
    } sb_flags[] = {{MS_RDONLY, "ro"}, {MS_SYNCHRONOUS, "sync"}, {MS_DIRSYNC, "dirsync"}, {MS_MANDLOCK, "mand"}};
    AUTO_FD int fs = fsopen(type, FSOPEN_CLOEXEC);
    if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "source", m->source ? m->source : type, 0) < 0)
        return pea_fail(err, errno, "mount %s on %s", type, m->destination);
    for (size_t i = 0; i < ARRAY_SIZE(sb_flags); i++)
        if ((m->flags & sb_flags[i].flag) && fsconfig(fs, FSCONFIG_SET_FLAG, sb_flags[i].name, NULL, 0) < 0)
            return pea_fail(err, errno, "mount %s on %s: option \"%s\"", type, m->destination, sb_flags[i].name);
    AUTO_FREE char *data = xstrdup(m->data ? m->data : "");
    char *save = NULL;
    for (char *opt = strtok_r(data, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        if (eq)
            *eq = '\0';
        int r = eq ? fsconfig(fs, FSCONFIG_SET_STRING, opt, eq + 1, 0) : fsconfig(fs, FSCONFIG_SET_FLAG, opt, NULL, 0);
        if (eq)
            *eq = '=';
        if (r < 0)
            return pea_fail(err, errno, "mount %s on %s: option \"%s\"", type, m->destination, opt);
    }
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return pea_fail(err, errno, "mount %s on %s", type, m->destination);
    int mnt = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)mount_attr_of(m->flags));
    return mnt >= 0 ? mnt : pea_fail(err, errno, "mount %s on %s", type, m->destination);
}

/* Step 1 of a bind: its source cloned, detached (with the submounts for rbind), given its flags as a bind remount
 * would. A source the caller resolved itself is already such a clone, of exactly the object it checked. */
static int open_bind_tree(const struct pea_mount *m, struct pea_error *err)
{
    AUTO_FD int tree = m->has_source_tree ? fcntl(m->source_tree_fd, F_DUPFD_CLOEXEC, 3)
                                          : open_tree(AT_FDCWD, m->source,
                                                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                                          (m->is_recursive ? AT_RECURSIVE : 0));
    if (tree < 0)
        return pea_fail(err, errno, "mount bind on %s: source %s", m->destination, m->source);
    /* The caller's clone was made in its namespace and joined its peer group: receive from the host, as a bind
     * made here would, and send nothing back. */
    if (m->has_source_tree && set_mount_attr(tree, AT_RECURSIVE, 0, 0, MS_SLAVE) < 0)
        return pea_fail(err, errno, "mount bind on %s: make the source rslave", m->destination);
    /* Like a bind remount, only when some flag is asked for (runc's rule): "rw" alone keeps the source's. */
    if ((m->flags & ~(unsigned long)(MS_REC | MS_REMOUNT)) && set_mount_flags(tree, m->flags) < 0)
        return pea_fail(err, errno, "remount bind on %s", m->destination);
    return take_fd(&tree);
}

/* Step 1 of a filesystem: created with its flags, detached; tmpcopyup fills it before anyone can see it. */
static int open_filesystem_tree(const struct pea_mount *m, const char *what, int target, struct pea_error *err)
{
    AUTO_FD int tree = open_filesystem(m, what, err);
    if (tree < 0)
        return -1;
    /* target still names the directory underneath: its content goes into the new, still detached, filesystem */
    if (m->is_tmpcopyup && copy_tree(target, tree, 0) < 0)
        return pea_fail(err, errno, "tmpcopyup of %s", m->destination);
    return take_fd(&tree);
}

/* An option value fsconfig cannot carry (over 255 bytes: an overlay's long lowerdir): mount(2) takes the options
 * as one string. The new mount has no fd then, so what needs one afterwards is refused rather than done by path. */
static int mount_filesystem_by_data(int target, const struct pea_mount *m, const char *type, struct pea_error *err)
{
    if (m->is_tmpcopyup || m->propagation || m->rec_attr_set || m->rec_attr_clr)
        return pea_fail(err, EINVAL,
                        "mount %s on %s: an option over %d bytes cannot be combined with tmpcopyup, a propagation or a "
                        "recursive option",
                        type, m->destination, FSCONFIG_VALUE_MAX);
    if (mount(m->source ? m->source : type, fd_path(target).text, type, m->flags & ~(unsigned long)MS_REMOUNT,
              m->data) < 0)
        return pea_fail(err, errno, "mount %s on %s", type, m->destination);
    return 0;
}

static int mount_one(int root_fd, const struct pea_mount *m, struct pea_error *err)
{
    const char *what = m->is_bind ? "bind" : is_type(m, "cgroup") ? "cgroup2" : m->type;
    if (!what)
        return pea_fail(err, 0, "mount on %s: no type", m->destination);
    /* A bind's source is cloned first and its type read from the clone: the object checked is the one attached. */
    AUTO_FD int tree = m->is_bind ? open_bind_tree(m, err) : -1;
    struct stat st;
    if (m->is_bind && (tree < 0 || fstat(tree, &st) < 0))
        return tree < 0 ? -1 : pea_fail(err, errno, "mount %s on %s: source %s", what, m->destination, m->source);
    AUTO_FD int target = open_destination(root_fd, m, what, m->is_bind && !S_ISDIR(st.st_mode), err);
    if (target < 0)
        return -1;
    struct statfs sfs;
    if (fstatfs(target, &sfs) < 0)
        return pea_fail(err, errno, "mount %s on %s: statfs", what, m->destination);
    /* Over procfs only the files that tools like lxcfs replace: anything else there could redirect writes. */
    if (sfs.f_type == PROC_SUPER_MAGIC && !is_type(m, "proc") && !is_allowed_proc_target(m->destination))
        return pea_fail(err, 0, "mount destination %s resolves onto procfs: refused", m->destination);
    if (!m->is_bind && has_long_option(m))
        return mount_filesystem_by_data(target, m, what, err);
    if (!m->is_bind && (tree = open_filesystem_tree(m, what, target, err)) < 0)
        return -1;
    /* Step 2, through the tree's own fd: the recursive attributes (rro...) reach every submount, then the tree is
     * attached; propagation concerns its place in the container's tree, so it comes once attached. */
    if ((m->rec_attr_set || m->rec_attr_clr) &&
        set_mount_attr(tree, AT_RECURSIVE, m->rec_attr_set, m->rec_attr_clr, 0) < 0)
        return pea_fail(err, errno, "set recursive attributes of %s", m->destination);
    if (attach_tree(tree, target) < 0)
        return pea_fail(err, errno, "mount %s on %s", what, m->destination);
    if (m->propagation && set_mount_attr(tree, (m->propagation & MS_REC) ? AT_RECURSIVE : 0, 0, 0,
                                         m->propagation & ~(unsigned long)MS_REC) < 0)
        return pea_fail(err, errno, "set propagation of %s", m->destination);
    return 0;
}

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
    if (tree < 0 || attach_tree(tree, target) < 0)
        return pea_fail(err, errno, "bind host device %s", path);
    return take_fd(&tree);
}

static bool has_dev_tmpfs(const struct pea_spec *spec)
{
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (strcmp(spec->mounts[i].destination, "/dev") == 0 && is_type(&spec->mounts[i], "tmpfs"))
            return true;
    return false;
}

static int setup_dev(int root_fd, const struct pea_spec *spec, struct pea_error *err)
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

int rootfs_prepare(const struct pea_spec *spec, const char *rootfs, struct pea_error *err)
{
    /* Nothing we mount may propagate back to the host. */
    unsigned long propagation = spec->rootfs_propagation & (MS_PRIVATE) ? MS_PRIVATE : MS_SLAVE;
    if (mount(NULL, "/", NULL, MS_REC | propagation, NULL) < 0)
        return pea_fail(err, errno, "make / %s", propagation == MS_PRIVATE ? "rprivate" : "rslave");
    /* A first mount on "/" is the root itself (an overlay of image layers): mounted here, inside the container's
     * own mount namespace, so that nothing stays mounted on the host whatever happens to pea. */
    const struct pea_mount *root_mount = spec->n_mounts > 0 && strcmp(spec->mounts[0].destination, "/") == 0
                                             ? &spec->mounts[0]
                                             : NULL;
    if (root_mount) {
        const char *type = root_mount->type ? root_mount->type : "none";
        if (mount(root_mount->source ? root_mount->source : type, rootfs, type,
                  root_mount->flags & ~(unsigned long)MS_REMOUNT, root_mount->data) < 0)
            return pea_fail(err, errno, "mount %s on / (%s)", type, rootfs);
    } else if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        return pea_fail(err, errno, "bind rootfs %s", rootfs);
    }
    AUTO_FD int proc_fd = sys_open_procfs();
    if (proc_fd < 0)
        return pea_fail(err, errno, "/proc is not a procfs");
    AUTO_FD int root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return pea_fail(err, errno, "open rootfs %s", rootfs);
    if (root_mount && (root_mount->rec_attr_set || root_mount->rec_attr_clr) &&
        set_mount_attr(root_fd, AT_RECURSIVE, root_mount->rec_attr_set, root_mount->rec_attr_clr, 0) < 0)
        return pea_fail(err, errno, "set recursive attributes of /");
    for (size_t i = root_mount ? 1 : 0; i < spec->n_mounts; i++)
        if (mount_one(root_fd, &spec->mounts[i], err) < 0)
            return -1;
    return setup_dev(root_fd, spec, err);
}

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
            else if (e->is_revealing && ((cover = open_empty_tmpfs()) < 0 || attach_tree(cover, fd) < 0))
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

int rootfs_enter(const char *rootfs, bool no_pivot, struct pea_error *err)
{
    AUTO_FD int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || fchdir(root) < 0)
        return pea_fail(err, errno, "enter rootfs %s", rootfs);
    if (no_pivot) {
        AUTO_FD int proc_fd = sys_open_procfs();
        if (proc_fd < 0)
            return pea_fail(err, errno, "/proc is not a procfs");
        if (move_mount(root, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return pea_fail(err, errno, "move rootfs onto /");
        /* "/" is the old root until chroot: it stops receiving the host's new mounts, then loses the ones it has */
        if (mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0)
            return pea_fail(err, errno, "make the old root private");
        if (detach_old_root_mounts(proc_fd, root, err) < 0)
            return -1;
        if (fchdir(root) < 0 || chroot(".") < 0)
            return pea_fail(err, errno, "chroot");
    } else {
        /* pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching it leaves the new root
         * with no way back, and no directory for the old root is needed inside the container. */
        if (sys_pivot_root(".", ".") < 0)
            return pea_fail(err, errno, "pivot_root");
        if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
            return pea_fail(err, errno, "make the old root rslave");
        if (umount2(".", MNT_DETACH) < 0)
            return pea_fail(err, errno, "detach the old root");
    }
    if (chdir("/") < 0)
        return pea_fail(err, errno, "chdir /");
    return 0;
}

/* Resolve path inside "/" (we are in the container now); -1 with errno ENOENT when it does not exist. */
static int open_inside(const char *path)
{
    AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -1;
    return sys_open_in_root(root, path, O_PATH, 0);
}

/* A directory is hidden under an empty read-only tmpfs, a file under the null device (null_fd, verified 1:3). */
static int mask_path(const char *path, int null_fd, struct pea_error *err)
{
    AUTO_FD int fd = open_inside(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "mask %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "mask %s", path);
    AUTO_FD int tree = S_ISDIR(st.st_mode) ? open_empty_tmpfs()
                                           : open_tree(null_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0 || attach_tree(tree, fd) < 0)
        return pea_fail(err, errno, "mask %s", path);
    return 0;
}

/* A read-only copy of the path's tree (submounts included), made read-only before it replaces the path. */
static int readonly_path(const char *path, struct pea_error *err)
{
    AUTO_FD int fd = open_inside(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "make %s read-only", path);
    AUTO_FD int tree = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0)
        return pea_fail(err, errno, "make %s read-only", path);
    if (set_mount_flags(tree, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        return pea_fail(err, errno, "remount %s read-only", path);
    if (attach_tree(tree, fd) < 0)
        return pea_fail(err, errno, "make %s read-only", path);
    return 0;
}

int rootfs_finalize(const struct pea_spec *spec, struct pea_error *err)
{
    if (spec->masked_paths && spec->masked_paths[0]) {
        /* Only the real null device may hide a file: a /dev/null the image planted could be anything. */
        AUTO_FD int null_fd = open_inside("/dev/null");
        struct stat st;
        if (null_fd < 0 || fstat(null_fd, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
            return pea_fail(err, 0, "maskedPaths: /dev/null in the container is not the null device (1:3)");
        for (char **p = spec->masked_paths; *p; p++)
            if (mask_path(*p, null_fd, err) < 0)
                return -1;
    }
    for (char **p = spec->readonly_paths; p && *p; p++)
        if (readonly_path(*p, err) < 0)
            return -1;
    if (spec->root_readonly) {
        AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0 || set_mount_flags(root, MS_RDONLY) < 0)
            return pea_fail(err, errno, "remount / read-only");
    }
    if ((spec->rootfs_propagation & MS_SHARED) && mount(NULL, "/", NULL, MS_SHARED | MS_REC, NULL) < 0)
        return pea_fail(err, errno, "make / shared");
    return 0;
}

int rootfs_bind_console(int pty_slave_fd, struct pea_error *err)
{
    AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    AUTO_FD int console = root < 0 ? -1 : sys_mkfile_in_root(root, "/dev/console", 0600);
    if (console < 0)
        return pea_fail(err, errno, "create /dev/console");
    AUTO_FD int tree = open_tree(pty_slave_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0 || attach_tree(tree, console) < 0)
        return pea_fail(err, errno, "bind the pty onto /dev/console");
    return 0;
}
