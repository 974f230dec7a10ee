/* Per-container CRI log files, opened on first output and rotated by size. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cri_log.h"
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

struct shim_logs *shim_logs_open(const char *data_dir, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/%s", data_dir, SHIM_LOG_DIR);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        pea_fail(err, errno, "create log directory %s", dir);
        return NULL;
    }
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        pea_fail(err, errno, "open log directory %s", dir);
        return NULL;
    }
    struct shim_logs *logs = xcalloc(1, sizeof *logs);
    logs->dir_fd = fd;
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
    free(logs);
}

static struct open_log *find_log(struct shim_logs *logs, const char *container)
{
    for (struct open_log *o = logs->open; o; o = o->next)
        if (strcmp(o->container, container) == 0)
            return o;
    struct pea_error err = {0};
    AUTO_FREE char *name = shim_log_name(container, false);
    struct cri_log *log = cri_log_open(logs->dir_fd, name, logs->max_bytes, SHIM_LOG_ROTATED_FILES, &err);
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

/* "<c>.log" for index 0, "<c>.log.N" after it. */
static char *indexed(const char *name, unsigned index)
{
    return index == 0 ? xstrdup(name) : xasprintf("%s.%u", name, index);
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
        AUTO_FREE char *from = indexed(current, i);
        AUTO_FREE char *to = indexed(previous, i);
        /* Only the instance just ended is "previous": what an older one left goes first. */
        if (unlinkat(logs->dir_fd, to, 0) < 0 && errno != ENOENT)
            log_warn("container %s: remove old log %s: %s", container, to, strerror(errno));
        if (renameat(logs->dir_fd, from, logs->dir_fd, to) < 0 && errno != ENOENT)
            log_warn("container %s: keep log %s as %s: %s", container, from, to, strerror(errno));
    }
}
