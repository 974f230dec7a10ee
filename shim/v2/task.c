#include "task.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "backend.h"
#include "events.h"
#include "events.pb-c.h"
#include "oom.h"
#include "pea/util.h"
#include "shim_log.h"
#include "task.pb-c.h"

struct parked_wait {
    struct parked_wait *next;
    struct shim_process *process;
    struct ttrpc_conn *conn;
    uint32_t stream_id;
};

static struct shim_task *tasks;
static struct parked_wait *waits;

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
                                .stderr_reader = -1, .stdin_reader = -1, .console_out = -1, .console = -1};
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

void task_park_wait(struct shim_process *process, struct ttrpc_conn *conn, uint32_t stream_id)
{
    struct parked_wait w = {.process = process, .conn = conn, .stream_id = stream_id};
    if (process->status == PROCESS_STOPPED) {
        answer_wait(&w);
        return;
    }
    struct parked_wait *copy = xmalloc(sizeof *copy);
    *copy = w;
    copy->next = waits;
    waits = copy;
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
