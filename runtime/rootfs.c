/* The container's root filesystem. Every destination is resolved inside the rootfs by the kernel (openat2
 * RESOLVE_IN_ROOT) into an O_PATH fd. A mount is built detached (open_tree for a bind, fsopen/fsmount for a
 * filesystem), given its flags and recursive attributes through its own fd, and attached onto the resolved fd with
 * move_mount: no path is walked twice, so a symlink or a swapped path component cannot move a mount, and nothing
 * after the rootfs is entered depends on the container's own /proc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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

#include "pea/cgroup.h"
#include "pea/rootfs.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "rootfs_internal.h"

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

uint64_t rootfs_mount_attr_of(unsigned long flags)
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

int rootfs_set_mount_attr(int fd, unsigned at_flags, uint64_t set, uint64_t clear, uint64_t propagation)
{
    struct mount_attr attr = {.attr_set = set, .attr_clr = clear, .propagation = propagation};
    return mount_setattr(fd, "", AT_EMPTY_PATH | at_flags, &attr, sizeof attr);
}

int rootfs_set_mount_flags(int fd, unsigned long flags)
{
    const uint64_t all = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                         MOUNT_ATTR_NODIRATIME | MOUNT_ATTR__ATIME;
    if (rootfs_set_mount_attr(fd, 0, rootfs_mount_attr_of(flags), all, 0) == 0)
        return 0;
    if (errno != EPERM)
        return -1;
    return rootfs_set_mount_attr(fd, 0, rootfs_mount_attr_of(flags | locked_flags(fd)), all, 0);
}

int rootfs_attach_tree(int tree, int target)
{
    return move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

int rootfs_open_empty_tmpfs(void)
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
    int mnt = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)rootfs_mount_attr_of(m->flags));
    return mnt >= 0 ? mnt : pea_fail(err, errno, "mount %s on %s", type, m->destination);
}

/* Step 1 of a bind: its source cloned, detached (with the submounts for rbind), given its flags as a bind remount
 * would. */
static int open_bind_tree(const struct pea_mount *m, struct pea_error *err)
{
    AUTO_FD int tree =
        open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m->is_recursive ? AT_RECURSIVE : 0));
    if (tree < 0)
        return pea_fail(err, errno, "mount bind on %s: source %s", m->destination, m->source);
    if (rootfs_set_bind_flags(tree, m) < 0)
        return pea_fail(err, errno, "remount bind on %s", m->destination);
    return take_fd(&tree);
}

/* cgroup2 refuses a user namespace that has no cgroup namespace of its own (EPERM): the container's own cgroup
 * (ours now: the init is placed before it mounts) is bound instead, runc's fallback too. Cloned here, from this
 * namespace's copy of the hierarchy, it keeps the locks the kernel put on that copy. */
static int open_own_cgroup_tree(int proc_fd, const struct pea_mount *m, struct pea_error *err)
{
    const char *root = cgroup_root(err);
    if (!root)
        return pea_wrap(err, "mount cgroup2 on %s: bind the container's cgroup instead", m->destination);
    AUTO_FREE char *own = read_file_at(proc_fd, "self/cgroup", 1 << 16, NULL);
    const char *line = own ? strstr(own, "0::/") : NULL;
    if (line && line != own && line[-1] != '\n')
        line = NULL;
    if (!line)
        return pea_fail(err, own ? 0 : errno, "mount cgroup2 on %s: no cgroup2 path in /proc/self/cgroup",
                        m->destination);
    AUTO_FREE char *path = xasprintf("%s%.*s", root, (int)strcspn(line + 3, "\n"), line + 3);
    AUTO_FD int tree = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0 || rootfs_set_bind_flags(tree, m) < 0)
        return pea_fail(err, errno, "mount cgroup2 on %s: bind the container's cgroup %s", m->destination, path);
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

