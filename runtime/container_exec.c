/* Foreground processes: `run` and `exec` wait for their child, forward signals and proxy a terminal. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container_internal.h"
#include "pea/cgroup.h"
#include "pea/console.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"

static int exit_code_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

int container_wait_forwarding(pid_t pid, int pidfd, int console_master)
{
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    sigprocmask(SIG_BLOCK, &all, &old);
    AUTO_FD int sfd = signalfd(-1, &all, SFD_CLOEXEC);
    struct termios saved;
    bool is_raw = console_master >= 0 && console_make_raw(STDIN_FILENO, &saved);
    if (console_master >= 0)
        console_copy_window_size(STDIN_FILENO, console_master);
    struct pollfd fds[4] = {
        {.fd = pidfd, .events = POLLIN},
        {.fd = sfd, .events = POLLIN},
        {.fd = console_master, .events = POLLIN},
        {.fd = console_master >= 0 ? STDIN_FILENO : -1, .events = POLLIN},
    };
    int status = 0;
    bool is_done = false;
    while (!is_done) {
        if (poll(fds, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[2].revents & POLLIN) {
            if (!console_pump(console_master, STDOUT_FILENO))
                fds[2].fd = -1;
        } else if (fds[2].revents & (POLLHUP | POLLERR)) {
            fds[2].fd = -1;
        }
        if (fds[3].revents & (POLLIN | POLLHUP)) {
            if (!console_pump(STDIN_FILENO, console_master))
                fds[3].fd = -1;
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGWINCH && console_master >= 0)
                    console_copy_window_size(STDIN_FILENO, console_master);
                else if (si.ssi_signo != SIGCHLD)
                    sys_pidfd_send_signal(pidfd, (int)si.ssi_signo, NULL, 0);
            }
        }
        if (fds[0].revents & POLLIN) {
            if (waitpid(pid, &status, WNOHANG) == pid)
                is_done = true;
        }
    }
    /* Show what the container wrote just before it exited. */
    if (fds[2].fd >= 0) {
        int fl = fcntl(console_master, F_GETFL);
        fcntl(console_master, F_SETFL, fl | O_NONBLOCK);
        while (console_pump(console_master, STDOUT_FILENO)) {
            struct pollfd p = {.fd = console_master, .events = POLLIN};
            if (poll(&p, 1, 50) <= 0)
                break;
        }
    }
    if (is_raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return exit_code_of(status);
}

int container_run(const struct pea_create_options *o, bool detach, bool keep, int *exit_code, struct pea_error *err)
{
    struct pea_launch l;
    process_launch_init(&l);
    AUTO_SPEC struct pea_spec *spec = NULL;
    if (container_create_launch(o, &l, &spec, err) < 0)
        return -1;
    if (process_release(&l, err) < 0 || container_start(o->root, o->id, err) < 0) {
        process_launch_close(&l);
        container_delete(o->root, o->id, true, NULL);
        return -1;
    }
    if (detach) {
        process_launch_close(&l);
        *exit_code = 0;
        return 0;
    }
    *exit_code = container_wait_forwarding(l.pid, l.pidfd, l.console_master);
    process_launch_close(&l);
    if (!keep && container_delete(o->root, o->id, true, err) < 0)
        return -1;
    return 0;
}

/* "KEY=value": replace the entry with the same key, or append. */
static void env_set(json_t *env, const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t keylen = eq ? (size_t)(eq - entry) : strlen(entry);
    size_t i;
    json_t *v;
    json_array_foreach(env, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strncmp(s, entry, keylen) == 0 && (s[keylen] == '=' || s[keylen] == '\0')) {
            json_array_set_new(env, i, json_string(entry));
            return;
        }
    }
    json_array_append_new(env, json_string(entry));
}

