#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pea/util.h"

static void out_of_memory(void)
{
    static const char msg[] = "pea: out of memory\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

char *xstrdup(const char *s)
{
    char *r = strdup(s);
    if (!r)
        out_of_memory();
    return r;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *r;
    va_start(ap, fmt);
    int n = vasprintf(&r, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory();
    return r;
}

void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void strv_append(char ***v, const char *s)
{
    size_t n = strv_len(*v);
    *v = xrealloc(*v, (n + 2) * sizeof **v);
    (*v)[n] = xstrdup(s);
    (*v)[n + 1] = NULL;
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

char *read_file_at(int dirfd, const char *path, size_t max, size_t *len_out)
{
    AUTO_FD int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    return read_fd_all(fd, max, len_out);
}

char *read_fd_all(int fd, size_t max, size_t *len_out)
{
    size_t cap = 4096, len = 0;
    AUTO_FREE char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            errno = EFBIG;
            return NULL;
        }
    }
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return take_ptr(&buf);
}

int write_file_at(int dirfd, const char *path, const char *buf, size_t len)
{
    AUTO_FD int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    return write_all(fd, buf, len);
}

int write_file_atomic_at(int dirfd, const char *name, const char *buf, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, ".%s.%d.tmp", name, (int)getpid());
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    if (write_all(fd, buf, len) < 0 || fchmod(fd, mode) < 0) {
        int saved = errno;
        close(fd);
        unlinkat(dirfd, tmp, 0);
        errno = saved;
        return -1;
    }
    if (close(fd) < 0 || renameat(dirfd, tmp, dirfd, name) < 0) {
        int saved = errno;
        unlinkat(dirfd, tmp, 0);
        errno = saved;
        return -1;
    }
    return 0;
}

int parse_int64(const char *s, long long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int parse_uint64(const char *s, unsigned long long *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

void format_rfc3339_nano(const struct timespec *ts, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09ldZ", date, ts->tv_nsec);
}

/* Depth-first, never following a symlink and never descending into another filesystem (a mount point below is an
 * error, not something to empty). */
static int remove_tree_below(int dir_fd, dev_t dev, const char *shown, struct pea_error *err)
{
    DIR *dir = fdopendir(dup(dir_fd));
    if (!dir)
        return pea_fail(err, errno, "list %s", shown);
    struct dirent *de;
    int r = 0;
    while (r == 0 && (de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                r = pea_fail(err, errno, "stat %s/%s", shown, de->d_name);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            AUTO_FREE char *child_shown = xasprintf("%s/%s", shown, de->d_name);
            /* The device is checked on the directory opened, not on the name: a container writing the tree may
             * swap the name between the two. */
            AUTO_FD int child = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            struct stat opened;
            if (child < 0 || fstat(child, &opened) < 0)
                r = pea_fail(err, errno, "open %s", child_shown);
            else if (opened.st_dev != dev)
                r = pea_fail(err, EBUSY, "remove %s: a mount point", child_shown);
            else
                r = remove_tree_below(child, dev, child_shown, err);
            if (r == 0 && unlinkat(dir_fd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                r = pea_fail(err, errno, "remove %s", child_shown);
        } else if (unlinkat(dir_fd, de->d_name, 0) < 0 && errno != ENOENT) {
            r = pea_fail(err, errno, "remove %s/%s", shown, de->d_name);
        }
    }
    closedir(dir);
    return r;
}

int remove_tree(const char *path, struct pea_error *err)
{
    /* The parent is opened once and the top is checked, emptied and removed through it (remove_tree_at): the path
     * is not looked up again between the walk and the final rmdir, so what is removed is what was walked. */
    AUTO_FREE char *copy = xstrdup(path);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    char *slash = strrchr(copy, '/');
    const char *name = slash ? slash + 1 : copy;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return pea_fail(err, EINVAL, "remove %s", path);
    if (slash)
        *slash = '\0';
    AUTO_FD int parent = open(!slash ? "." : slash == copy ? "/" : copy, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "open %s", path);
    return remove_tree_at(parent, name, path, err);
}

int remove_tree_at(int dir_fd, const char *name, const char *shown, struct pea_error *err)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "stat %s", shown);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
            return pea_fail(err, errno, "remove %s", shown);
        return 0;
    }
    AUTO_FD int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat opened;
    if (fd < 0 || fstat(fd, &opened) < 0)
        return pea_fail(err, errno, "open %s", shown);
    if (remove_tree_below(fd, opened.st_dev, shown, err) < 0)
        return -1;
    if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return pea_fail(err, errno, "remove %s", shown);
    return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
    AUTO_FREE char *copy = xstrdup(path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(copy, mode) < 0 && errno != EEXIST ? -1 : 0;
}
