#include "task.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "events.h"
#include "events.pb-c.h"
#include "loop.h"
#include "oom.h"
#include "pea/util.h"
#include "shim_log.h"
#include "task.pb-c.h"

struct parked_wait {
    struct parked_wait *next;
    struct shim_process *process;
    struct ttrpc_conn *conn;
    uint32_t stream_id;
    struct timespec deadline; /* CLOCK_MONOTONIC; {0, 0}: none */
};

static struct shim_task *tasks;
static struct parked_wait *waits;

/* One timer for every parked Wait with a deadline, set to the earliest; created with the first such Wait. */
static void wait_timer_on_event(struct loop_watch *w, uint32_t events);
static struct loop_watch wait_timer = {.fd = -1, .on_event = wait_timer_on_event};

static bool has_deadline(const struct parked_wait *w) { return w->deadline.tv_sec || w->deadline.tv_nsec; }

static bool is_earlier(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Set the timer to the earliest deadline of the parked Waits, or disarm it. */
static void wait_timer_rearm(void)
{
    if (wait_timer.fd < 0)
        return;
    struct itimerspec when = {0};
    for (struct parked_wait *w = waits; w; w = w->next)
        if (has_deadline(w) && ((!when.it_value.tv_sec && !when.it_value.tv_nsec) ||
                                is_earlier(&w->deadline, &when.it_value)))
            when.it_value = w->deadline;
    if (timerfd_settime(wait_timer.fd, TFD_TIMER_ABSTIME, &when, NULL) < 0)
        shim_log("set the timer of parked waits: %s", strerror(errno));
}

static void wait_timer_on_event(struct loop_watch *w, uint32_t events)
{
    (void)events;
    uint64_t expirations;
    (void)!read(w->fd, &expirations, sizeof expirations);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct parked_wait **pp = &waits;
    while (*pp) {
        struct parked_wait *parked = *pp;
        if (ttrpc_deadline_has_passed(&parked->deadline, &now)) {
            ttrpc_respond(parked->conn, parked->stream_id, TTRPC_DEADLINE_EXCEEDED, TTRPC_DEADLINE_MESSAGE, NULL, 0);
            *pp = parked->next;
            free(parked);
        } else {
            pp = &parked->next;
        }
    }
    wait_timer_rearm();
}

/* 0, or -1 with errno when the timer cannot be made (the Wait is then refused, not parked without its deadline). */
static int wait_timer_ensure(void)
{
    if (wait_timer.fd >= 0)
        return 0;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -1;
    wait_timer.fd = fd;
    if (loop_add(&wait_timer, EPOLLIN) < 0) {
        int e = errno;
        close(fd);
        wait_timer.fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

struct shim_task *task_find(const char *id)
{
    for (struct shim_task *t = tasks; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

struct shim_process *task_find_process(const char *id, const char *exec_id)
{
    struct shim_task *t = task_find(id);
    if (!t)
        return NULL;
    if (!exec_id || !*exec_id)
        return &t->init;
    for (struct shim_process *p = t->execs; p; p = p->next)
        if (strcmp(p->exec_id, exec_id) == 0)
            return p;
    return NULL;
}

const char *process_id(const struct shim_process *process)
{
    return process->exec_id ? process->exec_id : process->task->id;
}

static void init_process(struct shim_process *p, struct shim_task *task, const char *exec_id)
{
    *p = (struct shim_process){.task = task, .exec_id = exec_id ? xstrdup(exec_id) : NULL, .status = PROCESS_CREATED};
    /* Nothing open yet: stdio_release must find every slot empty. */
    p->io = (struct shim_stdio){.child = {-1, -1, -1}, .stdin_writer = -1, .stdout_reader = -1,
                                .stderr_reader = -1, .stdin_reader = -1, .console_out = -1, .console = -1,
                                .logger_pidfd = -1};
}

struct shim_task *task_add(const char *id, const char *bundle)
{
    struct shim_task *t = xcalloc(1, sizeof *t);
    t->id = xstrdup(id);
    t->bundle = xstrdup(bundle);
    init_process(&t->init, t, NULL);
    t->next = tasks;
    tasks = t;
    return t;
}

static void timestamp_of(const struct timespec *ts, Google__Protobuf__Timestamp *out)
{
    out->seconds = ts->tv_sec;
    out->nanos = (int32_t)ts->tv_nsec;
}

static void answer_wait(struct parked_wait *w)
{
    Containerd__Task__V2__WaitResponse r = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    r.exit_status = w->process->exit_status;
    if (w->process->status == PROCESS_STOPPED) {
        timestamp_of(&w->process->exited_at, &at);
        r.exited_at = &at;
    }
    ttrpc_respond_message(w->conn, w->stream_id, &r.base);
}

/* Answer (or drop, when conn is NULL) the parked Waits of a process that is exiting or going away. */
static void settle_waits(const struct shim_process *process)
{
    struct parked_wait **pp = &waits;
    while (*pp) {
        struct parked_wait *w = *pp;
        if (w->process == process) {
            answer_wait(w);
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

static void release_process(struct shim_process *p)
{
    if (p->status != PROCESS_STOPPED) {
        /* Deleted before it exited (a created task, force-deleted): its Waits learn it was killed. */
        p->exit_status = 128 + SIGKILL;
        clock_gettime(CLOCK_REALTIME, &p->exited_at);
        p->status = PROCESS_STOPPED;
    }
    settle_waits(p);
    stdio_release(&p->io);
    free(p->exec_id);
    free(p->spec_json);
}

struct shim_process *task_add_exec(struct shim_task *task, const char *exec_id)
{
    struct shim_process *p = xcalloc(1, sizeof *p);
    init_process(p, task, exec_id);
    p->next = task->execs;
    task->execs = p;
    return p;
}

void task_remove_exec(struct shim_process *process)
{
    for (struct shim_process **pp = &process->task->execs; *pp; pp = &(*pp)->next) {
        if (*pp == process) {
            *pp = process->next;
            release_process(process);
            free(process);
            return;
        }
    }
}

void task_remove(struct shim_task *task)
{
    for (struct shim_task **tp = &tasks; *tp; tp = &(*tp)->next) {
        if (*tp == task) {
            *tp = task->next;
            break;
        }
    }
    oom_unwatch(task->id);
    while (task->execs)
        task_remove_exec(task->execs);
    release_process(&task->init);
    free(task->id);
    free(task->bundle);
    free(task);
}

bool task_list_is_empty(void) { return tasks == NULL; }

bool task_is_only(const struct shim_task *task) { return tasks == task && !task->next; }

void task_park_wait(struct shim_process *process, struct ttrpc_conn *conn, uint32_t stream_id,
                    const struct timespec *deadline)
{
    struct parked_wait w = {.process = process, .conn = conn, .stream_id = stream_id, .deadline = *deadline};
    if (process->status == PROCESS_STOPPED) {
        answer_wait(&w);
        return;
    }
    if (has_deadline(&w) && wait_timer_ensure() < 0) {
        ttrpc_respond_error(conn, stream_id, TTRPC_INTERNAL, "wait %s: create a timer for its deadline: %s",
                            process_id(process), strerror(errno));
        return;
    }
    struct parked_wait *copy = xmalloc(sizeof *copy);
    *copy = w;
    copy->next = waits;
    waits = copy;
    if (has_deadline(&w))
        wait_timer_rearm();
}

void task_forget_connection(struct ttrpc_conn *conn)
{
    struct parked_wait **pp = &waits;
    while (*pp) {
        struct parked_wait *w = *pp;
        if (w->conn == conn) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

void task_set_exited(struct shim_process *process, uint32_t exit_status)
{
    process->status = PROCESS_STOPPED;
    process->exit_status = exit_status;
    clock_gettime(CLOCK_REALTIME, &process->exited_at);
    struct shim_task *task = process->task;
    if (process == &task->init && !task->has_own_pid_namespace) {
        struct pea_error err = {0};
        if (backend_kill(task->id, task->bundle, SIGKILL, true, &err) < 0)
            shim_log_debug("kill what is left of %s: %s", task->id, err.msg);
    }
    if (process == &task->init)
        oom_check(task->id);
    Containerd__Events__TaskExit e = CONTAINERD__EVENTS__TASK_EXIT__INIT;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    timestamp_of(&process->exited_at, &at);
    e.container_id = task->id;
    e.id = (char *)process_id(process);
    e.pid = (uint32_t)process->pid;
    e.exit_status = exit_status;
    e.exited_at = &at;
    events_publish("/tasks/exit", &e.base);
    settle_waits(process);
}

void task_child_exited(pid_t pid, int wait_status)
{
    uint32_t code = WIFEXITED(wait_status) ? (uint32_t)WEXITSTATUS(wait_status)
                                           : 128u + (uint32_t)WTERMSIG(wait_status);
    for (struct shim_task *t = tasks; t; t = t->next) {
        if (t->init.pid == pid && t->init.status != PROCESS_STOPPED) {
            task_set_exited(&t->init, code);
            return;
        }
        for (struct shim_process *p = t->execs; p; p = p->next) {
            if (p->pid == pid && p->status != PROCESS_STOPPED) {
                task_set_exited(p, code);
                return;
            }
        }
    }
}
