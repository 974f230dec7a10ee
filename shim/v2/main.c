/* containerd-shim-pea-v2: containerd's runtime v2 shim for pea (runtime_type "io.containerd.pea.v2").
 *
 * containerd runs it three ways, always in the task's bundle directory, with Go-style flags:
 *   ... -namespace NS -address ADDR -publish-binary CONTAINERD -id ID [-debug] start
 *       make the socket (/run/containerd/s/<sha256 of ADDR/NS/ID>), write it to BUNDLE/address, start the daemon
 *       (this binary again, no action, the socket as fd 3, a new session) and print "unix://SOCKET";
 *   ... -id ID -bundle BUNDLE delete
 *       clean up after a daemon that died: delete the container (forced), unmount the rootfs, print a DeleteResponse;
 *   ... (no action): the daemon itself (daemon.c). */
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "daemon.h"
#include "google_shapes.pb-c.h"
#include "pea/digest.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "process_stdio.h"
#include "rootfs_mount.h"
#include "shim_socket.h"
#include "runtime_options.h"
#include "task.pb-c.h"
#include "task_service.h"

#define SOCKET_DIR "/run/containerd/s"
#define PEA_STATE_PARENT "/run/containerd/pea"
#define LISTENER_FD 3
#define SEALED_COPY_RECORD ".containerd-shim-pea-v2-copy"

extern char **environ;

struct shim_flags {
    const char *namespace, *address, *publish_binary, *id, *bundle, *socket;
    bool debug, version;
    const char *action;
};

/* Go's flag package: -name value, -name=value, --name; booleans take no value; the first other word is the action. */
static int parse_flags(int argc, char **argv, struct shim_flags *f)
{
    static const char *const value_flags[] = {"namespace", "address", "publish-binary", "id", "bundle", "socket"};
    *f = (struct shim_flags){.publish_binary = "containerd", .action = ""};
    const char **slots[] = {&f->namespace, &f->address, &f->publish_binary, &f->id, &f->bundle, &f->socket};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            f->action = arg;
            return i + 1 == argc ? 0 : (fprintf(stderr, "unexpected argument after %s: %s\n", arg, argv[i + 1]), -1);
        }
        arg += arg[1] == '-' ? 2 : 1;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "debug", name_len) == 0 && name_len == 5) {
            f->debug = !eq || strcmp(eq + 1, "true") == 0;
            continue;
        }
        if (strncmp(arg, "v", name_len) == 0 && name_len == 1) {
            f->version = true;
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < ARRAY_SIZE(value_flags); k++) {
            if (strlen(value_flags[k]) == name_len && strncmp(arg, value_flags[k], name_len) == 0) {
                if (!eq && i + 1 >= argc) {
                    fprintf(stderr, "flag needs an argument: -%s\n", value_flags[k]);
                    return -1;
                }
                *slots[k] = eq ? eq + 1 : argv[++i];
                known = true;
                break;
            }
        }
        if (!known) {
            fprintf(stderr, "flag provided but not defined: %s\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

static char *pea_root_of(const char *namespace) { return xasprintf("%s/%s", PEA_STATE_PARENT, namespace); }

/* /run/containerd/s/<sha256("ADDRESS/NAMESPACE/GROUP")>, the name containerd's runc shim gives its socket; GROUP is
 * the task's id, or its pod's sandbox id (grouping_id_of). */
static char *socket_path_of(const struct shim_flags *f, const char *group)
{
    AUTO_FREE char *key = xasprintf("%s/%s/%s", f->address, f->namespace, group);
    char digest[PEA_DIGEST_SIZE];
    pea_digest_buffer(key, strlen(key), digest);
    return xasprintf("%s/%s", SOCKET_DIR, pea_digest_hex(digest));
}

/* The CRI plugin marks a pod's app containers with the annotations io.kubernetes.cri.container-type "container"
 * and io.kubernetes.cri.sandbox-id: they join the shim of that sandbox, one shim per pod. Any other task (the
 * sandbox itself, a task from ctr) has a shim of its own, named after its id. The caller frees the result. */
static char *grouping_id_of(const char *task_id, struct pea_error *err)
{
    json_error_t parse_error;
    AUTO_JSON json_t *config = json_load_file("config.json", JSON_REJECT_DUPLICATES, &parse_error);
    if (!config) {
        pea_fail(err, 0, "read the bundle's config.json: %s", parse_error.text);
        return NULL;
    }
    json_t *annotations = json_object_get(config, "annotations");
    const char *type = json_string_value(json_object_get(annotations, "io.kubernetes.cri.container-type"));
    const char *sandbox = json_string_value(json_object_get(annotations, "io.kubernetes.cri.sandbox-id"));
    if (type && strcmp(type, "container") == 0 && sandbox && *sandbox) {
        if (strchr(sandbox, '/')) {
            pea_fail(err, 0, "invalid sandbox id %s in io.kubernetes.cri.sandbox-id", sandbox);
            return NULL;
        }
        return xstrdup(sandbox);
    }
    return xstrdup(task_id);
}

/* The shim's OOM score: one above containerd's, so the kernel picks the shim before the daemon. */
static void adjust_oom_score(pid_t shim)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)getppid());
    AUTO_FREE char *text = read_file_at(AT_FDCWD, path, 32, NULL);
    long long score;
    if (!text || parse_int64(strtok(text, "\n"), &score) < 0)
        return;
    char value[32];
    int n = snprintf(value, sizeof value, "%lld", score < 1000 ? score + 1 : 1000);
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)shim);
    AUTO_FD int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        (void)!write(fd, value, (size_t)n);
}

