#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "google_shapes.pb-c.h"
#include "loop.h"
#include "pea/util.h"
#include "shim_log.h"

#define PUBLISH_ATTEMPTS 5

extern char **environ;

struct queued_event {
    struct queued_event *next;
    char *topic;
    uint8_t *any; /* the packed google.protobuf.Any */
    size_t any_len;
    int attempts;
};

static const char *publisher, *containerd_address, *events_namespace;
static struct queued_event *head, *tail;
static pid_t running = -1;         /* the publisher of `head`, or -1 */
static struct loop_watch retry_timer = {.fd = -1};
static bool waits_for_retry;

static void start_next(void);

static void on_retry_timer(struct loop_watch *w, uint32_t events)
{
    (void)events;
    uint64_t ticks;
    (void)read(w->fd, &ticks, sizeof ticks);
    waits_for_retry = false;
    start_next();
}

int events_init(const char *publish_binary, const char *address, const char *namespace)
{
    publisher = publish_binary;
    containerd_address = address;
    events_namespace = namespace;
    retry_timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    retry_timer.on_event = on_retry_timer;
    if (retry_timer.fd < 0 || loop_add(&retry_timer, EPOLLIN) < 0)
        return -1;
    return 0;
}

static void drop_head(void)
{
    struct queued_event *e = head;
    head = e->next;
    if (!head)
        tail = NULL;
    free(e->topic);
    free(e->any);
    free(e);
}

static void start_next(void)
{
    if (running > 0 || waits_for_retry || !head)
        return;
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
    int rc = posix_spawn(&running, publisher, &actions, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(pipefd[0]);
    if (rc != 0) {
        running = -1;
        shim_log("publish %s: execute %s: %s", head->topic, publisher, strerror(rc));
        close(pipefd[1]);
        drop_head();
        start_next();
        return;
    }
    /* An event is a few hundred bytes: the pipe takes it whole. */
    if (write_all(pipefd[1], head->any, head->any_len) < 0)
        shim_log("publish %s: write the event: %s", head->topic, strerror(errno));
    close(pipefd[1]);
}

void events_publish(const char *topic, const ProtobufCMessage *event)
{
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)event->descriptor->name;
    any.value.len = protobuf_c_message_get_packed_size(event);
    AUTO_FREE uint8_t *value = xmalloc(any.value.len + 1);
    protobuf_c_message_pack(event, value);
    any.value.data = value;

    struct queued_event *e = xcalloc(1, sizeof *e);
    e->topic = xstrdup(topic);
    e->any_len = google__protobuf__any__get_packed_size(&any);
    e->any = xmalloc(e->any_len + 1);
    google__protobuf__any__pack(&any, e->any);
    if (tail)
        tail->next = e;
    else
        head = e;
    tail = e;
    start_next();
}

bool events_child_exited(pid_t pid, int status)
{
    if (pid != running)
        return false;
    running = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        drop_head();
    } else if (++head->attempts >= PUBLISH_ATTEMPTS) {
        shim_log("publish %s: gave up after %d attempts", head->topic, head->attempts);
        drop_head();
    } else {
        struct itimerspec when = {.it_value = {.tv_sec = head->attempts}};
        timerfd_settime(retry_timer.fd, 0, &when, NULL);
        waits_for_retry = true;
        return true;
    }
    start_next();
    return true;
}

bool events_pending(void) { return head != NULL; }
