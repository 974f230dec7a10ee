#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pea/hooks.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"

/* Wait for pid through its pidfd with a deadline (timeout 0 = none). Returns the wait status or -1 on timeout. */
static int hook_wait(pid_t pid, int pidfd, int timeout)
{
    if (timeout > 0) {
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long elapsed_ms = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
            long long left = (long long)timeout * 1000 - elapsed_ms;
            if (left <= 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return -1;
            }
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            int r = poll(&p, 1, (int)left);
            if (r > 0)
                break;
            if (r < 0 && errno != EINTR)
                break;
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 0;
    return status;
}

/* cwd_fd: the directory the hook starts in, or -1 for ours. */
static int hook_run_one(const struct pea_hook *hook, const char *kind_name, const char *state_json, int cwd_fd,
                        struct pea_error *err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "%s hook %s: pipe", kind_name, hook->path);
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return pea_fail(err, saved, "%s hook %s: fork", kind_name, hook->path);
    }
    if (pid == 0) {
        dup2(pipefd[0], STDIN_FILENO);
        /* The hook's stdout must not pollute ours: callers parse `pea state`-like output. */
        dup2(STDERR_FILENO, STDOUT_FILENO);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (cwd_fd >= 0 && fchdir(cwd_fd) < 0)
            _exit(127);
        char *default_args[] = {hook->path, NULL};
        char *empty_env[] = {NULL};
        execve(hook->path, hook->args && hook->args[0] ? hook->args : default_args,
               hook->env ? hook->env : empty_env);
        _exit(127);
    }
    close(pipefd[0]);
    AUTO_FD int write_end = pipefd[1];
    AUTO_FD int pidfd = sys_pidfd_open(pid, 0);
    /* A hook that never reads its stdin must not make us fail: EPIPE is fine. */
    (void)write_all(write_end, state_json, strlen(state_json));
    close(take_fd(&write_end));
    int status = hook_wait(pid, pidfd, pidfd >= 0 ? hook->timeout : 0);
    if (status < 0)
        return pea_fail(err, 0, "%s hook %s: timed out after %ds", kind_name, hook->path, hook->timeout);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return pea_fail(err, 0, "%s hook %s: exit status %d", kind_name, hook->path, WEXITSTATUS(status));
    return pea_fail(err, 0, "%s hook %s: killed by signal %d", kind_name, hook->path, WTERMSIG(status));
}

static int run_list(const struct pea_spec *spec, enum pea_hook_kind kind, const char *state_json, int cwd_fd,
                    struct pea_error *err)
{
    const struct pea_hook_list *list = &spec->hooks[kind];
    for (size_t i = 0; i < list->n; i++) {
        log_debug("%s hook %s: run", spec_hook_kind_name(kind), list->hooks[i].path);
        if (hook_run_one(&list->hooks[i], spec_hook_kind_name(kind), state_json, cwd_fd, err) < 0)
            return -1;
    }
    return 0;
}

int hooks_run(const struct pea_spec *spec, enum pea_hook_kind kind, const char *state_json, struct pea_error *err)
{
    return run_list(spec, kind, state_json, -1, err);
}

int hooks_run_in_dir(const struct pea_spec *spec, enum pea_hook_kind kind, const char *state_json, const char *dir,
                     struct pea_error *err)
{
    if (spec->hooks[kind].n == 0)
        return 0;
    AUTO_FD int cwd_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd_fd < 0)
        return pea_fail(err, errno, "%s hooks: open their working directory %s", spec_hook_kind_name(kind), dir);
    return run_list(spec, kind, state_json, cwd_fd, err);
}
