/* What the bundle writer's modules share. Not a public interface. */
#ifndef PEA_IMAGE_BUNDLE_INTERNAL_H
#define PEA_IMAGE_BUNDLE_INTERNAL_H

#include "pea/error.h"

/* Apply the layer directories (base first, NULL-terminated; diff_ids name them in messages) onto rootfs_fd, as
 * overlayfs would show them stacked. */
int bundle_apply_layers(int rootfs_fd, char *const *layer_dirs, char *const *diff_ids, struct pea_error *err);

#endif
