/* A pod's own user namespace (spec.hostUsers: false), pod_userns.c. */
#ifndef PEA_POD_USERNS_H
#define PEA_POD_USERNS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "pea/error.h"
#include "pea/pod.h"

/* One file per block of ids held, named by the block's index, holding the pod's uid. For the whole machine, not
 * per state root: pods of two roots must not share host ids either. */
#define POD_USERNS_DIR "/run/pea/userns"

/* Ids 0 .. size-1 inside are uid_start.. and gid_start.. on the host. */
struct pod_userns {
    uint32_t uid_start, gid_start, size;
};

/* Take a free block of 65536 ids for the pod whose uid (pod.json's "uid") is pod_uid. */
int pod_userns_allocate(const char *pod_uid, struct pod_userns *out, struct pea_error *err);
/* Give back every block the pod of that uid holds (none held is no error). */
int pod_userns_release(const char *pod_uid, struct pea_error *err);
/* pod.json's "userns": {uidStart, gidStart, size}. */
void pod_userns_record(json_t *state, const struct pod_userns *u);
int pod_userns_from_state(const json_t *state, struct pod_userns *out);
/* For a pod with hostUsers: false, the user namespace in an OCI config: a new one with the pod's mappings for the
 * infra, the infra's (pinned at ns/user) for a member. Nothing otherwise. */
int pod_userns_configure(const struct pea_pod *pod, json_t *cfg, bool is_infra, struct pea_error *err);
/* The upper layer of a container's root overlay (just made), owned by the pod's root: overlayfs writes there with
 * pea's ids, and the container's files are the pod's. Nothing for a pod of the host's users. */
int pod_userns_give_upper(const struct pea_pod *pod, int dir_fd, const char *name, struct pea_error *err);

#endif
