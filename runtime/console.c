#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "pea/console.h"
#include "pea/rootfs.h"
#include "pea/util.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* The process's user owns its terminal, as with runc and login(1): it can then reopen it (/dev/tty, /proc/self/fd/0),
 * change its modes, and tools that check the owner accept it. Only the uid: the group stays the one devpts gave
 * (its gid= option, tty's 5 in the usual config). As runc, a terminal that cannot change hands stays as it is
 * rather than failing the container: an id the user namespace does not map (EINVAL), an owner outside it (EPERM). */
static int give_terminal_to(int slave, uid_t uid, struct pea_error *err)
{
    struct stat st;
    if (fstat(slave, &st) < 0)
        return pea_fail(err, errno, "stat pty slave");
    if (st.st_uid == uid || fchown(slave, uid, (gid_t)-1) == 0 || errno == EINVAL || errno == EPERM)
        return 0;
    return pea_fail(err, errno, "give the terminal to uid %u", (unsigned)uid);
}

int console_setup_in_container(unsigned height, unsigned width, bool bind_dev_console, uid_t owner,
                               struct pea_error *err)
{
    AUTO_FD int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return pea_fail(err, errno, "open /dev/pts/ptmx (a terminal needs devpts mounted on /dev/pts)");
    struct statfs st;
    if (fstatfs(master, &st) < 0 || st.f_type != DEVPTS_SUPER_MAGIC)
        return pea_fail(err, 0, "open /dev/pts/ptmx: not on devpts");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return pea_fail(err, errno, "unlock pty");
    AUTO_FD int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return pea_fail(err, errno, "open pty slave");
    if (give_terminal_to(slave, owner, err) < 0)
        return -1;
    if (height || width) {
        struct winsize ws = {.ws_row = (unsigned short)height, .ws_col = (unsigned short)width};
        if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
            return pea_fail(err, errno, "set console size");
    }
    if (bind_dev_console && rootfs_bind_console(slave, err) < 0)
        return -1;
    if (setsid() < 0 && errno != EPERM)
        return pea_fail(err, errno, "setsid");
    if (ioctl(slave, TIOCSCTTY, 0) < 0)
        return pea_fail(err, errno, "set controlling terminal");
    for (int fd = 0; fd <= 2; fd++)
        if (dup2(slave, fd) < 0)
            return pea_fail(err, errno, "dup pty onto fd %d", fd);
    return take_fd(&master);
}

int console_send_fd(int sock, int fd, const void *payload, size_t len)
{
    char dummy = 0;
    struct iovec iov = {.iov_base = (void *)(len ? payload : &dummy), .iov_len = len ? len : 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

ssize_t console_recv_fd(int sock, int *fd, void *payload, size_t len)
{
    *fd = -1;
    struct iovec iov = {.iov_base = payload, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(fd, CMSG_DATA(c), sizeof(int));
    return n;
}

int console_send_fd_to_socket(const char *socket_path, const char *what, int fd, const char *payload,
                              struct pea_error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof addr.sun_path)
        return pea_fail(err, 0, "%s path too long: %s", what, socket_path);
    strcpy(addr.sun_path, socket_path);
    AUTO_FD int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return pea_fail(err, errno, "%s", what);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        return pea_fail(err, errno, "connect to %s %s", what, socket_path);
    if (console_send_fd(sock, fd, payload, strlen(payload)) < 0)
        return pea_fail(err, errno, "send fd to %s %s", what, socket_path);
    return 0;
}

int console_send_to_socket(const char *socket_path, int master, struct pea_error *err)
{
    char name[64] = "/dev/ptmx";
    int n = -1;
    if (ioctl(master, TIOCGPTN, &n) == 0)
        snprintf(name, sizeof name, "/dev/pts/%d", n);
    return console_send_fd_to_socket(socket_path, "console socket", master, name, err);
}

void console_copy_window_size(int from, int to)
{
    struct winsize ws;
    if (ioctl(from, TIOCGWINSZ, &ws) == 0)
        ioctl(to, TIOCSWINSZ, &ws);
}

bool console_pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    return write_all(to, buf, (size_t)n) == 0;
}

bool console_make_raw(int fd, struct termios *saved)
{
    if (!isatty(fd) || tcgetattr(fd, saved) < 0)
        return false;
    struct termios raw = *saved;
    cfmakeraw(&raw);
    return tcsetattr(fd, TCSANOW, &raw) == 0;
}
