#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

static int epoll_fd = -1;

int loop_init(void)
{
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    return epoll_fd < 0 ? -1 : 0;
}

static int control(int op, struct loop_watch *watch, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = watch};
    return epoll_ctl(epoll_fd, op, watch->fd, &ev);
}

int loop_add(struct loop_watch *watch, uint32_t events) { return control(EPOLL_CTL_ADD, watch, events); }

int loop_modify(struct loop_watch *watch, uint32_t events) { return control(EPOLL_CTL_MOD, watch, events); }

void loop_remove(struct loop_watch *watch)
{
    if (watch->fd >= 0)
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL);
}

int loop_run_once(int timeout_ms)
{
    /* One event at a time: a handler may free another watch (a connection closing a pump), so none is left
     * pointing at freed memory in a batch. */
    struct epoll_event ev;
    int n = epoll_wait(epoll_fd, &ev, 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    if (n == 1) {
        struct loop_watch *watch = ev.data.ptr;
        watch->on_event(watch, ev.events);
    }
    return 0;
}
