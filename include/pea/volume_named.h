/* Named volumes: what a pod's persistentVolumeClaim volume binds. A directory under the data root that the first pod
 * naming the claim makes and that outlives every pod, until `pea volume rm`.
 *
 * On disk (data, --data-root): <data>/volumes-named/<name>/       the volume, 0700, locked while used or removed
 *                                                       /data   what pods bind
 *                              <data>/pods/<pod>/claims/<name>     the pod uses it (gone with the pod's data)
 * Nothing below volumes-named is reached through a symlink: every lookup there refuses them. */
#ifndef PEA_VOLUME_NAMED_H
#define PEA_VOLUME_NAMED_H

#include <jansson.h>
#include <stdbool.h>

#include "pea/error.h"
#include "pea/pod.h"

#define VOLUME_NAMED_DIR "volumes-named"

/* A DNS subdomain of at most 253 characters, as Kubernetes names a PersistentVolumeClaim. */
bool volume_named_name_is_valid(const char *name);
/* <data root>/volumes-named/<claim>/data (malloc'd): for config.json, which only shows it (the bind's source is the
 * fd of volume_named_open). */
char *volume_named_data_path(const struct pea_pod *pod, const struct pea_pod_volume *v);
/* Make the pod's claim v ready (its volume made when missing) and mark the pod as its user. */
int volume_named_prepare(const struct pea_pod *pod, const struct pea_pod_volume *v, struct pea_error *err);
/* An O_PATH fd of the volume's data directory, the very one bound. */
int volume_named_open(const struct pea_pod *pod, const struct pea_pod_volume *v, struct pea_error *err);
/* Every named volume under data_root, by name: [{"name", "pods": [...], "created": RFC 3339}]. */
json_t *volume_named_list(const char *data_root, struct pea_error *err);
/* Remove a named volume with its data; refused while a pod uses it. is_missing_ok: no error when there is none. */
int volume_named_remove(const char *data_root, const char *name, bool is_missing_ok, struct pea_error *err);

#endif
