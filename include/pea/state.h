/* The state store under --root: one 0700 directory per container with state.json (written atomically), a copy of
 * config.json, the exec fifo while the container waits for `start`, and a lock serialising commands on it. */
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
    bool is_created;               /* false while `create` is still setting up */
    bool has_terminal;
};

#define PEA_EXEC_FIFO "exec.fifo"
#define PEA_CONFIG_COPY "config.json"

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
int state_load(int dir_fd, struct pea_state *st, struct pea_error *err);
void state_clear(struct pea_state *st);

/* Status from the live system: init alive (and same start time)? exec fifo present? cgroup frozen? */
enum pea_status state_status(int dir_fd, const struct pea_state *st);
const char *state_status_name(enum pea_status status);
/* The OCI state JSON as `pea state` prints it (pid 0 once stopped, annotations left out when empty). */
json_t *state_to_json(const struct pea_state *st, enum pea_status status);

#endif
