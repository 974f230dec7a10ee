/* pea pod attach: the client's terminal to a running container's stdio, through its shim (kubectl attach's habits).
 * The shim hands us pipes with the container's output (the bytes its log gets) and, with -i when the container
 * keeps stdin open, an fd that writes its stdin. The session ends when the container's instance ends (its exit code
 * is ours), when the pod stops (an error), at EOF of our stdin (-i), on Ctrl-C without a tty, or on Ctrl-P Ctrl-Q
 * with one; the container runs on. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli_options.h"
#include "pod_client.h"
#include "pea/util.h"
#include "proto.h"

#define DETACH_FIRST 0x10  /* Ctrl-P */
#define DETACH_SECOND 0x11 /* Ctrl-Q */

struct raw_terminal {
    int fd;
    struct termios settings;
};

static void restore_terminal(struct raw_terminal *t)
{
    if (t->fd >= 0)
        tcsetattr(t->fd, TCSADRAIN, &t->settings);
}

struct session {
    int sock, out[2], input; /* out[0] stdout (or the pty's output), out[1] stderr; -1 once closed */
    bool is_raw, saw_detach_first, has_detached, has_ended;
    int exit_code;
    char reason[256];
};

/* Write all of buf to fd, which may be non-blocking (a pty's master is shared with the shim's reader). */
static int write_blocking(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, -1);
            continue;
        }
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copy an output pipe to ours; closed at its end. */
static void pump_output(struct session *s, int i)
{
    char buf[16384];
    ssize_t n = read(s->out[i], buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0 || write_all(i == 0 ? STDOUT_FILENO : STDERR_FILENO, buf, (size_t)n) < 0) {
        close(s->out[i]);
        s->out[i] = -1;
    }
}

/* Copy what our stdin has to the container's; in raw mode Ctrl-P Ctrl-Q detaches (a lone Ctrl-P goes on). False
 * once the session ends here: our EOF or the detach keys. */
static bool pump_input(struct session *s)
{
    char in[4096], out[sizeof in + 1];
    ssize_t n = read(STDIN_FILENO, in, sizeof in);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    size_t len = 0;
    for (ssize_t i = 0; i < n; i++) {
        char ch = in[i];
        if (s->is_raw && s->saw_detach_first) {
            s->saw_detach_first = false;
            if (ch == DETACH_SECOND) {
                s->has_detached = true;
                break;
            }
            out[len++] = DETACH_FIRST;
        }
        if (s->is_raw && ch == DETACH_FIRST)
            s->saw_detach_first = true;
        else
            out[len++] = ch;
    }
    if (len > 0 && write_blocking(s->input, out, len) < 0)
        return false;
    return !s->has_detached;
}

/* The session's event (exit code, or why it ended) and its end. */
static int take_message(struct session *s, struct pea_error *err)
{
    AUTO_JSON json_t *msg = NULL;
    if (pod_shim_receive(s->sock, 0, &msg, NULL, err) < 0)
        return -1;
    if (!msg)
        return pea_fail(err, 0, "pea-shim closed the connection");
    json_t *event = json_object_get(msg, "event");
    json_t *code = json_object_get(event, "exitCode");
    if (json_is_integer(code))
        s->exit_code = (int)json_integer_value(code);
    const char *reason = json_string_value(json_object_get(event, "reason"));
    if (reason)
        snprintf(s->reason, sizeof s->reason, "%s", reason);
    if (json_object_get(msg, "end"))
        s->has_ended = true;
    return 0;
}

