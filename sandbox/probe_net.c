/* The network checks of probes and hooks (httpGet, tcpSocket, grpc), as the kubelet makes them. They run in a
 * child of the supervisor that has joined the pod's network namespace (handler.c), so plain blocking code bounded
 * by a deadline is enough: the loop never waits for them. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle_internal.h"

/* What the kubelet sends as its User-Agent (Kubernetes 1.33's). */
#define PROBE_USER_AGENT "kube-probe/1.33"

struct conn {
    int fd;
    long long deadline_ms;
    /* HTTPS: libssl, loaded when a probe first needs it (the supervisor itself does not link it). */
    void *ssl;
    int (*ssl_read)(void *, void *, int);
    int (*ssl_write)(void *, const void *, int);
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void say(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

/* "198.18.0.2:8080", or "[fd00::2]:8080". */
static void host_port(const char *host, int port, char *out, size_t len)
{
    snprintf(out, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* Connect within the deadline; the socket is left blocking, each call bounded by SO_RCVTIMEO/SO_SNDTIMEO (libssl's
 * calls too). */
static int dial(struct conn *c, const char *host, int port, char *msg, size_t len)
{
    char service[16], where[300];
    snprintf(service, sizeof service, "%d", port);
    host_port(host, port, where, sizeof where);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    int r = getaddrinfo(host, service, &hints, &ai);
    if (r != 0) {
        say(msg, len, "dial tcp %s: lookup %s: %s", where, host, gai_strerror(r));
        return -1;
    }
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int error = c->fd < 0 || (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) ? errno : 0;
    freeaddrinfo(ai);
    while (!error) {
        long long left = c->deadline_ms - now_ms();
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        socklen_t elen = sizeof error;
        if (n == 0)
            error = ETIMEDOUT;
        else if (n < 0 || getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &elen) < 0)
            error = errno;
        break;
    }
    if (error) {
        say(msg, len, "dial tcp %s: connect: %s", where, strerror(error));
        return -1;
    }
    long long left = c->deadline_ms - now_ms();
    if (left < 1)
        left = 1;
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        say(msg, len, "dial tcp %s: %s", where, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- TLS without certificate verification, as the kubelet's HTTPS probes ---- */

/* libssl 3's entry points we use, declared here so that building pea needs no OpenSSL headers. */
#define SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define TLSEXT_NAMETYPE_HOST_NAME 0

static int tls_start(struct conn *c, const char *host, char *msg, size_t len)
{
    void *lib = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        say(msg, len, "HTTPS needs libssl.so.3 (OpenSSL 3): %s", dlerror());
        return -1;
    }
    const void *(*client_method)(void) = (const void *(*)(void))dlsym(lib, "TLS_client_method");
    void *(*ctx_new)(const void *) = (void *(*)(const void *))dlsym(lib, "SSL_CTX_new");
    void *(*ssl_new)(void *) = (void *(*)(void *))dlsym(lib, "SSL_new");
    int (*set_fd)(void *, int) = (int (*)(void *, int))dlsym(lib, "SSL_set_fd");
    long (*ctrl)(void *, int, long, void *) = (long (*)(void *, int, long, void *))dlsym(lib, "SSL_ctrl");
    int (*do_connect)(void *) = (int (*)(void *))dlsym(lib, "SSL_connect");
    c->ssl_read = (int (*)(void *, void *, int))dlsym(lib, "SSL_read");
    c->ssl_write = (int (*)(void *, const void *, int))dlsym(lib, "SSL_write");
    if (!client_method || !ctx_new || !ssl_new || !set_fd || !ctrl || !do_connect || !c->ssl_read || !c->ssl_write) {
        say(msg, len, "HTTPS: libssl.so.3 lacks the functions pea uses");
        return -1;
    }
    /* A new context verifies nothing (SSL_VERIFY_NONE): the kubelet skips verification too. The process exits
     * right after the check, which frees them. */
    void *ctx = client_method() ? ctx_new(client_method()) : NULL;
    c->ssl = ctx ? ssl_new(ctx) : NULL;
    if (!c->ssl || set_fd(c->ssl, c->fd) != 1) {
        say(msg, len, "HTTPS: could not set up a TLS session");
        return -1;
    }
    ctrl(c->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_HOST_NAME, (void *)host);
    if (do_connect(c->ssl) != 1) {
        say(msg, len, "TLS handshake with %s failed%s", host, now_ms() >= c->deadline_ms ? ": timed out" : "");
        return -1;
    }
    return 0;
}

static ssize_t conn_read(struct conn *c, void *buf, size_t n)
{
    if (c->ssl) {
        int r = c->ssl_read(c->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
        return r > 0 ? r : r == 0 ? 0 : -1;
    }
    ssize_t r;
    while ((r = read(c->fd, buf, n)) < 0 && errno == EINTR)
        ;
    return r;
}

static int conn_write(struct conn *c, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t r = c->ssl ? c->ssl_write(c->ssl, p, (int)n) : write(c->fd, p, n);
        if (r < 0 && !c->ssl && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- httpGet ---- */

static bool has_header(const struct pea_pod_handler *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (strcasecmp(h->headers[i].name, name) == 0)
            return true;
    return false;
}

static bool check_http(struct conn *c, const struct pea_pod_handler *h, const char *host, char *msg, size_t len)
{
    char where[300];
    host_port(host, h->port, where, sizeof where);
    const char *scheme = h->is_https ? "https" : "http";
    char url[2048];
    snprintf(url, sizeof url, "%s://%s%s%s", scheme, where, h->path[0] == '/' ? "" : "/", h->path);
    if (dial(c, host, h->port, msg, len) < 0 || (h->is_https && tls_start(c, host, msg, len) < 0)) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", msg);
        say(msg, len, "Get \"%s\": %s", url, reason);
        return false;
    }
    /* The request as the kubelet makes it; a header the probe sets replaces the default of that name. */
    char *req = NULL;
    size_t req_len = 0;
    FILE *f = open_memstream(&req, &req_len);
    if (!f) {
        say(msg, len, "Get \"%s\": out of memory", url);
        return false;
    }
    fprintf(f, "GET %s%s HTTP/1.1\r\n", h->path[0] == '/' ? "" : "/", h->path);
    if (!has_header(h, "Host"))
        fprintf(f, "Host: %s\r\n", where);
    if (!has_header(h, "User-Agent"))
        fprintf(f, "User-Agent: " PROBE_USER_AGENT "\r\n");
    if (!has_header(h, "Accept"))
        fprintf(f, "Accept: */*\r\n");
    for (size_t i = 0; i < h->n_headers; i++)
        fprintf(f, "%s: %s\r\n", h->headers[i].name, h->headers[i].value);
    fprintf(f, "Connection: close\r\n\r\n");
    fclose(f);
    int w = conn_write(c, req, req_len);
    free(req);
    if (w < 0) {
        say(msg, len, "Get \"%s\": write: %s", url, now_ms() >= c->deadline_ms ? "timed out" : strerror(errno));
        return false;
    }
    /* The status line is all that decides. */
    char line[256];
    size_t got = 0;
    while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
        ssize_t n = conn_read(c, line + got, sizeof line - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    line[got] = '\0';
    int status = 0;
    if (sscanf(line, "HTTP/%*d.%*d %d", &status) != 1 && sscanf(line, "HTTP/%*d %d", &status) != 1) {
        bool timed_out = got == 0 && now_ms() >= c->deadline_ms;
        say(msg, len, "Get \"%s\": %s", url, timed_out ? "timed out awaiting the response" : "malformed HTTP response");
        return false;
    }
    if (status >= 200 && status < 400) {
        say(msg, len, "HTTP probe succeeded with statuscode: %d", status);
        return true;
    }
    say(msg, len, "HTTP probe failed with statuscode: %d", status);
    return false;
}

/* ---- grpc: grpc.health.v1.Health/Check over HTTP/2 without TLS ---- */

enum { H2_DATA = 0, H2_HEADERS = 1, H2_RST_STREAM = 3, H2_SETTINGS = 4, H2_PING = 6, H2_GOAWAY = 7 };
enum { H2_END_STREAM = 0x1, H2_ACK = 0x1, H2_END_HEADERS = 0x4, H2_PADDED = 0x8 };

static void frame_header(unsigned char *p, size_t length, int type, int flags, uint32_t stream)
{
    p[0] = (unsigned char)(length >> 16), p[1] = (unsigned char)(length >> 8), p[2] = (unsigned char)length;
    p[3] = (unsigned char)type, p[4] = (unsigned char)flags;
    p[5] = (unsigned char)(stream >> 24), p[6] = (unsigned char)(stream >> 16);
    p[7] = (unsigned char)(stream >> 8), p[8] = (unsigned char)stream;
}

/* An HPACK literal header field without indexing whose name is static-table entry index (0: a new name follows);
 * strings are short (below 127) and not Huffman-coded. */
static void hpack_literal(FILE *f, int index, const char *name, const char *value)
{
    if (index < 15) {
        fputc(index, f);
    } else {
        fputc(0x0f, f);
        fputc(index - 15, f);
    }
    if (!index) {
        fputc((int)strlen(name), f);
        fputs(name, f);
    }
    fputc((int)strlen(value), f);
    fputs(value, f);
}

static int read_full(struct conn *c, unsigned char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = conn_read(c, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static bool check_grpc(struct conn *c, const struct pea_pod_handler *h, const char *host, char *msg, size_t len)
{
    char where[300];
    host_port(host, h->port, where, sizeof where);
    /* :authority goes out as one short HPACK string (a one-byte length). */
    if (strlen(where) > 126) {
        say(msg, len, "host \"%s\" is too long for a gRPC check", host);
        return false;
    }
    if (dial(c, host, h->port, msg, len) < 0) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", msg);
        say(msg, len, "failed to connect service \"%s\": %s", where, reason);
        return false;
    }
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (!f) {
        say(msg, len, "out of memory");
        return false;
    }
    unsigned char header[9];
    fputs("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", f);
    frame_header(header, 0, H2_SETTINGS, 0, 0);
    fwrite(header, 1, sizeof header, f);
    /* HEADERS: :method POST and :scheme http from the static table, then :path, :authority, content-type, te. */
    char *block = NULL;
    size_t block_len = 0;
    FILE *b = open_memstream(&block, &block_len);
    if (!b) {
        fclose(f);
        free(out);
        say(msg, len, "out of memory");
        return false;
    }
    fputc(0x83, b);
    fputc(0x86, b);
    hpack_literal(b, 4, NULL, "/grpc.health.v1.Health/Check");
    hpack_literal(b, 1, NULL, where);
    hpack_literal(b, 31, NULL, "application/grpc");
    hpack_literal(b, 0, "te", "trailers");
    hpack_literal(b, 0, "user-agent", PROBE_USER_AGENT);
    fclose(b);
    frame_header(header, block_len, H2_HEADERS, H2_END_HEADERS, 1);
    fwrite(header, 1, sizeof header, f);
    fwrite(block, 1, block_len, f);
    free(block);
    /* DATA: one uncompressed gRPC message, HealthCheckRequest{service = 1} (field 1, length-delimited). */
    size_t service_len = strlen(h->grpc_service);
    size_t message_len = service_len ? 2 + service_len : 0;
    frame_header(header, 5 + message_len, H2_DATA, H2_END_STREAM, 1);
    fwrite(header, 1, sizeof header, f);
    unsigned char prefix[5] = {0, 0, 0, 0, (unsigned char)message_len};
    fwrite(prefix, 1, sizeof prefix, f);
    if (service_len) {
        fputc(0x0a, f);
        fputc((int)service_len, f);
        fputs(h->grpc_service, f);
    }
    fclose(f);
    int w = conn_write(c, out, out_len);
    free(out);
    if (w < 0) {
        say(msg, len, "failed to connect service \"%s\": write: %s", where, strerror(errno));
        return false;
    }
    /* Read frames until stream 1's message: HealthCheckResponse{status = 1 (varint)}, SERVING being 1. A stream that
     * ends without one carries an error status (the service is unknown, say). */
    static const char *const statuses[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
    unsigned char payload[16384];
    for (;;) {
        if (read_full(c, header, sizeof header) < 0) {
            say(msg, len, "health rpc to \"%s\" failed: %s", where,
                now_ms() >= c->deadline_ms ? "timed out" : "connection closed");
            return false;
        }
        size_t length = (size_t)header[0] << 16 | (size_t)header[1] << 8 | header[2];
        int type = header[3], flags = header[4];
        uint32_t stream = ((uint32_t)header[5] << 24 | (uint32_t)header[6] << 16 | (uint32_t)header[7] << 8 |
                           header[8]) & 0x7fffffff;
        if (length > sizeof payload || read_full(c, payload, length) < 0) {
            say(msg, len, "health rpc to \"%s\" failed: bad frame", where);
            return false;
        }
        if (type == H2_SETTINGS && !(flags & H2_ACK)) {
            frame_header(header, 0, H2_SETTINGS, H2_ACK, 0);
            conn_write(c, header, sizeof header);
        } else if (type == H2_PING && !(flags & H2_ACK) && length == 8) {
            unsigned char pong[17];
            frame_header(pong, 8, H2_PING, H2_ACK, 0);
            memcpy(pong + 9, payload, 8);
            conn_write(c, pong, sizeof pong);
        } else if (type == H2_GOAWAY || (type == H2_RST_STREAM && stream == 1)) {
            say(msg, len, "health rpc to \"%s\" failed: the server reset the stream", where);
            return false;
        } else if (type == H2_DATA && stream == 1) {
            const unsigned char *p = payload;
            size_t n = length;
            if (flags & H2_PADDED) {
                if (n < 1 || p[0] >= n) {
                    say(msg, len, "health rpc to \"%s\" failed: bad frame", where);
                    return false;
                }
                n -= 1 + p[0];
                p++;
            }
            if (n < 5 || p[0] != 0) {
                say(msg, len, "health rpc to \"%s\" failed: unexpected response", where);
                return false;
            }
            /* An empty message is status UNKNOWN (0), protobuf's default. */
            int status = n >= 7 && p[5] == 0x08 && p[6] < 0x80 ? p[6] : 0;
            const char *name = status < 4 ? statuses[status] : "UNKNOWN";
            if (status == 1) {
                say(msg, len, "service is SERVING");
                return true;
            }
            say(msg, len, "service unhealthy (responded with \"%s\")", name);
            return false;
        } else if (type == H2_HEADERS && stream == 1 && (flags & H2_END_STREAM)) {
            say(msg, len, "health rpc to \"%s\" failed: no status in the answer (an unknown service?)", where);
            return false;
        }
    }
}

bool probe_net_check(const struct pea_pod_handler *h, const char *default_host, int timeout_ms, char *msg,
                     size_t len)
{
    struct conn c = {.fd = -1, .deadline_ms = now_ms() + timeout_ms};
    const char *host = h->host ? h->host : default_host;
    char where[300];
    host_port(host, h->port, where, sizeof where);
    switch (h->type) {
    case PEA_HANDLER_TCP_SOCKET:
        if (dial(&c, host, h->port, msg, len) < 0)
            return false;
        say(msg, len, "connected to %s", where);
        return true;
    case PEA_HANDLER_HTTP_GET: return check_http(&c, h, host, msg, len);
    case PEA_HANDLER_GRPC: return check_grpc(&c, h, host, msg, len);
    default: say(msg, len, "not a network check"); return false;
    }
}
