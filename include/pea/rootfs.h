/* The container's root filesystem: propagation, mounts in order, /dev, pivot_root, masked and read-only paths.
 * Runs in the container process, inside its new mount namespace, before the user process. */
#ifndef PEA_ROOTFS_H
#define PEA_ROOTFS_H

#include <stdbool.h>

#include "pea/error.h"
#include "pea/spec.h"

/* Step 1, before pivot_root: make "/" rslave/rprivate (per rootfsPropagation; never leak mounts to the host),
 * bind the rootfs (absolute host path) onto itself, then every spec->mounts entry in order (destinations resolved
 * inside the rootfs with openat2(RESOLVE_IN_ROOT), created when missing; procfs/sysfs targets refused), the
 * default /dev nodes and links when /dev is a tmpfs we mounted, and spec->devices. Hooks createContainer run after
 * this. */
int rootfs_prepare(const struct pea_spec *spec, const char *rootfs, struct pea_error *err);

/* Step 2: pivot_root into the rootfs (or chroot with no_pivot), detach the old root, chdir "/". */
int rootfs_enter(const char *rootfs, bool no_pivot, struct pea_error *err);

/* Step 3, after entering: maskedPaths (files by the verified /dev/null 1:3, directories by a read-only empty
 * tmpfs), readonlyPaths (read-only bind remount), root.readonly, rootfsPropagation applied to "/". */
int rootfs_finalize(const struct pea_spec *spec, struct pea_error *err);

/* Bind the pty slave we created (its fd) onto /dev/console inside the container (file created if missing).
 * Called after rootfs_enter. */
int rootfs_bind_console(int pty_slave_fd, struct pea_error *err);

#endif
