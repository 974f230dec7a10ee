/* The container process, from clone to exec. The parent and the child walk one state machine over a
 * SOCK_SEQPACKET pair; the child sends its error back so the parent reports it in the child's words. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/caps.h"
#include "pea/cgroup.h"
#include "pea/console.h"
#include "pea/hooks.h"
#include "pea/process.h"
#include "pea/rootfs.h"
#include "pea/seccomp.h"
#include "pea/sys.h"
#include "pea/util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SYNC_PAYLOAD_MAX (256 * 1024)
/* The state JSON holds the annotations of a config.json of at most 16 MiB. */
#define STATE_JSON_MAX (32 << 20)

enum sync_step {
    SYNC_GO,               /* parent: id maps written, child placed in its cgroup; go on */
    SYNC_NAMESPACES_READY, /* child: namespaces joined/created, hostname and sysctls set */
    SYNC_HOOKS_DONE,       /* parent: prestart/createRuntime ran; a memfd with the state JSON for the child's hooks
                            * rides along (the annotations in it can outgrow any socket message) */
    SYNC_CONSOLE,          /* child: the pty master rides along (SCM_RIGHTS) */
    SYNC_SECCOMP_LISTENER, /* child: its filter is loaded; the SCMP_ACT_NOTIFY listener rides along, for the agent */
    SYNC_READY,            /* child: everything set, executable found; about to wait for start (or exec) */
    SYNC_RELEASE,          /* parent: state committed; stop tying your life to mine */
    SYNC_RELEASED,         /* child: parent-death signal cleared */
    SYNC_ERROR,            /* either side: errnum + message follow */
};

struct sync_header {
    enum sync_step step;
    int errnum;
};

static int sync_send(int fd, enum sync_step step, int errnum, const char *payload, int pass_fd)
{
    size_t len = payload ? strlen(payload) : 0;
    if (len > SYNC_PAYLOAD_MAX)
        len = SYNC_PAYLOAD_MAX;
    AUTO_FREE char *buf = xmalloc(sizeof(struct sync_header) + len);
    struct sync_header h = {.step = step, .errnum = errnum};
    memcpy(buf, &h, sizeof h);
    if (len)
        memcpy(buf + sizeof h, payload, len);
    return console_send_fd(fd, pass_fd, buf, sizeof h + len);
}

/* Receive one message. *payload (malloc'd, NUL-terminated) may be NULL. Returns 0, or -1 on EOF/error. */
static int sync_recv(int fd, struct sync_header *h, char **payload, int *passed_fd)
{
    AUTO_FREE char *buf = xmalloc(sizeof *h + SYNC_PAYLOAD_MAX + 1);
    int got_fd = -1;
    ssize_t n = console_recv_fd(fd, &got_fd, buf, sizeof *h + SYNC_PAYLOAD_MAX);
    if (passed_fd)
        *passed_fd = got_fd;
    else if (got_fd >= 0)
        close(got_fd);
    if (n < (ssize_t)sizeof *h) {
        if (n >= 0)
            errno = EPIPE;
        return -1;
    }
    memcpy(h, buf, sizeof *h);
    if (payload) {
        size_t len = (size_t)n - sizeof *h;
        *payload = xmalloc(len + 1);
        memcpy(*payload, buf + sizeof *h, len);
        (*payload)[len] = '\0';
    }
    return 0;
}

void process_launch_init(struct pea_launch *l)
{
    memset(l, 0, sizeof *l);
    l->init_pidfd = -1;
    l->cgroup_fd = -1;
    l->exec_fifo_fd = -1;
    l->pidfd = -1;
    l->console_master = -1;
    l->sync_fd = -1;
    for (int i = 0; i < 3; i++)
        l->stdio_fds[i] = -1;
}

