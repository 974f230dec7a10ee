/* How the shim makes and drives containers. This backend (backend_exec.c) executes the pea binary for each
 * operation, as containerd's runc shim executes runc: `pea --root ROOT --log BUNDLE/log.json --log-format json
 * create|start|kill|delete|exec|pause|resume|update|ps ...`. Issue 17 wants the containers made in-process through
 * libpea; a backend_library.c with these same functions replaces this file without touching the Task service. */
#ifndef PEA_SHIM_V2_BACKEND_H
#define PEA_SHIM_V2_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pea/error.h"

/* Where pea is and its state root (one per containerd namespace: /run/containerd/pea/NAMESPACE). */
void backend_configure(const char *pea_binary, const char *root);

struct backend_process_options {
    const char *id;             /* container id */
    const char *bundle;         /* its bundle: the log file and pid files live there */
    const char *pid_file;
    const char *console_socket; /* NULL without a terminal */
    const int *stdio;           /* the process's stdin, stdout, stderr */
    /* Runtime options of the task (runtime_options.h); create only. The shim sets one only when the backend says
     * it applies it (backend_applied_options), and refuses the task otherwise. */
    bool systemd_cgroup;        /* pea --systemd-cgroup: linux.cgroupsPath is slice:prefix:name */
    bool no_pivot_root;         /* pea create --no-pivot */
    bool no_new_keyring;        /* pea create --no-new-keyring */
};

/* Which runtime options of backend_process_options this backend applies. A backend that applies some defines
 * `const unsigned backend_applied_options = BACKEND_APPLIES_...;`; without a definition the shim's weak default
 * (task_service.c) says none, and a task asking for one is refused with the option's name. */
enum {
    BACKEND_APPLIES_SYSTEMD_CGROUP = 1u << 0,
    BACKEND_APPLIES_NO_PIVOT_ROOT = 1u << 1,
    BACKEND_APPLIES_NO_NEW_KEYRING = 1u << 2,
};
extern const unsigned backend_applied_options;

/* Create the container (its init waits for start); *pid is the init's, reparented to the shim on return. */
int backend_create(const struct backend_process_options *o, pid_t *pid, struct pea_error *err);
int backend_start(const char *id, const char *bundle, struct pea_error *err);
int backend_kill(const char *id, const char *bundle, int signal, bool all, struct pea_error *err);
int backend_delete(const char *id, const char *bundle, bool force, struct pea_error *err);
/* Run the OCI process (JSON) in the container, detached; *pid is the new process's. */
int backend_exec(const struct backend_process_options *o, const char *process_json, size_t process_len, pid_t *pid,
                 struct pea_error *err);
int backend_pause(const char *id, const char *bundle, struct pea_error *err);
int backend_resume(const char *id, const char *bundle, struct pea_error *err);
/* Apply OCI LinuxResources (JSON). */
int backend_update(const char *id, const char *bundle, const char *resources_json, size_t len, struct pea_error *err);
/* The host PIDs of every process of the container; *pids is malloc'd. */
int backend_pids(const char *id, const char *bundle, pid_t **pids, size_t *count, struct pea_error *err);

#endif
