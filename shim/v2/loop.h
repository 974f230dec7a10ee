/* The shim's one event loop: epoll over the listening socket, client connections, signals (SIGCHLD, SIGTERM),
 * terminal pumps and the event publisher. No threads: every handler runs to completion on the loop. */
#ifndef PEA_SHIM_V2_LOOP_H
#define PEA_SHIM_V2_LOOP_H

#include <stdint.h>

struct loop_watch {
    int fd;
    void (*on_event)(struct loop_watch *watch, uint32_t events);
};

int loop_init(void);
/* 0 or -1 with errno. */
int loop_add(struct loop_watch *watch, uint32_t events);
int loop_modify(struct loop_watch *watch, uint32_t events);
void loop_remove(struct loop_watch *watch);
/* Wait up to timeout_ms (-1: forever) and run the handlers of what is ready. -1 with errno on failure. */
int loop_run_once(int timeout_ms);

#endif
