/* What the parts of the root filesystem code share: rootfs.c (mounts, masks), rootfs_dev.c (/dev), rootfs_enter.c
 * (pivot_root, chroot, --no-pivot) and rootfs_host.c (what the runtime prepares on the host side). */
#ifndef PEA_ROOTFS_INTERNAL_H
#define PEA_ROOTFS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "pea/error.h"
#include "pea/spec.h"

/* The config lists a mount namespace (new or joined): without one the container shares ours, and nothing may be
 * done to our "/" (no propagation change, no pivot_root). */
bool rootfs_has_mount_namespace(const struct pea_spec *spec);

/* MOUNT_ATTR_* of per-mount MS_* flags, read as mount(2) reads them (strictatime wins over noatime). */
uint64_t rootfs_mount_attr_of(unsigned long flags);

/* mount_setattr on the mount whose root fd names (attached or not); at_flags 0 or AT_RECURSIVE. */
int rootfs_set_mount_attr(int fd, unsigned at_flags, uint64_t set, uint64_t clear, uint64_t propagation);

/* Give the mount at fd exactly the per-mount FLAGS, as a bind remount (MS_BIND | MS_REMOUNT) does: what FLAGS
 * leaves out is cleared, except what the kernel locked. */
int rootfs_set_mount_flags(int fd, unsigned long flags);

/* A bind's flags (m->flags) on its detached tree, as a bind remount gives them, when any is asked for. */
int rootfs_set_bind_flags(int tree, const struct pea_mount *m);

/* Attach the detached mount tree onto the object target names (the topmost mount there, as mount(2) would). */
int rootfs_attach_tree(int tree, int target);

/* A read-only, empty tmpfs that can hold nothing, detached: what hides a directory. */
int rootfs_open_empty_tmpfs(void);

/* The default /dev nodes and links when /dev is a tmpfs of the config, then linux.devices (rootfs_dev.c). */
int rootfs_setup_dev(int root_fd, const struct pea_spec *spec, struct pea_error *err);

/* The /dev mount's read-only flag, held back while /dev was filled (rootfs_dev.c); in the container, after the
 * console. */
int rootfs_finalize_dev(const struct pea_spec *spec, struct pea_error *err);

/* Whether the mount is the config's /dev, whose read-only flag waits for rootfs_finalize_dev. */
bool rootfs_is_dev_mount(const struct pea_mount *m);

/* The mount as it is made: a copy of m (sharing its strings), without the read-only flag and recursive attribute
 * of /dev, which rootfs_finalize_dev applies. */
struct pea_mount rootfs_mount_as_made(const struct pea_mount *m);

/* Whether mount i's source comes from the runtime's helper (rootfs_host.c) rather than from a lookup here. */
bool rootfs_is_host_source(const struct pea_spec *spec, size_t i);

/* Whether the root is an idmapped bind that the runtime's helper mounts onto root.path and sends, mounted. */
bool rootfs_is_host_root(const struct pea_spec *spec);

/* The next source from the runtime's helper, in mount order: *tree is its clone, or -1 when the helper could not
 * open it (the child then tries itself, and reports its own error). -1 when the message is missing. */
int rootfs_host_source_receive(const struct pea_spec *spec, const struct pea_mount *m, int *tree,
                               struct pea_error *err);

#endif
