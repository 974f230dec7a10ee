/* libFuzzer target: whatever bytes a client sends on containerd-shim-pea-v2's socket, the framing hands the handler
 * only whole, decoded requests on odd stream ids, answers each broken frame with an error, and neither crashes nor
 * leaks. The input goes through a socket pair in two writes, so frames also arrive split. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ttrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void answer(struct ttrpc_conn *conn, const struct ttrpc_request *req, void *ctx)
{
    (void)ctx;
    if (req->stream_id % 2 == 0 || !req->service || !req->method || (req->payload_len && !req->payload))
        abort();
    ttrpc_respond(conn, req->stream_id, TTRPC_OK, NULL, req->payload, req->payload_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];
    if (size > 1 << 16 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return 0;
    int bigger = 1 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &bigger, sizeof bigger);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &bigger, sizeof bigger);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    struct ttrpc_conn *conn = ttrpc_conn_new(fds[1], answer, NULL);
    size_t half = size / 2;
    if (write(fds[0], data, half) == (ssize_t)half) {
        ttrpc_conn_on_readable(conn);
        if (write(fds[0], data + half, size - half) == (ssize_t)(size - half))
            ttrpc_conn_on_readable(conn);
    }
    ttrpc_conn_free(conn);
    close(fds[0]);
    return 0;
}
