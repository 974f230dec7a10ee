#include "process_stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "loop.h"
#include "pea/util.h"
#include "stdio_uri.h"

#define PUMP_BUFFER 8192

/* Copies one fd into another on the loop: read while the last chunk is out, wait for the writer otherwise. */
struct stdio_pump {
    struct loop_watch from, to;
    size_t len, off;
    bool waits_for_writer;
    char buf[PUMP_BUFFER];
};

/* The pump has ended (EOF, the pty's slave side gone, or a writer error): it stays allocated, idle, until
 * stdio_release, so nothing else holds a pointer to freed memory. */
static void pump_stop(struct stdio_pump *p)
{
    loop_remove(&p->from);
    if (p->waits_for_writer)
        loop_remove(&p->to);
    p->waits_for_writer = false;
    if (p->from.fd >= 0)
        close(p->from.fd);
    if (p->to.fd >= 0)
        close(p->to.fd);
    p->from.fd = p->to.fd = -1;
}

static void pump_free(struct stdio_pump *p)
{
    if (!p)
        return;
    pump_stop(p);
    free(p);
}

/* Write what is buffered. true: all of it is out. */
static bool pump_drain(struct stdio_pump *p)
{
    while (p->off < p->len) {
        ssize_t n = write(p->to.fd, p->buf + p->off, p->len - p->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!p->waits_for_writer) {
                    loop_modify(&p->from, 0);
                    loop_add(&p->to, EPOLLOUT);
                    p->waits_for_writer = true;
                }
                return false;
            }
            p->off = p->len; /* nobody can take it */
            break;
        }
        p->off += (size_t)n;
    }
    p->off = p->len = 0;
    if (p->waits_for_writer) {
        loop_remove(&p->to);
        loop_modify(&p->from, EPOLLIN);
        p->waits_for_writer = false;
    }
    return true;
}

static void pump_on_readable(struct loop_watch *w, uint32_t events)
{
    (void)events;
    struct stdio_pump *p = (struct stdio_pump *)((char *)w - offsetof(struct stdio_pump, from));
    /* One chunk per wake-up: a process that floods its terminal does not starve the shim's other work. */
    ssize_t n;
    do
        n = read(p->from.fd, p->buf, sizeof p->buf);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) { /* EOF, or EIO once every holder of the pty's slave side has gone */
        pump_stop(p);
        return;
    }
    p->len = (size_t)n;
    p->off = 0;
    pump_drain(p);
}

static void pump_on_writable(struct loop_watch *w, uint32_t events)
{
    (void)events;
    struct stdio_pump *p = (struct stdio_pump *)((char *)w - offsetof(struct stdio_pump, to));
    pump_drain(p);
}

static int set_blocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

static int set_non_blocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static struct stdio_pump *pump_start(int from, int to, struct pea_error *err)
{
    struct stdio_pump *p = xcalloc(1, sizeof *p);
    p->from = (struct loop_watch){.fd = from, .on_event = pump_on_readable};
    p->to = (struct loop_watch){.fd = to, .on_event = pump_on_writable};
    if (set_non_blocking(from) < 0 || set_non_blocking(to) < 0 || loop_add(&p->from, EPOLLIN) < 0) {
        pea_fail(err, errno, "copy terminal stdio");
        close(from);
        close(to);
        free(p);
        return NULL;
    }
    return p;
}


/* The file open as fd, opened again (the other end of a fifo): through /proc/self/fd, so it is the file just
 * checked, not whatever the path names by now. */
static int reopen_same_file(int fd, int flags)
{
    char self[32];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    return open(self, flags | O_CLOEXEC | O_NOCTTY);
}

