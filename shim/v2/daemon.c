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
#include "task.h"
#include "task_service.h"

struct server_conn {
    struct loop_watch watch;
    struct server_conn *next;
    struct ttrpc_conn *ttrpc;
    bool watches_output;
};

static struct server_conn *conns;
static bool should_stop;

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
    c->ttrpc = ttrpc_conn_new(fd, task_service_handle, NULL);
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
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        shim_log("become a subreaper: %s", strerror(errno));
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
    struct loop_watch listener = {.fd = config->listener, .on_event = listener_on_event};
    if (signals.fd < 0 || loop_init() < 0 || loop_add(&signals, EPOLLIN) < 0 ||
        fcntl(listener.fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(listener.fd, F_SETFL, O_NONBLOCK) < 0 ||
        loop_add(&listener, EPOLLIN) < 0 ||
        events_init(config->ttrpc_address, config->publish_binary, config->address, config->namespace) < 0) {
        shim_log("set up the event loop: %s", strerror(errno));
        return 1;
    }
    if (mkdir_p(config->pea_root, 0700) < 0) {
        shim_log("create %s: %s", config->pea_root, strerror(errno));
        return 1;
    }
    backend_configure(config->pea_root, config->debug);
    shim_log_debug("serving %s for task %s in namespace %s", TASK_SERVICE_NAME, config->id, config->namespace);
    while (!should_stop && !task_service_should_exit()) {
        if (loop_run_once(-1) < 0) {
            shim_log("wait for events: %s", strerror(errno));
            return 1;
        }
        sync_output_interest();
    }
    loop_remove(&listener);
    close(listener.fd);
    drain_before_exit();
    return 0;
}
