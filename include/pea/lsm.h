/* Linux security modules named by the config: process.apparmorProfile, process.selinuxLabel, linux.mountLabel. */
#ifndef PEA_LSM_H
#define PEA_LSM_H

#include <stdbool.h>

#include "pea/error.h"
#include "pea/spec.h"

/* Which labels to apply, decided in the runtime before clone. */
struct pea_lsm_plan {
    const char *apparmor_profile; /* NULL: none asked, or AppArmor is off on this host */
    const char *selinux_label;    /* NULL: none asked, or SELinux is off on this host */
};

/* Whether AppArmor is enabled on this host (and its securityfs is there to load profiles). */
bool lsm_apparmor_is_enabled(void);

/* Fill *plan for SPEC's process. A label whose LSM is not enabled on this host is dropped with one warning, as runc
 * does; a mount label on a host with SELinux is refused, since pea cannot apply it yet. */
int lsm_plan(const struct pea_spec *spec, struct pea_lsm_plan *plan, struct pea_error *err);

/* In the container's init, after its setup and before any exec: set the labels its execve takes on, through
 * PROC_FD, a procfs that was verified before the container could shape the mount namespace. */
int lsm_apply_exec_labels(int proc_fd, const struct pea_lsm_plan *plan, struct pea_error *err);

#endif