/* An output: the fd the process (or the pty copy) writes, and the reader the shim holds open on a fifo. */
static int open_output(const struct stdio_uri *uri, int *writer, int *keep_reader, struct pea_error *err)
{
    *writer = *keep_reader = -1;
    if (uri->kind == STDIO_URI_NONE) {
        *writer = open("/dev/null", O_WRONLY | O_CLOEXEC);
        return *writer < 0 ? pea_fail(err, errno, "open /dev/null") : 0;
    }
    const char *path = uri->path;
    if (uri->kind == STDIO_URI_FILE) {
        /* As containerd's shim: the directories made 0755, the file 0644, appended to. */
        AUTO_FREE char *dir = xstrdup(path);
        *strrchr(dir, '/') = '\0';
        if (*dir && mkdir_p(dir, 0755) < 0)
            return pea_fail(err, errno, "create %s", dir);
        *writer = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
        return *writer < 0 ? pea_fail(err, errno, "open %s", path) : 0;
    }
    AUTO_FD int reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (reader < 0)
        return pea_fail(err, errno, "open %s", path);
    struct stat st;
    if (fstat(reader, &st) < 0)
        return pea_fail(err, errno, "stat %s", path);
    if (!S_ISFIFO(st.st_mode)) {
        *writer = reopen_same_file(reader, O_WRONLY | O_APPEND);
        return *writer < 0 ? pea_fail(err, errno, "open %s", path) : 0;
    }
    /* A fifo with a reader opens for writing at once; the reader is ours and stays. */
    AUTO_FD int fd = reopen_same_file(reader, O_WRONLY | O_NONBLOCK);
    if (fd < 0 || set_blocking(fd) < 0)
        return pea_fail(err, errno, "open %s for writing", path);
    *writer = take_fd(&fd);
    *keep_reader = take_fd(&reader);
    return 0;
}

static void close_slot(int *fd)
{
    if (*fd >= 0)
        close(take_fd(fd));
}

static const char *stdio_namespace = "";

void stdio_set_namespace(const char *namespace) { stdio_namespace = namespace; }

/* Whether our child pid, not yet reaped, has begun to exit (PF_EXITING in the flags, field 9 of /proc/PID/stat):
 * a logger that closes fd 5 by exiting has, before the close. */
static bool has_begun_to_exit(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    AUTO_FREE char *stat_text = read_file_at(AT_FDCWD, path, 4096, NULL);
    const char *after_name = stat_text ? strrchr(stat_text, ')') : NULL;
    unsigned long flags;
    if (!after_name || sscanf(after_name + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
        return true;
    return flags & 0x4; /* PF_EXITING */
}

/* The logger is gone or going: reap it and say how it ended. */
static int logger_failed(struct shim_stdio *io, const char *path, struct pea_error *err)
{
    int status = 0;
    while (waitpid(io->logger_pid, &status, 0) < 0 && errno == EINTR)
        ;
    io->logger_pid = 0;
    close_slot(&io->logger_pidfd);
    if (WIFSIGNALED(status))
        return pea_fail(err, 0, "logging binary %s was killed by signal %d before it was ready", path,
                        WTERMSIG(status));
    return pea_fail(err, 0, "logging binary %s exited with status %d before it was ready", path, WEXITSTATUS(status));
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Wait, bounded, for the logger's byte or close on fd 5 (containerd's shim waits without a bound). */
static int logger_wait_ready(struct shim_stdio *io, const char *path, int ready, struct pea_error *err)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long left = STDIO_LOGGER_READY_TIMEOUT_MS - elapsed_ms(&start);
        struct pollfd fds[2] = {{.fd = ready, .events = POLLIN}, {.fd = io->logger_pidfd, .events = POLLIN}};
        int n = left > 0 ? poll(fds, 2, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pea_fail(err, errno, "wait for logging binary %s", path);
        if (n == 0) {
            syscall(SYS_pidfd_send_signal, io->logger_pidfd, SIGKILL, NULL, 0);
            logger_failed(io, path, err);
            return pea_fail(err, 0,
                            "logging binary %s did not signal that it was ready within %d s (it closes fd 5 or "
                            "writes a byte to it)", path, STDIO_LOGGER_READY_TIMEOUT_MS / 1000);
        }
        if (fds[0].revents) {
            char byte;
            ssize_t r = read(ready, &byte, 1);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r == 1 || !has_begun_to_exit(io->logger_pid))
                return 0;
            return logger_failed(io, path, err);
        }
        return logger_failed(io, path, err); /* the pidfd: it exited with fd 5 still open elsewhere */
    }
}

/* An fd moved above the ones the logger gets (3-5), so placing one cannot overwrite another. */
static int move_high(int *fd)
{
    int high = fcntl(*fd, F_DUPFD_CLOEXEC, 10);
    if (high < 0)
        return -1;
    close(*fd);
    *fd = high;
    return 0;
}

