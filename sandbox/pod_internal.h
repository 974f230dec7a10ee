/* Shared by pod.c (building a pod, its members) and pod_teardown.c (taking a pod apart from what is on disk). */
#ifndef PEA_POD_INTERNAL_H
#define PEA_POD_INTERNAL_H

#include <stddef.h>

#include "pea/error.h"

#define POD_STATE_FILE "pod.json"
/* What a teardown needs when pod.json is unreadable (pod_save_teardown_record). */
#define POD_TEARDOWN_RECORD "teardown.json"

void pod_read_boot_id(char *out, size_t len);
/* SIGTERM to each container's init, the grace period, then delete --force each (which SIGKILLs what is left in
 * its cgroup). known_pidfds may be NULL, or hold -1 for those to look up. The first failure is reported. */
int pod_stop_containers(const char *oci_root, char *const *ids, size_t n, const int *known_pidfds,
                        long long grace_seconds, struct pea_error *err);
/* Detach every pinned namespace under <dir>/ns. */
int pod_unpin_namespaces(const char *dir, struct pea_error *err);
/* Delete the bridge when pea made it (its mark under root) and no port is left on it. */
int pod_release_bridge(const char *root, const char *bridge, struct pea_error *err);
/* The names in a directory (not starting with '.'), sorted; empty when it does not exist. */
char **pod_dir_names(const char *path, struct pea_error *err);

#endif