static void copy_window_size(int to)
{
    struct winsize ws;
    if (to >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        ioctl(to, TIOCSWINSZ, &ws);
}

/* Until the session ends: then what the pipes still hold (the shim has closed their write ends). */
static int run_session(struct session *s, int winch_fd, struct pea_error *err)
{
    bool is_stdin_open = s->input >= 0;
    while (!s->has_ended || s->out[0] >= 0 || s->out[1] >= 0) {
        struct pollfd p[5] = {{.fd = s->has_ended ? -1 : s->sock, .events = POLLIN},
                              {.fd = s->out[0], .events = POLLIN},
                              {.fd = s->out[1], .events = POLLIN},
                              {.fd = is_stdin_open && !s->has_ended ? STDIN_FILENO : -1, .events = POLLIN},
                              {.fd = winch_fd, .events = POLLIN}};
        if (poll(p, 5, -1) < 0) {
            if (errno == EINTR)
                continue;
            return pea_fail(err, errno, "wait for the container's output");
        }
        for (int i = 0; i < 2; i++)
            if (p[1 + i].revents)
                pump_output(s, i);
        if (p[3].revents && !pump_input(s))
            return 0; /* our EOF or the detach keys: the container runs on */
        if (p[4].revents) {
            struct signalfd_siginfo si;
            if (read(winch_fd, &si, sizeof si) > 0)
                copy_window_size(s->input);
        }
        if (p[0].revents && take_message(s, err) < 0)
            return -1;
    }
    return 0;
}

/* Ask the shim for the session: its reply carries the output pipes and the stdin fd. */
static int open_session(int sock, const char *container, bool wants_stdin, struct session *s, bool *has_tty,
                        struct pea_error *err)
{
    AUTO_JSON json_t *req = pod_shim_request("attach");
    json_object_set_new(req, "container", json_string(container));
    json_object_set_new(req, "stdin", json_boolean(wants_stdin));
    json_int_t id = json_integer_value(json_object_get(req, "id"));
    if (proto_send(sock, req, NULL, 0, err) < 0)
        return -1;
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, POD_SHIM_ANSWER_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    if (r <= 0)
        return pea_fail(err, r < 0 ? errno : 0, "pea-shim (pid %d) did not answer", (int)pod_shim_peer_pid(sock));
    AUTO_JSON json_t *msg = NULL;
    int fds[PROTO_MAX_FDS];
    size_t n_fds = 0;
    if (proto_recv(sock, &msg, fds, 3, &n_fds, err) < 0)
        return -1;
    if (!msg)
        return pea_fail(err, 0, "pea-shim closed the connection without an answer");
    AUTO_JSON json_t *result = NULL;
    if (json_integer_value(json_object_get(msg, "id")) != id || pod_shim_outcome(msg, &result, err) < 0) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        return err->msg[0] ? -1 : pea_fail(err, 0, "pea-shim answered another request");
    }
    *has_tty = json_is_true(json_object_get(result, "tty"));
    bool has_stdin = json_is_true(json_object_get(result, "stdin"));
    size_t expected = (*has_tty ? 1 : 2) + (has_stdin ? 1 : 0);
    if (n_fds != expected) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        return pea_fail(err, 0, "pea-shim sent %zu descriptors, not %zu", n_fds, expected);
    }
    size_t i = 0;
    s->out[0] = fds[i++];
    s->out[1] = *has_tty ? -1 : fds[i++];
    s->input = has_stdin ? fds[i] : -1;
    return 0;
}

int pod_attach(const struct cli_globals *g, int argc, char **argv)
{
    const char *container = NULL;
    bool wants_stdin = false, wants_tty = false;
    const struct cli_option opts[] = {
        CLI_STRING("container", 'c', &container),
        CLI_FLAG("stdin", 'i', &wants_stdin),
        CLI_FLAG("tty", 't', &wants_tty),
        CLI_END,
    };
    struct cli_args args;
    if (cli_parse_options("pod attach", argc, argv, opts, 0, &args) != 0)
        return 1;
    AUTO_FREE char **positional = args.items;
    if (args.n != 1)
        return cli_usage_error("pod attach", "exactly one pod name is required");
    const char *name = cli_pod_name(positional[0]);
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    AUTO_FD int sock = -1;
    if (pod_open_served(g, name, &pod, &sock, &err) < 0) {
        pea_wrap(&err, "pod attach %s", name);
        return cli_fail(&err);
    }
    if (!container && !(container = pod_default_container(pod, &err)))
        return cli_fail(&err);
    struct session s = {.sock = sock, .out = {-1, -1}, .input = -1};
    bool has_tty = false;
    if (open_session(sock, container, wants_stdin, &s, &has_tty, &err) < 0) {
        pea_wrap(&err, "pod attach %s", name);
        return cli_fail(&err);
    }
    if (wants_tty && !has_tty)
        fprintf(stderr, "pea: pod attach %s: container %s has no tty (tty: true): attached without one\n", name,
                container);
    __attribute__((cleanup(restore_terminal))) struct raw_terminal terminal = {.fd = -1};
    AUTO_FD int winch_fd = -1;
    if (wants_tty && has_tty && s.input >= 0 && isatty(STDIN_FILENO) &&
        tcgetattr(STDIN_FILENO, &terminal.settings) == 0) {
        struct termios raw = terminal.settings;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0) {
            terminal.fd = STDIN_FILENO;
            s.is_raw = true;
        }
        sigset_t winch;
        sigemptyset(&winch);
        sigaddset(&winch, SIGWINCH);
        sigprocmask(SIG_BLOCK, &winch, NULL);
        winch_fd = signalfd(-1, &winch, SFD_CLOEXEC);
        copy_window_size(s.input);
    }
    int r = run_session(&s, winch_fd, &err);
    restore_terminal(&terminal);
    terminal.fd = -1;
    for (int i = 0; i < 2; i++)
        if (s.out[i] >= 0)
            close(s.out[i]);
    if (s.input >= 0)
        close(s.input);
    if (r < 0) {
        pea_wrap(&err, "pod attach %s", name);
        return cli_fail(&err);
    }
    if (s.reason[0]) {
        pea_fail(&err, 0, "pod attach %s: %s", name, s.reason);
        cli_fail(&err);
        return 1;
    }
    return s.has_ended ? s.exit_code : 0;
}
