/* The task's root filesystem as containerd describes it in CreateTaskRequest.rootfs (an overlay of the snapshot's
 * layers, or a bind mount), mounted in order onto BUNDLE/rootfs, and unmounted when the task is deleted. */
#ifndef PEA_SHIM_V2_ROOTFS_MOUNT_H
#define PEA_SHIM_V2_ROOTFS_MOUNT_H

#include <stddef.h>

#include "mount.pb-c.h"
#include "pea/error.h"

/* On failure what was mounted is unmounted again. */
int rootfs_mount_all(const char *bundle, Containerd__Types__Mount *const *mounts, size_t count, struct pea_error *err);
void rootfs_unmount_all(const char *bundle);

#endif
