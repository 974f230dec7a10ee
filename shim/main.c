/* pea-shim: the supervisor of one pod, detached from whoever started it. `pea pod apply` starts it (new session,
 * stdio on /dev/null, cwd /) and waits on --ready-fd for "ok" or the error line; from then on the pod commands
 * talk to it over <pod dir>/shim.sock. It makes the pod, runs the supervising loop with its output going to CRI
 * log files, and at the end (shutdown, a stop signal, or the pod finished) tears the pod down and exits. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "logs.h"
#include "pea/log.h"
#include "pea/pod.h"
#include "pea/pod_image.h"
#include "pea/pod_manifest.h"
#include "pea/seccomp.h"
#include "pea/state.h"
#include "pea/supervise.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "server.h"

/* Under --root: which running shim's sealed copy of pea-shim a new shim may share (sys.h). */
#define SHIM_COPY_RECORD ".pea-shim-copy"

struct shim_args {
    const char *root, *data_root, *pause;
    int manifest_fd; /* a new pod's manifest, as a sealed memfd */
    const char *adopt; /* a pod whose shim died: take it over instead of making one */
    int ready_fd;
    bool debug;
};

static int parse_args(int argc, char **argv, struct shim_args *a)
{
    enum { OPT_ROOT = 256, OPT_DATA_ROOT, OPT_PAUSE, OPT_MANIFEST_FD, OPT_ADOPT, OPT_READY_FD, OPT_DEBUG };
    static const struct option opts[] = {
        {"root", required_argument, NULL, OPT_ROOT},
        {"data-root", required_argument, NULL, OPT_DATA_ROOT},
        {"pause", required_argument, NULL, OPT_PAUSE},
        {"manifest-fd", required_argument, NULL, OPT_MANIFEST_FD},
        {"adopt", required_argument, NULL, OPT_ADOPT},
        {"ready-fd", required_argument, NULL, OPT_READY_FD},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {0},
    };
    *a = (struct shim_args){.ready_fd = -1, .manifest_fd = -1};
    long long fd;
    int c;
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_ROOT: a->root = optarg; break;
        case OPT_DATA_ROOT: a->data_root = optarg; break;
        case OPT_PAUSE: a->pause = optarg; break;
        case OPT_MANIFEST_FD:
            if (parse_int64(optarg, &fd) < 0 || fd < 3 || fd > 1 << 20)
                return -1;
            a->manifest_fd = (int)fd;
            break;
        case OPT_ADOPT: a->adopt = optarg; break;
        case OPT_READY_FD:
            if (parse_int64(optarg, &fd) < 0 || fd < 3 || fd > 1 << 20)
                return -1;
            a->ready_fd = (int)fd;
            break;
        case OPT_DEBUG: a->debug = true; break;
        default: return -1;
        }
    }
    if (!a->root || optind != argc)
        return -1;
    bool has_manifest = a->manifest_fd >= 0;
    return a->adopt ? (has_manifest ? -1 : 0) : (a->data_root && a->pause && has_manifest ? 0 : -1);
}

/* Tell the waiting client how the start went, once: "ok" or the error line. */
static void report_ready(int *ready_fd, const char *line)
{
    if (*ready_fd < 0)
        return;
    AUTO_FREE char *text = xasprintf("%s\n", line);
    (void)!write_all(*ready_fd, text, strlen(text));
    close(*ready_fd);
    *ready_fd = -1;
}

/* The address of dir/name, through /proc/self/fd when the path is too long for sun_path. */
static int socket_address(int dir_fd, const char *name, struct sockaddr_un *addr)
{
    *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
    int n = snprintf(addr->sun_path, sizeof addr->sun_path, "/proc/self/fd/%d/%s", dir_fd, name);
    return n > 0 && (size_t)n < sizeof addr->sun_path ? 0 : -1;
}

