/* cgroup v2 teardown of a whole subtree: kill what runs in it, wait (with a deadline) until nothing does, and remove
 * every cgroup of it, whatever any record says about the processes inside. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "pea/cgroup.h"
#include "pea/util.h"

static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* 1 while a process of the cgroup or of a descendant lives, 0 once none does, -1 when it cannot be told. */
static int is_populated(int events_fd)
{
    char text[256];
    ssize_t n = pread(events_fd, text, sizeof text - 1, 0);
    if (n < 0)
        return -1;
    text[n] = '\0';
    const char *line = strstr(text, "populated ");
    if (!line)
        return -1;
    return line[strlen("populated ")] != '0';
}

int cgroup_kill_and_wait_empty(const char *path, int timeout_ms, struct pea_error *err)
{
    struct pea_error open_err = {0};
    AUTO_FD int dir = cgroup_open_dir(path, &open_err);
    if (dir < 0) {
        if (open_err.errnum == ENOENT)
            return 0;
        *err = open_err;
        return -1;
    }
    AUTO_FD int events = openat(dir, "cgroup.events", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (events < 0)
        return pea_fail(err, errno, "cgroup: open %s/cgroup.events", path);
    bool has_kill_file = faccessat(dir, "cgroup.kill", F_OK, 0) == 0;
    long long deadline = monotonic_ms() + timeout_ms;
    for (;;) {
        int populated = is_populated(events);
        if (populated < 0)
            return pea_fail(err, errno, "cgroup: read %s/cgroup.events", path);
        if (populated == 0)
            return 0;
        long long left = deadline - monotonic_ms();
        if (left <= 0)
            break;
        /* cgroup.kill takes the whole subtree at once, forks in flight included. Without it (before Linux 5.14)
         * each listed process is signalled through a pidfd, again on every round for what forked meanwhile. */
        struct pea_error kill_err = {0};
        int killed = has_kill_file ? cgroup_write(dir, "cgroup.kill", "1", &kill_err)
                                   : cgroup_kill_all(path, SIGKILL, &kill_err);
        if (killed < 0)
            return pea_fail(err, kill_err.errnum, "cgroup: kill what runs in %s: %s", path, kill_err.msg);
        /* cgroup.events signals a change with POLLPRI; the cap re-kills late forks on the fallback path. */
        struct pollfd p = {.fd = events, .events = POLLPRI};
        if (poll(&p, 1, (int)(left < 50 ? left : 50)) < 0 && errno != EINTR)
            return pea_fail(err, errno, "cgroup: wait for %s to empty", path);
    }
    pid_t *pids = NULL;
    size_t n = 0;
    struct pea_error ignored = {0};
    cgroup_pids(path, &pids, &n, &ignored);
    int r = pea_fail(err, EBUSY, "cgroup: %s still holds %zu process%s (first: %d) %d ms after SIGKILL", path, n,
                     n == 1 ? "" : "es", n ? (int)pids[0] : 0, timeout_ms);
    free(pids);
    return r;
}

int cgroup_remove_descendants(int dir_fd, const char *path, struct pea_error *err)
{
    DIR *d = fdopendir(dup(dir_fd));
    if (!d)
        return pea_fail(err, errno, "cgroup: list %s", path);
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        AUTO_FREE char *child_path = xasprintf("%s/%s", path, de->d_name);
        AUTO_FD int child = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (child < 0) {
            if (errno != ENOENT)
                r = pea_fail(err, errno, "cgroup: open %s", child_path);
            continue;
        }
        if (cgroup_remove_descendants(child, child_path, err) < 0)
            r = -1;
        /* Exited tasks leave a cgroup asynchronously: give it a moment to drain. */
        for (int attempt = 0; r == 0 && unlinkat(dir_fd, de->d_name, AT_REMOVEDIR) < 0; attempt++) {
            if (errno == ENOENT)
                break;
            if (errno != EBUSY || attempt >= 200) {
                r = pea_fail(err, errno, "cgroup: remove %s", child_path);
                break;
            }
            struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    closedir(d);
    return r;
}

int cgroup_destroy_tree(const char *path, struct pea_error *err)
{
    struct pea_error open_err = {0};
    AUTO_FD int dir = cgroup_open_dir(path, &open_err);
    if (dir < 0) {
        if (open_err.errnum == ENOENT)
            return 0;
        *err = open_err;
        return -1;
    }
    if (cgroup_remove_descendants(dir, path, err) < 0)
        return -1;
    return cgroup_destroy(path, err);
}
