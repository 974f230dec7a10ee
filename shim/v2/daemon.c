#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "events.h"
#include "loop.h"
#include "pea/util.h"
#include "shim_log.h"
#include "shim_socket.h"
#include "task.h"
#include "task.pb-c.h"
#include "task_service.h"

/* How long a task whose `start` joined this shim (or started it) may take to send its Create before a Shutdown
 * asked for meanwhile takes effect: containerd sends it right after `start` returns. */
#define JOIN_WINDOW_SECONDS 30
/* How often a shim that wants to exit tries again for the socket's lock while a `start` holds it. */
#define LOCK_RETRY_MS 20

struct server_conn {
    struct loop_watch watch;
    struct server_conn *next;
    struct ttrpc_conn *ttrpc;
    bool watches_output;
};

static struct server_conn *conns;
static bool should_stop;
/* The socket is withdrawn: whatever still arrives on open connections is refused, nothing new is started. */
static bool is_leaving;

/* Tasks whose `start` chose this shim and whose Create has not come yet. */
struct expected_task {
    struct expected_task *next;
    char *id;
    struct timespec until; /* CLOCK_MONOTONIC */
};
static struct expected_task *expected_tasks;

static void expect_task(const char *id)
{
    struct expected_task *e = xcalloc(1, sizeof *e);
    e->id = xstrdup(id);
    clock_gettime(CLOCK_MONOTONIC, &e->until);
    e->until.tv_sec += JOIN_WINDOW_SECONDS;
    e->next = expected_tasks;
    expected_tasks = e;
}

/* Forget ID (NULL: none) and every expectation that ran out; whether one is left. */
static bool tasks_still_expected(const char *id)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    for (struct expected_task **pp = &expected_tasks; *pp;) {
        struct expected_task *e = *pp;
        bool is_over = (id && strcmp(e->id, id) == 0) || ttrpc_deadline_has_passed(&e->until, &now);
        if (!is_over) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        free(e->id);
        free(e);
    }
    return expected_tasks != NULL;
}

/* Milliseconds until the first expectation runs out (at least 1), -1 without any. */
static int ms_until_an_expectation_ends(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long least = -1;
    for (struct expected_task *e = expected_tasks; e; e = e->next) {
        long long ms = (long long)(e->until.tv_sec - now.tv_sec) * 1000 + (e->until.tv_nsec - now.tv_nsec) / 1000000;
        if (least < 0 || ms < least)
            least = ms;
    }
    return least < 0 ? -1 : least < 1 ? 1 : least > 60000 ? 60000 : (int)least;
}

/* A `start` that holds the socket's lock asks this shim to expect its task (shim_socket.h). */
static void handle_join(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    Containerd__Task__V2__ConnectRequest *join =
        containerd__task__v2__connect_request__unpack(NULL, req->payload_len, req->payload);
    if (!join || !join->id || !*join->id) {
        if (join)
            containerd__task__v2__connect_request__free_unpacked(join, NULL);
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "Join: malformed request");
        return;
    }
    if (should_stop || is_leaving) {
        ttrpc_respond_error(conn, req->stream_id, SHIM_JOIN_LEAVING_CODE, "the shim is exiting");
    } else {
        shim_log_debug("task %s joins", join->id);
        expect_task(join->id);
        ttrpc_respond_message(conn, req->stream_id, NULL);
    }
    containerd__task__v2__connect_request__free_unpacked(join, NULL);
}

static void serve_request(struct ttrpc_conn *conn, const struct ttrpc_request *req, void *ctx)
{
    if (is_leaving) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_FAILED_PRECONDITION, "the shim is exiting");
        return;
    }
    if (strcmp(req->service, SHIM_GROUP_SERVICE) == 0 && strcmp(req->method, SHIM_GROUP_JOIN) == 0) {
        handle_join(conn, req);
        return;
    }
    if (strcmp(req->service, TASK_SERVICE_NAME) == 0 && strcmp(req->method, "Create") == 0) {
        /* The expected Create came, whatever becomes of it. */
        Containerd__Task__V2__CreateTaskRequest *create =
            containerd__task__v2__create_task_request__unpack(NULL, req->payload_len, req->payload);
        if (create) {
            tasks_still_expected(create->id);
            containerd__task__v2__create_task_request__free_unpacked(create, NULL);
        }
    }
    task_service_handle(conn, req, ctx);
}

