#include "oom.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "events.h"
#include "events.pb-c.h"
#include "loop.h"
#include "pea/util.h"
#include "shim_log.h"
#include "stats.h"

struct oom_watch {
    struct oom_watch *next;
    char *container_id;
    int cgroup_fd;      /* the task's cgroup directory, opened once: the watch and every read go through it */
    int watch;          /* inotify watch descriptor, -1 once the kernel dropped it (cgroup removed) */
    long long oom_kills; /* the count last seen */
};

static struct oom_watch *watches;
static struct loop_watch inotify_watch = {.fd = -1};

/* memory.events' oom_kill count, -1 when it cannot be read. */
static long long read_oom_kills(int cgroup_fd)
{
    AUTO_FREE char *text = read_file_at(cgroup_fd, "memory.events", 4096, NULL);
    if (!text)
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long long n;
        if (strncmp(line, "oom_kill ", 9) == 0 && parse_int64(line + 9, &n) == 0)
            return n;
    }
    return -1;
}

static void check(struct oom_watch *w)
{
    long long kills = read_oom_kills(w->cgroup_fd);
    if (kills <= w->oom_kills)
        return;
    w->oom_kills = kills;
    Containerd__Events__TaskOOM e = CONTAINERD__EVENTS__TASK_OOM__INIT;
    e.container_id = w->container_id;
    events_publish("/tasks/oom", &e.base);
}

static void on_inotify(struct loop_watch *lw, uint32_t events)
{
    (void)events;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(lw->fd, buf, sizeof buf);
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            for (struct oom_watch *w = watches; w; w = w->next) {
                if (w->watch != ev->wd)
                    continue;
                if (ev->mask & IN_IGNORED)
                    w->watch = -1;
                else
                    check(w);
            }
        }
    }
}

void oom_watch(const char *container_id, pid_t pid)
{
    struct pea_error err = {0};
    AUTO_FD int cgroup_fd = stats_open_cgroup(pid, &err);
    if (cgroup_fd < 0) {
        shim_log_debug("no OOM events for %s: %s", container_id, err.msg);
        return;
    }
    if (faccessat(cgroup_fd, "memory.events", R_OK, 0) < 0) {
        shim_log_debug("no OOM events for %s: its cgroup has no memory controller", container_id);
        return;
    }
    if (inotify_watch.fd < 0) {
        int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0) {
            shim_log("watch %s for OOM kills: inotify: %s", container_id, strerror(errno));
            return;
        }
        inotify_watch = (struct loop_watch){.fd = fd, .on_event = on_inotify};
        if (loop_add(&inotify_watch, EPOLLIN) < 0) {
            shim_log("watch %s for OOM kills: %s", container_id, strerror(errno));
            close(fd);
            inotify_watch.fd = -1;
            return;
        }
    }
    /* Through the directory already opened: the file watched is the one of the cgroup that was checked. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d/memory.events", cgroup_fd);
    int wd = inotify_add_watch(inotify_watch.fd, path, IN_MODIFY);
    if (wd < 0) {
        shim_log("watch %s for OOM kills: %s", container_id, strerror(errno));
        return;
    }
    struct oom_watch *w = xcalloc(1, sizeof *w);
    w->container_id = xstrdup(container_id);
    w->cgroup_fd = take_fd(&cgroup_fd);
    w->watch = wd;
    w->oom_kills = read_oom_kills(w->cgroup_fd);
    w->next = watches;
    watches = w;
}

void oom_check(const char *container_id)
{
    for (struct oom_watch *w = watches; w; w = w->next)
        if (strcmp(w->container_id, container_id) == 0)
            check(w);
}

void oom_unwatch(const char *container_id)
{
    for (struct oom_watch **pp = &watches; *pp; pp = &(*pp)->next) {
        struct oom_watch *w = *pp;
        if (strcmp(w->container_id, container_id) != 0)
            continue;
        bool shared = false;
        for (struct oom_watch *o = watches; o; o = o->next)
            shared |= o != w && o->watch == w->watch;
        if (w->watch >= 0 && !shared)
            inotify_rm_watch(inotify_watch.fd, w->watch);
        *pp = w->next;
        close(w->cgroup_fd);
        free(w->container_id);
        free(w);
        return;
    }
}
