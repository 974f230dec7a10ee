/* Shared between the lifecycle (container.c) and exec/run (container_exec.c); not part of the public API. */
#ifndef PEA_CONTAINER_INTERNAL_H
#define PEA_CONTAINER_INTERNAL_H

#include <limits.h>

#include "pea/container.h"
#include "pea/process.h"
#include "pea/spec.h"
#include "pea/state.h"

struct pea_container {
    int root_fd, dir_fd, lock_fd;
    char dir_path[PATH_MAX]; /* ROOT/ID, to name its files in errors */
    struct pea_state state;
    enum pea_status status;
};

/* Open a container's state (optionally locked) and derive its live status. */
int container_open(const char *root, const char *id, bool lock, struct pea_container *c, struct pea_error *err);
void container_close(struct pea_container *c);
/* The config.json saved at create time. */
struct pea_spec *container_load_config(const struct pea_container *c, struct pea_error *err);
char *container_state_json_text(const struct pea_state *st, enum pea_status status);
/* Decimal PID, no newline, written atomically (temp + rename). */
int container_write_pid_file(const char *path, pid_t pid, struct pea_error *err);
/* Everything `create` does up to the release of the child; `run` keeps the launch to wait on the child. */
int container_create_launch(const struct pea_create_options *o, struct pea_launch *l, struct pea_spec **spec_out,
                            struct pea_error *err);

#endif
