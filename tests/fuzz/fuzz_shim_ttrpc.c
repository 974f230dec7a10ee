/* libFuzzer target: whatever bytes a client sends on containerd-shim-pea-v2's socket, the framing hands the handler
 * only whole, decoded requests on odd stream ids, answers each broken frame with an error, and neither crashes nor
 * leaks. The input goes through a socket pair in two writes, so frames also arrive split. The same bytes, taken as
 * what containerd's events service answers the shim (ttrpc_take_responses), in two parts into the events client's
 * bounded buffer: each response reaches the handler with a message when it failed, nothing is read past the
 * buffer. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

static bool take(uint32_t stream_id, int code, const char *message, const uint8_t *payload, size_t payload_len,
                 void *ctx)
{
    (void)stream_id;
    size_t *count = ctx;
    if ((code != TTRPC_OK && !message) || (payload_len && !payload))
        abort();
    return ++*count % 7 != 0; /* now and then the handler gives the connection up */
}

static void take_responses(const uint8_t *data, size_t size)
{
    uint8_t buf[TTRPC_HEADER_SIZE + 4096];
    size_t len = 0, count = 0;
    size_t half = size / 2;
    const uint8_t *parts[] = {data, data + half};
    size_t sizes[] = {half, size - half};
    for (int i = 0; i < 2; i++) {
        size_t n = sizes[i] < sizeof buf - len ? sizes[i] : sizeof buf - len;
        memcpy(buf + len, parts[i], n);
        len += n;
        if (ttrpc_take_responses(buf, &len, sizeof buf, take, &count) < 0)
            return;
        if (len > sizeof buf)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    take_responses(data, size);
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