static int listen_control_socket(const struct pea_pod *pod, struct pea_error *err)
{
    AUTO_FD int dir_fd = open(pod->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open %s", pod->dir);
    struct sockaddr_un addr;
    if (socket_address(dir_fd, SHIM_SOCKET_NAME, &addr) < 0)
        return pea_fail(err, ENAMETOOLONG, "control socket address in %s", pod->dir);
    AUTO_FD int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return pea_fail(err, errno, "create the control socket");
    unlinkat(dir_fd, SHIM_SOCKET_NAME, 0);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return pea_fail(err, errno, "bind the control socket %s/%s", pod->dir, SHIM_SOCKET_NAME);
    /* The pod directory is 0700 already; the socket itself says the same (and a symlink at its name is not
     * followed: the chmod is for the socket just bound, nothing else). */
    if (fchmodat(dir_fd, SHIM_SOCKET_NAME, 0600, AT_SYMLINK_NOFOLLOW) < 0 || listen(fd, SHIM_MAX_CLIENTS) < 0)
        return pea_fail(err, errno, "listen on the control socket %s/%s", pod->dir, SHIM_SOCKET_NAME);
    return take_fd(&fd);
}

/* Who may talk to the shim (besides root), and how a later client knows that the shim is this process. */
static int record_shim(struct pea_pod *pod, struct pea_error *err)
{
    json_object_set_new(pod->state, "owner", json_integer(getuid()));
    json_object_set_new(pod->state, "shim",
                        json_pack("{s:i, s:I}", "pid", (int)getpid(), "startTime",
                                  (json_int_t)sys_process_start_time(getpid(), NULL)));
    /* An adopting shim is not the process that made the pod: the teardown record names the one that runs now. */
    return pod_save(pod, err) < 0 || pod_save_teardown_record(pod, err) < 0 ? -1 : 0;
}

/* Everything after the pod exists; on failure the caller tears the pod down. */
static int serve(struct pea_pod *pod, const struct shim_args *a, int *ready_fd, int *exit_code,
                 struct pea_error *err)
{
    AUTO_FREE char *log_path = xasprintf("%s/shim.log", pod->dir);
    if (log_open(log_path, PEA_LOG_TEXT, a->debug) < 0)
        return pea_fail(err, errno, "open %s", log_path);
    int listen_fd = listen_control_socket(pod, err);
    if (listen_fd < 0 || record_shim(pod, err) < 0) {
        if (listen_fd >= 0)
            close(listen_fd);
        return -1;
    }
    struct shim_logs *logs = shim_logs_open(pod->data_dir, err);
    if (!logs) {
        close(listen_fd);
        return -1;
    }
    struct shim_server *server = server_new(pod, logs, listen_fd, getuid());
    struct pod_supervisor *sup = supervisor_new(pod, server_supervisor_ops(), server, err);
    int r = -1;
    if (sup && (!a->adopt || supervisor_adopt(sup, err) == 0) && server_start(server, sup, err) == 0) {
        /* A finished pod stays, its exit codes and logs readable, until it is stopped or removed. */
        supervisor_keep_finished(sup, true);
        report_ready(ready_fd, "ok");
        log_msg(PEA_LOG_INFO, "pod %s: serving on %s/%s", pod->name, pod->dir, SHIM_SOCKET_NAME);
        r = supervisor_run(sup, exit_code, err);
        server_finish(server, *exit_code);
    }
    server_free(server);
    supervisor_free(sup);
    shim_logs_free(logs);
    return r;
}

/* One shim runs per pod for the pod's life, so what it keeps resident counts per pod. glibc's defaults suit a busy
 * allocator: its mmap threshold grows to the largest block freed (so later large blocks come from the heap and
 * stay there), and it trims the heap only past 128 KiB free at its top. Fixed thresholds give large blocks back
 * when freed. (One thread: only the main arena exists, M_ARENA_MAX would change nothing.) */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    tune_malloc();
    struct shim_args a;
    if (parse_args(argc, argv, &a) < 0) {
        fprintf(stderr, "usage: pea-shim --root DIR --data-root DIR --pause PATH --manifest-fd N --ready-fd N "
                        "[--debug]\n       pea-shim --root DIR --adopt POD --ready-fd N [--debug]\n");
        return 1;
    }
    int ready_fd = a.ready_fd;
    /* The shim creates containers: a container process that reaches our /proc/PID/exe must find a sealed copy. */
    /* The state root first: the record of the sealed copy to share lives there, and a new pod's shim makes it. */
    struct pea_error root_err = {0};
    int root_fd = state_root_open(a.root, true, &root_err);
    if (root_fd < 0) {
        report_ready(&ready_fd, root_err.msg);
        return 1;
    }
    close(root_fd);
    if (sys_reexec_sharing_sealed_copy(argv, a.root, SHIM_COPY_RECORD) < 0) {
        char line[256];
        snprintf(line, sizeof line, "pea-shim: re-execute from a sealed copy: %s", strerror(errno));
        report_ready(&ready_fd, line);
        return 1;
    }
    if (ready_fd >= 0 && fcntl(ready_fd, F_SETFD, FD_CLOEXEC) < 0)
        return 1;
    /* Orphans of our containers' setup come to us, not to init, and so does the pod when we are gone. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    seccomp_cache_use_default_dir();
    struct pea_error err = {0};
    supervisor_block_stop_signals();
    AUTO_POD struct pea_pod *pod = NULL;
    if (a.adopt) {
        /* Each container keeps the image recorded for it. */
        if (pod_open(a.root, a.adopt, &pod, &err) < 0 ||
            pod_images_attach(pod, pod->manifest, pod->manifest, &err) < 0) {
            report_ready(&ready_fd, err.msg);
            return 1;
        }
    } else {
        struct pea_pod_manifest *m = manifest_load_sealed(a.manifest_fd, "manifest", &err);
        close(a.manifest_fd);
        struct pea_pod_options o = {.root = a.root, .data_root = a.data_root, .pause_path = a.pause};
        if (!m || pod_create(&o, m, &pod, &err) < 0) {
            report_ready(&ready_fd, err.msg);
            return 1;
        }
    }
    int exit_code = 1;
    if (serve(pod, &a, &ready_fd, &exit_code, &err) < 0) {
        /* A pod we made and could not serve goes; one we failed to adopt stays as it was. */
        if (ready_fd >= 0 && !a.adopt) {
            struct pea_error ignored = {0};
            pod_remove(pod->root, pod->name, 0, &ignored);
        }
        report_ready(&ready_fd, err.msg);
        log_error("%s", err.msg);
        return 1;
    }
    log_close();
    return exit_code;
}