/* host_tree: the source's clone from the runtime's helper (rootfs_host.c), ready to attach, or -1. */
static int mount_one(int root_fd, int proc_fd, const struct pea_mount *asked, int host_tree, struct pea_error *err)
{
    /* /dev gets its read-only flag last (rootfs_finalize_dev), once its nodes, links and submounts exist. */
    const struct pea_mount as_made = rootfs_mount_as_made(asked);
    const struct pea_mount *m = &as_made;
    const char *what = m->is_bind ? "bind" : is_type(m, "cgroup") ? "cgroup2" : m->type;
    if (!what)
        return pea_fail(err, 0, "mount on %s: no type", m->destination);
    /* A bind's source is cloned first and its type read from the clone: the object checked is the one attached. A
     * source the caller resolved itself is already such a clone, of exactly the object it checked. */
    bool is_ready = host_tree >= 0 || (m->is_bind && m->has_source_tree);
    AUTO_FD int tree = host_tree >= 0 ? fcntl(host_tree, F_DUPFD_CLOEXEC, 3)
                       : !m->is_bind  ? -1
                       : m->has_source_tree ? fcntl(m->source_tree_fd, F_DUPFD_CLOEXEC, 3)
                                            : open_bind_tree(m, err);
    if (is_ready && tree < 0)
        return pea_fail(err, errno, "mount bind on %s: source %s", m->destination, m->source);
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
    if (!m->is_bind && (tree = open_filesystem_tree(m, what, target, err)) < 0) {
        bool is_refused_cgroup = strcmp(what, "cgroup2") == 0 && (err->errnum == EPERM || err->errnum == EBUSY);
        if (!is_refused_cgroup || (tree = open_own_cgroup_tree(proc_fd, m, err)) < 0)
            return -1;
    }
    /* Step 2, through the tree's own fd: the recursive attributes (rro...) reach every submount, then the tree is
     * attached; propagation concerns its place in the container's tree, so it comes once attached. */
    if (!is_ready && (m->rec_attr_set || m->rec_attr_clr) &&
        rootfs_set_mount_attr(tree, AT_RECURSIVE, m->rec_attr_set, m->rec_attr_clr, 0) < 0)
        return pea_fail(err, errno, "set recursive attributes of %s", m->destination);
    if (rootfs_attach_tree(tree, target) < 0)
        return pea_fail(err, errno, "mount %s on %s", what, m->destination);
    if (m->propagation && rootfs_set_mount_attr(tree, (m->propagation & MS_REC) ? AT_RECURSIVE : 0, 0, 0,
                                                m->propagation & ~(unsigned long)MS_REC) < 0)
        return pea_fail(err, errno, "set propagation of %s", m->destination);
    return 0;
}

bool rootfs_has_mount_namespace(const struct pea_spec *spec) { return spec->namespaces[PEA_NS_MOUNT].is_present; }

int rootfs_set_bind_flags(int tree, const struct pea_mount *m)
{
    /* Like a bind remount, only when some flag is asked for (runc's rule): "rw" alone keeps the source's. */
    if (!(m->flags & ~(unsigned long)(MS_REC | MS_REMOUNT)))
        return 0;
    return rootfs_set_mount_flags(tree, m->flags);
}

static const char *propagation_name(unsigned long flags)
{
    static const struct {
        unsigned long flags;
        const char *name;
    } names[] = {
        {MS_SHARED, "shared"},         {MS_SLAVE, "slave"},         {MS_PRIVATE, "private"},
        {MS_UNBINDABLE, "unbindable"}, {MS_SHARED | MS_REC, "rshared"}, {MS_SLAVE | MS_REC, "rslave"},
        {MS_PRIVATE | MS_REC, "rprivate"}, {MS_UNBINDABLE | MS_REC, "runbindable"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (flags == names[i].flags)
            return names[i].name;
    return "?";
}

/* The root of the mount that holds the directory path: ".." climbed until statx calls the directory a mount root
 * (the last step never crosses into the parent mount). */
static int open_mount_root_of(const char *path)
{
    AUTO_FD int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (int depth = 0; fd >= 0 && depth < PATH_MAX / 2; depth++) {
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH, 0, &stx) < 0)
            return -1;
        if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
            return errno = ENOTSUP, -1;
        if (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)
            return take_fd(&fd);
        int up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        close(take_fd(&fd));
        fd = up;
    }
    return fd < 0 ? -1 : (errno = ELOOP, -1);
}

