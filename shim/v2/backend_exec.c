/* The pea-executing backend (see backend.h). Each call runs pea to completion: the shim's loop waits meanwhile,
 * which is what runc's shim does too, and pea's own work takes milliseconds. pea's error reaches containerd as the
 * last "error" line pea appended to BUNDLE/log.json, the file containerd's runc shim reads as well. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "pea/util.h"

extern char **environ;

static const char *pea_binary = "pea";
static const char *pea_root = "/run/containerd/pea";

void backend_configure(const char *binary, const char *root)
{
    pea_binary = binary;
    pea_root = root;
}

/* Where BUNDLE/log.json ends now: only what pea appends after it is this call's. */
static off_t log_size(const char *log_path)
{
    struct stat st;
    return stat(log_path, &st) == 0 ? st.st_size : 0;
}

/* The message of the last error pea logged after offset `from`, or NULL. */
static char *last_logged_error(const char *log_path, off_t from)
{
    AUTO_FD int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || lseek(fd, from, SEEK_SET) < 0)
        return NULL;
    AUTO_FREE char *text = read_fd_all(fd, 1 << 20, NULL);
    if (!text)
        return NULL;
    char *found = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        AUTO_JSON json_t *entry = json_loads(line, 0, NULL);
        const char *level = json_string_value(json_object_get(entry, "level"));
        const char *msg = json_string_value(json_object_get(entry, "msg"));
        if (level && msg && strcmp(level, "error") == 0) {
            free(found);
            found = xstrdup(msg);
        }
    }
    return found;
}

struct pea_call {
    const char *bundle;
    const char *const *args;  /* after the global options, NULL-terminated */
    const int *stdio;         /* NULL: stdin /dev/null (or the input), stdout /dev/null (or captured) */
    const char *input;        /* written to pea's stdin */
    size_t input_len;
    char **output;            /* pea's stdout, when wanted */
};

static int spawn_pea(const struct pea_call *call, int in_fd, int out_fd, pid_t *pid, struct pea_error *err)
{
    AUTO_FREE char *log_path = xasprintf("%s/log.json", call->bundle);
    size_t n = 0;
    AUTO_FREE const char **argv = xcalloc(strv_len((char *const *)call->args) + 8, sizeof *argv);
    argv[n++] = pea_binary;
    argv[n++] = "--root";
    argv[n++] = pea_root;
    argv[n++] = "--log";
    argv[n++] = log_path;
    argv[n++] = "--log-format";
    argv[n++] = "json";
    for (size_t i = 0; call->args[i]; i++)
        argv[n++] = call->args[i];

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    int fds[3] = {in_fd, out_fd, STDERR_FILENO};
    if (call->stdio)
        memcpy(fds, call->stdio, sizeof fds);
    for (int i = 0; i < 3; i++)
        if (fds[i] != i)
            posix_spawn_file_actions_adddup2(&actions, fds[i], i);
    daemon_spawn_with_clean_signals(&attr);
    int rc = posix_spawn(pid, pea_binary, &actions, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return pea_fail(err, rc, "execute %s", pea_binary);
    return 0;
}

static int run_pea(const struct pea_call *call, struct pea_error *err)
{
    AUTO_FREE char *log_path = xasprintf("%s/log.json", call->bundle);
    off_t log_start = log_size(log_path);
    AUTO_FD int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return pea_fail(err, errno, "open /dev/null");
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    if ((call->input && pipe2(in_pipe, O_CLOEXEC) < 0) || (call->output && pipe2(out_pipe, O_CLOEXEC) < 0)) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (in_pipe[i] >= 0)
                close(in_pipe[i]);
        }
        return pea_fail(err, e, "create a pipe for pea");
    }
    AUTO_FD int in_read = in_pipe[0], in_write = in_pipe[1], out_read = out_pipe[0], out_write = out_pipe[1];
    pid_t pid;
    if (spawn_pea(call, in_read >= 0 ? in_read : null_fd, out_write >= 0 ? out_write : null_fd, &pid, err) < 0)
        return -1;
    close(take_fd(&in_read));
    close(take_fd(&out_write));
    if (in_write >= 0) {
        (void)write_all(in_write, call->input, call->input_len); /* a pea that stopped reading reports why */
        close(take_fd(&in_write));
    }
    if (out_read >= 0)
        *call->output = read_fd_all(out_read, 1 << 20, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return pea_fail(err, errno, "wait for pea %s", call->args[0]);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    AUTO_FREE char *logged = last_logged_error(log_path, log_start);
    if (logged)
        return pea_fail(err, 0, "%s", logged);
    if (WIFSIGNALED(status))
        return pea_fail(err, 0, "pea %s: killed by signal %d", call->args[0], WTERMSIG(status));
    return pea_fail(err, 0, "pea %s: exit status %d", call->args[0], WEXITSTATUS(status));
}

