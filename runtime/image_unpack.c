/* Writing a layer's tar entries into its directory. Every path is relative to the layer root: ".." is refused,
 * parents are resolved by the kernel inside the root and never through a symlink (openat2 RESOLVE_IN_ROOT |
 * RESOLVE_NO_SYMLINKS), every name is created relative to its parent's fd without following what is there, and
 * hard-link targets are resolved the same way: nothing an image says can reach a host path. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image_internal.h"
#include "pea/log.h"
#include "pea/util.h"

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

int unpack_clean_path(const char *path, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchrnul(p, '/');
        size_t part = (size_t)(end - p);
        if (part == 2 && p[0] == '.' && p[1] == '.') {
            errno = EXDEV;
            return -1;
        }
        if (part > 0 && !(part == 1 && p[0] == '.')) {
            if (n + (n > 0) + part + 1 > len) {
                errno = ENAMETOOLONG;
                return -1;
            }
            if (n > 0)
                out[n++] = '/';
            memcpy(out + n, p, part);
            n += part;
            out[n] = '\0';
        }
        p = end;
    }
    return 0;
}

/* openat2 inside the layer root, never through a symlink, a magic link or another mount. */
static int open_in_layer(int root_fd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    int fd;
    do
        fd = (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof how);
    while (fd < 0 && errno == EAGAIN);
    return fd;
}

struct dir_time {
    char *path;
    struct timespec times[2];
};

struct unpacker {
    struct pea_image_store *s;
    int root_fd;
    struct unpack_stats *stats;
    const char *entry; /* the entry's path as the tar spells it, for messages */
    char parent_path[PATH_MAX];
    int parent_fd; /* cached: entries come grouped by directory */
    struct dir_time *dirs;
    size_t n_dirs, cap_dirs;
};

static void forget_parent(struct unpacker *u)
{
    if (u->parent_fd >= 0)
        close(u->parent_fd);
    u->parent_fd = -1;
}

static int entry_fail(struct unpacker *u, struct pea_error *err, int errnum, const char *what)
{
    return pea_fail(err, errnum, "entry %s: %s", u->entry, what);
}

/* The parent directory's fd, creating missing directories (0755, as tar does) one component at a time. */
static int open_parent(struct unpacker *u, const char *parent, struct pea_error *err)
{
    if (u->parent_fd >= 0 && strcmp(u->parent_path, parent) == 0)
        return u->parent_fd;
    forget_parent(u);
    int fd = open_in_layer(u->root_fd, parent, O_RDONLY | O_DIRECTORY);
    if (fd < 0 && errno == ENOENT) {
        AUTO_FD int dir = open_in_layer(u->root_fd, "", O_RDONLY | O_DIRECTORY);
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", parent);
        char *save = NULL;
        for (char *part = strtok_r(copy, "/", &save); dir >= 0 && part; part = strtok_r(NULL, "/", &save)) {
            int next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0 && errno == ENOENT && mkdirat(dir, part, 0755) == 0)
                next = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            close(dir);
            dir = next;
        }
        fd = take_fd(&dir);
    }
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
            return entry_fail(u, err, 0, "a parent directory is a symlink or not a directory: refused (entries are "
                                         "never written through symlinks)");
        return entry_fail(u, err, errno, "open its parent directory");
    }
    snprintf(u->parent_path, sizeof u->parent_path, "%s", parent);
    u->parent_fd = fd;
    return fd;
}

/* Make room for NAME: what is there goes (a later entry replaces an earlier one, as tar does), but a directory
 * stays when a directory comes (returns 1 then). */
static int make_room(struct unpacker *u, int parent, const char *name, bool is_dir, struct pea_error *err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : entry_fail(u, err, errno, "stat");
    if (S_ISDIR(st.st_mode)) {
        if (is_dir)
            return 1;
        if (unlinkat(parent, name, AT_REMOVEDIR) < 0)
            return entry_fail(u, err, errno == ENOTEMPTY ? 0 : errno,
                              errno == ENOTEMPTY ? "replaces a directory that is not empty: refused" : "replace");
        return 0;
    }
    if (unlinkat(parent, name, 0) < 0)
        return entry_fail(u, err, errno, "replace");
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec t[2])
{
    t[1] = (struct timespec){.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)};
    t[0] = archive_entry_atime_is_set(e)
               ? (struct timespec){.tv_sec = archive_entry_atime(e), .tv_nsec = archive_entry_atime_nsec(e)}
               : t[1];
}

/* Owner (root only), then mode (chown clears set-id bits), then the extended attributes we keep: user.* and file
 * capabilities. Others (trusted.*, overlay's own, security labels) are the host's business, never an image's. */
static int apply_metadata(struct unpacker *u, int fd, struct archive_entry *e, struct pea_error *err)
{
    if (geteuid() == 0 &&
        fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0)
        return entry_fail(u, err, errno, "set owner");
    if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
        return entry_fail(u, err, errno, "set mode");
    const char *name;
    const void *value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (strncmp(name, "user.", 5) != 0 && strcmp(name, "security.capability") != 0) {
            log_debug("layer entry %s: extended attribute %s not kept", u->entry, name);
            continue;
        }
        if (fsetxattr(fd, name, value, size, 0) < 0) {
            if (errno != ENOTSUP)
                return entry_fail(u, err, errno, "set extended attribute");
            log_warn("layer entry %s: extended attribute %s not kept: the store's filesystem has none", u->entry,
                     name);
        }
    }
    return 0;
}

