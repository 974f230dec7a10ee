/* Paths inside a container's root, resolved by the kernel so that no symlink or ".." can lead outside it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pea/sys.h"
#include "pea/util.h"

int sys_open_in_root(int root_fd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    /* An absolute path is taken relative to the root; so is an empty one ("." = the root itself). */
    while (*path == '/')
        path++;
    int fd;
    do
        fd = (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof how);
    while (fd < 0 && errno == EAGAIN);
    return fd;
}

int sys_open_beneath(int dir_fd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    int fd;
    do
        fd = (int)syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    while (fd < 0 && errno == EAGAIN);
    return fd;
}

int sys_open_no_symlinks(int dir_fd, const char *path, int flags)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_NO_SYMLINKS};
    int fd;
    do
        fd = (int)syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    while (fd < 0 && errno == EAGAIN);
    return fd;
}

/* Symlinks followed while creating, as the kernel's own limit on a lookup. */
#define MKDIR_MAX_LINKS 40

static int mkdir_in_root(int root_fd, const char *path, mode_t mode, int links_left);

/* NAME in DIR (reached as PREFIX) is a symlink whose target does not exist: create that target, inside the root
 * (as a mount destination through an image's symlink lands where the symlink leads in the container). */
static int mkdir_symlink_target(int root_fd, int dir, const char *prefix, const char *name, mode_t mode,
                                int links_left)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(dir, name, target, sizeof target - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    if (links_left <= 0) {
        errno = ELOOP;
        return -1;
    }
    /* A relative target is taken from the symlink's directory: PREFIX without its last component. */
    int dir_len = (int)(strrchr(prefix, '/') - prefix);
    AUTO_FREE char *from = target[0] == '/' ? xstrdup(target) : xasprintf("%.*s/%s", dir_len, prefix, target);
    AUTO_FD int made = mkdir_in_root(root_fd, from, mode, links_left - 1);
    return made < 0 ? -1 : 0;
}

static int mkdir_in_root(int root_fd, const char *path, mode_t mode, int links_left)
{
    AUTO_FD int dir = sys_open_in_root(root_fd, "/", O_PATH | O_DIRECTORY, 0);
    if (dir < 0)
        return -1;
    AUTO_FREE char *copy = xstrdup(path);
    char *save = NULL;
    AUTO_FREE char *prefix = xstrdup("");
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        char *next = xasprintf("%s/%s", prefix, part);
        free(prefix);
        prefix = next;
        int fd = sys_open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
        if (fd < 0 && errno == ENOENT) {
            /* Create it in the directory resolved so far, then resolve again inside the root. */
            if (mkdirat(dir, part, mode) < 0) {
                if (errno != EEXIST)
                    return -1;
                if (mkdir_symlink_target(root_fd, dir, prefix, part, mode, links_left) < 0 && errno != EINVAL)
                    return -1;
            }
            fd = sys_open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
        }
        if (fd < 0)
            return -1;
        close(dir);
        dir = fd;
    }
    return take_fd(&dir);
}

int sys_mkdir_in_root(int root_fd, const char *path, mode_t mode)
{
    return mkdir_in_root(root_fd, path, mode, MKDIR_MAX_LINKS);
}

int sys_mkfile_in_root(int root_fd, const char *path, mode_t mode)
{
    int fd = sys_open_in_root(root_fd, path, O_PATH, 0);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    AUTO_FREE char *copy = xstrdup(path);
    char *slash = strrchr(copy, '/');
    const char *name = copy;
    AUTO_FD int parent = -1;
    if (slash) {
        *slash = '\0';
        name = slash + 1;
        parent = sys_mkdir_in_root(root_fd, copy, 0755);
    } else {
        parent = sys_open_in_root(root_fd, "/", O_PATH | O_DIRECTORY, 0);
    }
    if (parent < 0)
        return -1;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        errno = EINVAL;
        return -1;
    }
    /* mknodat makes the file without following a symlink planted at the name. */
    if (mknodat(parent, name, S_IFREG | (mode & 07777), 0) < 0 && errno != EEXIST)
        return -1;
    return sys_open_in_root(root_fd, path, O_PATH, 0);
}
