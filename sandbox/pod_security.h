/* A pod's security context as the kubelet applies it (pod_security.c): the process's groups, runAsNonRoot,
 * AppArmor, procMount and Localhost seccomp profiles in each member's config, and fsGroup on volumes. */
#ifndef PEA_POD_SECURITY_H
#define PEA_POD_SECURITY_H

#include <jansson.h>
#include <stdbool.h>

#include "pea/error.h"
#include "pea/pod.h"

/* Where Localhost seccomp profiles named by a relative localhostProfile live, below the data root: the kubelet's
 * rule (<root-dir>/seccomp) with pea's data root as its root-dir. */
#define POD_SECCOMP_PROFILE_DIR "seccomp"

/* Once per pod, before anything is made: refuse what this host cannot honour (an AppArmor profile without
 * AppArmor) and print a notice for what it honours only in part. */
int pod_security_check(const struct pea_pod_manifest *m, struct pea_error *err);

/* Into a member's config (made by pod_config_member): process.user.additionalGids, runAsNonRoot (the kubelet's
 * words when it fails), process.apparmorProfile, and procMount Unmasked (no masked or read-only paths). */
int pod_security_configure(const struct pea_pod *pod, const struct pea_pod_container *c, json_t *cfg,
                           struct pea_error *err);

/* The OCI linux.seccomp object of a Localhost profile: an absolute localhostProfile as it is, a relative one below
 * DATA_ROOT/seccomp (never outside it). */
json_t *pod_security_localhost_seccomp(const struct pea_pod *pod, const struct pea_pod_container *c,
                                       struct pea_error *err);

/* fsGroup on the volume at dir_fd (a directory): group fsGroup on everything in it (symlinks left alone), group
 * read (and write unless is_read_only) added, setgid on directories, as the kubelet's SetVolumeOwnership; with
 * fsGroupChangePolicy OnRootMismatch nothing is walked when the top already matches. Nothing without fsGroup. */
int pod_security_own_volume(int dir_fd, const struct pea_pod_groups *g, bool is_read_only, struct pea_error *err);

#endif