static int write_regular(struct unpacker *u, struct archive *a, struct archive_entry *e, int parent, const char *name,
                         struct pea_error *err)
{
    int64_t size = archive_entry_size(e);
    if (size < 0 || (uint64_t)size > u->s->limits.max_layer_bytes)
        return entry_fail(u, err, 0, "file larger than the layer limit: refused (PEA_IMAGE_MAX_LAYER_BYTES)");
    if (make_room(u, parent, name, false, err) < 0)
        return -1;
    AUTO_FD int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return entry_fail(u, err, errno, "create");
    for (;;) {
        const void *buf;
        size_t n;
        la_int64_t offset;
        int r = archive_read_data_block(a, &buf, &n, &offset);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK)
            return pea_fail(err, 0, "entry %s: read: %s", u->entry, archive_error_string(a));
        if (offset < 0 || offset + (int64_t)n > size)
            return entry_fail(u, err, 0, "data beyond the file's size: refused");
        for (size_t done = 0; done < n;) {
            ssize_t w = pwrite(fd, (const char *)buf + done, n - done, offset + (off_t)done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return entry_fail(u, err, errno, "write");
            done += (size_t)w;
        }
    }
    if (ftruncate(fd, size) < 0) /* a sparse file's trailing hole */
        return entry_fail(u, err, errno, "set size");
    struct timespec t[2];
    entry_times(e, t);
    if (apply_metadata(u, fd, e, err) < 0)
        return -1;
    if (futimens(fd, t) < 0)
        return entry_fail(u, err, errno, "set times");
    return 0;
}

