/* pea pod exec: a process in a running container of a shim's pod. Without -t it gets our stdin (with -i), stdout
 * and stderr; with -t the shim makes a pty and hands us its master, and we proxy our terminal (raw) to it. The
 * process's exit code is ours. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli_options.h"
#include "pod_client.h"
#include "pea/util.h"
#include "proto.h"

/* Our terminal's settings while raw, restored on every path. */
struct saved_terminal {
    int fd;
    struct termios settings;
};

static void restore_terminal(struct saved_terminal *t)
{
    if (t->fd >= 0)
        tcsetattr(t->fd, TCSADRAIN, &t->settings);
}

static void make_raw(struct saved_terminal *t, int fd)
{
    struct termios raw;
    if (!isatty(fd) || tcgetattr(fd, &t->settings) < 0)
        return;
    raw = t->settings;
    cfmakeraw(&raw);
    if (tcsetattr(fd, TCSADRAIN, &raw) == 0)
        t->fd = fd;
}

/* Copy what fd has now to out; false at its end (EOF, or EIO once the pty's slave side is closed). */
static bool pump(int fd, int out)
{
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    return write_all(out, buf, (size_t)n) == 0;
}

/* What the shim reports of the exec'd process: its exit code, and why it ended when that was not its own doing (its
 * container or the pod stopped). */
struct exec_outcome {
    bool has_ended, has_exit_code;
    int exit_code;
    char reason[256];
    json_int_t check_id; /* a status request that asks whether the shim still answers (0: none) */
    bool has_shim_answered;
};

/* A message from the shim during the exec: the exit event, then end; or the answer to the check. */
static int take_message(int sock, struct exec_outcome *o, struct pea_error *err)
{
    AUTO_JSON json_t *msg = NULL;
    if (pod_shim_receive(sock, 0, &msg, NULL, err) < 0)
        return -1;
    if (!msg)
        return pea_fail(err, 0, "pea-shim closed the connection before the command's exit was reported");
    if (o->check_id && json_integer_value(json_object_get(msg, "id")) == o->check_id) {
        o->has_shim_answered = true;
        return 0;
    }
    json_t *event = json_object_get(msg, "event");
    json_t *code = json_object_get(event, "exitCode");
    if (json_is_integer(code)) {
        o->exit_code = (int)json_integer_value(code);
        o->has_exit_code = true;
    }
    const char *reason = json_string_value(json_object_get(event, "reason"));
    if (reason)
        snprintf(o->reason, sizeof o->reason, "%s", reason);
    if (json_object_get(msg, "end"))
        o->has_ended = true;
    return 0;
}

static long long ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000LL + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Once the pty has hung up, the command has most likely ended and its exit is due: ask whether the shim still
 * answers. */
static int check_shim_answers(int sock, struct exec_outcome *o, struct pea_error *err)
{
    AUTO_JSON json_t *check = pod_shim_request("status");
    o->check_id = json_integer_value(json_object_get(check, "id"));
    return proto_send(sock, check, NULL, 0, err);
}

/* Proxy stdin (when interactive) to the master and the master to stdout, until the process has ended and the
 * master is drained. While the pty is open the session is live, however long and whatever the shim does (Ctrl-C is
 * the command's). Once it has hung up, our terminal is ours again (Ctrl-C ends us), and a shim that neither reports
 * the exit nor answers within POD_SHIM_ANSWER_TIMEOUT_MS does not answer; one that answers while the command (which
 * only closed its terminal) runs on is waited for. */
static int proxy_tty(int sock, int master, bool is_interactive, struct exec_outcome *o, struct pea_error *err)
{
    __attribute__((cleanup(restore_terminal))) struct saved_terminal terminal = {.fd = -1};
    struct winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        ioctl(master, TIOCSWINSZ, &ws);
    if (is_interactive)
        make_raw(&terminal, STDIN_FILENO);
    bool is_master_open = true, is_stdin_open = is_interactive;
    struct timespec hung_up_at = {0};
    while (!o->has_ended || is_master_open) {
        struct pollfd p[3] = {{.fd = sock, .events = POLLIN},
                              {.fd = is_master_open ? master : -1, .events = POLLIN},
                              {.fd = is_stdin_open && is_master_open ? STDIN_FILENO : -1, .events = POLLIN}};
        int timeout_ms = -1;
        if (o->has_ended) {
            /* After the end, only what the master still holds is read. */
            p[0].fd = p[2].fd = -1;
            timeout_ms = 200;
        } else if (!is_master_open && !o->has_shim_answered) {
            long long left = POD_SHIM_ANSWER_TIMEOUT_MS - ms_since(&hung_up_at);
            if (left <= 0)
                return pea_fail(err, 0, "pea-shim (pid %d) did not answer within %ds", (int)pod_shim_peer_pid(sock),
                                POD_SHIM_ANSWER_TIMEOUT_MS / 1000);
            timeout_ms = (int)left;
        }
        int n = poll(p, 3, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (n == 0 && o->has_ended))
            break;
        if (p[1].revents && !pump(master, STDOUT_FILENO)) {
            is_master_open = false;
            restore_terminal(&terminal);
            terminal.fd = -1;
            clock_gettime(CLOCK_MONOTONIC, &hung_up_at);
            if (!o->has_ended && check_shim_answers(sock, o, err) < 0)
                return -1;
        }
        if (p[2].revents && !pump(STDIN_FILENO, master))
            is_stdin_open = false;
        if (p[0].revents && take_message(sock, o, err) < 0)
            return -1;
    }
    return 0;
}

