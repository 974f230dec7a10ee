/* pea pod logs: a container's output from the CRI log files pea-shim writes, read directly (no shim needed, so it
 * works when the shim is gone); -f then follows the file, through rotation, until the container has exited. As
 * kubectl prints it: the text only, stdout records to stdout, stderr records to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri_log.h"
#include "logs.h"
#include "pod_client.h"
#include "pea/util.h"

/* How often -f looks at the pod's state when the file is quiet. */
#define FOLLOW_CHECK_MS 500

static int print_line(enum cri_stream stream, const char *text, size_t len, const char *timestamp, void *ctx)
{
    (void)timestamp;
    (void)ctx;
    FILE *f = stream == CRI_STDERR ? stderr : stdout;
    fwrite(text, 1, len, f);
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}

struct follower {
    int dir_fd;
    const char *name;
    int fd;
    char *pending; /* the start of a record whose newline is not written yet */
    size_t n_pending;
};

static void print_record(const char *line, size_t len)
{
    struct cri_log_line rec;
    struct pea_error ignored = {0};
    if (cri_log_parse_line(line, len, &rec, &ignored) < 0)
        return;
    FILE *f = rec.stream == CRI_STDERR ? stderr : stdout;
    fwrite(rec.text, 1, rec.text_len, f);
    if (!rec.is_partial)
        fputc('\n', f);
    fflush(f);
}

/* Print every whole record the file has gained. */
static void drain(struct follower *fl)
{
    char buf[65536];
    ssize_t n;
    while (fl->fd >= 0 && (n = read(fl->fd, buf, sizeof buf)) > 0) {
        fl->pending = xrealloc(fl->pending, fl->n_pending + (size_t)n);
        memcpy(fl->pending + fl->n_pending, buf, (size_t)n);
        fl->n_pending += (size_t)n;
        size_t start = 0;
        for (char *nl; (nl = memchr(fl->pending + start, '\n', fl->n_pending - start));) {
            print_record(fl->pending + start, (size_t)(nl - (fl->pending + start)));
            start = (size_t)(nl - fl->pending) + 1;
        }
        memmove(fl->pending, fl->pending + start, fl->n_pending - start);
        fl->n_pending -= start;
    }
}

/* After a rotation (or a new instance) the name is a new file: finish the old one, go on with the new. */
static void follow_rename(struct follower *fl)
{
    struct stat now, ours;
    if (fstatat(fl->dir_fd, fl->name, &now, 0) < 0)
        return;
    if (fl->fd >= 0 && fstat(fl->fd, &ours) == 0 && ours.st_ino == now.st_ino && ours.st_dev == now.st_dev)
        return;
    drain(fl);
    if (fl->fd >= 0)
        close(fl->fd);
    fl->n_pending = 0;
    fl->fd = openat(fl->dir_fd, fl->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

/* Whether the container has finished (or the pod is gone): then -f ends once the file is drained. */
static bool has_finished(const struct pea_pod *pod, const char *container)
{
    AUTO_FREE char *path = xasprintf("%s/pod.json", pod->dir);
    json_error_t jerr;
    AUTO_JSON json_t *state = json_load_file(path, 0, &jerr);
    if (!state)
        return true;
    json_t *record = json_object_get(json_object_get(state, "containers"), container);
    const char *s = json_string_value(json_object_get(record, "state"));
    return s && (strcmp(s, "exited") == 0 || strcmp(s, "stopped") == 0);
}

static int follow(const struct pea_pod *pod, const char *container, int dir_fd, const char *name, size_t tail,
                  struct pea_error *err)
{
    AUTO_FD int watch = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (watch < 0)
        return pea_fail(err, errno, "inotify_init1");
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/self/fd/%d", dir_fd);
    if (inotify_add_watch(watch, dir_path, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM) < 0)
        return pea_fail(err, errno, "watch the log directory of %s", container);
    struct follower fl = {.dir_fd = dir_fd, .name = name, .fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
    if (fl.fd >= 0) {
        if (cri_log_read(dir_fd, name, true, tail, print_line, NULL, err) < 0) {
            close(fl.fd);
            return -1;
        }
        fflush(stdout);
        fflush(stderr);
        /* Go on from where the reader stopped: the end of the file as it is now. */
        lseek(fl.fd, 0, SEEK_END);
    }
    for (;;) {
        bool is_done = has_finished(pod, container);
        follow_rename(&fl);
        drain(&fl);
        if (is_done)
            break;
        struct pollfd p = {.fd = watch, .events = POLLIN};
        if (poll(&p, 1, FOLLOW_CHECK_MS) > 0) {
            char events[4096];
            while (read(watch, events, sizeof events) > 0)
                ;
        }
    }
    if (fl.fd >= 0)
        close(fl.fd);
    free(fl.pending);
    return 0;
}

int pod_logs(const struct cli_globals *g, int argc, char **argv)
{
    enum { OPT_TAIL = 256, OPT_PREVIOUS };
    static const struct option opts[] = {
        {"container", required_argument, NULL, 'c'}, {"follow", no_argument, NULL, 'f'},
        {"tail", required_argument, NULL, OPT_TAIL}, {"previous", no_argument, NULL, OPT_PREVIOUS},
        {0}};
    const char *container = NULL;
    bool is_following = false, is_previous = false;
    long long tail = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+c:fp", opts, NULL)) != -1) {
        switch (c) {
        case 'c': container = optarg; break;
        case 'f': is_following = true; break;
        case 'p':
        case OPT_PREVIOUS: is_previous = true; break;
        case OPT_TAIL:
            if (parse_int64(optarg, &tail) < 0 || tail < 0)
                return cli_usage_error("pod logs", "--tail takes a number of lines");
            break;
        default: return cli_usage_error("pod logs", "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("pod logs", "one pod name is required");
    if (is_following && is_previous)
        return cli_usage_error("pod logs", "--previous cannot be followed");
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    if (pod_open(g->root, argv[optind], &pod, &err) < 0)
        return cli_fail(&err);
    if (!container && !(container = pod_default_container(pod, &err)))
        return cli_fail(&err);
    bool is_known = false;
    for (size_t i = 0; i < pod->manifest->n_containers; i++)
        is_known |= strcmp(pod->manifest->containers[i].name, container) == 0;
    for (size_t i = 0; i < pod->manifest->n_init_containers; i++)
        is_known |= strcmp(pod->manifest->init_containers[i].name, container) == 0;
    if (!is_known) {
        pea_fail(&err, 0, "no container %s in pod %s", container, pod->name);
        return cli_fail(&err);
    }
    AUTO_FREE char *dir = xasprintf("%s/%s", pod->data_dir, SHIM_LOG_DIR);
    AUTO_FD int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        pea_fail(&err, errno, "open %s", dir);
        return cli_fail(&err);
    }
    AUTO_FREE char *name = shim_log_name(container, is_previous);
    int r;
    if (is_following) {
        r = follow(pod, container, dir_fd, name, (size_t)tail, &err);
    } else {
        r = cri_log_read(dir_fd, name, true, (size_t)tail, print_line, NULL, &err);
        /* No file: the container has written nothing (yet, or in its previous instance). */
        if (r < 0 && err.errnum == ENOENT)
            r = 0;
    }
    fflush(stdout);
    return r < 0 ? cli_fail(&err) : 0;
}
