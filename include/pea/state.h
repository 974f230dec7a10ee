/* The state store under --root: one 0700 directory per container with state.json (written atomically), a copy of
 * config.json, the exec fifo while the container waits for `start`, and a lock serialising commands on it.
 * Beside state.json, cleanup.json is a second, minimal record of what the container owns on the host (its cgroup,
 * the cgroup directories made for it, its init's identity): written atomically before what it names is made, so
 * that `delete --force` finds and kills what belongs to the id when state.json is unreadable. */
#ifndef PEA_STATE_H
#define PEA_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pea/error.h"

enum pea_status {
    PEA_STATUS_CREATING,
    PEA_STATUS_CREATED,
    PEA_STATUS_RUNNING,
    PEA_STATUS_PAUSED,
    PEA_STATUS_STOPPED,
    PEA_STATUS_UNKNOWN, /* state.json unreadable: only `list` shows it */
};

struct pea_state {
    char *id;
    pid_t pid;
    unsigned long long start_time; /* of pid, clock ticks since boot: guards against PID reuse */
    char *bundle;                  /* absolute */
    char *rootfs;                  /* absolute */
    char created[64];              /* RFC 3339 nano UTC */
    json_t *annotations;           /* object, may be empty */
    uid_t owner;
    char *cgroup_path;             /* relative to the cgroup2 root, NULL when none */
    char *cgroup_made_from;        /* the topmost of cgroup_path's ancestors that create made for it, NULL when none */
    char *cgroup_unit;             /* the systemd scope holding cgroup_path (--systemd-cgroup), NULL when none */
    char boot_id[40];              /* of the boot the init ran in (cleanup.json only): pid and start_time hold in it */
    bool is_created;               /* false while `create` is still setting up */
    bool has_terminal;
};

#define PEA_EXEC_FIFO "exec.fifo"
#define PEA_CONFIG_COPY "config.json"
#define PEA_STATE_FILE "state.json"
#define PEA_CLEANUP_RECORD "cleanup.json"

/* Ids: letters, digits, '_', '-', '.', '+'; not "." or "..", at most 1024 bytes. */
int state_validate_id(const char *id, struct pea_error *err);

/* Open the state root directory; with `create`, through state_private_dir_open. */
int state_root_open(const char *root, bool create, struct pea_error *err);
/* Open a directory pea keeps to the user running it (the state root, the data root): made 0700 with its missing
 * parents when missing; an existing one must belong to that user and be writable by no other, and is made 0700 when
 * others can read or search it (an older pea made the data root 0711), with a notice. `what` names it in errors
 * ("data root"). Returns a directory fd. */
int state_private_dir_open(const char *path, const char *what, struct pea_error *err);
/* Make the container's directory; "container with id X already exists" when it does. Returns its fd. */
int state_dir_create(int root_fd, const char *id, struct pea_error *err);
/* Open an existing container's directory; "container X does not exist" when missing. */
int state_dir_open(int root_fd, const char *id, struct pea_error *err);
/* Remove the container's directory and everything in it. */
int state_dir_remove(int root_fd, const char *id, struct pea_error *err);
/* Exclusive lock on the container directory, released when the fd closes. */
int state_lock(int dir_fd, struct pea_error *err);

int state_save(int dir_fd, const struct pea_state *st, struct pea_error *err);
/* dir_path names the directory in errors, which say which file and what is wrong with it
 * ("/run/pea/c1/state.json: not JSON: premature end of input at line 1 column 9"). errnum is ENOENT when the file is
 * missing, 0 when its content is wrong. */
int state_load(int dir_fd, const char *dir_path, struct pea_state *st, struct pea_error *err);
void state_clear(struct pea_state *st);

/* cleanup.json: st's cgroup_path, cgroup_made_from, cgroup_unit, pid, start_time and boot_id. */
int state_save_record(int dir_fd, const struct pea_state *st, struct pea_error *err);
/* Fill only the fields state_save_record writes (the rest zero); errors as state_load's. */
int state_load_record(int dir_fd, const char *dir_path, struct pea_state *st, struct pea_error *err);
/* This boot's id (/proc/sys/kernel/random/boot_id); "" when unreadable. */
void state_boot_id(char out[40]);

/* Status from the live system: init alive (and same start time)? exec fifo present? cgroup frozen? */
enum pea_status state_status(int dir_fd, const struct pea_state *st);
const char *state_status_name(enum pea_status status);
/* The OCI state JSON as `pea state` prints it (pid 0 once stopped, annotations left out when empty). */
json_t *state_to_json(const struct pea_state *st, enum pea_status status);

#endif