static int write_directory(struct unpacker *u, struct archive_entry *e, int parent, const char *name,
                           const char *path, struct pea_error *err)
{
    AUTO_FD int fd = -1;
    if (!*path) {
        fd = open_in_layer(u->root_fd, "", O_RDONLY | O_DIRECTORY);
    } else {
        int room = make_room(u, parent, name, true, err);
        if (room < 0)
            return -1;
        if (room == 0 && mkdirat(parent, name, 0700) < 0)
            return entry_fail(u, err, errno, "create");
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return entry_fail(u, err, errno, "open");
    if (apply_metadata(u, fd, e, err) < 0)
        return -1;
    /* Its times are set at the end: every entry made inside it changes them. */
    if (u->n_dirs == u->cap_dirs) {
        u->cap_dirs = u->cap_dirs ? 2 * u->cap_dirs : 64;
        u->dirs = xrealloc(u->dirs, u->cap_dirs * sizeof *u->dirs);
    }
    u->dirs[u->n_dirs].path = xstrdup(path);
    entry_times(e, u->dirs[u->n_dirs++].times);
    return 0;
}

static int write_hard_link(struct unpacker *u, struct archive_entry *e, int parent, const char *name,
                           const char *path, struct pea_error *err)
{
    char target[PATH_MAX];
    if (unpack_clean_path(archive_entry_hardlink(e), target, sizeof target) < 0 || !*target)
        return entry_fail(u, err, 0, "hard link target leaves the layer: refused");
    if (strcmp(target, path) == 0)
        return 0;
    char *slash = strrchr(target, '/');
    const char *target_name = slash ? slash + 1 : target;
    if (slash)
        *slash = '\0';
    AUTO_FD int target_parent = open_in_layer(u->root_fd, slash ? target : "", O_PATH | O_DIRECTORY);
    if (target_parent < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
            return entry_fail(u, err, 0, "hard link target is reached through a symlink: refused");
        return entry_fail(u, err, errno == ENOENT ? 0 : errno, "hard link target is not in the layer");
    }
    struct stat st;
    if (fstatat(target_parent, target_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, err, errno == ENOENT ? 0 : errno, "hard link target is not in the layer");
    if (make_room(u, parent, name, false, err) < 0)
        return -1;
    /* Flags 0: a symlink is linked as itself, never followed. */
    if (linkat(target_parent, target_name, parent, name, 0) < 0)
        return entry_fail(u, err, errno, "hard link");
    return 0;
}

static int write_special(struct unpacker *u, struct archive_entry *e, int parent, const char *name,
                         struct pea_error *err)
{
    mode_t type = archive_entry_filetype(e);
    const char *target = archive_entry_symlink(e);
    if (type == AE_IFLNK && (!target || !*target))
        return entry_fail(u, err, 0, "symlink without a target: refused");
    if ((type == AE_IFCHR || type == AE_IFBLK) && !u->s->is_privileged) {
        u->stats->skipped_devices++;
        return 0;
    }
    if (make_room(u, parent, name, false, err) < 0)
        return -1;
    /* A symlink's target is only text here: it is resolved later, inside a container's root. */
    int r = type == AE_IFLNK ? symlinkat(target, parent, name)
                             : mknodat(parent, name, type | (archive_entry_perm(e) & 0777), archive_entry_rdev(e));
    if (r < 0)
        return entry_fail(u, err, errno, "create");
    if (geteuid() == 0 &&
        fchownat(parent, name, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, err, errno, "set owner");
    if (type != AE_IFLNK && fchmodat(parent, name, archive_entry_perm(e) & 07777, 0) < 0)
        return entry_fail(u, err, errno, "set mode");
    struct timespec t[2];
    entry_times(e, t);
    if (utimensat(parent, name, t, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, err, errno, "set times");
    return 0;
}

/* ".wh.NAME" hides NAME of the layers below: overlayfs spells it as a 0/0 character device. ".wh..wh..opq" hides
 * everything below in its directory: the trusted.overlay.opaque xattr. Other ".wh..wh." names are aufs's
 * bookkeeping and mean nothing here. */
static int write_whiteout(struct unpacker *u, int parent, const char *name, struct pea_error *err)
{
    if (strcmp(name, WHITEOUT_OPAQUE) == 0) {
        if (fsetxattr(parent, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return entry_fail(u, err, errno, "mark the directory opaque (trusted.overlay.opaque)");
        return 0;
    }
    if (strncmp(name, WHITEOUT_META_PREFIX, strlen(WHITEOUT_META_PREFIX)) == 0)
        return 0;
    const char *hidden = name + strlen(WHITEOUT_PREFIX);
    if (!*hidden || strcmp(hidden, ".") == 0 || strcmp(hidden, "..") == 0)
        return entry_fail(u, err, 0, "whiteout of nothing: refused");
    if (make_room(u, parent, hidden, false, err) < 0)
        return -1;
    if (mknodat(parent, hidden, S_IFCHR, makedev(0, 0)) < 0)
        return entry_fail(u, err, errno, "create the overlay whiteout (a 0/0 character device; needs root)");
    return 0;
}

static int unpack_entry(struct unpacker *u, struct archive *a, struct archive_entry *e, struct pea_error *err)
{
    char path[PATH_MAX];
    if (unpack_clean_path(u->entry, path, sizeof path) < 0)
        return entry_fail(u, err, 0, errno == EXDEV ? "path leaves the layer (..): refused" : "path too long");
    mode_t type = archive_entry_filetype(e);
    bool is_link = archive_entry_hardlink(e) != NULL;
    if (!*path)
        return !is_link && type == AE_IFDIR ? write_directory(u, e, -1, "", "", err)
                                            : entry_fail(u, err, 0, "the layer root is not a directory: refused");
    char parent_path[PATH_MAX];
    snprintf(parent_path, sizeof parent_path, "%s", path);
    char *slash = strrchr(parent_path, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash)
        *slash = '\0';
    else
        parent_path[0] = '\0';
    int parent = open_parent(u, parent_path, err);
    if (parent < 0)
        return -1;
    if (strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
        return write_whiteout(u, parent, name, err);
    if (is_link)
        return write_hard_link(u, e, parent, name, path, err);
    switch (type) {
    case AE_IFREG: return write_regular(u, a, e, parent, name, err);
    case AE_IFDIR: return write_directory(u, e, parent, name, path, err);
    case AE_IFLNK:
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: return write_special(u, e, parent, name, err);
    default: return entry_fail(u, err, 0, "unsupported file type: refused");
    }
}

static void set_directory_times(struct unpacker *u)
{
    for (size_t i = u->n_dirs; i-- > 0;) {
        AUTO_FD int fd = open_in_layer(u->root_fd, u->dirs[i].path, O_RDONLY | O_DIRECTORY);
        if (fd >= 0)
            futimens(fd, u->dirs[i].times);
    }
}

int unpack_tar_into(struct pea_image_store *s, struct archive *a, int dir_fd, struct unpack_stats *stats,
                    struct pea_error *err)
{
    struct unpacker u = {.s = s, .root_fd = dir_fd, .stats = stats, .parent_fd = -1};
    int r = 0;
    struct archive_entry *e;
    while (r == 0) {
        int h = archive_read_next_header(a, &e);
        if (h == ARCHIVE_EOF)
            break;
        if (h != ARCHIVE_OK && h != ARCHIVE_WARN) {
            r = pea_fail(err, 0, "read the layer's tar: %s", archive_error_string(a));
            break;
        }
        if (++stats->entries > s->limits.max_layer_entries) {
            r = pea_fail(err, 0, "more than %" PRIu64 " entries: refused (limit PEA_IMAGE_MAX_LAYER_ENTRIES)",
                         s->limits.max_layer_entries);
            break;
        }
        u.entry = archive_entry_pathname(e);
        if (!u.entry) {
            r = pea_fail(err, 0, "entry %" PRIu64 " has no readable name", stats->entries);
            break;
        }
        r = unpack_entry(&u, a, e, err);
    }
    if (r == 0)
        set_directory_times(&u);
    forget_parent(&u);
    for (size_t i = 0; i < u.n_dirs; i++)
        free(u.dirs[i].path);
    free(u.dirs);
    return r;
}
