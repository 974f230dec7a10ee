/* pea pod logs: a container's output from the CRI log files pea-shim writes, read directly (no shim needed, so it
 * works when the shim is gone); -f then follows the files, through rotation, until the container has exited. As
 * kubectl prints it: the text only, stdout records to stdout, stderr records to stderr; output that rotation
 * took away before it could be read is one "pea: pod logs: ..." line on stderr (cri_log_reader.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri_log.h"
#include "cri_log_reader.h"
#include "logs.h"
#include "cli_options.h"
#include "pod_client.h"
#include "pea/util.h"

/* How often -f looks at the pod's state when the file is quiet. */
#define FOLLOW_CHECK_MS 500

static int print_line(enum cri_stream stream, const char *text, size_t len, const char *timestamp, void *ctx)
{
    (void)timestamp;
    (void)ctx;
    FILE *f = stream == CRI_STDERR ? stderr : stdout;
    /* In order when both go to one place: stdout is buffered, stderr is not. */
    if (stream == CRI_STDERR)
        fflush(stdout);
    fwrite(text, 1, len, f);
    fputc('\n', f);
    return ferror(f) ? -1 : 0;
}

/* Output that was gone before it could be read: one line on stderr, where it cannot be taken for the container's
 * own output on stdout, after the stdout lines before it. */
static int print_gap(const struct cri_log_gap *gap, void *ctx)
{
    const char *container = ctx;
    fflush(stdout);
    if (gap->is_unknown)
        fprintf(stderr, "pea: pod logs: %s's log files were replaced before they could all be read (it restarted "
                "again, or its shim rebuilt them): some of its output may be missing here\n", container);
    else
        fprintf(stderr, "pea: pod logs: %llu lines (%llu bytes) of %s's output were rotated away before they could "
                "be read\n", (unsigned long long)gap->lines, (unsigned long long)gap->bytes, container);
    return ferror(stderr) ? -1 : 0;
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

static int follow(const struct pea_pod *pod, const char *container, int dir_fd, struct cri_log_follower *f,
                  struct pea_error *err)
{
    AUTO_FD int watch = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (watch < 0)
        return pea_fail(err, errno, "inotify_init1");
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/self/fd/%d", dir_fd);
    if (inotify_add_watch(watch, dir_path, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM) < 0)
        return pea_fail(err, errno, "watch the log directory of %s", container);
    for (;;) {
        bool is_done = has_finished(pod, container);
        enum cri_log_follow_result result;
        if (cri_log_follower_read(f, &result, err) < 0)
            return -1;
        fflush(stdout);
        fflush(stderr);
        if (is_done || result == CRI_LOG_ENDED)
            break;
        struct pollfd p = {.fd = watch, .events = POLLIN};
        if (poll(&p, 1, FOLLOW_CHECK_MS) > 0) {
            char events[4096];
            while (read(watch, events, sizeof events) > 0)
                ;
        }
    }
    return cri_log_follower_finish(f, err);
}

/* Read (and with is_following, follow) a container's log files by their index. */
static int read_logs(const struct pea_pod *pod, const char *container, int dir_fd, int index_dir_fd,
                     bool is_previous, bool is_following, size_t tail, struct pea_error *err)
{
    AUTO_FREE char *name = shim_log_name(container, is_previous);
    AUTO_FREE char *moved = is_previous ? NULL : shim_log_name(container, true);
    struct cri_log_follower *f = cri_log_follower_new(dir_fd, index_dir_fd, name, moved, tail, is_following,
                                                      print_line, print_gap, (void *)container);
    int r;
    if (is_following) {
        r = follow(pod, container, dir_fd, f, err);
    } else {
        enum cri_log_follow_result result;
        r = cri_log_follower_read(f, &result, err);
        if (r == 0)
            r = cri_log_follower_finish(f, err);
    }
    cri_log_follower_free(f);
    return r;
}

int pod_logs(const struct cli_globals *g, int argc, char **argv)
{
    const char *container = NULL;
    bool is_following = false, is_previous = false;
    long long tail = 0;
    const struct cli_option opts[] = {
        CLI_STRING("container", 'c', &container),
        CLI_FLAG("follow", 'f', &is_following),
        CLI_INT("tail", 0, &tail),
        CLI_FLAG("previous", 'p', &is_previous),
        CLI_END,
    };
    struct cli_args args;
    if (cli_parse_options("pod logs", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    if (args.n != 1)
        return cli_usage_error("pod logs", "one pod name is required");
    if (tail < 0)
        tail = 0; /* kubectl's --tail=-1: all of it */
    if (is_following && is_previous)
        return cli_usage_error("pod logs", "--previous cannot be followed");
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    if (pod_open(g->root, cli_pod_name(positional[0]), &pod, &err) < 0)
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
    AUTO_FREE char *index_dir = xasprintf("%s/%s", pod->data_dir, SHIM_LOG_INDEX_DIR);
    AUTO_FD int index_dir_fd = open(index_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r;
    if (index_dir_fd >= 0) {
        r = read_logs(pod, container, dir_fd, index_dir_fd, is_previous, is_following, (size_t)tail, &err);
    } else if (errno != ENOENT) {
        r = pea_fail(&err, errno, "open %s", index_dir);
    } else if (is_following) {
        /* Without an index, a follower could not tell what rotation took from it. */
        r = pea_fail(&err, 0, "pod logs -f: the log files of pod %s were written by an older pea-shim, which keeps "
                     "no index to follow them by (pea pod logs without -f reads them)", pod->name);
    } else {
        AUTO_FREE char *name = shim_log_name(container, is_previous);
        r = cri_log_read(dir_fd, name, true, (size_t)tail, print_line, NULL, &err);
        /* No file: the container has written nothing (yet, or in its previous instance). */
        if (r < 0 && err.errnum == ENOENT)
            r = 0;
    }
    fflush(stdout);
    return r < 0 ? cli_fail(&err) : 0;
}
