#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "events_service.pb-c.h"
#include "google_shapes.pb-c.h"
#include "loop.h"
#include "pea/util.h"
#include "shim_log.h"
#include "ttrpc.h"
#include "ttrpc.pb-c.h"

#define PUBLISH_ATTEMPTS 5
#define FORWARD_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define FORWARD_TIMEOUT_SECONDS 10
/* containerd takes the namespace of a ttrpc call from this metadata key (namespaces.WithNamespace over ttrpc). */
#define NAMESPACE_METADATA_KEY "containerd-namespace-ttrpc"
/* Forward answers with an Empty or a status: a few dozen bytes. Anything longer is not an answer we asked for. */
#define RESPONSE_MAX 4096

extern char **environ;

struct queued_event {
    struct queued_event *next;
    char *topic;
    const char *type_url; /* the event's descriptor name, static */
    uint8_t *value;       /* the packed event */
    size_t value_len;
    struct timespec at;   /* when it happened, the envelope's timestamp */
    int attempts;
};

static const char *publisher, *containerd_address, *events_namespace;
static char ttrpc_socket[sizeof ((struct sockaddr_un *)0)->sun_path];
static struct queued_event *head, *tail;
static struct loop_watch timer = {.fd = -1};
static bool waits_for_retry;

/* The publish binary's process for `head`, or -1. */
static pid_t publisher_pid = -1;

/* The ttrpc connection and the Forward of `head` on it. */
static struct loop_watch forward_conn = {.fd = -1};
static bool forward_in_flight;
static uint32_t forward_stream_id, next_stream_id = 1;
static uint8_t *forward_out;
static size_t forward_out_len, forward_out_sent;
static uint8_t forward_in[TTRPC_HEADER_SIZE + RESPONSE_MAX];
static size_t forward_in_len;
/* Counts connections given up, so a reader learns that a handler replaced the one it was reading. */
static unsigned forward_generation;

static void start_next(void);

static void drop_head(void)
{
    struct queued_event *e = head;
    head = e->next;
    if (!head)
        tail = NULL;
    free(e->topic);
    free(e->value);
    free(e);
}

static void arm_timer(time_t seconds)
{
    struct itimerspec when = {.it_value = {.tv_sec = seconds}};
    timerfd_settime(timer.fd, 0, &when, NULL);
}

/* The attempt for `head` failed: retry it later, or give up on it and go on with the next. */
static void attempt_failed(void)
{
    if (++head->attempts >= PUBLISH_ATTEMPTS) {
        shim_log("publish %s: gave up after %d attempts", head->topic, head->attempts);
        drop_head();
        start_next();
        return;
    }
    arm_timer(head->attempts);
    waits_for_retry = true;
}

static void attempt_succeeded(void)
{
    drop_head();
    start_next();
}

static void pack_any(const struct queued_event *e, Google__Protobuf__Any *any)
{
    any->type_url = (char *)e->type_url;
    any->value.data = e->value;
    any->value.len = e->value_len;
}

/* ---- ttrpc: Events/Forward on one persistent connection ---- */

static void forward_disconnect(void)
{
    if (forward_conn.fd < 0)
        return;
    loop_remove(&forward_conn);
    close(forward_conn.fd);
    forward_conn.fd = -1;
    forward_generation++;
    forward_in_len = 0;
    free(forward_out);
    forward_out = NULL;
    forward_out_len = forward_out_sent = 0;
}

/* The Forward in flight got no answer: the connection is of no use any more. */
static void forward_failed(const char *why)
{
    shim_log("publish %s: forward to %s: %s", head->topic, ttrpc_socket, why);
    forward_disconnect();
    forward_in_flight = false;
    attempt_failed();
}

static int forward_flush(void)
{
    while (forward_out_sent < forward_out_len) {
        ssize_t n = send(forward_conn.fd, forward_out + forward_out_sent, forward_out_len - forward_out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return loop_modify(&forward_conn, EPOLLIN | EPOLLOUT);
            return -1;
        }
        forward_out_sent += (size_t)n;
    }
    free(forward_out);
    forward_out = NULL;
    forward_out_len = forward_out_sent = 0;
    return loop_modify(&forward_conn, EPOLLIN);
}