void process_launch_close(struct pea_launch *l)
{
    if (l->sync_fd >= 0)
        close(l->sync_fd);
    if (l->pidfd >= 0)
        close(l->pidfd);
    if (l->console_master >= 0)
        close(l->console_master);
    l->sync_fd = l->pidfd = l->console_master = -1;
    free(l->state_json);
    l->state_json = NULL;
}

void process_abort(struct pea_launch *l)
{
    if (l->pid > 0) {
        if (l->pidfd >= 0)
            sys_pidfd_send_signal(l->pidfd, SIGKILL, NULL, 0);
        else
            kill(l->pid, SIGKILL);
        while (waitpid(l->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        l->pid = 0;
    }
    process_launch_close(l);
}

int process_find_executable(const char *file, char *const *env, char *out, size_t len, struct pea_error *err)
{
    struct stat st;
    if (strchr(file, '/')) {
        if (stat(file, &st) < 0)
            return pea_fail(err, 0, "exec: \"%s\": stat %s: %s", file, file,
                            errno == ENOENT ? "no such file or directory" : strerror(errno));
        if (S_ISDIR(st.st_mode) || access(file, X_OK) < 0)
            return pea_fail(err, 0, "exec: \"%s\": permission denied", file);
        snprintf(out, len, "%s", file);
        return 0;
    }
    const char *path = DEFAULT_PATH;
    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    bool is_denied = false;
    AUTO_FREE char *copy = xstrdup(path);
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char candidate[PATH_MAX];
        if (snprintf(candidate, sizeof candidate, "%s/%s", *dir ? dir : ".", file) >= (int)sizeof candidate)
            continue;
        if (stat(candidate, &st) < 0 || S_ISDIR(st.st_mode))
            continue;
        if (access(candidate, X_OK) < 0) {
            is_denied = true;
            continue;
        }
        snprintf(out, len, "%s", candidate);
        return 0;
    }
    if (is_denied)
        return pea_fail(err, 0, "exec: \"%s\": permission denied", file);
    return pea_fail(err, 0, "exec: \"%s\": executable file not found in $PATH", file);
}

/* ---- child ---- */

/* Close every fd >= first except the ones in keep (a small unsorted list). */
static void close_fds_except(int first, const int *keep, size_t n)
{
    int sorted[8];
    size_t m = 0;
    for (size_t i = 0; i < n && m < ARRAY_SIZE(sorted); i++)
        if (keep[i] >= first)
            sorted[m++] = keep[i];
    for (size_t i = 1; i < m; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    int from = first;
    for (size_t i = 0; i < m; i++) {
        if (sorted[i] > from)
            syscall(SYS_close_range, (unsigned)from, (unsigned)sorted[i] - 1, 0);
        from = sorted[i] + 1;
    }
    sys_close_from(from);
}

static bool is_kept(int fd, const int *keep, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

/* Close our own fds in 3 ... 3+preserve_fds-1, the numbers kept for the container, but proc_fd and those in keep
 * (the caller closes them). A caller's fd reaches pea without close-on-exec (it would not have survived the caller's
 * exec of pea otherwise) and every fd pea opens has it: where the caller left a number free, pea's state lock,
 * sockets or pidfds may sit, and an init holding the lock while it waits for `start` hangs `start` and `delete`.
 * Listed through our procfs, not the container's /proc. */
static int close_own_preserved_range(int proc_fd, int preserve_fds, const int *keep, size_t n, struct pea_error *err)
{
    if (preserve_fds == 0)
        return 0;
    int dir_fd = openat(proc_fd, "self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = dir_fd >= 0 ? fdopendir(dir_fd) : NULL;
    if (!dir) {
        int saved = errno;
        if (dir_fd >= 0)
            close(dir_fd);
        return pea_fail(err, saved, "list the fds to preserve");
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        long long fd;
        if (parse_int64(de->d_name, &fd) < 0 || fd < 3 || fd >= 3LL + preserve_fds || fd == dir_fd ||
            fd == proc_fd || is_kept((int)fd, keep, n))
            continue;
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && (flags & FD_CLOEXEC))
            close((int)fd);
    }
    closedir(dir);
    return 0;
}

/* chdir to process.cwd resolved inside the root (no magic links: a /proc/self/fd/N cwd cannot reach a host
 * directory), creating it when missing, then check the kernel agrees it is inside. */
static int child_enter_cwd(const char *cwd, struct pea_error *err)
{
    AUTO_FD int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return pea_fail(err, errno, "open /");
    AUTO_FD int dir = sys_open_in_root(root, cwd, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (dir < 0 && errno == ENOENT)
        dir = sys_mkdir_in_root(root, cwd, 0755);
    if (dir < 0)
        return pea_fail(err, errno, "chdir to cwd %s", cwd);
    if (fchdir(dir) < 0)
        return pea_fail(err, errno, "chdir to cwd %s", cwd);
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf) || buf[0] != '/')
        return pea_fail(err, 0, "chdir to cwd %s: the working directory is outside the container", cwd);
    return 0;
}

static void child_reset_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sys_reset_internal_signals();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int child_wait_for(int sock, enum sync_step want, int *passed_fd, struct pea_error *err)
{
    struct sync_header h;
    if (sync_recv(sock, &h, NULL, passed_fd) < 0)
        return pea_fail(err, errno, "wait for the runtime");
    if (h.step != want) /* The parent aborted: it reports the reason itself. */
        return pea_fail(err, 0, "runtime aborted the setup");
    return 0;
}

/* Load the filter; a listener it gives goes to the parent (for the seccomp agent) and is closed here. Between the
 * load and the send nothing but sendmsg runs (the message is built first, on the stack), so that nothing waits for
 * an agent who has no listener yet: SCMP_ACT_NOTIFY on sendmsg is refused when compiling. */
static int child_load_seccomp(int sock, const struct pea_seccomp_program *program, struct pea_error *err)
{
    struct sync_header h = {.step = SYNC_SECCOMP_LISTENER};
    AUTO_FD int listener = -1;
    if (seccomp_program_load(program, &listener, err) < 0)
        return -1;
    if (listener >= 0 && (sock < 0 || console_send_fd(sock, listener, &h, sizeof h) < 0))
        return pea_fail(err, sock < 0 ? EPIPE : errno, "seccomp: hand the notify listener to the runtime");
    return 0;
}

static int child_setup(struct pea_launch *l, int sock, const struct pea_seccomp_program **seccomp, char *exe,
                       size_t exe_len, struct pea_error *err)
{
    const struct pea_spec *spec = l->spec;
    const struct pea_process *proc = spec->process;
    /* First, so that everything after (and the user process) writes where the caller asked. dup2 clears
     * close-on-exec on the copy. */
    for (int i = 0; i < 3; i++)
        if (l->stdio_fds[i] >= 0 && dup2(l->stdio_fds[i], i) < 0)
            return pea_fail(err, errno, "set up the container's fd %d", i);
    AUTO_FD int proc_fd = sys_open_procfs();
    if (proc_fd < 0)
        return pea_fail(err, errno, "open /proc");
    if (child_wait_for(sock, SYNC_GO, NULL, err) < 0)
        return -1;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (l->is_exec) {
        if (ns_join_process(l->init_pidfd, spec, NS_JOIN_SELF, err) < 0)
            return -1;
    } else {
        struct pea_ns_handles h;
        if (ns_open_paths(spec, &h, err) < 0)
            return -1;
        int r = ns_enter(spec, &h, err);
        ns_close_handles(&h);
        if (r < 0 || ns_apply_settings(spec, proc_fd, err) < 0)
            return -1;
    }
    if (sync_send(sock, SYNC_NAMESPACES_READY, 0, NULL, -1) < 0)
        return pea_fail(err, errno, "report namespaces ready");
    AUTO_FD int state_fd = -1;
    if (child_wait_for(sock, SYNC_HOOKS_DONE, &state_fd, err) < 0)
        return -1;
    if (state_fd < 0 || lseek(state_fd, 0, SEEK_SET) < 0 ||
        !(l->state_json = read_fd_all(state_fd, STATE_JSON_MAX, NULL)))
        return pea_fail(err, errno, "read the container state from the runtime");

    if (!l->is_exec) {
        const char *rootfs = l->rootfs;
        if (rootfs_prepare(spec, &rootfs, err) < 0)
            return -1;
        if (hooks_run_in_dir(spec, PEA_HOOK_CREATE_CONTAINER, l->state_json, rootfs, err) < 0)
            return -1;
        if (rootfs_enter(spec, rootfs, l->no_pivot, err) < 0)
            return -1;
    }
    if (proc->terminal) {
        AUTO_FD int master =
            console_setup_in_container(proc->console_height, proc->console_width, !l->is_exec, proc->user.uid, err);
        if (master < 0)
            return -1;
        if (sync_send(sock, SYNC_CONSOLE, 0, NULL, master) < 0)
            return pea_fail(err, errno, "send the pty to the runtime");
    }
    if (!l->is_exec && rootfs_finalize(spec, err) < 0)
        return -1;

    /* Labels once the rootfs is done (createContainer hooks ran unconfined; startContainer hooks, which run in the
     * container, exec under them as with runc), written through the procfs opened before the container's mounts
     * existed, so that a /proc the container shaped cannot swallow the write. A missing profile fails create. */
    if (lsm_apply_exec_labels(proc_fd, &l->lsm, err) < 0)
        return -1;
    /* Nothing of the host may reach the container: only stdio, the caller's preserved fds and our two channels
     * survive. */
    int keep[] = {sock, l->exec_fifo_fd};
    if (close_own_preserved_range(proc_fd, l->preserve_fds, keep, ARRAY_SIZE(keep), err) < 0)
        return -1;
    close(take_fd(&proc_fd));
    close_fds_except(3 + l->preserve_fds, keep, ARRAY_SIZE(keep));
    if (child_enter_cwd(proc->cwd, err) < 0)
        return -1;
    if (proc->user.has_umask)
        umask(proc->user.umask);
    else
        umask(0022);
    if (!l->is_exec && !l->no_new_keyring) {
        /* A fresh session keyring so the container cannot read the host's keys. */
        if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL) < 0 && errno != ENOSYS)
            return pea_fail(err, errno, "create session keyring");
    }
    if (caps_apply_rlimits(proc, err) < 0)
        return -1;
    if (*seccomp && !proc->no_new_privileges) {
        /* Without no_new_privs, loading needs CAP_SYS_ADMIN, which the user switch may drop: load it now. */
        if (child_load_seccomp(sock, *seccomp, err) < 0)
            return -1;
        *seccomp = NULL; /* installed: not again before execve */
    }
    if (caps_apply_user_and_capabilities(proc, err) < 0 || caps_apply_no_new_privileges(proc, err) < 0 ||
        process_find_executable(proc->args[0], proc->env, exe, exe_len, err) < 0)
        return -1;
    /* A listener must reach the agent while `create` (or `exec`) runs, as with runc: load that filter now. Any other
     * waits until just before the user's process (and the startContainer hooks), so that the fewest of our own
     * syscalls run under it. */
    if (*seccomp && seccomp_program_has_listener(*seccomp)) {
        if (child_load_seccomp(sock, *seccomp, err) < 0)
            return -1;
        *seccomp = NULL;
    }
    return 0;
}

