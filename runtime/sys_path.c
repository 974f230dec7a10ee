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

int sys_mkdir_in_root(int root_fd, const char *path, mode_t mode)
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
            if (mkdirat(dir, part, mode) < 0 && errno != EEXIST)
                return -1;
            fd = sys_open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY, 0);
        }
        if (fd < 0)
            return -1;
        close(dir);
        dir = fd;
    }
    return take_fd(&dir);
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
