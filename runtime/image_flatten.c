/* An image's layers applied in order onto a bundle's rootfs, from the store's unpacked layer directories, with the
 * meaning overlayfs gives them: a 0/0 character device deletes the name below, a directory marked
 * trusted.overlay.opaque hides everything below it, a directory replaces a non-directory (and the reverse).
 *
 * Both trees are walked one name at a time, relative to directory fds, never following a symlink: a symlink an
 * image planted is replaced or copied as a symlink, and never leads a write outside the rootfs. Files are copied
 * (reflinked where the filesystem can), never linked to the store: a bundle outlives the store and a container may
 * write its files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image_bundle_internal.h"
#include "pea/log.h"
#include "pea/util.h"

#define OPAQUE_XATTR "trusted.overlay.opaque"

/* A file of the layer with several names: its first copy, which the other names link to. */
struct link_seen {
    dev_t dev;
    ino_t ino;
    char *path; /* relative to the rootfs */
};

struct flattener {
    int rootfs_fd;
    bool is_root;  /* owners as the layer has them (chown needs root) */
    void *links;   /* tsearch tree of struct link_seen, for the layer being applied */
    bool has_warned_xattrs;
};

static int compare_links(const void *a, const void *b)
{
    const struct link_seen *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void free_link(void *p)
{
    struct link_seen *l = p;
    free(l->path);
    free(l);
}

/* The extended attributes the store keeps (image_unpack.c): user.* and file capabilities. Overlay's own
 * (trusted.overlay.*) are how the store spells whiteouts and never reach a bundle. */
static bool is_kept_xattr(const char *name)
{
    return strncmp(name, "user.", 5) == 0 || strcmp(name, "security.capability") == 0;
}

static int copy_xattrs(struct flattener *f, int src, int dst, const char *path, struct pea_error *err)
{
    ssize_t size = flistxattr(src, NULL, 0);
    if (size < 0)
        return errno == ENOTSUP ? 0 : pea_fail(err, errno, "%s: list extended attributes", path);
    if (size == 0)
        return 0;
    AUTO_FREE char *names = xmalloc((size_t)size);
    size = flistxattr(src, names, (size_t)size);
    if (size < 0)
        return pea_fail(err, errno, "%s: list extended attributes", path);
    for (char *name = names; name < names + size; name += strlen(name) + 1) {
        if (!is_kept_xattr(name))
            continue;
        ssize_t len = fgetxattr(src, name, NULL, 0);
        if (len < 0)
            return pea_fail(err, errno, "%s: read extended attribute %s", path, name);
        AUTO_FREE char *value = xmalloc((size_t)len + 1);
        len = fgetxattr(src, name, value, (size_t)len);
        if (len < 0)
            return pea_fail(err, errno, "%s: read extended attribute %s", path, name);
        if (fsetxattr(dst, name, value, (size_t)len, 0) < 0) {
            if (errno != ENOTSUP)
                return pea_fail(err, errno, "%s: set extended attribute %s", path, name);
            if (!f->has_warned_xattrs)
                log_warn("%s: extended attribute %s not kept: the bundle's filesystem has none", path, name);
            f->has_warned_xattrs = true;
        }
    }
    return 0;
}

/* Owner, then mode (chown clears set-id bits and file capabilities), then extended attributes, then times. */
static int copy_metadata(struct flattener *f, int src, int dst, const struct stat *st, const char *path,
                         struct pea_error *err)
{
    if (f->is_root && fchown(dst, st->st_uid, st->st_gid) < 0)
        return pea_fail(err, errno, "%s: set owner", path);
    if (fchmod(dst, st->st_mode & 07777) < 0)
        return pea_fail(err, errno, "%s: set mode", path);
    if (copy_xattrs(f, src, dst, path, err) < 0)
        return -1;
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    if (futimens(dst, times) < 0)
        return pea_fail(err, errno, "%s: set times", path);
    return 0;
}

/* len bytes at off, in the kernel (copy_file_range) where it can, else through a buffer. */
static int copy_range(int in, int out, off_t off, off_t len)
{
    bool is_kernel_copy = true;
    while (len > 0) {
        size_t chunk = len > (1 << 30) ? (size_t)1 << 30 : (size_t)len;
        ssize_t n = -1;
        if (is_kernel_copy) {
            off_t in_off = off, out_off = off;
            n = copy_file_range(in, &in_off, out, &out_off, chunk, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                is_kernel_copy = false;
                continue;
            }
        } else {
            static char buf[1 << 17];
            n = pread(in, buf, chunk < sizeof buf ? chunk : sizeof buf, off);
            if (n > 0 && pwrite(out, buf, (size_t)n, off) != n)
                n = -1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) { /* the source shrank under us: the store's files never do */
            errno = EIO;
            return -1;
        }
        off += n;
        len -= n;
    }
    return 0;
}

/* The file's data: a reflink where the filesystem shares extents (btrfs, xfs), else its data ranges copied and
 * its holes left as holes. */
static int copy_data(int in, int out, off_t size)
{
    if (size == 0 || ioctl(out, FICLONE, in) == 0)
        return 0;
    off_t off = 0;
    while (off < size) {
        off_t data = lseek(in, off, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break; /* a hole to the end */
        if (data < 0) /* no SEEK_DATA here: all of it is data */
            return copy_range(in, out, off, size - off) < 0 ? -1 : ftruncate(out, size);
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0 || hole > size)
            hole = size;
        if (copy_range(in, out, data, hole - data) < 0)
            return -1;
        off = hole;
    }
    return ftruncate(out, size);
}

static int copy_regular(struct flattener *f, int src, int dst, const char *name, const struct stat *st,
                        const char *path, struct pea_error *err)
{
    AUTO_FD int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return pea_fail(err, errno, "%s: open in the layer", path);
    AUTO_FD int out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return pea_fail(err, errno, "%s: create", path);
    if (copy_data(in, out, st->st_size) < 0)
        return pea_fail(err, errno, "%s: copy", path);
    return copy_metadata(f, in, out, st, path, err);
}

static int copy_symlink(struct flattener *f, int src, int dst, const char *name, const struct stat *st,
                        const char *path, struct pea_error *err)
{
    AUTO_FREE char *target = xmalloc((size_t)st->st_size + 2);
    ssize_t n = readlinkat(src, name, target, (size_t)st->st_size + 2);
    if (n < 0 || n > st->st_size)
        return pea_fail(err, n < 0 ? errno : EIO, "%s: read the symlink", path);
    target[n] = '\0';
    /* Only text here: it is resolved later, inside the container's root. */
    if (symlinkat(target, dst, name) < 0)
        return pea_fail(err, errno, "%s: create", path);
    if (f->is_root && fchownat(dst, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "%s: set owner", path);
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    if (utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "%s: set times", path);
    return 0;
}

/* Devices, fifos and sockets: made with mknod, never opened (opening a fifo would block, a device would act). */
static int copy_node(struct flattener *f, int dst, const char *name, const struct stat *st, const char *path,
                     struct pea_error *err)
{
    if (mknodat(dst, name, (st->st_mode & S_IFMT) | (st->st_mode & 0777), st->st_rdev) < 0)
        return pea_fail(err, errno, "%s: create%s", path,
                        errno == EPERM && (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) ? " (a device: needs root)"
                                                                                            : "");
    if (f->is_root && fchownat(dst, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "%s: set owner", path);
    /* The node was made just now by us in a directory only we write: its name is still the node. */
    if (fchmodat(dst, name, st->st_mode & 07777, 0) < 0)
        return pea_fail(err, errno, "%s: set mode", path);
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    if (utimensat(dst, name, times, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "%s: set times", path);
    return 0;
}

/* Another name of a file copied earlier from this layer: a hard link to that copy. Its parent is resolved in the
 * rootfs without following any symlink. */
static int link_to_copy(struct flattener *f, const char *target, int dst, const char *name, const char *path,
                        struct pea_error *err)
{
    AUTO_FREE char *parent = xstrdup(target);
    char *slash = strrchr(parent, '/');
    const char *target_name = slash ? slash + 1 : target;
    if (slash)
        *slash = '\0';
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    AUTO_FD int parent_fd = -1;
    do
        parent_fd = (int)syscall(SYS_openat2, f->rootfs_fd, slash ? parent : ".", &how, sizeof how);
    while (parent_fd < 0 && errno == EAGAIN);
    if (parent_fd < 0 || linkat(parent_fd, target_name, dst, name, 0) < 0)
        return pea_fail(err, errno, "%s: hard link to %s", path, target);
    return 0;
}

static bool is_opaque(int dir_fd)
{
    char value[2];
    return fgetxattr(dir_fd, OPAQUE_XATTR, value, sizeof value) == 1 && value[0] == 'y';
}

static int apply_tree(struct flattener *f, int src, int dst, const char *rel, struct pea_error *err);

static int apply_directory(struct flattener *f, int src, int dst, const char *name, const struct stat *st,
                           const char *path, struct pea_error *err)
{
    AUTO_FD int src_dir = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src_dir < 0)
        return pea_fail(err, errno, "%s: open in the layer", path);
    struct stat below;
    bool is_kept =
        !is_opaque(src_dir) && fstatat(dst, name, &below, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(below.st_mode);
    if (!is_kept) {
        if (remove_tree_at(dst, name, path, err) < 0)
            return -1;
        if (mkdirat(dst, name, 0700) < 0)
            return pea_fail(err, errno, "%s: create", path);
    }
    AUTO_FD int dst_dir = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dst_dir < 0)
        return pea_fail(err, errno, "%s: open", path);
    /* Without root, a lower layer's read-only directory must become writable to be filled; its mode is set last. */
    if (!f->is_root && is_kept && fchmod(dst_dir, (below.st_mode & 07777) | 0700) < 0)
        return pea_fail(err, errno, "%s: set mode", path);
    if (apply_tree(f, src_dir, dst_dir, path, err) < 0)
        return -1;
    /* After its entries: making them changed its times. */
    return copy_metadata(f, src_dir, dst_dir, st, path, err);
}

static int apply_entry(struct flattener *f, int src, int dst, const char *rel, const char *name,
                       struct pea_error *err)
{
    AUTO_FREE char *path = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
    struct stat st;
    if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "%s: stat in the layer", path);
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
        return remove_tree_at(dst, name, path, err); /* a whiteout */
    if (S_ISDIR(st.st_mode))
        return apply_directory(f, src, dst, name, &st, path, err);
    if (remove_tree_at(dst, name, path, err) < 0)
        return -1;
    struct link_seen key = {.dev = st.st_dev, .ino = st.st_ino};
    if (st.st_nlink > 1) {
        struct link_seen **seen = tfind(&key, &f->links, compare_links);
        if (seen)
            return link_to_copy(f, (*seen)->path, dst, name, path, err);
    }
    int r;
    if (S_ISREG(st.st_mode))
        r = copy_regular(f, src, dst, name, &st, path, err);
    else if (S_ISLNK(st.st_mode))
        r = copy_symlink(f, src, dst, name, &st, path, err);
    else
        r = copy_node(f, dst, name, &st, path, err);
    if (r == 0 && st.st_nlink > 1) {
        struct link_seen *l = xmalloc(sizeof *l);
        *l = (struct link_seen){.dev = st.st_dev, .ino = st.st_ino, .path = take_ptr(&path)};
        if (!tsearch(l, &f->links, compare_links))
            abort();
    }
    return r;
}

/* The names of a directory, read before anything is applied, so that only two fds stay open per level. */
static char **list_names(int dir_fd, const char *rel, struct pea_error *err)
{
    int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        pea_fail(err, errno, "%s: list the layer's directory", *rel ? rel : "/");
        return NULL;
    }
    rewinddir(d);
    char **names = xcalloc(1, sizeof *names);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            strv_append(&names, de->d_name);
    int saved = errno;
    closedir(d);
    if (saved) {
        strv_free(names);
        pea_fail(err, saved, "%s: list the layer's directory", *rel ? rel : "/");
        return NULL;
    }
    return names;
}

static int apply_tree(struct flattener *f, int src, int dst, const char *rel, struct pea_error *err)
{
    AUTO_STRV char **names = list_names(src, rel, err);
    if (!names)
        return -1;
    for (size_t i = 0; names[i]; i++)
        if (apply_entry(f, src, dst, rel, names[i], err) < 0)
            return -1;
    return 0;
}

/* A layer whose root is opaque (".wh..wh..opq" at its top) hides every lower layer. */
static int remove_all_below(int rootfs_fd, struct pea_error *err)
{
    AUTO_STRV char **names = list_names(rootfs_fd, "", err);
    if (!names)
        return -1;
    for (size_t i = 0; names[i]; i++)
        if (remove_tree_at(rootfs_fd, names[i], names[i], err) < 0)
            return -1;
    return 0;
}

int bundle_apply_layers(int rootfs_fd, char *const *layer_dirs, char *const *diff_ids, struct pea_error *err)
{
    struct flattener f = {.rootfs_fd = rootfs_fd, .is_root = geteuid() == 0};
    for (size_t i = 0; layer_dirs[i]; i++) {
        AUTO_FD int layer = open(layer_dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        int r = layer < 0 || fstat(layer, &st) < 0 ? pea_fail(err, errno, "open %s", layer_dirs[i]) : 0;
        if (r == 0 && is_opaque(layer))
            r = remove_all_below(rootfs_fd, err);
        if (r == 0)
            r = apply_tree(&f, layer, rootfs_fd, "", err);
        if (r == 0)
            r = copy_metadata(&f, layer, rootfs_fd, &st, "/", err);
        tdestroy(f.links, free_link);
        f.links = NULL;
        if (r < 0)
            return pea_wrap(err, "apply layer %.19s", diff_ids[i]);
    }
    return 0;
}