/* Without a tty the command's output goes straight to our stdout and stderr: only the shim can tell that it has
 * ended. The wait has no deadline (a command runs as long as it runs); a shim that dies closes the connection, and
 * one that is stopped leaves us waiting until Ctrl-C. */
static int await_exit(int sock, struct exec_outcome *o, struct pea_error *err)
{
    while (!o->has_ended) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return pea_fail(err, errno, "wait for the command");
        }
        if (take_message(sock, o, err) < 0)
            return -1;
    }
    return 0;
}

int pod_exec(const struct cli_globals *g, int argc, char **argv)
{
    const char *container = NULL, *cwd = NULL, *user = NULL;
    bool is_interactive = false, has_tty = false;
    struct cli_list env_given = {0};
    const struct cli_option opts[] = {
        CLI_STRING("container", 'c', &container),
        CLI_FLAG("stdin", 'i', &is_interactive),
        CLI_FLAG("tty", 't', &has_tty),
        CLI_LIST("env", 'e', &env_given),
        CLI_STRING("workdir", 'w', &cwd),
        CLI_STRING("user", 'u', &user),
        CLI_END,
    };
    /* Options go before or after NAME; the command follows NAME, after "--" or not, and its own options are its. */
    struct cli_args args;
    if (cli_parse_options("pod exec", argc, argv, opts, 1, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    AUTO_FREE const char **env_items = env_given.items;
    if (args.n < 2)
        return cli_usage_error("pod exec", "a pod name and a command are required");
    const char *name = cli_pod_name(positional[0]);
    AUTO_JSON json_t *env = json_array();
    for (size_t i = 0; i < env_given.n; i++)
        json_array_append_new(env, json_string(env_items[i]));
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int sock = -1;
    if (pod_open_served(g, name, &pod, &sock, &err) < 0) {
        pea_wrap(&err, "pod exec %s", name);
        return cli_fail(&err);
    }
    if (!container && !(container = pod_default_container(pod, &err)))
        return cli_fail(&err);
    json_t *req = pod_shim_request("exec");
    json_t *command = json_array();
    for (size_t i = 1; i < args.n; i++)
        json_array_append_new(command, json_string(positional[i]));
    json_object_set_new(req, "container", json_string(container));
    json_object_set_new(req, "args", command);
    if (json_array_size(env) > 0)
        json_object_set(req, "env", env);
    if (cwd)
        json_object_set_new(req, "cwd", json_string(cwd));
    if (user)
        json_object_set_new(req, "user", json_string(user));
    json_object_set_new(req, "tty", json_boolean(has_tty));
    AUTO_FD int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int stdio[3] = {is_interactive ? STDIN_FILENO : null_fd, STDOUT_FILENO, STDERR_FILENO};
    AUTO_FD int master = -1;
    /* The shim answers once the process runs (or could not be started): at once. */
    if (pod_shim_call(sock, req, stdio, has_tty ? 0 : 3, POD_SHIM_ANSWER_TIMEOUT_MS, NULL, &master, &err) < 0) {
        pea_wrap(&err, "pod exec %s", name);
        return cli_fail(&err);
    }
    struct exec_outcome outcome = {.exit_code = 1};
    int r;
    if (has_tty) {
        if (master < 0) {
            pea_fail(&err, 0, "pod exec %s: pea-shim sent no pty master", name);
            return cli_fail(&err);
        }
        r = proxy_tty(sock, master, is_interactive, &outcome, &err);
    } else {
        r = await_exit(sock, &outcome, &err);
    }
    if (r < 0) {
        pea_wrap(&err, "pod exec %s", name);
        return cli_fail(&err);
    }
    if (outcome.reason[0]) {
        /* The command did not end of its own accord: say why, and never exit 0 for it. */
        pea_fail(&err, 0, "pod exec %s: %s", name, outcome.reason);
        cli_fail(&err);
        return outcome.has_exit_code && outcome.exit_code != 0 ? outcome.exit_code : 1;
    }
    return outcome.exit_code;
}
