/* The container's root filesystem: propagation, mounts in order, /dev, pivot_root, masked and read-only paths.
 * Runs in the container process, inside its new mount namespace, before the user process. */
#ifndef PEA_ROOTFS_H
#define PEA_ROOTFS_H

#include <stdbool.h>

#include "pea/error.h"
#include "pea/spec.h"

/* Step 1, before pivot_root: make "/" what linux.rootfsPropagation asks (default rslave; rshared keeps the host's
 * peer groups, so that an rshared bind mount propagates both ways; unbindable waits for step 3), make the mount
 * that holds the rootfs private when "/" may still be shared (so that nothing of the container's propagates back
 * through it), bind the rootfs (absolute host path) onto itself, then every spec->mounts entry in order
 * (destinations resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), created when missing; procfs/sysfs
 * targets refused, and procfs or sysfs on a symlink), the default /dev nodes and links when /dev is a tmpfs we
 * mounted, and spec->devices. Each mount is built detached (open_tree or fsopen/fsmount), given its flags and
 * recursive attributes (rro...) through its fd, attached with move_mount, then given its propagation; /dev stays
 * writable until step 3. Without a mount namespace in the config the mounts go into ours under the rootfs, as with
 * runc, and "/" is left as it is; on failure the rootfs bind is detached again. Hooks createContainer run after
 * this. When the runtime's helper mounts the root (an idmapped "/" in a user namespace), *rootfs becomes the
 * path of the fd it sent ("/proc/self/fd/N", kept open), which the child's mapped ids can follow. */
int rootfs_prepare(const struct pea_spec *spec, const char **rootfs, struct pea_error *err);

/* Step 2: pivot_root into the rootfs and detach the old root, chdir "/". With no_pivot, move the rootfs onto "/",
 * make the old root private and detach every other mount of it (a locked procfs or sysfs is covered), then
 * chroot: nothing of the host's mount tree but the old root mount itself stays in the namespace. Without a mount
 * namespace in the config (ours is shared), chroot only, whatever no_pivot says. */
int rootfs_enter(const struct pea_spec *spec, const char *rootfs, bool no_pivot, struct pea_error *err);

/* Step 3, after entering (and after the console is bound): a read-only /dev made read-only, maskedPaths (files by
 * the verified /dev/null 1:3, directories by a read-only empty tmpfs), readonlyPaths (read-only bind remount),
 * root.readonly, a shared or unbindable rootfsPropagation applied to "/". All by fd
 * (open_tree, fsmount, mount_setattr, move_mount): nothing depends on the container's own /proc. */
int rootfs_finalize(const struct pea_spec *spec, struct pea_error *err);

/* Host side, before the init is cloned (create), for a container with a user namespace when we are privileged:
 * a socket for the bind sources (its receiving end kept in spec for the child), and *sender, its sending end, for
 * rootfs_host_sources_send; *sender is -1 when there is nothing to send. */
int rootfs_host_sources_begin(struct pea_spec *spec, int *sender, struct pea_error *err);

/* Host side, once the child has its mount namespace (before it mounts anything): a helper joins that namespace
 * through pidfd, with our credentials, clones each bind source there (ready as rootfs_ready_host_tree makes it)
 * and sends the clones down sender, in mount order; a source it cannot open is sent as its errno. */
int rootfs_host_sources_send(const struct pea_spec *spec, pid_t pid, int pidfd, const char *rootfs, int sender,
                             struct pea_error *err);

/* A detached clone made by the runtime for mount m (the caller's own source, or one of rootfs_host_sources_send),
 * made ready for the child to attach as it is: the propagation a bind made in the container's namespace would have
 * (a slave, a private mount, or with rootfsPropagation shared and no user namespace the source's peer), m's flags
 * and recursive attributes. */
int rootfs_ready_host_tree(const struct pea_spec *spec, const struct pea_mount *m, int tree, struct pea_error *err);

/* Close the clones and the source socket once the child has attached them (or failed). */
void rootfs_close_host_sources(struct pea_spec *spec);

/* Bind the pty slave we created (its fd) onto /dev/console inside the container (file created if missing).
 * Called after rootfs_enter. */
int rootfs_bind_console(int pty_slave_fd, struct pea_error *err);

/* mount(2) of an overlay on target (a path); options longer than a page (many layers with long paths) get their
 * lowerdirs as /proc/self/fd/N of the directories, opened first (rootfs_overlay.c). destination names the mount in
 * errors. */
int rootfs_mount_overlay(const char *source, const char *target, unsigned long flags, const char *data,
                         const char *destination, struct pea_error *err);

#endif
