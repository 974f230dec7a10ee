/* Images of the store used by a pod's containers (`image: nginx:1.27`): resolved by the pod's supervisor when a
 * container is added or changed, held for the pod while any of its containers uses them (`pea image rm` refuses
 * them, naming the pod), and their configuration applied with Kubernetes' rules. Pulling is the client's work
 * (runtime/cli/pod_pull.c): the supervisor only reads the store under the pod's data root.
 *
 * The manifest digest each container uses is recorded in pod.json ("images": {"CONTAINER": "sha256:..."}): a
 * restart, an apply that leaves the container unchanged, and a shim adopting the pod use that image, never the
 * name again. */
#ifndef PEA_POD_IMAGE_H
#define PEA_POD_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pea/digest.h"
#include "pea/error.h"
#include "pea/pod_manifest.h"

struct pea_pod;

struct pea_pod_image {
    char manifest_digest[PEA_DIGEST_SIZE];
    char **layer_dirs;   /* the store's unpacked layers, base first, NULL-terminated */
    size_t n_layers;
    char **entrypoint;   /* config.Entrypoint, NULL when absent */
    char **cmd;          /* config.Cmd, NULL when absent */
    char **env;          /* config.Env ("NAME=value"), NULL-terminated, never NULL */
    char *working_dir;   /* config.WorkingDir, NULL when absent or empty */
    char *user;          /* config.User, NULL when absent or empty */
    bool has_ids;        /* user resolved (only when the container gives no runAsUser) */
    uid_t uid;
    gid_t gid;
    int stop_signal;     /* config.StopSignal, 0 when absent */
};
void pod_image_free(struct pea_pod_image *image);
/* An overlay's lowerdir value for layers given base first: "TOP:...:BASE" (malloc'd). NULL when a layer's path holds
 * ':' or ',', which the value cannot carry; *bad is then that layer. */
char *pod_image_lowerdir(char *const *layers, size_t n_layers, const char **bad);

/* Resolve and hold the image of each container of m that names one, and attach it (c->image; c->stop_signal from
 * the image unless lifecycle.stopSignal is given). A container that old has unchanged (same name and spec) keeps
 * the image recorded for it; any other resolves its reference now. Image volumes likewise (v->image): the digest
 * recorded for one (under "volumes/NAME") is kept, since volumes change only with a new sandbox. Records the digests
 * in pod->state (the caller saves it). On failure nothing new stays held. */
int pod_images_attach(struct pea_pod *pod, struct pea_pod_manifest *m, const struct pea_pod_manifest *old,
                      struct pea_error *err);
/* The "images" record of pod->state as it is now (a copy): what pod_images_release_dropped compares with. */
json_t *pod_images_record(const struct pea_pod *pod);
/* Release every digest of `before` (a pod_images_record) that the pod's record no longer holds: after an apply. */
void pod_images_release_dropped(struct pea_pod *pod, const json_t *before);
/* Undo an attach whose apply failed: release what it took beyond `before`, and record `before` again. */
void pod_images_restore(struct pea_pod *pod, json_t *before);
/* Release all of a pod's holds in the store of the data root its data directory (<data root>/pods/<name>) is under;
 * nothing to do (and no store made) when it holds none. */
int pod_images_release_all(const char *data_dir, const char *name, struct pea_error *err);

/* The process of a container from an image, by Kubernetes' rules: command replaces the Entrypoint (and the Cmd
 * goes), args replace the Cmd, neither gives Entrypoint + Cmd; command and args have $(VAR) expanded from vars,
 * the image's never. NULL with err when nothing is left to run. */
json_t *pod_image_args(const struct pea_pod_container *c, const json_t *vars, struct pea_error *err);
/* The image's Env first, each overridden by the container's variable of that name (vars); then env, the
 * container's list (its default PATH dropped when the image sets PATH). */
json_t *pod_image_env(const struct pea_pod_image *image, const json_t *env, const json_t *vars);
/* An image's User ("uid", "name", "uid:gid", "name:group", mixes) as ids, names looked up in the text of the
 * image's /etc/passwd and /etc/group (either NULL when the image has none): a uid alone takes its group from
 * passwd when listed there, else 0, as containerd does. */
int pod_image_user_ids(const char *spec, const char *passwd, const char *groups, uid_t *uid, gid_t *gid,
                       struct pea_error *err);
/* runAsNonRoot against the image's user, for a container that gives no runAsUser (the kubelet's rules and words):
 * refused when the image runs as uid 0 (no user is root), or names a user that is not numeric. `who` names the
 * pod and the container in the error. */
int pod_image_check_non_root(const char *who, const struct pea_pod_container *c, struct pea_error *err);

#endif
