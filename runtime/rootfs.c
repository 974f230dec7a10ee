/* The container's root filesystem. Every destination is resolved inside the rootfs by the kernel (openat2
 * RESOLVE_IN_ROOT) into an O_PATH fd, and the mount goes onto that fd through /proc/self/fd/N of a procfs we
 * verified, so a symlink or a swapped path component cannot move a mount outside the container. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
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

/* "/proc/self/fd/N" for an fd, valid while our verified /proc is mounted at /proc. */
struct fd_path {
    char text[40];
};

static struct fd_path fd_path(int fd)
{
    struct fd_path p;
    snprintf(p.text, sizeof p.text, "/proc/self/fd/%d", fd);
    return p;
}

/* Flags the kernel locks on a mount (in a user namespace, or inherited from the source): a remount must keep
 * them or it fails with EPERM. */
static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
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

static int remount_bind(const char *target, unsigned long flags)
{
    unsigned long base = MS_BIND | MS_REMOUNT | (flags & ~(unsigned long)MS_REC);
    if (mount(NULL, target, NULL, base, NULL) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    return mount(NULL, target, NULL, base | locked_flags(target), NULL);
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

/* What a bind mount mounts: the source the caller resolved (a detached copy of exactly that object, never looked up
 * again by path), or else the source path. */
static int stat_bind_source(const struct pea_mount *m, struct stat *st)
{
    return m->has_source_tree ? fstat(m->source_tree_fd, st) : stat(m->source, st);
}

static int bind_source(const struct pea_mount *m, int target, const char *target_path)
{
    if (!m->has_source_tree)
        return mount(m->source, target_path, NULL, MS_BIND | (m->is_recursive ? MS_REC : 0), NULL);
    if (move_mount(m->source_tree_fd, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return -1;
    /* The copy was made in the host's namespace and shares its propagation: receive from the host as a bind made
     * here would, send nothing back. */
    return mount(NULL, fd_path(m->source_tree_fd).text, NULL, MS_SLAVE | MS_REC, NULL);
}

static int mount_one(int root_fd, const struct pea_mount *m, struct pea_error *err)
{
    const char *what = m->is_bind ? "bind" : (m->type ? m->type : "none");
    bool is_file_source = false;
    struct stat st;
    if (m->is_bind) {
        if (stat_bind_source(m, &st) < 0)
            return pea_fail(err, errno, "mount %s on %s: source %s", what, m->destination, m->source);
        is_file_source = !S_ISDIR(st.st_mode);
    }
    AUTO_FD int target = is_file_source ? sys_mkfile_in_root(root_fd, m->destination, 0644)
                                        : sys_mkdir_in_root(root_fd, m->destination, 0755);
    if (target < 0)
        return pea_fail(err, errno, "mount %s on %s: resolve destination", what, m->destination);
    struct statfs sfs;
    if (fstatfs(target, &sfs) < 0)
        return pea_fail(err, errno, "mount %s on %s: statfs", what, m->destination);
    /* Over procfs only the files that tools like lxcfs replace: anything else there could redirect writes. */
    if (sfs.f_type == PROC_SUPER_MAGIC && !is_type(m, "proc") && !is_allowed_proc_target(m->destination))
        return pea_fail(err, 0, "mount destination %s resolves onto procfs: refused", m->destination);
    struct fd_path t = fd_path(target);
    if (m->is_bind) {
        if (bind_source(m, target, t.text) < 0)
            return pea_fail(err, errno, "mount %s on %s", what, m->destination);
        /* The kernel ignores flags on the initial bind; they take a remount. Re-resolve: the target is now the
         * mount's root. */
        if (m->flags & ~(unsigned long)(MS_REC | MS_BIND | MS_REMOUNT)) {
            AUTO_FD int mounted = sys_open_in_root(root_fd, m->destination, O_PATH, 0);
            if (mounted < 0 || remount_bind(fd_path(mounted).text, m->flags) < 0)
                return pea_fail(err, errno, "remount %s on %s", what, m->destination);
        }
    } else {
        const char *type = is_type(m, "cgroup") ? "cgroup2" : m->type;
        if (!type)
            return pea_fail(err, 0, "mount on %s: no type", m->destination);
        if (mount(m->source ? m->source : type, t.text, type, m->flags & ~(unsigned long)MS_REMOUNT, m->data) < 0)
            return pea_fail(err, errno, "mount %s on %s", type, m->destination);
        if (m->is_tmpcopyup) {
            /* target still names the directory underneath; the new mount is reached through the path */
            AUTO_FD int mounted = sys_open_in_root(root_fd, m->destination, O_PATH | O_DIRECTORY, 0);
            if (mounted < 0 || copy_tree(target, mounted, 0) < 0)
                return pea_fail(err, errno, "tmpcopyup of %s", m->destination);
        }
    }
    if (m->propagation) {
        AUTO_FD int mounted = sys_open_in_root(root_fd, m->destination, O_PATH, 0);
        if (mounted < 0 || mount(NULL, fd_path(mounted).text, NULL, m->propagation, NULL) < 0)
            return pea_fail(err, errno, "set propagation of %s", m->destination);
    }
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

/* mknod a device below the root; where mknod is not allowed (a user namespace), bind the host's node instead. */
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
    if (mknodat(dir, name, type | mode, makedev(major, minor)) == 0) {
        fchmodat(dir, name, mode, 0);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    if (errno != EPERM || type == S_IFIFO)
        return pea_fail(err, errno, "mknod %s", path);
    AUTO_FD int target = sys_mkfile_in_root(root_fd, path, 0600);
    if (target < 0 || mount(path, fd_path(target).text, NULL, MS_BIND, NULL) < 0)
        return pea_fail(err, errno, "bind host device %s", path);
    return 0;
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
            if (make_device(root_fd, path, S_IFCHR, default_devices[i].major, default_devices[i].minor, 0666, err) < 0)
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
        if (make_device(root_fd, d->path, type, (unsigned)d->major, (unsigned)d->minor, mode, err) < 0)
            return -1;
        if (d->has_uid || d->has_gid) {
            AUTO_FD int fd = sys_open_in_root(root_fd, d->path, O_PATH, 0);
            if (fd < 0 || fchownat(fd, "", d->has_uid ? d->uid : (uid_t)-1, d->has_gid ? d->gid : (gid_t)-1,
                                   AT_EMPTY_PATH) < 0)
                return pea_fail(err, errno, "chown %s", d->path);
        }
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
    for (size_t i = root_mount ? 1 : 0; i < spec->n_mounts; i++)
        if (mount_one(root_fd, &spec->mounts[i], err) < 0)
            return -1;
    return setup_dev(root_fd, spec, err);
}

int rootfs_enter(const char *rootfs, bool no_pivot, struct pea_error *err)
{
    AUTO_FD int root = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || fchdir(root) < 0)
        return pea_fail(err, errno, "enter rootfs %s", rootfs);
    if (no_pivot) {
        if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0)
            return pea_fail(err, errno, "move rootfs onto /");
        if (chroot(".") < 0)
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

/* Mount source onto the resolved target through the container's /proc when it is a real procfs, by path
 * otherwise (a container without /proc). */
static const char *target_path(int fd, const char *path, struct fd_path *buf)
{
    AUTO_FD int proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc >= 0 && sys_check_procfs(proc) == 0) {
        *buf = fd_path(fd);
        return buf->text;
    }
    return path;
}

static int mask_path(const char *path, int null_fd, struct pea_error *err)
{
    AUTO_FD int fd = open_inside(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "mask %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "mask %s", path);
    struct fd_path buf;
    const char *target = target_path(fd, path, &buf);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k,nr_inodes=1") < 0)
            return pea_fail(err, errno, "mask %s", path);
        return 0;
    }
    if (mount(fd_path(null_fd).text, target, NULL, MS_BIND, NULL) < 0)
        return pea_fail(err, errno, "mask %s", path);
    return 0;
}

static int readonly_path(const char *path, struct pea_error *err)
{
    AUTO_FD int fd = open_inside(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "make %s read-only", path);
    struct fd_path buf;
    const char *target = target_path(fd, path, &buf);
    if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        return pea_fail(err, errno, "make %s read-only", path);
    AUTO_FD int mounted = open_inside(path);
    if (mounted < 0 || remount_bind(target_path(mounted, path, &buf), MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        return pea_fail(err, errno, "remount %s read-only", path);
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
    if (spec->root_readonly && remount_bind("/", MS_RDONLY) < 0)
        return pea_fail(err, errno, "remount / read-only");
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
    struct fd_path buf;
    if (mount(fd_path(pty_slave_fd).text, target_path(console, "/dev/console", &buf), NULL, MS_BIND, NULL) < 0)
        return pea_fail(err, errno, "bind the pty onto /dev/console");
    return 0;
}
