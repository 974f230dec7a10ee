/* What the shim knows of its tasks: each container's init and exec processes, their status and exit, and the Wait
 * requests parked until a process exits. Everything lives in the daemon's memory; containerd asks again after it
 * restarts. */
#ifndef PEA_SHIM_V2_TASK_H
#define PEA_SHIM_V2_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "process_stdio.h"
#include "ttrpc.h"

enum process_status {
    PROCESS_CREATED,
    PROCESS_RUNNING,
    PROCESS_PAUSED,
    PROCESS_STOPPED,
};

struct shim_task;

struct shim_process {
    struct shim_process *next; /* the task's exec processes */
    struct shim_task *task;
    char *exec_id;             /* NULL for the init */
    pid_t pid;                 /* 0 until created; the shim reaps it, so the PID stays this process's */
    enum process_status status;
    uint32_t exit_status;      /* the code, or 128 + the signal */
    struct timespec exited_at;
    struct shim_stdio io;
    char *spec_json;           /* exec: the OCI process until Start runs it */
    size_t spec_len;
};

struct shim_task {
    struct shim_task *next;
    char *id, *bundle;
    bool has_rootfs_mounts;
    /* Without a PID namespace of its own the init's exit does not end its children: the shim kills what is left
     * in its cgroup, as runc's shim does. */
    bool has_own_pid_namespace;
    /* Runtime options IoUid/IoGid: the owner of the fifos and pipes of its processes (init and execs). */
    bool has_io_owner;
    uid_t io_uid;
    gid_t io_gid;
    struct shim_process init;
    struct shim_process *execs;
};

struct shim_task *task_find(const char *id);
/* The init when exec_id is empty, else that exec process; NULL when unknown. */
struct shim_process *task_find_process(const char *id, const char *exec_id);
struct shim_task *task_add(const char *id, const char *bundle);
/* Unlinks and frees the task with its processes; their parked Waits are answered with what is known. */
void task_remove(struct shim_task *task);
struct shim_process *task_add_exec(struct shim_task *task, const char *exec_id);
void task_remove_exec(struct shim_process *process);
bool task_list_is_empty(void);
/* Whether task is the only one the shim holds. */
bool task_is_only(const struct shim_task *task);
const char *process_id(const struct shim_process *process); /* exec id, or the container id for the init */

/* Answer once the process has exited (at once when it has). A Wait whose deadline (the request's, {0, 0}: none)
 * passes first is answered DEADLINE_EXCEEDED and forgotten, as ttrpc-go ends a call whose context expired. */
void task_park_wait(struct shim_process *process, struct ttrpc_conn *conn, uint32_t stream_id,
                    const struct timespec *deadline);
/* The connection is closing: forget its parked Waits. */
void task_forget_connection(struct ttrpc_conn *conn);
/* Record an exit, answer Waits, publish /tasks/exit. */
void task_set_exited(struct shim_process *process, uint32_t exit_status);
/* A reaped child: the process of a task with this PID, if any, has exited with this wait status. */
void task_child_exited(pid_t pid, int wait_status);

#endif