static int spawn_daemon(const struct shim_flags *f, const char *socket_path, int listener, pid_t *pid,
                        struct pea_error *err)
{
    const char *argv[14];
    size_t n = 0;
    argv[n++] = "containerd-shim-pea-v2";
    argv[n++] = "-namespace";
    argv[n++] = f->namespace;
    argv[n++] = "-id";
    argv[n++] = f->id;
    argv[n++] = "-address";
    argv[n++] = f->address;
    argv[n++] = "-publish-binary";
    argv[n++] = f->publish_binary;
    argv[n++] = "-socket";
    argv[n++] = socket_path;
    if (f->debug)
        argv[n++] = "-debug";
    argv[n] = NULL;
    AUTO_FD int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return pea_fail(err, errno, "open /dev/null");
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    /* Not containerd's pipes: `start` ends when they close, and the daemon outlives it. */
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2(&actions, null_fd, i);
    posix_spawn_file_actions_adddup2(&actions, listener, LISTENER_FD);
    posix_spawnattr_init(&attr);
    /* The daemon reads SIGTERM and SIGINT from a signalfd (withdrawing its socket before it goes): blocked from its
     * first instruction, one sent while it starts waits for it instead of killing it with the socket left behind. */
    sigset_t read_later;
    sigemptyset(&read_later);
    sigaddset(&read_later, SIGTERM);
    sigaddset(&read_later, SIGINT);
    posix_spawnattr_setsigmask(&attr, &read_later);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
    int rc = posix_spawn(pid, "/proc/self/exe", &actions, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return pea_fail(err, rc, "start the shim daemon");
    return 0;
}

enum start_outcome {
    START_DONE,   /* a daemon serves the task's group at the address */
    START_RETRY,  /* the group's shim may be exiting: let it withdraw its socket, then try again (err: why not) */
    START_FAILED, /* err says why; nothing was left behind */
};

/* A shim leaving (after Shutdown, or on SIGTERM) withdraws its socket as soon as it gets the lock: 10 s of 20 ms
 * waits is plenty. */
#define LEAVING_SHIM_RETRIES 500
#define LEAVING_SHIM_RETRY_NS 20000000L

/* With the socket's lock held: join the group's live shim or start one. Unlocks, except for START_RETRY; on failure
 * the socket is gone unless a live shim owns it. */
static enum start_outcome start_locked(const struct shim_flags *f, const struct runtime_options *options,
                                       const char *group, const char *path, const char *address, int *lock,
                                       struct pea_error *err)
{
    AUTO_FD int listener = shim_socket_listen(path, err);
    if (listener < 0 && errno == EADDRINUSE) {
        enum shim_join_result joined = SHIM_IS_GONE;
        if (strcmp(group, f->id) == 0) {
            /* The task's own shim: containerd starts a task again only after its Shutdown, so a live one is one
             * still leaving (it withdraws once we unlock), or the id is taken. */
            if (shim_socket_answers(path)) {
                pea_fail(err, EADDRINUSE, "a shim already serves %s", path);
                return START_RETRY;
            }
        } else if (shim_socket_join(path, f->id, &joined, err) < 0) {
            shim_socket_unlock(lock, path, false);
            return START_FAILED;
        }
        if (joined == SHIM_IS_LEAVING)
            return START_RETRY;
        if (joined == SHIM_JOINED) {
            /* The pod's shim expects this task's Create. The address file lets a restarted containerd find it. */
            if (write_file_atomic_at(AT_FDCWD, "address", address, strlen(address), 0600) < 0) {
                pea_fail(err, errno, "write the address file");
                shim_socket_unlock(lock, path, false);
                return START_FAILED;
            }
            shim_socket_unlock(lock, path, false);
            return START_DONE;
        }
        /* A shim that died left its socket: with the lock held, nobody else is deciding about it. */
        if (unlink(path) < 0 && errno != ENOENT) {
            pea_fail(err, errno, "remove the dead shim's socket %s", path);
            shim_socket_unlock(lock, path, false);
            return START_FAILED;
        }
        listener = shim_socket_listen(path, err);
    }
    if (listener < 0) {
        shim_socket_unlock(lock, path, false);
        return START_FAILED;
    }
    pid_t daemon;
    if (write_file_atomic_at(AT_FDCWD, "address", address, strlen(address), 0600) < 0) {
        pea_fail(err, errno, "write the address file");
    } else if (spawn_daemon(f, path, listener, &daemon, err) == 0) {
        /* The daemon is our child, not yet reaped: its PID names it until we wait for it. */
        if (runtime_options_enter_shim_cgroup(options, daemon, err) == 0) {
            adjust_oom_score(daemon);
            shim_socket_unlock(lock, path, false);
            return START_DONE;
        }
        kill(daemon, SIGKILL);
        waitpid(daemon, NULL, 0);
    }
    shim_socket_unlock(lock, path, true);
    return START_FAILED;
}

static int command_start(const struct shim_flags *f)
{
    struct pea_error err = {0};
    /* The runtime's options arrive on stdin as a packed protobuf Any: checked here, so a runtime configured with
     * options pea cannot honour fails at once; ShimCgroup is applied here, the rest when each task is created. */
    AUTO_FREE char *options_data = NULL;
    size_t options_len = 0;
    if (!isatty(STDIN_FILENO))
        options_data = read_fd_all(STDIN_FILENO, 1 << 20, &options_len);
    struct runtime_options options __attribute__((cleanup(runtime_options_release))) = {0};
    if (runtime_options_parse_any((const uint8_t *)options_data, options_len, &options, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (!f->id || !f->address) {
        fprintf(stderr, "start: -id and -address are required\n");
        return 1;
    }
    AUTO_FREE char *group = grouping_id_of(f->id, &err);
    if (!group) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    AUTO_FREE char *path = socket_path_of(f, group);
    AUTO_FREE char *address = xasprintf("unix://%s", path);
    if (mkdir_p(SOCKET_DIR, 0711) < 0) {
        fprintf(stderr, "create %s: %s\n", SOCKET_DIR, strerror(errno));
        return 1;
    }
    /* Held from the bind (or the join) to the daemon's start: see shim_socket.h. */
    for (int attempt = 0;; attempt++) {
        AUTO_FD int lock = shim_socket_lock(path, true, &err);
        if (lock < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        enum start_outcome outcome = start_locked(f, &options, group, path, address, &lock, &err);
        if (outcome == START_RETRY) {
            shim_socket_unlock(&lock, path, false);
            if (attempt < LEAVING_SHIM_RETRIES) {
                nanosleep(&(struct timespec){.tv_nsec = LEAVING_SHIM_RETRY_NS}, NULL);
                continue;
            }
            if (strcmp(group, f->id) != 0)
                pea_fail(&err, 0, "the shim at %s is exiting and does not withdraw its socket", path);
        }
        if (outcome != START_DONE) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        fputs(address, stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
}

/* The socket the bundle's address file names, when its shim is gone; a live shim serves the other tasks of the pod
 * and keeps it. Whatever the file says, only a socket directly in SOCKET_DIR is removed, the entry checked is the
 * entry removed (both relative to one fd of the directory), and the socket's lock is held across the check and the
 * removal, so a shim that `start` brings up meanwhile keeps its socket. */
static void remove_dead_shim_socket(const char *address)
{
    static const char prefix[] = "unix://" SOCKET_DIR "/";
    if (!address || strncmp(address, prefix, sizeof prefix - 1) != 0)
        return;
    const char *name = address + sizeof prefix - 1;
    if (!*name || strchr(name, '/'))
        return;
    AUTO_FREE char *path = xasprintf("%s/%s", SOCKET_DIR, name);
    struct pea_error err;
    AUTO_FD int lock = shim_socket_lock(path, true, &err);
    if (lock < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    AUTO_FD int dir = open(SOCKET_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    bool is_dead = false;
    if (dir >= 0 && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode)) {
        /* connect(2) takes a path: reach the entry through the directory fd, so a renamed directory changes
         * nothing. */
        AUTO_FREE char *through_fd = xasprintf("/proc/self/fd/%d/%s", dir, name);
        is_dead = strlen(through_fd) < sizeof ((struct sockaddr_un *)NULL)->sun_path &&
                  !shim_socket_answers(through_fd);
    }
    if (is_dead)
        unlinkat(dir, name, 0);
    shim_socket_unlock(&lock, path, false);
}

static int command_delete(const struct shim_flags *f)
{
    struct pea_error err = {0};
    AUTO_FREE char *cwd = getcwd(NULL, 0);
    const char *bundle = f->bundle && *f->bundle ? f->bundle : cwd;
    if (!f->id || !bundle) {
        fprintf(stderr, "delete: -id and a bundle are required\n");
        return 1;
    }
    /* A task created under a runtime option Root left its state root in the bundle. */
    AUTO_FREE char *root_file = xasprintf("%s/%s", bundle, TASK_STATE_ROOT_FILE);
    AUTO_FREE char *root = read_file_at(AT_FDCWD, root_file, 4096, NULL);
    if (!root || root[0] != '/') {
        free(root);
        root = pea_root_of(f->namespace);
    }
    backend_configure(root, f->debug);
    /* Warnings on stderr are logged by containerd; the cleanup goes on regardless. */
    if (backend_delete(f->id, bundle, true, &err) < 0)
        fprintf(stderr, "delete %s: %s\n", f->id, err.msg);
    rootfs_unmount_all(bundle);
    AUTO_FREE char *pid_path = xasprintf("%s/init.pid", bundle);
    AUTO_FREE char *pid_text = read_file_at(AT_FDCWD, pid_path, 32, NULL);
    long long pid = 0;
    if (pid_text)
        parse_int64(pid_text, &pid);
    AUTO_FREE char *address_path = xasprintf("%s/address", bundle);
    AUTO_FREE char *address = read_file_at(AT_FDCWD, address_path, 4096, NULL);
    remove_dead_shim_socket(address);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    at.seconds = now.tv_sec;
    at.nanos = (int32_t)now.tv_nsec;
    Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
    resp.pid = (uint32_t)pid;
    resp.exit_status = 128 + SIGKILL;
    resp.exited_at = &at;
    uint8_t out[128];
    size_t len = containerd__task__v2__delete_response__pack(&resp, out);
    return write_all(STDOUT_FILENO, out, len) == 0 ? 0 : 1;
}

static int command_serve(const struct shim_flags *f, char **argv)
{
    sys_reset_internal_signals();
    /* The daemon clones containers' processes from itself: a container process that reaches our /proc/PID/exe must
     * find a sealed copy, one shared by every shim of this binary (its record lives beside the namespaces' roots). */
    if (mkdir_p(PEA_STATE_PARENT, 0700) < 0 ||
        sys_reexec_sharing_sealed_copy(argv, PEA_STATE_PARENT, SEALED_COPY_RECORD) < 0) {
        fprintf(stderr, "re-execute from a sealed copy: %s\n", strerror(errno));
        return 1;
    }
    AUTO_FREE char *root = pea_root_of(f->namespace);
    struct daemon_config config = {
        .namespace = f->namespace,
        .id = f->id,
        .address = f->address,
        .publish_binary = f->publish_binary,
        .ttrpc_address = getenv("TTRPC_ADDRESS"),
        .pea_root = root,
        .debug = f->debug,
        .listener = LISTENER_FD,
        .socket_path = f->socket,
    };
    task_service_configure(root, f->namespace);
    stdio_set_namespace(f->namespace);
    return daemon_serve(&config);
}

int main(int argc, char **argv)
{
    struct shim_flags f;
    if (parse_flags(argc, argv, &f) < 0)
        return 2;
    if (f.version) {
        printf("%s:\n  Version:  %s\n", argv[0], PEA_VERSION);
        return 0;
    }
    if (!f.namespace || !*f.namespace) {
        fprintf(stderr, "shim namespace cannot be empty\n");
        return 1;
    }
    if (strchr(f.namespace, '/') || (f.id && strchr(f.id, '/'))) {
        fprintf(stderr, "invalid namespace %s or id %s\n", f.namespace, f.id ? f.id : "");
        return 1;
    }
    if (strcmp(f.action, "start") == 0)
        return command_start(&f);
    if (strcmp(f.action, "delete") == 0)
        return command_delete(&f);
    if (f.action[0]) {
        fprintf(stderr, "unknown action %s (start, delete, or none for the daemon)\n", f.action);
        return 2;
    }
    return command_serve(&f, argv);
}
