/* How the shim makes and drives containers: in-process, through libpea (container_create_child and the other
 * container_* calls the pea CLI makes), not by executing pea. The containers' inits and exec processes are the
 * shim's own children, which its loop reaps; a call that forks and waits itself (hooks, the create handshake) waits
 * for that child by PID while the loop is not running, so neither side takes the other's exit status.
 * As with containerd's runc shim, each call logs to BUNDLE/log.json in pea's JSON format (what `pea --log
 * BUNDLE/log.json --log-format json` wrote), errors included, and its error text is what containerd shows. */
#ifndef PEA_SHIM_V2_BACKEND_H
#define PEA_SHIM_V2_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pea/error.h"

/* The state root (one per containerd namespace: /run/containerd/pea/NAMESPACE); debug: pea's debug lines go to
 * BUNDLE/log.json too (the shim's -debug, as pea's --debug). */
void backend_configure(const char *root, bool debug);
/* A task's runtime option Root moves the state root (task_service.c allows it while no other task lives). */
void backend_set_root(const char *root);

struct backend_process_options {
    const char *id;             /* container id */
    const char *bundle;         /* its bundle: the log file lives there */
    const char *pid_file;       /* create: the init's PID is written there */
    const char *console_socket; /* NULL without a terminal */
    const int *stdio;           /* the process's stdin, stdout, stderr */
    /* Runtime options of the task (runtime_options.h); create only. */
    bool systemd_cgroup;        /* pea --systemd-cgroup: linux.cgroupsPath is slice:prefix:name */
    bool no_pivot_root;         /* pea create --no-pivot */
    bool no_new_keyring;        /* pea create --no-new-keyring */
};

/* Create the container (its init waits for start); *pid is the init's, a child of the shim. */
int backend_create(const struct backend_process_options *o, pid_t *pid, struct pea_error *err);
int backend_start(const char *id, const char *bundle, struct pea_error *err);
int backend_kill(const char *id, const char *bundle, int signal, bool all, struct pea_error *err);
int backend_delete(const char *id, const char *bundle, bool force, struct pea_error *err);
/* Run the OCI process (JSON) in the container, detached; *pid is the new process's, a child of the shim. */
int backend_exec(const struct backend_process_options *o, const char *process_json, size_t process_len, pid_t *pid,
                 struct pea_error *err);
int backend_pause(const char *id, const char *bundle, struct pea_error *err);
int backend_resume(const char *id, const char *bundle, struct pea_error *err);
/* Apply OCI LinuxResources (JSON). */
int backend_update(const char *id, const char *bundle, const char *resources_json, size_t len, struct pea_error *err);
/* The host PIDs of every process of the container; *pids is malloc'd. */
int backend_pids(const char *id, const char *bundle, pid_t **pids, size_t *count, struct pea_error *err);

#endif
