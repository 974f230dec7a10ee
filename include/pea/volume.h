/* Pod volumes: emptyDir (a directory of the pod's data, or a size-limited tmpfs for medium Memory), hostPath
 * (with its type checks) and image (the image's layers merged, read-only and noexec, on a directory of the pod's
 * data), each opened once per container start into the object to bind, subPaths resolved below
 * their volume. */
#ifndef PEA_VOLUME_H
#define PEA_VOLUME_H

#include "pea/container.h"
#include "pea/error.h"
#include "pea/pod.h"

const struct pea_pod_volume *volume_find(const struct pea_pod_manifest *m, const char *name);
/* Where the volume is on the host (malloc'd): the hostPath, or the emptyDir's directory in the pod's data. */
char *volume_host_path(const struct pea_pod *pod, const struct pea_pod_volume *v);

/* Make every volume of the pod ready to be bound into containers. */
int volume_prepare_all(const struct pea_pod *pod, struct pea_error *err);

/* Open what each of the container's volume mounts binds, once, into an O_PATH fd of the very object to bind (for
 * pea_create_options.mount_sources, so that no later lookup of a path can be led elsewhere): the volume itself (a
 * hostPath checked against its type on that fd), or its subPath resolved below it. A missing subPath is created as
 * a directory (as Kubernetes does), a file stays a file, and one that a symlink or ".." would take out of the
 * volume is refused. *sources (n entries; destinations borrowed from the manifest) go back through
 * volume_close_sources. */
int volume_open_sources(const struct pea_pod *pod, const struct pea_pod_container *c,
                        struct pea_mount_source **sources, size_t *n, struct pea_error *err);
void volume_close_sources(struct pea_mount_source *sources, size_t n);

/* Volumes of files pea writes (configMap, secret, downwardAPI, projected), in the kubelet's atomic writer's layout
 * (a timestamped directory per version, ..data linking to it, one symlink per name): whether v is one; make and
 * write it at path (on a tmpfs unless a configMap); after an apply (pod->manifest the new one, old what ran
 * before), write a new version of each whose files changed, swapping ..data in one rename. */
bool volume_is_written(const struct pea_pod_volume *v);
int volume_prepare_written(const struct pea_pod *pod, const struct pea_pod_volume *v, int volumes_dir,
                           struct pea_error *err);
int volume_update_written(const struct pea_pod *pod, const struct pea_pod_manifest *old, struct pea_error *err);

/* A tmpfs (nosuid, nodev; mode, and size when has_size) attached onto the directory fd dir itself (move_mount: no
 * path is looked up again); returns an fd (O_RDONLY) of its root. name: the volume's, for errors. */
int volume_mount_tmpfs(int dir, const char *name, mode_t mode, bool has_size, uint64_t size_bytes,
                       struct pea_error *err);

/* Unmount the tmpfs of Memory emptyDirs and the mounts of image volumes under data_dir/volumes (the manifest may be
 * gone: every mount point found there, told by its mount id, is unmounted) and remove the volumes. */
int volume_release_all(const char *data_dir, struct pea_error *err);

#endif
