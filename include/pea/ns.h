/* Namespaces: validation of the combination, joining by path, creating new ones, id maps, time offsets, and the
 * namespaced settings (hostname, domainname, sysctl). */
#ifndef PEA_NS_H
#define PEA_NS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"
#include "pea/spec.h"

/* Namespace files opened (and type-checked) by the parent before clone; -1 for "create new" or "not listed". */
struct pea_ns_handles {
    int fd[PEA_NS_COUNT];
};

/* Reject combinations that cannot work, naming the field: mappings without a user namespace, hostname without a
 * UTS namespace, maskedPaths or readonlyPaths without a mount namespace, network sysctls without a network
 * namespace... A namespace not listed is inherited (ours), the mount namespace too. */
int ns_validate(const struct pea_spec *spec, struct pea_error *err);

int ns_open_paths(const struct pea_spec *spec, struct pea_ns_handles *h, struct pea_error *err);
void ns_close_handles(struct pea_ns_handles *h);

/* Parent side, before clone: join a pid namespace by path and set up a new time namespace with offsets; these
 * take effect for children only. Returns the CLONE_NEW* flags clone3 must carry (user, pid, time). */
int ns_prepare_parent(const struct pea_spec *spec, const struct pea_ns_handles *h, uint64_t *clone_flags,
                      struct pea_error *err);

/* Parent side, after clone: write uid_map/gid_map of the child through a verified procfs fd (an unprivileged
 * caller denies setgroups first), or, for maps an unprivileged caller may not write (more than its own id), with
 * newuidmap/newgidmap. */
int ns_write_id_maps(int proc_fd, pid_t pid, const struct pea_spec *spec, struct pea_error *err);

/* Child side: join namespaces by path (user first), then unshare the new mount, network, ipc, uts and cgroup
 * namespaces. */
int ns_enter(const struct pea_spec *spec, const struct pea_ns_handles *h, struct pea_error *err);

/* Child side, in its namespaces: hostname, domainname and linux.sysctl, written through proc_fd. */
int ns_apply_settings(const struct pea_spec *spec, int proc_fd, struct pea_error *err);

/* Join, through the pidfd of a running container's init, every namespace spec lists, in one setns (all or none);
 * without a mount namespace in spec, enter the init's root directory (chroot) instead, in NS_JOIN_SELF.
 * The pid and time namespaces take effect for children: NS_JOIN_FOR_CHILDREN joins those, in the process that will
 * clone; NS_JOIN_SELF the others, in the clone. An init that has exited (ESRCH) fails with "container not running",
 * never with a process left in our namespaces. */
enum ns_join_phase { NS_JOIN_FOR_CHILDREN, NS_JOIN_SELF };
int ns_join_process(int pidfd, const struct pea_spec *spec, enum ns_join_phase phase, struct pea_error *err);

#endif