/* Start the logger of uri with the read ends of two new pipes and wait until it is ready; the write ends are the
 * process's stdout and stderr. */
static int logger_start(struct shim_stdio *io, const struct stdio_uri *uri, const char *container_id, int *out_writer,
                        int *err_writer, struct pea_error *err)
{
    int out_pipe[2], err_pipe[2], ready_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "create a pipe for logging binary %s", uri->path);
    AUTO_FD int out_read = out_pipe[0], out_write = out_pipe[1];
    if (pipe2(err_pipe, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "create a pipe for logging binary %s", uri->path);
    AUTO_FD int err_read = err_pipe[0], err_write = err_pipe[1];
    if (pipe2(ready_pipe, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "create a pipe for logging binary %s", uri->path);
    AUTO_FD int ready_read = ready_pipe[0], ready_write = ready_pipe[1];
    AUTO_FD int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0 || move_high(&out_read) < 0 || move_high(&err_read) < 0 || move_high(&ready_write) < 0)
        return pea_fail(err, errno, "prepare the fds of logging binary %s", uri->path);

    AUTO_FREE const char **argv = xcalloc(uri->n_args + 2, sizeof *argv);
    argv[0] = uri->path;
    for (size_t i = 0; i < uri->n_args; i++)
        argv[i + 1] = uri->args[i];
    AUTO_FREE char *id_env = xasprintf("CONTAINER_ID=%s", container_id);
    AUTO_FREE char *ns_env = xasprintf("CONTAINER_NAMESPACE=%s", stdio_namespace);
    char *envp[] = {id_env, ns_env, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2(&actions, null_fd, i);
    posix_spawn_file_actions_adddup2(&actions, out_read, 3);
    posix_spawn_file_actions_adddup2(&actions, err_read, 4);
    posix_spawn_file_actions_adddup2(&actions, ready_write, 5);
    daemon_spawn_with_clean_signals(&attr);
    pid_t pid;
    int rc = posix_spawn(&pid, uri->path, &actions, &attr, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return pea_fail(err, rc, "start logging binary %s", uri->path);
    io->logger_pid = pid;
    /* Our unreaped child: its PID is still its own, and the pidfd keeps naming it after the loop reaps it. */
    io->logger_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (io->logger_pidfd < 0) {
        int e = errno;
        kill(pid, SIGKILL);
        logger_failed(io, uri->path, err);
        return pea_fail(err, e, "open a pidfd for logging binary %s", uri->path);
    }
    close_slot(&ready_write); /* now only the logger holds it: its exit or close reads as EOF */
    if (logger_wait_ready(io, uri->path, ready_read, err) < 0)
        return -1;
    *out_writer = take_fd(&out_write);
    *err_writer = take_fd(&err_write);
    return 0;
}

/* Stdin: the reader end (for the process or the pty copy) and the writer the shim holds until CloseIO. */
static int open_input(const char *path, int *reader, int *keep_writer, struct pea_error *err)
{
    *reader = *keep_writer = -1;
    if (!path || !*path) {
        *reader = open("/dev/null", O_RDONLY | O_CLOEXEC);
        return *reader < 0 ? pea_fail(err, errno, "open /dev/null") : 0;
    }
    AUTO_FD int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return pea_fail(err, errno, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "stat %s", path);
    if (S_ISFIFO(st.st_mode)) {
        *keep_writer = reopen_same_file(fd, O_WRONLY | O_NONBLOCK);
        if (*keep_writer < 0)
            return pea_fail(err, errno, "open %s for writing", path);
    }
    if (set_blocking(fd) < 0) {
        int e = errno;
        if (*keep_writer >= 0)
            close(take_fd(keep_writer));
        return pea_fail(err, e, "open %s", path);
    }
    *reader = take_fd(&fd);
    return 0;
}

/* A fifo or pipe the process holds goes to the io owner; anything else it writes (a log file) would stay root's. */
static int give_to_io_owner(int fd, const char *what, const struct stdio_context *context, struct pea_error *err)
{
    struct stat st;
    if (fd < 0 || !context->has_io_owner)
        return 0;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "stat %s", what);
    if (S_ISCHR(st.st_mode))
        return 0; /* /dev/null */
    if (!S_ISFIFO(st.st_mode))
        return pea_fail(err, 0, "runtime options IoUid/IoGid: %s is not a fifo or pipe; pea's shim does not give "
                        "away log files", what);
    if (fchown(fd, context->io_uid, context->io_gid) < 0)
        return pea_fail(err, errno, "give %s to %u:%u (IoUid/IoGid)", what, (unsigned)context->io_uid,
                        (unsigned)context->io_gid);
    return 0;
}

/* stdout and stderr: each opened on its own, one file opened once for both (one offset, the order the process
 * wrote in), or one logging binary for both. */
static int open_outputs(struct shim_stdio *io, const struct stdio_context *context, int *out_fd, int *out_reader,
                        int *err_fd, int *err_reader, struct pea_error *err)
{
    struct stdio_uri out_uri __attribute__((cleanup(stdio_uri_release))) = {0};
    struct stdio_uri err_uri __attribute__((cleanup(stdio_uri_release))) = {0};
    if (stdio_uri_parse(io->stdout_path, &out_uri, err) < 0 || stdio_uri_parse(io->stderr_path, &err_uri, err) < 0)
        return -1;
    bool same = strcmp(io->stdout_path, io->stderr_path) == 0;
    if (out_uri.kind == STDIO_URI_BINARY || err_uri.kind == STDIO_URI_BINARY) {
        /* containerd's shim reads only stdout's URI and gives the logger both streams. */
        if (out_uri.kind != STDIO_URI_BINARY || !(same || err_uri.kind == STDIO_URI_NONE))
            return pea_fail(err, 0, "stdio %s, %s: a logging binary takes stdout and stderr together; give its "
                            "binary:// URI as stdout (and the same or nothing as stderr)", io->stdout_path,
                            io->stderr_path);
        AUTO_FD int unused_err = -1; /* a terminal has one output: the logger reads EOF on its stderr at once */
        return logger_start(io, &out_uri, context->container_id, out_fd, err_fd ? err_fd : &unused_err, err);
    }
    if (open_output(&out_uri, out_fd, out_reader, err) < 0)
        return -1;
    if (!err_fd)
        return 0;
    if (same && out_uri.kind == STDIO_URI_FILE) {
        *err_fd = fcntl(*out_fd, F_DUPFD_CLOEXEC, 3);
        return *err_fd < 0 ? pea_fail(err, errno, "duplicate the fd of %s", out_uri.path) : 0;
    }
    return open_output(&err_uri, err_fd, err_reader, err);
}

static int open_process_ends(struct shim_stdio *io, const struct stdio_context *context, struct pea_error *err)
{
    if (io->terminal) {
        /* The process's fds 0-2 are the pty; pea itself gets /dev/null (its errors go to log.json). */
        for (int i = 0; i < 3; i++) {
            io->child[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (io->child[i] < 0)
                return pea_fail(err, errno, "open /dev/null");
        }
        if (io->stdin_path[0] && open_input(io->stdin_path, &io->stdin_reader, &io->stdin_writer, err) < 0)
            return -1;
        return open_outputs(io, context, &io->console_out, &io->stdout_reader, NULL, NULL, err);
    }
    if (open_input(io->stdin_path, &io->child[0], &io->stdin_writer, err) < 0 ||
        open_outputs(io, context, &io->child[1], &io->stdout_reader, &io->child[2], &io->stderr_reader, err) < 0)
        return -1;
    if (give_to_io_owner(io->child[0], "stdin", context, err) < 0 ||
        give_to_io_owner(io->child[1], "stdout", context, err) < 0 ||
        give_to_io_owner(io->child[2], "stderr", context, err) < 0)
        return -1;
    return 0;
}

int stdio_open(struct shim_stdio *io, const char *in, const char *out, const char *err_path, bool terminal,
               const struct stdio_context *context, struct pea_error *err)
{
    *io = (struct shim_stdio){
        .stdin_path = xstrdup(in ? in : ""),
        .stdout_path = xstrdup(out ? out : ""),
        .stderr_path = xstrdup(err_path ? err_path : ""),
        .terminal = terminal,
        .child = {-1, -1, -1},
        .stdin_writer = -1, .stdout_reader = -1, .stderr_reader = -1,
        .stdin_reader = -1, .console_out = -1, .console = -1, .logger_pidfd = -1,
    };
    if (open_process_ends(io, context, err) < 0) {
        stdio_release(io);
        return -1;
    }
    return 0;
}

void stdio_close_child_ends(struct shim_stdio *io)
{
    for (int i = 0; i < 3; i++)
        close_slot(&io->child[i]);
}

int stdio_attach_console(struct shim_stdio *io, int master, struct pea_error *err)
{
    io->console = master;
    int out_copy = fcntl(master, F_DUPFD_CLOEXEC, 3);
    if (out_copy < 0)
        return pea_fail(err, errno, "duplicate the pty master");
    io->output = pump_start(out_copy, take_fd(&io->console_out), err);
    if (!io->output)
        return -1;
    if (io->stdin_reader >= 0) {
        int in_copy = fcntl(master, F_DUPFD_CLOEXEC, 3);
        if (in_copy < 0)
            return pea_fail(err, errno, "duplicate the pty master");
        io->input = pump_start(take_fd(&io->stdin_reader), in_copy, err);
        if (!io->input)
            return -1;
    }
    return 0;
}

void stdio_close_stdin(struct shim_stdio *io)
{
    /* The client closes its end after this; the reader then sees EOF, as nobody else writes. */
    close_slot(&io->stdin_writer);
}

int stdio_resize(struct shim_stdio *io, unsigned width, unsigned height, struct pea_error *err)
{
    if (io->console < 0)
        return 0; /* no terminal: nothing to size, as with runc's shim */
    struct winsize size = {.ws_row = (unsigned short)height, .ws_col = (unsigned short)width};
    if (ioctl(io->console, TIOCSWINSZ, &size) < 0)
        return pea_fail(err, errno, "resize the terminal");
    return 0;
}

void stdio_release(struct shim_stdio *io)
{
    pump_free(io->input);
    pump_free(io->output);
    io->input = io->output = NULL;
    stdio_close_child_ends(io);
    close_slot(&io->stdin_writer);
    close_slot(&io->stdout_reader);
    close_slot(&io->stderr_reader);
    close_slot(&io->stdin_reader);
    close_slot(&io->console_out);
    close_slot(&io->console);
    if (io->logger_pidfd >= 0) {
        /* containerd's shim, too, ends its logger with SIGTERM when the process goes: a logger still reading
         * (a daemon inside the container kept the pipe) flushes and exits. The loop reaps it. */
        syscall(SYS_pidfd_send_signal, io->logger_pidfd, SIGTERM, NULL, 0);
        close_slot(&io->logger_pidfd);
    }
    io->logger_pid = 0;
    free(io->stdin_path);
    free(io->stdout_path);
    free(io->stderr_path);
    io->stdin_path = io->stdout_path = io->stderr_path = NULL;
}

int console_socket_open(struct console_socket *s, struct pea_error *err)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/pea-shim-pty-XXXXXX");
    s->fd = -1;
    s->path[0] = '\0';
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return pea_fail(err, errno, "create a directory for the console socket");
    }
    snprintf(s->path, sizeof s->path, "%s/pty.sock", s->dir);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", s->path);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s->fd, 1) < 0) {
        pea_fail(err, errno, "listen on console socket %s", s->path);
        console_socket_close(s);
        return -1;
    }
    return 0;
}

int console_socket_receive(struct console_socket *s, int *master, struct pea_error *err)
{
    AUTO_FD int conn = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
        if (errno == EAGAIN)
            return pea_fail(err, 0, "no terminal was sent to the console socket (is process.terminal set?)");
        return pea_fail(err, errno, "accept on console socket %s", s->path);
    }
    char name[256];
    struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct pollfd pfd = {.fd = conn, .events = POLLIN};
    if (poll(&pfd, 1, 5000) <= 0)
        return pea_fail(err, 0, "no terminal arrived on console socket %s", s->path);
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) < 0)
        return pea_fail(err, errno, "receive the terminal from console socket %s", s->path);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
        return pea_fail(err, 0, "console socket %s: the message carried no terminal", s->path);
    memcpy(master, CMSG_DATA(c), sizeof(int));
    return 0;
}

void console_socket_close(struct console_socket *s)
{
    if (s->fd >= 0)
        close(take_fd(&s->fd));
    if (s->path[0])
        unlink(s->path);
    if (s->dir[0])
        rmdir(s->dir);
    s->path[0] = s->dir[0] = '\0';
}
