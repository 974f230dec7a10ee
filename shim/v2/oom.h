/* OOM kills in a task's cgroup, published as /tasks/oom (containerd.events.TaskOOM), as containerd's runc shim does
 * on cgroup v2: the kernel marks memory.events modified when a counter moves, an inotify watch on it wakes the
 * loop, and each rise of its oom_kill count is one event. A cgroup without the memory controller (a hybrid host's
 * unified hierarchy) has no memory.events: its task is not watched, as it cannot be. */
#ifndef PEA_SHIM_V2_OOM_H
#define PEA_SHIM_V2_OOM_H

#include <sys/types.h>

/* Watch the cgroup PID is in (the task's init, the shim's child) for the task CONTAINER_ID. */
void oom_watch(const char *container_id, pid_t pid);
/* Publish a kill not yet seen now: the init exited, and containerd should learn of the OOM kill before the exit
 * (the loop may reap the init before it reads the inotify event). */
void oom_check(const char *container_id);
/* Stop watching the task's cgroup (the task is deleted). */
void oom_unwatch(const char *container_id);

#endif
