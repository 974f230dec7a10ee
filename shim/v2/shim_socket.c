#include "shim_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pea/util.h"
#include "task.pb-c.h"
#include "ttrpc.h"
#include "ttrpc.pb-c.h"

/* How long `start` waits for a shim's answer to Join: a shim answers between two requests, and one of them may be
 * a Create that takes a while on a loaded node. */
#define JOIN_ANSWER_SECONDS 10

static char *lock_path_of(const char *socket_path) { return xasprintf("%s.lock", socket_path); }

int shim_socket_lock(const char *socket_path, bool wait, struct pea_error *err)
{
    AUTO_FREE char *lock_path = lock_path_of(socket_path);
    for (;;) {
        AUTO_FD int fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return pea_fail(err, errno, "open %s", lock_path);
        int rc;
        while ((rc = flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
            ;
        if (rc < 0) {
            int e = errno;
            pea_fail(err, e, "lock %s", lock_path);
            errno = e;
            return -1;
        }
        /* The holder before us removed the file as it unlocked: the lock we hold guards nothing, and the file that
         * now has the name (or a new one) is the one to lock. */
        struct stat held, named;
        if (fstat(fd, &held) < 0)
            return pea_fail(err, errno, "stat %s", lock_path);
        if (lstat(lock_path, &named) == 0) {
            if (named.st_dev == held.st_dev && named.st_ino == held.st_ino)
                return take_fd(&fd);
        } else if (errno != ENOENT) {
            return pea_fail(err, errno, "stat %s", lock_path);
        }
    }
}

void shim_socket_unlock(int *lock_fd, const char *socket_path, bool remove_socket)
{
    AUTO_FREE char *lock_path = lock_path_of(socket_path);
    if (remove_socket)
        unlink(socket_path);
    unlink(lock_path);
    if (*lock_fd >= 0)
        close(take_fd(lock_fd));
}

static int address_of(const char *path, struct sockaddr_un *addr, struct pea_error *err)
{
    *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr->sun_path)
        return pea_fail(err, 0, "socket path %s is too long", path);
    strcpy(addr->sun_path, path);
    return 0;
}

int shim_socket_listen(const char *path, struct pea_error *err)
{
    struct sockaddr_un addr;
    if (address_of(path, &addr, err) < 0)
        return -1;
    AUTO_FD int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return pea_fail(err, errno, "create a socket");
    /* bind(2) makes the socket file with the umask applied: 0600 from its first moment. */
    mode_t old_umask = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    int bind_errno = errno;
    umask(old_umask);
    if (rc < 0) {
        pea_fail(err, bind_errno, "bind %s", path);
        errno = bind_errno;
        return -1;
    }
    if (listen(fd, 64) < 0) {
        int e = errno;
        unlink(path);
        return pea_fail(err, e, "listen on %s", path);
    }
    return take_fd(&fd);
}

bool shim_socket_answers(const char *path)
{
    struct sockaddr_un addr;
    struct pea_error ignored;
    if (address_of(path, &addr, &ignored) < 0)
        return false;
    AUTO_FD int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return false;
    /* A full backlog (EAGAIN) is a live listener too; only a socket file nobody listens on is refused. */
    return connect(probe, (const struct sockaddr *)&addr, sizeof addr) == 0 || errno == EAGAIN;
}

static int send_join(int fd, const char *task_id)
{
    Containerd__Task__V2__ConnectRequest join = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
    join.id = (char *)task_id;
    size_t join_len = containerd__task__v2__connect_request__get_packed_size(&join);
    AUTO_FREE uint8_t *payload = xcalloc(1, join_len + 1);
    containerd__task__v2__connect_request__pack(&join, payload);
    Ttrpc__Request request = TTRPC__REQUEST__INIT;
    request.service = SHIM_GROUP_SERVICE;
    request.method = SHIM_GROUP_JOIN;
    request.payload.data = payload;
    request.payload.len = join_len;
    size_t body_len = ttrpc__request__get_packed_size(&request);
    AUTO_FREE uint8_t *frame = xcalloc(1, TTRPC_HEADER_SIZE + body_len);
    struct ttrpc_header h = {.length = (uint32_t)body_len, .stream_id = 1, .type = TTRPC_TYPE_REQUEST};
    ttrpc_header_encode(&h, frame);
    ttrpc__request__pack(&request, frame + TTRPC_HEADER_SIZE);
    return write_all(fd, frame, TTRPC_HEADER_SIZE + body_len);
}

/* Read exactly len bytes: 1 done, 0 the peer closed first, -1 with errno (EAGAIN: the receive timeout passed). */
static int read_exactly(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        got += (size_t)n;
    }
    return 1;
}

int shim_socket_join(const char *path, const char *task_id, enum shim_join_result *result, struct pea_error *err)
{
    struct sockaddr_un addr;
    if (address_of(path, &addr, err) < 0)
        return -1;
    AUTO_FD int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return pea_fail(err, errno, "create a socket");
    /* The timeouts bound connect(2) on a full backlog and the wait for the answer. */
    struct timeval timeout = {.tv_sec = JOIN_ANSWER_SECONDS};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0)
        return pea_fail(err, errno, "set timeouts on a socket");
    if (connect(fd, (const struct sockaddr *)&addr, sizeof addr) < 0) {
        if (errno == ECONNREFUSED || errno == ENOENT) {
            *result = SHIM_IS_GONE;
            return 0;
        }
        return pea_fail(err, errno, "connect to the shim at %s", path);
    }
    if (send_join(fd, task_id) < 0) {
        if (errno == EPIPE || errno == ECONNRESET) {
            *result = SHIM_IS_GONE;
            return 0;
        }
        return pea_fail(err, errno, "send to the shim at %s", path);
    }
    uint8_t header[TTRPC_HEADER_SIZE];
    int rc = read_exactly(fd, header, sizeof header);
    if (rc <= 0) {
        if (rc == 0 || errno == ECONNRESET) {
            *result = SHIM_IS_GONE;
            return 0;
        }
        return pea_fail(err, errno == EAGAIN ? ETIMEDOUT : errno, "wait for the shim at %s to answer", path);
    }
    struct ttrpc_header h;
    ttrpc_header_decode(header, &h);
    if (h.type != TTRPC_TYPE_RESPONSE || h.stream_id != 1 || h.length > TTRPC_MESSAGE_MAX)
        return pea_fail(err, 0, "the shim at %s answered with a malformed frame", path);
    AUTO_FREE uint8_t *body = xcalloc(1, h.length + 1);
    if (read_exactly(fd, body, h.length) <= 0)
        return pea_fail(err, errno, "read the answer of the shim at %s", path);
    Ttrpc__Response *response = ttrpc__response__unpack(NULL, h.length, body);
    if (!response)
        return pea_fail(err, 0, "the shim at %s answered with a malformed response", path);
    int code = response->status ? response->status->code : TTRPC_OK;
    AUTO_FREE char *message = xstrdup(response->status && response->status->message ? response->status->message : "");
    ttrpc__response__free_unpacked(response, NULL);
    if (code == TTRPC_OK || code == TTRPC_UNIMPLEMENTED) {
        *result = SHIM_JOINED;
        return 0;
    }
    if (code == SHIM_JOIN_LEAVING_CODE) {
        *result = SHIM_IS_LEAVING;
        return 0;
    }
    return pea_fail(err, 0, "the shim at %s refused task %s: %s", path, task_id, message);
}
