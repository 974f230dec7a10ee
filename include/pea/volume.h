/* Pod volumes: emptyDir (a directory of the pod's data, or a size-limited tmpfs for medium Memory) and hostPath
 * (with its type checks), and subPath directories resolved so that no symlink leads out of the volume. */
#ifndef PEA_VOLUME_H
#define PEA_VOLUME_H

#include "pea/error.h"
#include "pea/pod.h"

const struct pea_pod_volume *volume_find(const struct pea_pod_manifest *m, const char *name);
/* Where the volume is on the host (malloc'd): the hostPath, or the emptyDir's directory in the pod's data. */
char *volume_host_path(const struct pea_pod *pod, const struct pea_pod_volume *v);

/* Make every volume of the pod ready to be bound into containers. */
int volume_prepare_all(const struct pea_pod *pod, struct pea_error *err);

/* Create the container's missing subPath directories inside their volumes (as Kubernetes does), refusing one that
 * a symlink would take out of the volume. */
int volume_prepare_sub_paths(const struct pea_pod *pod, const struct pea_pod_container *c, struct pea_error *err);

/* Unmount the tmpfs of Memory emptyDirs under data_dir/volumes (the manifest may be gone: every mount point found
 * there is unmounted) and remove the volumes. */
int volume_release_all(const char *data_dir, struct pea_error *err);

#endif
