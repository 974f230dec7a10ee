/* cgroup v2: placement of a container, resources, freeze, kill-all, pids, stats and live update.
 * pea is v2-only; the hierarchy is found from /proc/self/mountinfo wherever it is mounted. */
#ifndef PEA_CGROUP_H
#define PEA_CGROUP_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pea/error.h"

/* Mount point of the cgroup2 hierarchy (e.g. "/sys/fs/cgroup" or "/sys/fs/cgroup/unified"), cached. NULL with
 * *err when no cgroup2 is mounted. */
const char *cgroup_root(struct pea_error *err);

/* The container's cgroup path relative to the hierarchy root, always starting with '/':
 * absolute cgroupsPath -> as is; relative -> under pea's default parent ("/pea/<relative>");
 * NULL -> "/pea/<id>"; systemd's "slice:prefix:name" -> the path systemd would give that unit
 * ("system.slice:docker:abc" -> "/system.slice/docker-abc.scope", "a-b.slice:p:n" -> "/a.slice/a-b.slice/p-n.scope").
 * Rejects ".." components and invalid slice names. Caller frees. */
char *cgroup_path_for(const char *cgroups_path, const char *id, struct pea_error *err);

/* Before creating a systemd-form cgroupsPath's cgroup at path (from cgroup_path_for): without systemd running the
 * host, say in the debug log where it goes; with systemd, require path's parent to exist and be writable (pea never
 * asks systemd for a unit, so it may only create cgroups in a subtree delegated to it). 0 for other forms. */
int cgroup_check_placement(const char *cgroups_path, const char *path, struct pea_error *err);

/* Create the cgroup (and parents), enable the controllers the resources need in every ancestor (handling the
 * no-internal-processes rule), apply resources (may be NULL) and return an O_DIRECTORY fd of it for
 * CLONE_INTO_CGROUP. A controller that is needed but not available is an error naming it. On failure nothing
 * created here is left behind. */
int cgroup_create(const char *path, json_t *resources, struct pea_error *err);

/* An O_DIRECTORY fd of an existing cgroup (path relative to the hierarchy root). */
int cgroup_open_dir(const char *path, struct pea_error *err);

/* Move pid into the cgroup (fallback when clone3 could not place it). */
int cgroup_enter(const char *path, pid_t pid, struct pea_error *err);

/* Remove the cgroup (killing nothing) and the empty cgroups a container made below it; retries briefly while it
 * drains; removes pea's default parent when it became empty, and the leaf cgroup pea made in an ancestor to move
 * its processes out of the way (see cgroup_create) once no other cgroup is left there, giving the ancestor its
 * processes back. Missing is not an error. */
int cgroup_destroy(const char *path, struct pea_error *err);
/* cgroup_destroy, and then path's ancestors up to made_from (from cgroup_topmost_missing_parent at create; NULL:
 * none) while they are empty. */
int cgroup_destroy_made(const char *path, const char *made_from, struct pea_error *err);
/* The topmost of path's ancestors that does not exist yet: what cgroup_create will make for path besides path
 * itself, to be recorded before it is made. NULL when every ancestor exists. Caller frees. */
char *cgroup_topmost_missing_parent(const char *path);

/* Validate and write linux.resources (the OCI object) to the cgroup's files. Used by create and update. */
int cgroup_apply_resources(const char *path, json_t *resources, struct pea_error *err);

int cgroup_freeze(const char *path, bool frozen, struct pea_error *err);
/* 1 frozen, 0 not, -1 error. */
int cgroup_is_frozen(const char *path, struct pea_error *err);
/* Signal every process in the cgroup (cgroup.kill for SIGKILL). */
int cgroup_kill_all(const char *path, int sig, struct pea_error *err);
/* PIDs in cgroup.procs of the cgroup and its descendants. Caller frees *pids. */
int cgroup_pids(const char *path, pid_t **pids, size_t *n, struct pea_error *err);
/* runc-compatible stats object ({"cpu":…,"memory":…,"pids":…,"blkio":…,"hugetlb":…}). */
json_t *cgroup_stats(const char *path, struct pea_error *err);
/* Count of oom_kill events from memory.events, or -1 when not available. */
long long cgroup_oom_kill_count(const char *path);

/* As cgroup_create for a cgroup that exists already (systemd made it): enable what the resources need, write them and
 * attach the device filter. */
int cgroup_configure(const char *path, json_t *resources, struct pea_error *err);

/* The systemd driver (--systemd-cgroup, cgroup_systemd.c): a transient scope per container, asked of systemd over
 * D-Bus. */
struct cgroup_systemd_unit {
    char *name;  /* "prefix-name.scope" */
    char *slice; /* "kubepods-besteffort.slice"; "system.slice" when the form leaves it empty */
    char *path;  /* the cgroup systemd gives the scope ("/kubepods.slice/kubepods-besteffort.slice/p-n.scope") */
};
/* The scope for linux.cgroupsPath "slice:prefix:name" (NULL or empty: ":pea:ID"); any other form, or a name that is
 * itself a slice, is an error. */
int cgroup_systemd_unit_for(const char *cgroups_path, const char *id, struct cgroup_systemd_unit *out,
                            struct pea_error *err);
void cgroup_systemd_unit_clear(struct cgroup_systemd_unit *u);
/* Ask systemd to start the scope holding pid (Delegate=yes, accounting on, the resources it has properties for),
 * wait until the start job is done, and return the cgroup pid is in now (relative to the cgroup2 root; caller
 * frees). A clear error where systemd does not run the host, the unit exists already or the job fails. */
char *cgroup_systemd_start_scope(const struct cgroup_systemd_unit *u, const char *description, pid_t pid,
                                 json_t *resources, struct pea_error *err);
/* Tell systemd the scope's new resources (SetUnitProperties, runtime), so that it keeps them. */
int cgroup_systemd_update_scope(const char *unit, json_t *resources, struct pea_error *err);
/* Stop the scope and wait for it to go; a unit systemd no longer knows is gone already. */
int cgroup_systemd_stop_scope(const char *unit, struct pea_error *err);

/* Teardown of a whole subtree (cgroup_teardown.c). Kill every process in the cgroup and its descendants
 * (cgroup.kill, else SIGKILL through pidfds of what cgroup.procs lists, repeated) and wait until none lives; an
 * error naming the cgroup when some still do after timeout_ms. A missing cgroup is empty. */
int cgroup_kill_and_wait_empty(const char *path, int timeout_ms, struct pea_error *err);
/* Remove the cgroup and every cgroup below it, deepest first (killing nothing: a populated one is an error), then
 * as cgroup_destroy. Missing is not an error. */
int cgroup_destroy_tree(const char *path, struct pea_error *err);

#endif