/* seccomp: the program compiled before clone (our copy of the parent's memory), or NULL. */
static _Noreturn void child_main(struct pea_launch *l, int sock, const struct pea_seccomp_program *seccomp)
{
    struct pea_error err = {0};
    char exe[PATH_MAX];
    child_reset_signals();
    /* If the parent is already gone, its end of the socket is closed and the first wait below fails. (getppid()
     * cannot tell: it is 0 in a new pid namespace.) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Until execve we are a copy of the host's pea inside the container: not dumpable, so no process in there can
     * open our /proc/PID/exe (the host binary) or our fds. execve of the user's binary makes it dumpable again.
     * An unprivileged runtime (itself, or newuidmap/newgidmap) may only write the maps of a process whose
     * /proc/PID belongs to it, which a non-dumpable one does not: then we stay dumpable until the maps are written
     * (SYNC_GO), which comes before we join or create any namespace but those clone3 gave us. */
    if (!l->is_dumpable_until_maps)
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (child_setup(l, sock, &seccomp, exe, sizeof exe, &err) < 0)
        goto fail;
    if (sync_send(sock, SYNC_READY, 0, NULL, -1) < 0 || child_wait_for(sock, SYNC_RELEASE, NULL, &err) < 0)
        _exit(1);
    prctl(PR_SET_PDEATHSIG, 0);
    sync_send(sock, SYNC_RELEASED, 0, NULL, -1);
    close(sock);
    if (l->exec_fifo_fd >= 0) {
        char byte;
        ssize_t n;
        do
            n = read(l->exec_fifo_fd, &byte, 1);
        while (n < 0 && errno == EINTR);
        close(l->exec_fifo_fd);
        if (n != 1)
            _exit(1);
        /* startContainer hooks run in the container under its filter, as with runc. */
        if (seccomp && child_load_seccomp(-1, seccomp, &err) < 0) {
            dprintf(STDERR_FILENO, "pea: %s\n", err.msg);
            _exit(1);
        }
        seccomp = NULL;
        /* By now `create` has returned: startContainer hooks see the container as created. */
        json_t *state = json_loads(l->state_json, 0, NULL);
        if (state) {
            json_object_set_new(state, "status", json_string("created"));
            char *text = json_dumps(state, JSON_COMPACT);
            json_decref(state);
            if (text) {
                free(l->state_json);
                l->state_json = text;
            }
        }
        if (hooks_run(l->spec, PEA_HOOK_START_CONTAINER, l->state_json, &err) < 0) {
            dprintf(STDERR_FILENO, "pea: %s\n", err.msg);
            _exit(1);
        }
    }
    if (seccomp && child_load_seccomp(-1, seccomp, &err) < 0) {
        dprintf(STDERR_FILENO, "pea: %s\n", err.msg);
        _exit(1);
    }
    execve(exe, l->spec->process->args, l->spec->process->env);
    dprintf(STDERR_FILENO, "pea: exec %s: %s\n", exe, strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
fail:
    sync_send(sock, SYNC_ERROR, err.errnum, err.msg, -1);
    _exit(1);
}

/* ---- parent ---- */

static int parent_fail_from_child(struct pea_launch *l, const struct sync_header *h, const char *text,
                                  struct pea_error *err)
{
    if (h && h->step == SYNC_ERROR) {
        snprintf(err->msg, sizeof err->msg, "%s", text ? text : "");
        err->errnum = h->errnum;
        return -1;
    }
    int status = 0;
    if (l->pid > 0 && waitpid(l->pid, &status, 0) == l->pid) {
        l->pid = 0;
        if (WIFSIGNALED(status))
            return pea_fail(err, 0, "container init was killed by signal %d during setup", WTERMSIG(status));
        return pea_fail(err, 0, "container init exited with status %d during setup", WEXITSTATUS(status));
    }
    return pea_fail(err, EPIPE, "container init went away during setup");
}

/* Wait for the child's next step; SYNC_CONSOLE messages are handled on the way. */
static int parent_expect(struct pea_launch *l, enum sync_step want, struct pea_error *err)
{
    for (;;) {
        struct sync_header h;
        AUTO_FREE char *text = NULL;
        int fd = -1;
        if (sync_recv(l->sync_fd, &h, &text, &fd) < 0)
            return parent_fail_from_child(l, NULL, NULL, err);
        if (h.step == SYNC_SECCOMP_LISTENER) {
            if (fd < 0)
                return pea_fail(err, EPROTO, "seccomp: the container init sent no notify listener");
            /* create: the state the hooks got (status creating); exec: the running container's. */
            const char *state = l->is_exec ? l->container_state_json : l->state_json;
            int r = seccomp_notify_send_to_agent(l->spec->seccomp, l->pid, state, fd, err);
            close(fd);
            if (r < 0)
                return -1;
            continue;
        }
        if (h.step == SYNC_CONSOLE && fd >= 0) {
            if (l->console_socket) {
                int r = console_send_to_socket(l->console_socket, fd, err);
                close(fd);
                if (r < 0)
                    return -1;
            } else {
                l->console_master = fd;
            }
            continue;
        }
        if (fd >= 0)
            close(fd);
        if (h.step == want)
            return 0;
        return parent_fail_from_child(l, &h, text, err);
    }
}

static int parent_drive(struct pea_launch *l, bool used_into_cgroup, struct pea_error *err)
{
    if (l->place_child ? l->place_child(l, err) < 0
                       : !used_into_cgroup && l->cgroup_path && cgroup_enter(l->cgroup_path, l->pid, err) < 0)
        return -1;
    const struct pea_process *proc = l->spec->process;
    if (!l->is_exec) {
        AUTO_FD int proc_fd = sys_open_procfs();
        if (proc_fd < 0)
            return pea_fail(err, errno, "open /proc");
        if (l->spec->namespaces[PEA_NS_USER].is_present && !l->spec->namespaces[PEA_NS_USER].path &&
            ns_write_id_maps(proc_fd, l->pid, l->spec, err) < 0)
            return -1;
        if (proc->has_oom_score_adj) {
            char path[64], value[32];
            snprintf(path, sizeof path, "%d/oom_score_adj", (int)l->pid);
            int n = snprintf(value, sizeof value, "%d", proc->oom_score_adj);
            AUTO_FD int fd = openat(proc_fd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0 || sys_check_procfs(fd) < 0 || write_all(fd, value, (size_t)n) < 0)
                return pea_fail(err, errno, "write oom_score_adj %d", proc->oom_score_adj);
        }
    }
    if (sync_send(l->sync_fd, SYNC_GO, 0, NULL, -1) < 0)
        return pea_fail(err, errno, "start container init");
    if (parent_expect(l, SYNC_NAMESPACES_READY, err) < 0)
        return -1;
    AUTO_FREE char *state_json = NULL;
    if (l->on_namespaces_ready) {
        state_json = l->on_namespaces_ready(l, err);
        if (!state_json) {
            sync_send(l->sync_fd, SYNC_ERROR, 0, NULL, -1);
            return -1;
        }
    }
    const char *state_text = state_json ? state_json : "{}";
    AUTO_FD int state_fd = memfd_create("pea-state", MFD_CLOEXEC);
    if (state_fd < 0 || write_all(state_fd, state_text, strlen(state_text)) < 0)
        return pea_fail(err, errno, "write the container state for its hooks");
    if (sync_send(l->sync_fd, SYNC_HOOKS_DONE, 0, NULL, state_fd) < 0)
        return pea_fail(err, errno, "continue container init");
    l->state_json = take_ptr(&state_json); /* for a seccomp agent */
    return 0;
}

/* Joining a container's pid or time namespace (or making a time namespace with offsets) changes the namespaces of
 * all our later children, not only of this one: a long-lived caller such as pea-shim, which goes on to create other
 * containers (CLONE_NEWPID from inside another pid namespace fails with EINVAL), gets its own back after the clone. */
/* Only where it changed: setns takes CAP_SYS_ADMIN even back into our own namespace, which a rootless pea lacks. */
static int restore_namespace(int saved_fd, const char *current, int type, const char *what, struct pea_error *err)
{
    struct stat saved, now;
    if (saved_fd < 0 || fstat(saved_fd, &saved) < 0 || stat(current, &now) < 0 ||
        (saved.st_dev == now.st_dev && saved.st_ino == now.st_ino))
        return 0;
    if (setns(saved_fd, type) < 0)
        return pea_fail(err, errno, "restore our %s namespace for children", what);
    return 0;
}

static int restore_children_namespaces(int pid_ns, int time_ns, struct pea_error *err)
{
    if (restore_namespace(pid_ns, "/proc/self/ns/pid_for_children", CLONE_NEWPID, "pid", err) < 0 ||
        restore_namespace(time_ns, "/proc/self/ns/time_for_children", CLONE_NEWTIME, "time", err) < 0)
        return -1;
    return 0;
}

/* A new pid namespace belongs to the user namespace of the process that clones. An init that joins a user
 * namespace (by path: a pod's member) and wants a pid namespace of its own is cloned from there, by a launcher that
 * joins the user namespace first; with CLONE_PARENT the init is still our child. */
static bool clones_from_user_namespace(const struct pea_launch *l)
{
    const struct pea_spec *spec = l->spec;
    return !l->is_exec && spec->namespaces[PEA_NS_USER].path && spec->namespaces[PEA_NS_PID].is_present &&
           !spec->namespaces[PEA_NS_PID].path;
}

struct launched {
    pid_t pid;
    bool used_into_cgroup;
    int errnum;
};

static pid_t clone_in_user_namespace(struct pea_launch *l, uint64_t flags, int sync_child,
                                     const struct pea_seccomp_program *seccomp, bool *used_into_cgroup,
                                     struct pea_error *err)
{
    const char *path = l->spec->namespaces[PEA_NS_USER].path;
    AUTO_FD int userns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (userns_fd < 0)
        return pea_fail(err, errno, "open user namespace %s", path);
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "pipe for the launcher");
    pid_t launcher = fork();
    if (launcher < 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        return pea_fail(err, saved, "fork the launcher");
    }
    if (launcher == 0) {
        close(report[0]);
        struct launched out = {0};
        int pidfd = -1;
        if (setns(userns_fd, CLONE_NEWUSER) < 0)
            out.errnum = errno;
        else if ((out.pid = sys_clone3(flags | CLONE_PARENT, l->cgroup_fd, &pidfd, &out.used_into_cgroup)) < 0)
            out.errnum = errno;
        if (out.pid == 0 && out.errnum == 0) {
            close(report[1]);
            close(l->sync_fd); /* our end: the init must not hold it, or its death would go unseen */
            child_main(l, sync_child, seccomp);
        }
        _exit(write(report[1], &out, sizeof out) == (ssize_t)sizeof out ? 0 : 1);
    }
    close(report[1]);
    struct launched got = {.errnum = EPROTO};
    ssize_t n;
    while ((n = read(report[0], &got, sizeof got)) < 0 && errno == EINTR)
        ;
    close(report[0]);
    while (waitpid(launcher, NULL, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof got || got.errnum != 0 || got.pid <= 0)
        return pea_fail(err, n == (ssize_t)sizeof got ? got.errnum : EPROTO,
                        "clone container init in user namespace %s", path);
    *used_into_cgroup = got.used_into_cgroup;
    return got.pid;
}

int process_launch_begin(struct pea_launch *l, struct pea_error *err)
{
    if (lsm_plan(l->spec, &l->lsm, err) < 0)
        return -1;
    /* Compiled here, not in the child: the containers a process launches with one profile (a pod's members, those
     * of pea-shim) share one compilation, and the child only hands the program to the kernel. */
    const struct pea_seccomp_program *seccomp = NULL;
    if (l->spec->seccomp && !(seccomp = seccomp_compile(l->spec->seccomp, err)))
        return -1;
    /* Missing on kernels without time namespaces: then there is nothing to restore. */
    AUTO_FD int own_pid_ns = open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
    AUTO_FD int own_time_ns = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return pea_fail(err, errno, "socketpair");
    l->sync_fd = pair[0];
    uint64_t flags = CLONE_PIDFD;
    if (l->is_exec) {
        if (ns_join_process(l->init_pidfd, l->spec, NS_JOIN_FOR_CHILDREN, err) < 0) {
            close(pair[1]);
            return -1; /* setns of several namespaces at once is all or nothing */
        }
    } else {
        struct pea_ns_handles h;
        uint64_t ns_flags = 0;
        int r = ns_open_paths(l->spec, &h, err);
        if (r == 0)
            r = ns_prepare_parent(l->spec, &h, &ns_flags, err);
        ns_close_handles(&h);
        if (r < 0) {
            struct pea_error ignored = {0};
            restore_children_namespaces(own_pid_ns, own_time_ns, &ignored);
            close(pair[1]);
            return -1;
        }
        flags |= ns_flags;
    }
    if (l->cgroup_fd >= 0)
        flags |= CLONE_INTO_CGROUP;
    /* Decided here: in the new user namespace, before its maps, the child's own ids read as the overflow id. */
    l->is_dumpable_until_maps = !l->is_exec && l->spec->namespaces[PEA_NS_USER].is_present &&
                                !l->spec->namespaces[PEA_NS_USER].path && geteuid() != 0;
    bool used_into_cgroup = false;
    int pidfd = -1;
    pid_t pid;
    if (clones_from_user_namespace(l)) {
        /* Our child, not yet waited for: its number names no other process. */
        if ((pid = clone_in_user_namespace(l, flags, pair[1], seccomp, &used_into_cgroup, err)) > 0 &&
            (pidfd = sys_pidfd_open(pid, 0)) < 0) {
            pea_fail(err, errno, "pidfd of container init %d", (int)pid);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            pid = -1;
        }
        if (pid < 0) {
            close(pair[1]);
            struct pea_error ignored = {0};
            restore_children_namespaces(own_pid_ns, own_time_ns, &ignored);
            return -1;
        }
    } else if ((pid = sys_clone3(flags, l->cgroup_fd, &pidfd, &used_into_cgroup)) < 0) {
        int saved = errno;
        close(pair[1]);
        struct pea_error ignored = {0};
        restore_children_namespaces(own_pid_ns, own_time_ns, &ignored);
        return pea_fail(err, saved, "clone container init");
    }
    if (pid == 0) {
        close(pair[0]);
        child_main(l, pair[1], seccomp);
    }
    close(pair[1]);
    l->pid = pid;
    l->pidfd = pidfd;
    if (restore_children_namespaces(own_pid_ns, own_time_ns, err) < 0 ||
        parent_drive(l, used_into_cgroup, err) < 0) {
        process_abort(l);
        return -1;
    }
    return 0;
}

int process_launch_finish(struct pea_launch *l, struct pea_error *err)
{
    if (parent_expect(l, SYNC_READY, err) < 0) {
        process_abort(l);
        return -1;
    }
    return 0;
}

int process_launch(struct pea_launch *l, struct pea_error *err)
{
    return process_launch_begin(l, err) < 0 ? -1 : process_launch_finish(l, err);
}

int process_release(struct pea_launch *l, struct pea_error *err)
{
    if (sync_send(l->sync_fd, SYNC_RELEASE, 0, NULL, -1) < 0)
        return pea_fail(err, errno, "release container init");
    struct sync_header h;
    if (sync_recv(l->sync_fd, &h, NULL, NULL) < 0 || h.step != SYNC_RELEASED)
        return pea_fail(err, 0, "container init did not confirm its release");
    close(l->sync_fd);
    l->sync_fd = -1;
    return 0;
}
