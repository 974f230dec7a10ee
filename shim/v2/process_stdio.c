#include "process_stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "loop.h"
#include "pea/util.h"

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


/* "fifo:///p", "/p" → a fifo (or plain file) path; "file:///p" → a file to append to; binary:// is refused. */
static int output_target(const char *uri, const char **path, bool *is_file, struct pea_error *err)
{
    *is_file = false;
    if (strncmp(uri, "binary://", 9) == 0)
        return pea_fail(err, 0, "stdio %s: binary:// log URIs are not supported by pea's shim yet", uri);
    if (strncmp(uri, "file://", 7) == 0) {
        *is_file = true;
        *path = uri + 7;
    } else if (strncmp(uri, "fifo://", 7) == 0) {
        *path = uri + 7;
    } else if (strstr(uri, "://")) {
        return pea_fail(err, 0, "stdio %s: unsupported scheme", uri);
    } else {
        *path = uri;
    }
    if ((*path)[0] != '/')
        return pea_fail(err, 0, "stdio %s: not an absolute path", uri);
    return 0;
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
static int open_output(const char *uri, int *writer, int *keep_reader, struct pea_error *err)
{
    *writer = *keep_reader = -1;
    if (!uri || !*uri) {
        *writer = open("/dev/null", O_WRONLY | O_CLOEXEC);
        return *writer < 0 ? pea_fail(err, errno, "open /dev/null") : 0;
    }
    const char *path = NULL;
    bool is_file;
    if (output_target(uri, &path, &is_file, err) < 0)
        return -1;
    if (is_file) {
        *writer = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
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

static void close_slot(int *fd)
{
    if (*fd >= 0)
        close(take_fd(fd));
}

static int open_process_ends(struct shim_stdio *io, struct pea_error *err)
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
        return open_output(io->stdout_path, &io->console_out, &io->stdout_reader, err);
    }
    if (open_input(io->stdin_path, &io->child[0], &io->stdin_writer, err) < 0 ||
        open_output(io->stdout_path, &io->child[1], &io->stdout_reader, err) < 0)
        return -1;
    return open_output(io->stderr_path, &io->child[2], &io->stderr_reader, err);
}

int stdio_open(struct shim_stdio *io, const char *in, const char *out, const char *err_path, bool terminal,
               struct pea_error *err)
{
    *io = (struct shim_stdio){
        .stdin_path = xstrdup(in ? in : ""),
        .stdout_path = xstrdup(out ? out : ""),
        .stderr_path = xstrdup(err_path ? err_path : ""),
        .terminal = terminal,
        .child = {-1, -1, -1},
        .stdin_writer = -1, .stdout_reader = -1, .stderr_reader = -1,
        .stdin_reader = -1, .console_out = -1, .console = -1,
    };
    if (open_process_ends(io, err) < 0) {
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