/* The answer to the Forward in flight; answers to other stream ids (none are expected) are skipped. False when the
 * connection was given up. */
static bool forward_on_response(uint32_t stream_id, int code, const char *message, const uint8_t *payload,
                                size_t payload_len, void *ctx)
{
    (void)payload;
    (void)payload_len;
    (void)ctx;
    if (stream_id != forward_stream_id || !forward_in_flight)
        return true;
    unsigned generation = forward_generation;
    forward_in_flight = false;
    arm_timer(0);
    if (code != TTRPC_OK) {
        shim_log("publish %s: containerd refused it: %s (code %d)", head->topic, message, code);
        attempt_failed();
    } else {
        attempt_succeeded();
    }
    return forward_generation == generation;
}

static void forward_on_readable(void)
{
    for (;;) {
        ssize_t n = recv(forward_conn.fd, forward_in + forward_in_len, sizeof forward_in - forward_in_len,
                         MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            /* containerd went away (restarting). An idle connection is simply made again for the next event. */
            if (forward_in_flight)
                forward_failed(n == 0 ? "connection closed" : strerror(errno));
            else
                forward_disconnect();
            return;
        }
        forward_in_len += (size_t)n;
        unsigned generation = forward_generation;
        if (ttrpc_take_responses(forward_in, &forward_in_len, sizeof forward_in, forward_on_response, NULL) < 0) {
            if (forward_in_flight)
                forward_failed("oversized message");
            else
                forward_disconnect();
            return;
        }
        if (forward_generation != generation)
            return; /* a handler gave the connection up */
    }
}

static void forward_on_event(struct loop_watch *w, uint32_t events)
{
    (void)w;
    if ((events & EPOLLOUT) && forward_flush() < 0) {
        forward_failed(strerror(errno));
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        forward_on_readable();
}

static int forward_connect(void)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, ttrpc_socket);
    AUTO_FD int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        return -1;
    forward_conn.fd = fd;
    if (loop_add(&forward_conn, EPOLLIN) < 0) {
        forward_conn.fd = -1;
        return -1;
    }
    take_fd(&fd);
    return 0;
}

static void forward_send_head(void)
{
    if (forward_conn.fd < 0 && forward_connect() < 0) {
        shim_log("publish %s: connect to %s: %s", head->topic, ttrpc_socket, strerror(errno));
        attempt_failed();
        return;
    }
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    pack_any(head, &any);
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    at.seconds = head->at.tv_sec;
    at.nanos = (int32_t)head->at.tv_nsec;
    Containerd__Services__Events__Ttrpc__V1__Envelope envelope =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
    envelope.timestamp = &at;
    envelope.namespace_ = (char *)events_namespace;
    envelope.topic = head->topic;
    envelope.event = &any;
    Containerd__Services__Events__Ttrpc__V1__ForwardRequest forward =
        CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
    forward.envelope = &envelope;
    size_t payload_len = protobuf_c_message_get_packed_size(&forward.base);
    AUTO_FREE uint8_t *payload = xmalloc(payload_len + 1);
    protobuf_c_message_pack(&forward.base, payload);

    Ttrpc__KeyValue ns = TTRPC__KEY_VALUE__INIT;
    ns.key = NAMESPACE_METADATA_KEY;
    ns.value = (char *)events_namespace;
    Ttrpc__KeyValue *metadata[] = {&ns};
    Ttrpc__Request request = TTRPC__REQUEST__INIT;
    request.service = FORWARD_SERVICE;
    request.method = "Forward";
    request.payload.data = payload;
    request.payload.len = payload_len;
    request.timeout_nano = (int64_t)FORWARD_TIMEOUT_SECONDS * 1000000000;
    request.n_metadata = 1;
    request.metadata = metadata;

    forward_stream_id = next_stream_id;
    next_stream_id += 2; /* a client's streams are odd */
    size_t size = ttrpc__request__get_packed_size(&request);
    forward_out = xmalloc(TTRPC_HEADER_SIZE + size);
    struct ttrpc_header h = {.length = (uint32_t)size, .stream_id = forward_stream_id, .type = TTRPC_TYPE_REQUEST};
    ttrpc_header_encode(&h, forward_out);
    ttrpc__request__pack(&request, forward_out + TTRPC_HEADER_SIZE);
    forward_out_len = TTRPC_HEADER_SIZE + size;
    forward_out_sent = 0;
    forward_in_flight = true;
    arm_timer(FORWARD_TIMEOUT_SECONDS);
    if (forward_flush() < 0)
        forward_failed(strerror(errno));
}

