/* Capabilities (libcap), rlimits, no_new_privs, and the user identity of the container process. */
#ifndef PEA_CAPS_H
#define PEA_CAPS_H

#include "pea/error.h"
#include "pea/spec.h"

/* Apply rlimits (setrlimit on the calling process). */
int caps_apply_rlimits(const struct pea_process *process, struct pea_error *err);

/* Switch to process->user (setgroups, setgid, setuid keeping capabilities across the uid change), then set the
 * five capability sets (bounding drop, ambient raise) when process->has_capabilities. Call after every step that
 * needs privilege and before seccomp. */
int caps_apply_user_and_capabilities(const struct pea_process *process, struct pea_error *err);

/* prctl(PR_SET_NO_NEW_PRIVS) when asked. */
int caps_apply_no_new_privileges(const struct pea_process *process, struct pea_error *err);

/* The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap). */
int caps_last_cap(void);
/* Name of capability N ("CAP_CHOWN"), NULL when unknown. */
const char *caps_name(int cap);

#endif