static int read_pid_file(const char *path, pid_t *pid, struct pea_error *err)
{
    AUTO_FREE char *text = read_file_at(AT_FDCWD, path, 64, NULL);
    long long value;
    if (!text)
        return pea_fail(err, errno, "read pid file %s", path);
    if (parse_int64(text, &value) < 0 || value <= 0)
        return pea_fail(err, 0, "pid file %s: not a PID: %s", path, text);
    *pid = (pid_t)value;
    return 0;
}

int backend_create(const struct backend_process_options *o, pid_t *pid, struct pea_error *err)
{
    const char *args[12];
    size_t n = 0;
    args[n++] = "create";
    args[n++] = "--bundle";
    args[n++] = o->bundle;
    args[n++] = "--pid-file";
    args[n++] = o->pid_file;
    if (o->console_socket) {
        args[n++] = "--console-socket";
        args[n++] = o->console_socket;
    }
    args[n++] = o->id;
    args[n] = NULL;
    struct pea_call call = {.bundle = o->bundle, .args = args, .stdio = o->stdio};
    if (run_pea(&call, err) < 0)
        return -1;
    return read_pid_file(o->pid_file, pid, err);
}

static int simple_call(const char *bundle, const char *const *args, struct pea_error *err)
{
    struct pea_call call = {.bundle = bundle, .args = args};
    return run_pea(&call, err);
}

int backend_start(const char *id, const char *bundle, struct pea_error *err)
{
    return simple_call(bundle, (const char *[]){"start", id, NULL}, err);
}

int backend_kill(const char *id, const char *bundle, int signal, bool all, struct pea_error *err)
{
    char number[16];
    snprintf(number, sizeof number, "%d", signal);
    if (all)
        return simple_call(bundle, (const char *[]){"kill", "--all", id, number, NULL}, err);
    return simple_call(bundle, (const char *[]){"kill", id, number, NULL}, err);
}

int backend_delete(const char *id, const char *bundle, bool force, struct pea_error *err)
{
    if (force)
        return simple_call(bundle, (const char *[]){"delete", "--force", id, NULL}, err);
    return simple_call(bundle, (const char *[]){"delete", id, NULL}, err);
}

int backend_exec(const struct backend_process_options *o, const char *process_json, size_t process_len, pid_t *pid,
                 struct pea_error *err)
{
    /* pea reads the process from a file; it lives next to the pid file, only for the call. */
    AUTO_FREE char *spec_path = xasprintf("%s.json", o->pid_file);
    AUTO_FD int spec_fd = open(spec_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (spec_fd < 0 || write_all(spec_fd, process_json, process_len) < 0) {
        int e = errno;
        if (spec_fd >= 0)
            unlink(spec_path);
        return pea_fail(err, e, "write %s", spec_path);
    }
    const char *args[14];
    size_t n = 0;
    args[n++] = "exec";
    args[n++] = "--process";
    args[n++] = spec_path;
    args[n++] = "--detach";
    args[n++] = "--pid-file";
    args[n++] = o->pid_file;
    if (o->console_socket) {
        args[n++] = "--console-socket";
        args[n++] = o->console_socket;
    }
    args[n++] = o->id;
    args[n] = NULL;
    struct pea_call call = {.bundle = o->bundle, .args = args, .stdio = o->stdio};
    int rc = run_pea(&call, err);
    unlink(spec_path);
    if (rc < 0)
        return -1;
    rc = read_pid_file(o->pid_file, pid, err);
    unlink(o->pid_file);
    return rc;
}

int backend_pause(const char *id, const char *bundle, struct pea_error *err)
{
    return simple_call(bundle, (const char *[]){"pause", id, NULL}, err);
}

int backend_resume(const char *id, const char *bundle, struct pea_error *err)
{
    return simple_call(bundle, (const char *[]){"resume", id, NULL}, err);
}

int backend_update(const char *id, const char *bundle, const char *resources_json, size_t len, struct pea_error *err)
{
    struct pea_call call = {.bundle = bundle,
                            .args = (const char *[]){"update", "--resources", "-", id, NULL},
                            .input = resources_json,
                            .input_len = len};
    return run_pea(&call, err);
}

int backend_pids(const char *id, const char *bundle, pid_t **pids, size_t *count, struct pea_error *err)
{
    AUTO_FREE char *output = NULL;
    struct pea_call call = {.bundle = bundle,
                            .args = (const char *[]){"ps", "--format", "json", id, NULL},
                            .output = &output};
    if (run_pea(&call, err) < 0)
        return -1;
    AUTO_JSON json_t *list = output ? json_loads(output, 0, NULL) : NULL;
    if (!json_is_array(list))
        return pea_fail(err, 0, "pea ps %s: not a JSON list of PIDs: %s", id, output ? output : "");
    *count = json_array_size(list);
    *pids = xcalloc(*count + 1, sizeof **pids);
    for (size_t i = 0; i < *count; i++)
        (*pids)[i] = (pid_t)json_integer_value(json_array_get(list, i));
    return 0;
}