static void conn_close(struct server_conn *c)
{
    for (struct server_conn **pp = &conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    loop_remove(&c->watch);
    task_forget_connection(c->ttrpc);
    ttrpc_conn_free(c->ttrpc); /* closes the socket */
    free(c);
}

static void conn_on_event(struct loop_watch *w, uint32_t events)
{
    struct server_conn *c = (struct server_conn *)w;
    if ((events & EPOLLOUT) && ttrpc_conn_flush(c->ttrpc) < 0) {
        conn_close(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (ttrpc_conn_on_readable(c->ttrpc) < 0) {
            conn_close(c);
            return;
        }
    }
}

/* Answers may be queued on any connection by another's request or by an exit: watch for room where some wait. */
static void sync_output_interest(void)
{
    for (struct server_conn *c = conns; c; c = c->next) {
        bool pending = ttrpc_conn_has_pending_output(c->ttrpc);
        if (pending != c->watches_output) {
            loop_modify(&c->watch, EPOLLIN | (pending ? EPOLLOUT : 0));
            c->watches_output = pending;
        }
    }
}

static void listener_on_event(struct loop_watch *w, uint32_t events)
{
    (void)events;
    int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            shim_log("accept: %s", strerror(errno));
        return;
    }
    struct server_conn *c = xcalloc(1, sizeof *c);
    c->ttrpc = ttrpc_conn_new(fd, serve_request, NULL);
    c->watch = (struct loop_watch){.fd = fd, .on_event = conn_on_event};
    if (loop_add(&c->watch, EPOLLIN) < 0) {
        shim_log("watch a connection: %s", strerror(errno));
        ttrpc_conn_free(c->ttrpc);
        free(c);
        return;
    }
    c->next = conns;
    conns = c;
}

static void reap_children(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (!events_child_exited(pid, status))
            task_child_exited(pid, status);
    }
}

static void signals_on_event(struct loop_watch *w, uint32_t events)
{
    (void)events;
    struct signalfd_siginfo info;
    while (read(w->fd, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) {
            shim_log("signal %d: exiting; the containers keep running", (int)info.ssi_signo);
            should_stop = true;
        }
    }
    reap_children();
}

/* Give queued answers and events a moment to get out before the process ends. */
static void drain_before_exit(void)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        bool busy = events_pending();
        for (struct server_conn *c = conns; c; c = c->next)
            busy |= ttrpc_conn_flush(c->ttrpc) == 1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!busy || now.tv_sec - start.tv_sec >= 5)
            return;
        sync_output_interest();
        loop_run_once(100);
    }
}

/* Take the socket away under its lock, then stop listening: a `start` that comes later finds no socket and starts
 * a fresh shim. A `start` holds the lock until its Join is answered, so once the lock is ours every Join that will
 * ever reach this shim has been handled (and counted by the caller). WAIT false: 0 when a `start` holds the lock
 * (serve on, answer it, try again). 1: withdrawn. */
static int withdraw_socket(const struct daemon_config *config, struct loop_watch *listener, bool wait)
{
    if (config->socket_path) {
        struct pea_error err;
        AUTO_FD int lock = shim_socket_lock(config->socket_path, wait, &err);
        if (lock < 0 && errno == EWOULDBLOCK)
            return 0;
        if (lock < 0) /* Unlocked, the name might be another shim's by now: leave it, `start` removes it dead. */
            shim_log("withdraw the socket: %s", err.msg);
        else
            unlink(config->socket_path);
        is_leaving = true;
        loop_remove(listener);
        close(listener->fd);
        if (lock >= 0)
            shim_socket_unlock(&lock, config->socket_path, false);
        return 1;
    }
    is_leaving = true;
    loop_remove(listener);
    close(listener->fd);
    return 1;
}

void daemon_spawn_with_clean_signals(posix_spawnattr_t *attr)
{
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(attr, &none);
    posix_spawnattr_setsigdefault(attr, &defaults);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

int daemon_serve(const struct daemon_config *config)
{
    shim_log_open(config->debug);
    struct loop_watch listener = {.fd = config->listener, .on_event = listener_on_event};
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        shim_log("become a subreaper: %s", strerror(errno));
        withdraw_socket(config, &listener, true);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    struct loop_watch signals = {.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), .on_event = signals_on_event};
    if (signals.fd < 0 || loop_init() < 0 || loop_add(&signals, EPOLLIN) < 0 ||
        fcntl(listener.fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(listener.fd, F_SETFL, O_NONBLOCK) < 0 ||
        loop_add(&listener, EPOLLIN) < 0 ||
        events_init(config->ttrpc_address, config->publish_binary, config->address, config->namespace) < 0) {
        shim_log("set up the event loop: %s", strerror(errno));
        withdraw_socket(config, &listener, true);
        return 1;
    }
    if (mkdir_p(config->pea_root, 0700) < 0) {
        shim_log("create %s: %s", config->pea_root, strerror(errno));
        withdraw_socket(config, &listener, true);
        return 1;
    }
    backend_configure(config->pea_root, config->debug);
    shim_log_debug("serving %s for task %s in namespace %s", TASK_SERVICE_NAME, config->id, config->namespace);
    /* The `start` that started this shim comes back with its task's Create. */
    if (config->id)
        expect_task(config->id);
    int timeout_ms = -1;
    for (;;) {
        if (loop_run_once(timeout_ms) < 0) {
            shim_log("wait for events: %s", strerror(errno));
            withdraw_socket(config, &listener, true);
            return 1;
        }
        sync_output_interest();
        bool has_expected = tasks_still_expected(NULL);
        timeout_ms = task_service_should_exit() && has_expected ? ms_until_an_expectation_ends() : -1;
        if (!should_stop && (!task_service_should_exit() || has_expected))
            continue;
        if (withdraw_socket(config, &listener, false) == 1)
            break;
        timeout_ms = LOCK_RETRY_MS;
    }
    drain_before_exit();
    return 0;
}