/* "/" of the container's mount namespace as linux.rootfsPropagation asks (runc's rule; default rslave: the host's
 * mounts still arrive, nothing of ours goes back). rshared leaves the host's peer groups joined, so that a bind
 * mount with rshared propagates both ways; unbindable would refuse the rootfs bind, so "/" is private until
 * rootfs_finalize makes it unbindable. */
static int prepare_root_propagation(const struct pea_spec *spec, const char *rootfs, struct pea_error *err)
{
    unsigned long asked = spec->rootfs_propagation ? spec->rootfs_propagation : MS_SLAVE | MS_REC;
    unsigned long now = (asked & MS_UNBINDABLE) ? (asked & MS_REC) | MS_PRIVATE : asked;
    if (mount(NULL, "/", NULL, now, NULL) < 0)
        return pea_fail(err, errno, "make / %s", propagation_name(now));
    if (now == (MS_SLAVE | MS_REC) || now == (MS_PRIVATE | MS_REC))
        return 0;
    /* The mount that holds the rootfs may still be shared with the host's: made private (in this namespace only),
     * the rootfs bound onto itself is private too, nothing mounted under it propagates back, and pivot_root, which
     * refuses a shared parent, can go on. */
    AUTO_FD int holder = open_mount_root_of(rootfs);
    if (holder < 0 || rootfs_set_mount_attr(holder, 0, 0, 0, MS_PRIVATE) < 0)
        return pea_fail(err, errno, "make the mount that holds the rootfs %s private", rootfs);
    return 0;
}

/* Everything below the root mount (the rootfs bound on itself, or the config's mount on "/"), whose fd is root_fd. */
static int prepare_below_root(const struct pea_spec *spec, int root_fd, int proc_fd,
                              const struct pea_mount *root_mount, struct pea_error *err)
{
    if (root_mount && (root_mount->rec_attr_set || root_mount->rec_attr_clr) &&
        rootfs_set_mount_attr(root_fd, AT_RECURSIVE, root_mount->rec_attr_set, root_mount->rec_attr_clr, 0) < 0)
        return pea_fail(err, errno, "set recursive attributes of /");
    /* In our own mount namespace only the root mount is the container's: it takes rootfsPropagation (the default
     * rslave, so that nothing mounted below it reaches our peers); unbindable comes in rootfs_finalize. */
    if (!rootfs_has_mount_namespace(spec)) {
        unsigned long asked = spec->rootfs_propagation ? spec->rootfs_propagation : MS_SLAVE | MS_REC;
        unsigned long now = (asked & MS_UNBINDABLE) ? (asked & MS_REC) | MS_PRIVATE : asked;
        if (rootfs_set_mount_attr(root_fd, (now & MS_REC) ? AT_RECURSIVE : 0, 0, 0, now & ~(unsigned long)MS_REC) < 0)
            return pea_fail(err, errno, "make the rootfs %s", propagation_name(now));
    }
    for (size_t i = root_mount ? 1 : 0; i < spec->n_mounts; i++) {
        AUTO_FD int host_tree = -1;
        if (rootfs_is_host_source(spec, i) && rootfs_host_source_receive(spec, &spec->mounts[i], &host_tree, err) < 0)
            return -1;
        if (mount_one(root_fd, proc_fd, &spec->mounts[i], host_tree, err) < 0)
            return -1;
    }
    return rootfs_setup_dev(root_fd, spec, err);
}

/* The root the runtime's helper mounted (rootfs_host.c), kept open: its path is "/proc/self/fd/N". */
static int receive_host_root(const struct pea_spec *spec, char *path, size_t size, struct pea_error *err)
{
    int root = -1;
    if (rootfs_host_source_receive(spec, &spec->mounts[0], &root, err) < 0)
        return -1;
    if (root < 0)
        return pea_fail(err, EPROTO, "mount bind on /: receive the root from the runtime");
    snprintf(path, size, "/proc/self/fd/%d", root);
    return 0;
}

