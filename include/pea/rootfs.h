/* The container's root filesystem: propagation, mounts in order, /dev, pivot_root, masked and read-only paths.
 * Runs in the container process, inside its new mount namespace, before the user process. */
#ifndef PEA_ROOTFS_H
#define PEA_ROOTFS_H

#include <stdbool.h>

#include "pea/error.h"
#include "pea/spec.h"

/* Step 1, before pivot_root: make "/" rslave/rprivate (per rootfsPropagation; never leak mounts to the host),
 * bind the rootfs (absolute host path) onto itself, then every spec->mounts entry in order (destinations resolved
 * inside the rootfs with openat2(RESOLVE_IN_ROOT), created when missing; procfs/sysfs targets refused, and procfs
 * or sysfs on a symlink), the default /dev nodes and links when /dev is a tmpfs we mounted, and spec->devices.
 * Each mount is built detached (open_tree or fsopen/fsmount), given its flags and recursive attributes (rro...)
 * through its fd, attached with move_mount, then given its propagation. Hooks createContainer run after this. */
int rootfs_prepare(const struct pea_spec *spec, const char *rootfs, struct pea_error *err);

/* Step 2: pivot_root into the rootfs and detach the old root, chdir "/". With no_pivot, move the rootfs onto "/",
 * make the old root private and detach every other mount of it (a locked procfs or sysfs is covered), then
 * chroot: nothing of the host's mount tree but the old root mount itself stays in the namespace. */
int rootfs_enter(const char *rootfs, bool no_pivot, struct pea_error *err);

/* Step 3, after entering: maskedPaths (files by the verified /dev/null 1:3, directories by a read-only empty
 * tmpfs), readonlyPaths (read-only bind remount), root.readonly, rootfsPropagation applied to "/". All by fd
 * (open_tree, fsmount, mount_setattr, move_mount): nothing depends on the container's own /proc. */
int rootfs_finalize(const struct pea_spec *spec, struct pea_error *err);

/* Bind the pty slave we created (its fd) onto /dev/console inside the container (file created if missing).
 * Called after rootfs_enter. */
int rootfs_bind_console(int pty_slave_fd, struct pea_error *err);

#endif