json_t *container_exec_process_from_flags(const char *root, const char *id, char **args, char **env,
                                          const char *cwd, const char *user, bool tty, int tty_set,
                                          struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, false, &c, err) < 0)
        return NULL;
    size_t len = 0;
    AUTO_FREE char *text = read_file_at(c.dir_fd, PEA_CONFIG_COPY, 16 << 20, &len);
    container_close(&c);
    AUTO_JSON json_t *config = text ? json_loads(text, 0, NULL) : NULL;
    json_t *base = config ? json_object_get(config, "process") : NULL;
    if (!base) {
        pea_fail(err, 0, "read the container's saved config");
        return NULL;
    }
    AUTO_JSON json_t *p = json_deep_copy(base);
    json_t *argv = json_array();
    for (char **a = args; a && *a; a++)
        json_array_append_new(argv, json_string(*a));
    json_object_set_new(p, "args", argv);
    json_t *penv = json_object_get(p, "env");
    if (!json_is_array(penv)) {
        penv = json_array();
        json_object_set_new(p, "env", penv);
    }
    for (char **e = env; e && *e; e++)
        env_set(penv, *e);
    if (cwd)
        json_object_set_new(p, "cwd", json_string(cwd));
    if (tty_set)
        json_object_set_new(p, "terminal", json_boolean(tty));
    if (user) {
        long long uid, gid = -1;
        char *colon = strchr(user, ':');
        AUTO_FREE char *uid_text = colon ? strndup(user, (size_t)(colon - user)) : xstrdup(user);
        if (parse_int64(uid_text, &uid) < 0 || uid < 0 || uid > UINT32_MAX ||
            (colon && (parse_int64(colon + 1, &gid) < 0 || gid < 0 || gid > UINT32_MAX))) {
            pea_fail(err, 0, "--user %s: expected UID[:GID]", user);
            return NULL;
        }
        /* As runc: the ids given replace the container's, and the rest of its user (the group when only a uid is
         * given, additionalGids, umask) stays. */
        json_t *u = json_object_get(p, "user");
        if (!json_is_object(u)) {
            u = json_object();
            json_object_set_new(p, "user", u);
        }
        json_object_set_new(u, "uid", json_integer(uid));
        if (colon)
            json_object_set_new(u, "gid", json_integer(gid));
        else if (!json_object_get(u, "gid"))
            json_object_set_new(u, "gid", json_integer(0));
    }
    return take_ptr(&p);
}

/* The container's config with its process replaced by the one to exec, validated like a config. */
static struct pea_spec *exec_spec(const struct pea_container *c, json_t *process, struct pea_error *err)
{
    AUTO_FREE char *text = read_file_at(c->dir_fd, PEA_CONFIG_COPY, 16 << 20, NULL);
    AUTO_JSON json_t *config = text ? json_loads(text, 0, NULL) : NULL;
    if (!config) {
        pea_fail(err, 0, "read the container's saved config");
        return NULL;
    }
    json_object_set(config, "process", process);
    return spec_parse_json(config, err);
}

/* Whether the init whose pidfd this is has exited or is exiting: for the message of an exec that already failed.
 * An exiting init has dropped its namespaces before its pidfd reports the exit (its pid namespace is torn down in
 * between); were the PID reused by then, the pidfd would already report it. */
static bool is_init_gone(int pidfd, pid_t pid)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1)
        return true;
    char path[64], target[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
    return readlink(path, target, sizeof target) < 0 && errno == ENOENT;
}

/* exec --cgroup: an existing cgroup below the container's, opened from the container's own (*cgroup_fd, replaced
 * by the sub-cgroup's) without leaving it, so that the process goes where the name was checked. As runc's path.Join,
 * a leading "/" is still relative to the container's cgroup. *path gets the sub-cgroup's cgroup path. */
static int open_sub_cgroup(const char *container_path, const char *sub, int *cgroup_fd, char **path,
                           struct pea_error *err)
{
    if (*cgroup_fd < 0)
        return pea_fail(err, 0, "--cgroup %s: the container has no cgroup of its own", sub);
    const char *relative = sub;
    while (*relative == '/')
        relative++;
    int fd = sys_open_beneath(*cgroup_fd, *relative ? relative : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == EXDEV)
        return pea_fail(err, 0, "--cgroup %s: not below the container's cgroup", sub);
    if (fd < 0)
        return pea_fail(err, errno, "--cgroup %s: open the sub-cgroup", sub);
    struct statfs fs;
    if (fstatfs(fd, &fs) < 0 || fs.f_type != CGROUP2_SUPER_MAGIC) {
        close(fd);
        return pea_fail(err, 0, "--cgroup %s: not a cgroup", sub);
    }
    close(*cgroup_fd);
    *cgroup_fd = fd;
    *path = xasprintf("%s/%s", container_path, relative);
    return 0;
}