/* ---- the publish binary, per event ---- */

static void publisher_spawn_head(void)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        shim_log("publish %s: create a pipe: %s", head->topic, strerror(errno));
        drop_head();
        start_next();
        return;
    }
    const char *argv[] = {publisher, "--address", containerd_address, "publish", "--topic", head->topic,
                          "--namespace", events_namespace, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipefd[0], STDIN_FILENO);
    posix_spawnattr_init(&attr);
    daemon_spawn_with_clean_signals(&attr);
    int rc = posix_spawn(&publisher_pid, publisher, &actions, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pipefd[0]);
    if (rc != 0) {
        publisher_pid = -1;
        shim_log("publish %s: execute %s: %s", head->topic, publisher, strerror(rc));
        close(pipefd[1]);
        drop_head();
        start_next();
        return;
    }
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    pack_any(head, &any);
    size_t len = google__protobuf__any__get_packed_size(&any);
    AUTO_FREE uint8_t *packed = xmalloc(len + 1);
    google__protobuf__any__pack(&any, packed);
    /* An event is a few hundred bytes: the pipe takes it whole. */
    if (write_all(pipefd[1], packed, len) < 0)
        shim_log("publish %s: write the event: %s", head->topic, strerror(errno));
    close(pipefd[1]);
}

bool events_child_exited(pid_t pid, int status)
{
    if (pid != publisher_pid)
        return false;
    publisher_pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        attempt_succeeded();
    else
        attempt_failed();
    return true;
}

/* ---- the queue ---- */

static void start_next(void)
{
    if (publisher_pid > 0 || forward_in_flight || waits_for_retry || !head)
        return;
    if (ttrpc_socket[0])
        forward_send_head();
    else
        publisher_spawn_head();
}

static void on_timer(struct loop_watch *w, uint32_t events)
{
    (void)events;
    uint64_t ticks;
    if (read(w->fd, &ticks, sizeof ticks) != sizeof ticks)
        return; /* disarmed since it fired */
    if (forward_in_flight) {
        forward_failed("no answer in time");
        return;
    }
    waits_for_retry = false;
    start_next();
}

int events_init(const char *ttrpc_address, const char *publish_binary, const char *address, const char *namespace)
{
    if (ttrpc_address && *ttrpc_address) {
        if (strncmp(ttrpc_address, "unix://", 7) == 0)
            ttrpc_address += 7;
        if (strlen(ttrpc_address) >= sizeof ttrpc_socket) {
            errno = ENAMETOOLONG;
            return -1;
        }
        strcpy(ttrpc_socket, ttrpc_address);
    }
    publisher = publish_binary;
    containerd_address = address;
    events_namespace = namespace;
    forward_conn.on_event = forward_on_event;
    timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    timer.on_event = on_timer;
    if (timer.fd < 0 || loop_add(&timer, EPOLLIN) < 0)
        return -1;
    return 0;
}

void events_publish(const char *topic, const ProtobufCMessage *event)
{
    struct queued_event *e = xcalloc(1, sizeof *e);
    e->topic = xstrdup(topic);
    e->type_url = event->descriptor->name;
    e->value_len = protobuf_c_message_get_packed_size(event);
    e->value = xmalloc(e->value_len + 1);
    protobuf_c_message_pack(event, e->value);
    clock_gettime(CLOCK_REALTIME, &e->at);
    if (tail)
        tail->next = e;
    else
        head = e;
    tail = e;
    start_next();
}

bool events_pending(void) { return head != NULL; }
