/* Per-container CRI log files, opened on first output and rotated by size. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cri_log.h"
#include "cri_log_index.h"
#include "logs.h"
#include "pea/log.h"
#include "pea/util.h"

struct open_log {
    struct open_log *next;
    char *container;
    struct cri_log *log;
};

struct shim_logs {
    int dir_fd;
    int index_dir_fd;
    uint64_t max_bytes;
    struct open_log *open;
};

static uint64_t max_bytes_from_env(void)
{
    unsigned long long v;
    const char *text = getenv("PEA_SHIM_LOG_MAX_BYTES");
    if (text && parse_uint64(text, &v) == 0)
        return v;
    return SHIM_LOG_MAX_BYTES;
}

static int open_dir(const char *data_dir, const char *name, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/%s", data_dir, name);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create log directory %s", dir);
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return pea_fail(err, errno, "open log directory %s", dir);
    return fd;
}

struct shim_logs *shim_logs_open(const char *data_dir, struct pea_error *err)
{
    AUTO_FD int fd = open_dir(data_dir, SHIM_LOG_DIR, err);
    AUTO_FD int index_fd = fd < 0 ? -1 : open_dir(data_dir, SHIM_LOG_INDEX_DIR, err);
    if (index_fd < 0)
        return NULL;
    struct shim_logs *logs = xcalloc(1, sizeof *logs);
    logs->dir_fd = take_fd(&fd);
    logs->index_dir_fd = take_fd(&index_fd);
    logs->max_bytes = max_bytes_from_env();
    return logs;
}

static void open_log_free(struct open_log *o)
{
    cri_log_close(o->log);
    free(o->container);
    free(o);
}

void shim_logs_free(struct shim_logs *logs)
{
    if (!logs)
        return;
    while (logs->open) {
        struct open_log *next = logs->open->next;
        open_log_free(logs->open);
        logs->open = next;
    }
    close(logs->dir_fd);
    close(logs->index_dir_fd);
    free(logs);
}

static struct open_log *find_log(struct shim_logs *logs, const char *container)
{
    for (struct open_log *o = logs->open; o; o = o->next)
        if (strcmp(o->container, container) == 0)
            return o;
    struct pea_error err = {0};
    AUTO_FREE char *name = shim_log_name(container, false);
    struct cri_log *log = cri_log_open(logs->dir_fd, logs->index_dir_fd, name, logs->max_bytes, SHIM_LOG_ROTATED_FILES, &err);
    if (!log) {
        log_warn("container %s: %s", container, err.msg);
        return NULL;
    }
    struct open_log *o = xcalloc(1, sizeof *o);
    o->container = xstrdup(container);
    o->log = log;
    o->next = logs->open;
    logs->open = o;
    return o;
}

void shim_logs_write(struct shim_logs *logs, const char *container, enum pod_stream stream, const char *buf,
                     size_t len)
{
    struct open_log *o = find_log(logs, container);
    if (!o)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct pea_error err = {0};
    if (cri_log_write(o->log, stream == POD_STDERR ? CRI_STDERR : CRI_STDOUT, buf, len, &now, &err) < 0)
        log_warn("container %s: %s", container, err.msg);
}

void shim_logs_new_instance(struct shim_logs *logs, const char *container)
{
    for (struct open_log **p = &logs->open; *p; p = &(*p)->next)
        if (strcmp((*p)->container, container) == 0) {
            struct open_log *o = *p;
            *p = o->next;
            open_log_free(o);
            break;
        }
    AUTO_FREE char *current = shim_log_name(container, false);
    AUTO_FREE char *previous = shim_log_name(container, true);
    for (unsigned i = 0; i <= SHIM_LOG_ROTATED_FILES; i++) {
        AUTO_FREE char *from = cri_log_file_name(current, i);
        AUTO_FREE char *to = cri_log_file_name(previous, i);
        /* Only the instance just ended is "previous": what an older one left goes first. */
        if (unlinkat(logs->dir_fd, to, 0) < 0 && errno != ENOENT)
            log_warn("container %s: remove old log %s: %s", container, to, strerror(errno));
        if (renameat(logs->dir_fd, from, logs->dir_fd, to) < 0 && errno != ENOENT)
            log_warn("container %s: keep log %s as %s: %s", container, from, to, strerror(errno));
    }
    /* The index last: a follower that finds its instance's index under the old name while the files have moved
     * waits for it to move too, and one that finds it under the new name finds the files there. */
    AUTO_FREE char *from = cri_log_index_name(current);
    AUTO_FREE char *to = cri_log_index_name(previous);
    if (renameat(logs->index_dir_fd, from, logs->index_dir_fd, to) < 0) {
        /* No index: the instance wrote nothing, and the previous files are gone with their index. */
        if (errno != ENOENT)
            log_warn("container %s: keep log index %s as %s: %s", container, from, to, strerror(errno));
        unlinkat(logs->index_dir_fd, from, 0);
        unlinkat(logs->index_dir_fd, to, 0);
    }
}