/* Launch the exec'd process and release it; the launch keeps its pidfd and console master for the caller. */
static int exec_launch(const struct pea_exec_options *o, struct pea_launch *l, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(o->root, o->id, false, &c, err) < 0)
        return -1;
    AUTO_SPEC struct pea_spec *spec = NULL;
    AUTO_FD int init_pidfd = -1, cgroup_fd = -1;
    AUTO_FREE char *state_json = NULL;
    AUTO_FREE char *sub_cgroup_path = NULL;
    int r = -1;
    if (c.status == PEA_STATUS_STOPPED) {
        pea_fail(err, 0, "cannot exec in a stopped container");
        goto out;
    }
    if (c.status == PEA_STATUS_PAUSED && !o->ignore_paused) {
        pea_fail(err, 0, "cannot exec in a paused container (use --ignore-paused to override)");
        goto out;
    }
    spec = exec_spec(&c, o->process, err);
    if (!spec)
        goto out;
    if (spec->process->terminal && o->detach && !o->console_socket) {
        pea_fail(err, 0, "cannot allocate a tty for a detached exec without --console-socket");
        goto out;
    }
    /* Opened first, checked after: had the PID been reused in between, the start time would differ. From here on
     * the pidfd is the init, and the namespaces are joined through it. */
    bool is_zombie = false;
    init_pidfd = sys_pidfd_open(c.state.pid, 0);
    if (init_pidfd < 0 || sys_process_start_time(c.state.pid, &is_zombie) != c.state.start_time || is_zombie) {
        pea_fail(err, 0, "container not running");
        goto out;
    }
    if (c.state.cgroup_path && (cgroup_fd = cgroup_open_dir(c.state.cgroup_path, err)) < 0)
        goto out;
    if (o->sub_cgroup && open_sub_cgroup(c.state.cgroup_path, o->sub_cgroup, &cgroup_fd, &sub_cgroup_path, err) < 0)
        goto out;
    /* A seccomp agent gets the state with each exec'd process's listener, as with runc. */
    state_json = container_state_json_text(&c.state, PEA_STATUS_RUNNING);
    l->container_state_json = state_json;
    l->spec = spec;
    l->is_exec = true;
    l->init_pidfd = init_pidfd;
    l->cgroup_fd = cgroup_fd;
    l->cgroup_path = sub_cgroup_path ? sub_cgroup_path : c.state.cgroup_path;
    l->console_socket = o->console_socket;
    l->preserve_fds = o->preserve_fds;
    for (int i = 0; o->has_stdio_fds && i < 3; i++)
        l->stdio_fds[i] = o->stdio_fds[i];
    log_debug("exec %s: joining init %d (cgroup %s)", o->id, (int)c.state.pid,
              l->cgroup_path ? l->cgroup_path : "none");
    if (process_launch(l, err) < 0)
        goto out;
    log_debug("exec %s: process %d set up", o->id, (int)l->pid);
    if (container_write_pid_file(o->pid_file, l->pid, err) < 0 ||
        (o->pidfd_socket && console_send_fd_to_socket(o->pidfd_socket, "pidfd socket", l->pidfd, "pidfd", err) < 0) ||
        process_release(l, err) < 0) {
        process_abort(l);
        goto out;
    }
    r = 0;
out:
    /* An init that exits mid-exec fails it wherever the launch was (setns, a clone into its dying pid namespace, the
     * child killed with it): say why, not where. */
    if (r < 0 && init_pidfd >= 0 && is_init_gone(init_pidfd, c.state.pid))
        pea_fail(err, 0, "container not running");
    /* The launch borrowed these for the clone only. */
    l->spec = NULL;
    l->container_state_json = NULL;
    l->init_pidfd = l->cgroup_fd = -1;
    l->cgroup_path = NULL;
    container_close(&c);
    return r < 0 ? pea_wrap(err, "exec %s", o->id) : 0;
}

int container_exec_child(const struct pea_exec_options *o, pid_t *pid, int *pidfd, int *console_master,
                         struct pea_error *err)
{
    struct pea_launch l;
    process_launch_init(&l);
    int r = exec_launch(o, &l, err);
    if (r == 0) {
        *pid = l.pid;
        *pidfd = take_fd(&l.pidfd);
        *console_master = take_fd(&l.console_master);
    }
    process_launch_close(&l);
    return r;
}

int container_exec(const struct pea_exec_options *o, int *exit_code, struct pea_error *err)
{
    pid_t pid;
    AUTO_FD int pidfd = -1, console_master = -1;
    if (container_exec_child(o, &pid, &pidfd, &console_master, err) < 0)
        return -1;
    *exit_code = o->detach ? 0 : container_wait_forwarding(pid, pidfd, console_master);
    return 0;
}
