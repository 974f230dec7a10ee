/* The runtime options containerd gives the shim, read and checked: what pea's shim honours is kept here, anything
 * it cannot honour is an error naming the option, never dropped. Empty options (no type, no bytes) are none.
 *
 * Accepted types (the Any's type_url, with or without a "host/" prefix):
 *   containerd.runc.v1.Options       SystemdCgroup, NoPivotRoot, NoNewKeyring, Root, ShimCgroup, IoUid/IoGid;
 *                                    BinaryName only when it names pea ("pea" or a path ending in /pea): the shim
 *                                    runs pea and no other runtime; CriuPath, CriuImagePath, CriuWorkPath refused
 *                                    (pea implements no checkpoints).
 *   containerd.linux.runc.CreateOptions  (ctr --no-pivot): the same fields; its checkpoint fields refused.
 *   runtimeoptions.v1.Options        (the CRI plugin's options table for a runtime of type io.containerd.pea.v2,
 *                                    ctr --runtime-config-path): empty is fine; ConfigPath is refused, pea's shim
 *                                    reads no runtime config file. */
#ifndef PEA_SHIM_V2_RUNTIME_OPTIONS_H
#define PEA_SHIM_V2_RUNTIME_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"

struct runtime_options {
    bool systemd_cgroup;
    bool no_pivot_root;
    bool no_new_keyring;
    char *root;        /* NULL: the shim's default; the containerd namespace is appended, as runc's shim does */
    char *shim_cgroup; /* NULL: none; a path under /sys/fs/cgroup */
    bool has_io_owner; /* IoUid or IoGid other than 0 */
    uid_t io_uid;
    gid_t io_gid;
};

/* From an Any's type and bytes (CreateTaskRequest.options). */
int runtime_options_parse(const char *type_url, const uint8_t *value, size_t len, struct runtime_options *options,
                          struct pea_error *err);
/* From a packed google.protobuf.Any (`start`'s stdin). */
int runtime_options_parse_any(const uint8_t *data, size_t len, struct runtime_options *options,
                              struct pea_error *err);
void runtime_options_release(struct runtime_options *options);

/* The state root for namespace: ROOT/NAMESPACE with Root set, else default_root. Caller frees. */
char *runtime_options_state_root(const struct runtime_options *options, const char *default_root,
                                 const char *namespace);
/* Move the process pid into ShimCgroup (cgroup v2: /sys/fs/cgroup/SHIM_CGROUP/cgroup.procs). No-op without one.
 * pid must be the caller's own or its unreaped child, so that it names that process. */
int runtime_options_enter_shim_cgroup(const struct runtime_options *options, pid_t pid, struct pea_error *err);

#endif
