/* The container lifecycle behind the CLI: create, start, run, state, kill, delete, list, exec, pause, resume. */
#ifndef PEA_CONTAINER_H
#define PEA_CONTAINER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pea/error.h"

/* A bind mount whose source the caller has resolved itself: the object fd names (O_PATH; the caller keeps and closes
 * it) is what gets mounted, and the source path in config.json is never looked up. For a source inside something a
 * container can write (a pod's subPath), where the path could be swapped for a symlink between the caller's check
 * and the mount. */
struct pea_mount_source {
    const char *destination; /* of a bind mount in config.json: the last one there, the one on top */
    int fd;
};

struct pea_create_options {
    const char *root; /* state root */
    const char *id;
    const char *bundle;
    const char *pid_file;
    const char *console_socket;
    const char *pidfd_socket; /* send a pidfd of the init there once it exists (runc's --pidfd-socket) */
    bool no_pivot;
    bool no_new_keyring;
    bool use_systemd_cgroup; /* --systemd-cgroup: the cgroup is a transient scope systemd makes */
    int preserve_fds;
    bool is_detached; /* nobody stays to proxy a terminal: then a terminal needs a console socket */
    int stdio_fds[3]; /* the container's stdin/stdout/stderr; -1 = ours (zero-initialised options: see below) */
    bool has_stdio_fds; /* stdio_fds is set; otherwise the container inherits our stdio */
    const struct pea_mount_source *mount_sources;
    size_t n_mount_sources;
};

int container_create(const struct pea_create_options *o, struct pea_error *err);
/* create, for a caller that supervises the init itself (the pod supervisor): the init stays our child, and *pidfd
 * (close-on-exec; may be NULL) lets us wait for it. */
int container_create_child(const struct pea_create_options *o, pid_t *pid, int *pidfd, struct pea_error *err);
/* create_child in two halves, so that a caller can make several containers at once: _begin returns once the child
 * has its namespaces, cgroup and state, while it goes on setting up its root on its own; _finish waits until it is
 * created (and frees the job, on failure too). */
struct pea_create_job;
int container_create_begin(const struct pea_create_options *o, struct pea_create_job **job, struct pea_error *err);
int container_create_finish(struct pea_create_job *job, pid_t *pid, int *pidfd, struct pea_error *err);
/* The same, and with process.terminal and no console socket the pty's master goes to *console_master (else -1). */
int container_create_finish_console(struct pea_create_job *job, pid_t *pid, int *pidfd, int *console_master,
                                    struct pea_error *err);
int container_start(const char *root, const char *id, struct pea_error *err);
/* Foreground or detached run. *exit_code gets the container's status (128+N for a signal) when foreground. */
int container_run(const struct pea_create_options *o, bool detach, bool keep, int *exit_code, struct pea_error *err);
json_t *container_state(const char *root, const char *id, struct pea_error *err);
/* Array of state objects (plus "created" and "owner") for `list`. */
json_t *container_list(const char *root, struct pea_error *err);
int container_kill(const char *root, const char *id, int sig, bool all, struct pea_error *err);
int container_delete(const char *root, const char *id, bool force, struct pea_error *err);
int container_pause(const char *root, const char *id, bool frozen, struct pea_error *err);
/* Host PIDs of every process in the container. */
int container_pids(const char *root, const char *id, pid_t **pids, size_t *n, struct pea_error *err);
int container_update(const char *root, const char *id, json_t *resources, struct pea_error *err);
json_t *container_stats(const char *root, const char *id, struct pea_error *err);
/* OOM kills recorded in the container's memory.events; -1 when not available. */
long long container_oom_kill_count(const char *root, const char *id);

struct pea_exec_options {
    const char *root;
    const char *id;
    json_t *process;          /* the full process object to run (from --process, or built from the flags) */
    const char *pid_file;
    const char *console_socket;
    const char *pidfd_socket; /* send a pidfd of the new process there once it exists */
    bool detach;
    bool ignore_paused;       /* exec into a paused container: the process starts frozen, runs on resume */
    const char *sub_cgroup;   /* run it in this existing cgroup below the container's (relative), or NULL */
    int preserve_fds;
    int stdio_fds[3];   /* the process's stdin/stdout/stderr when has_stdio_fds; otherwise ours */
    bool has_stdio_fds;
};
/* Build the process object for exec from the container's own config: args, extra env, cwd, user, tty. */
json_t *container_exec_process_from_flags(const char *root, const char *id, char **args, char **env,
                                          const char *cwd, const char *user, bool tty, int tty_set,
                                          struct pea_error *err);
int container_exec(const struct pea_exec_options *o, int *exit_code, struct pea_error *err);
/* exec for a caller that supervises the process itself (pea-shim): it stays our child; *pidfd (close-on-exec) and,
 * with process.terminal and no console socket, *console_master (else -1) are handed over. */
int container_exec_child(const struct pea_exec_options *o, pid_t *pid, int *pidfd, int *console_master,
                         struct pea_error *err);

/* Wait for pid (our child) forwarding catchable signals to it via its pidfd; returns its status as an exit code. */
int container_wait_forwarding(pid_t pid, int pidfd, int console_master);

#endif
