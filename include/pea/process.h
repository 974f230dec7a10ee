/* Making the container process: clone3 in-process (no re-exec), a parent/child state machine over one
 * SOCK_SEQPACKET pair, everything set up in the child, then exec of the user process. */
#ifndef PEA_PROCESS_H
#define PEA_PROCESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "pea/error.h"
#include "pea/lsm.h"
#include "pea/ns.h"
#include "pea/spec.h"

struct pea_launch;

/* Called in the parent when the child's namespaces exist (its host pid is known), before the rootfs is set up:
 * the container layer saves state and runs prestart/createRuntime hooks here. It returns the state JSON text the
 * child passes to createContainer/startContainer hooks (malloc'd), or NULL with *err to abort. */
typedef char *(*pea_namespaces_ready_fn)(struct pea_launch *launch, struct pea_error *err);
/* Called in the parent right after the clone, before the child does anything, in place of the move into
 * cgroup_path: for a cgroup another manager makes around the child (systemd's scope for its pid). */
typedef int (*pea_place_child_fn)(struct pea_launch *launch, struct pea_error *err);

struct pea_launch {
    /* What to run */
    const struct pea_spec *spec;       /* the container's config (exec: with process replaced) */
    const char *rootfs;                /* absolute host path; NULL for exec */
    bool is_exec;                      /* join the namespaces of the running init instead of creating them */
    int init_pidfd;                    /* exec: pidfd of the init, checked against its recorded start time */
    int cgroup_fd;                     /* -1 = stay in ours */
    const char *cgroup_path;           /* for the fallback move when clone3 cannot place the child */
    pea_place_child_fn place_child;    /* NULL = cgroup_fd/cgroup_path place it; uses context */
    int exec_fifo_fd;                  /* create: the child blocks reading it until `start`; -1 = exec at once */
    const char *console_socket;        /* send the pty master there; NULL = keep it in console_master */
    int preserve_fds;
    int stdio_fds[3];                  /* the container's stdin/stdout/stderr; -1 = inherit ours */
    bool no_pivot;
    bool no_new_keyring;
    pea_namespaces_ready_fn on_namespaces_ready;
    const char *container_state_json;  /* exec: the container's state, sent to a seccomp agent with the listener */
    void *context;                     /* for the callback */

    /* Results */
    pid_t pid;
    int pidfd;
    int console_master;                /* -1 unless a terminal was asked without a console socket */

    /* Internal */
    struct pea_lsm_plan lsm;
    int sync_fd;
    char *state_json;
    bool is_dumpable_until_maps; /* an unprivileged parent writes the child's id maps: it stays dumpable until then */
};

/* Initialise the fields to "none" (fds -1, stdio inherited). */
void process_launch_init(struct pea_launch *l);

/* Clone the child and drive it until it is ready to exec (create: blocked on the exec fifo). On failure the child
 * is killed and reaped, and *err says what failed, in the child's own words when it failed there. */
int process_launch(struct pea_launch *l, struct pea_error *err);
/* process_launch in two halves, so that a caller can begin several: _begin returns once the child has its
 * namespaces and the parent's part (callback, hooks) is done, while the child goes on to set up its root on its
 * own; _finish waits until it is ready. Each kills and reaps the child on failure. */
int process_launch_begin(struct pea_launch *l, struct pea_error *err);
int process_launch_finish(struct pea_launch *l, struct pea_error *err);

/* The caller has committed what it needs (state, pid file): let the child outlive us. */
int process_release(struct pea_launch *l, struct pea_error *err);

/* Kill and reap a launched child after a later failure; closes everything. */
void process_abort(struct pea_launch *l);
void process_launch_close(struct pea_launch *l);

/* Find file in the PATH of env (the container's view), as execvp would, into out. Errors in the words callers
 * match: "executable file not found in $PATH", "permission denied". */
int process_find_executable(const char *file, char *const *env, char *out, size_t len, struct pea_error *err);

#endif