int rootfs_prepare(const struct pea_spec *spec, const char **rootfs_inout, struct pea_error *err)
{
    static char host_root_path[64];
    bool is_host_root = rootfs_is_host_root(spec);
    if (is_host_root && receive_host_root(spec, host_root_path, sizeof host_root_path, err) < 0)
        return -1;
    if (is_host_root)
        *rootfs_inout = host_root_path;
    const char *rootfs = *rootfs_inout;
    /* Without a mount namespace of its own the container shares ours: our "/" is left as it is. */
    bool has_mount_namespace = rootfs_has_mount_namespace(spec);
    if (has_mount_namespace && prepare_root_propagation(spec, rootfs, err) < 0)
        return -1;
    /* A first mount on "/" is the root itself (an overlay of image layers): mounted here, inside the container's
     * own mount namespace, so that nothing stays mounted on the host whatever happens to pea. */
    const struct pea_mount *root_mount = spec->n_mounts > 0 && strcmp(spec->mounts[0].destination, "/") == 0
                                             ? &spec->mounts[0]
                                             : NULL;
    if (root_mount && !is_host_root) {
        const char *type = root_mount->type ? root_mount->type : "none";
        unsigned long flags = root_mount->flags & ~(unsigned long)MS_REMOUNT;
        const char *source = root_mount->source ? root_mount->source : type;
        if (strcmp(type, "overlay") == 0) {
            AUTO_FREE char *shown = xasprintf("/ (%s)", rootfs);
            if (rootfs_mount_overlay(source, rootfs, flags, root_mount->data, shown, err) < 0)
                return -1;
        } else if (mount(source, rootfs, type, flags, root_mount->data) < 0) {
            return pea_fail(err, errno, "mount %s on / (%s)", type, rootfs);
        }
    } else if (!root_mount && mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        return pea_fail(err, errno, "bind rootfs %s", rootfs);
    }
    AUTO_FD int proc_fd = sys_open_procfs();
    AUTO_FD int root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = proc_fd < 0 ? pea_fail(err, errno, "/proc is not a procfs")
            : root_fd < 0 ? pea_fail(err, errno, "open rootfs %s", rootfs)
                          : prepare_below_root(spec, root_fd, proc_fd, root_mount, err);
    /* In our mount namespace a failed create leaves nothing behind: the root mount goes, and all below it. (In the
     * container's own, everything goes with the namespace.) */
    if (r < 0 && !has_mount_namespace && proc_fd >= 0 && root_fd >= 0)
        umount2(fd_path(root_fd).text, MNT_DETACH);
    return r;
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
    AUTO_FD int tree = S_ISDIR(st.st_mode) ? rootfs_open_empty_tmpfs()
                                           : open_tree(null_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0 || rootfs_attach_tree(tree, fd) < 0)
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
    if (rootfs_set_mount_flags(tree, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        return pea_fail(err, errno, "remount %s read-only", path);
    if (rootfs_attach_tree(tree, fd) < 0)
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
    if (rootfs_finalize_dev(spec, err) < 0)
        return -1;
    if (spec->root_readonly) {
        AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0 || rootfs_set_mount_flags(root, MS_RDONLY) < 0)
            return pea_fail(err, errno, "remount / read-only");
    }
    /* Last, on the container's tree as it stands: shared makes its peer group, unbindable was held back in
     * rootfs_prepare. (Without a mount namespace "/" here is the rootfs mount, under our chroot.) */
    unsigned long propagation = spec->rootfs_propagation & (MS_SHARED | MS_UNBINDABLE | MS_REC);
    if ((propagation & ~(unsigned long)MS_REC) && mount(NULL, "/", NULL, propagation, NULL) < 0)
        return pea_fail(err, errno, "make / %s", propagation_name(propagation));
    return 0;
}

int rootfs_bind_console(int pty_slave_fd, struct pea_error *err)
{
    AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    AUTO_FD int console = root < 0 ? -1 : sys_mkfile_in_root(root, "/dev/console", 0600);
    if (console < 0)
        return pea_fail(err, errno, "create /dev/console");
    AUTO_FD int tree = open_tree(pty_slave_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree < 0 || rootfs_attach_tree(tree, console) < 0)
        return pea_fail(err, errno, "bind the pty onto /dev/console");
    return 0;
}
