/* The pod sandbox: an infra process (pea-pause) owning the pod's network, IPC and UTS namespaces (and the PID
 * namespace when shared), pinned under the pod's directory; pod networking; volumes; a pod cgroup with one child per
 * container; member containers made through the OCI container layer with a per-pod state root.
 *
 * On disk (state, under --root):   <root>/pods/<name>/pod.json       the pod's state (see pod_state_*)
 *                                                    /teardown.json  what a teardown needs without pod.json
 *                                                    /manifest        the manifest as last applied, as given
 *                                                    /oci/            OCI state root of the pod's containers
 *                                                    /bundles/<c>/    generated config.json per container
 *                                                    /ns/{net,ipc,uts,pid}  namespaces pinned by bind mounts
 *                                                    /etc/            hostname, hosts, resolv.conf for members
 *                                                    /io/<c>.{1,2}    FIFOs: each container's stdout and stderr
 *                                                    /infra/          the infra's read-only root (pea-pause only)
 *           (data, --data-root): <data>/pods/<name>/volumes/<v>       emptyDir volumes
 *                                                    /containers/<c>/{upper,work,rootfs}  overlay roots */
#ifndef PEA_POD_H
#define PEA_POD_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pea/error.h"
#include "pea/pod_manifest.h"

#define PEA_POD_INFRA_ID "_infra" /* not a DNS label, so no container of the manifest can be called so */
#define PEA_POD_STATE_VERSION 2

struct pea_pod_options {
    const char *root;       /* pea's state root (--root) */
    const char *data_root;  /* where emptyDir volumes and overlay upper layers live */
    const char *pause_path; /* the pea-pause binary to copy into the infra's root */
};

struct pea_pod {
    char *name;
    char *root;     /* pea's state root */
    char *dir;      /* <root>/pods/<name> */
    char *oci_root; /* <dir>/oci */
    char *data_dir; /* <data_root>/pods/<name> */
    char *cgroup;   /* the pod cgroup, relative to the cgroup2 root */
    struct pea_pod_manifest *manifest;
    pid_t infra_pid;
    int infra_pidfd;
    json_t *state; /* pod.json */
};

/* Build the sandbox: directories, volumes, pod cgroup, the infra process, pinned namespaces, network, /etc files.
 * The pod takes the manifest. On failure everything made so far is torn down and nothing is left. */
int pod_create(const struct pea_pod_options *o, struct pea_pod_manifest *manifest, struct pea_pod **out,
               struct pea_error *err);
/* Open an existing pod from its state (pod.json, and its manifest reparsed from the manifest file, or from pod.json
 * for a pod of state version 1). */
int pod_open(const char *root, const char *name, struct pea_pod **out, struct pea_error *err);
void pod_free(struct pea_pod *pod);
static inline void pod_free_p(struct pea_pod **p) { pod_free(*p); }
#define AUTO_POD __attribute__((cleanup(pod_free_p)))

/* Write pod.json atomically. */
int pod_save(struct pea_pod *pod, struct pea_error *err);
/* Write teardown.json atomically: the pod's uid, cgroup, data directory, bridge and boot id, and the calling
 * process as the one supervising the pod. Written before anything of the pod is made on the host, and again by a
 * shim that adopts the pod, so that pod_remove finds all of it (and stops its supervisor) whatever became of
 * pod.json. */
int pod_save_teardown_record(const struct pea_pod *pod, struct pea_error *err);
/* Write the manifest's text (pod->manifest->source, released then) atomically to its own file; pod.json, saved
 * next, no longer holds it. */
int pod_save_manifest(struct pea_pod *pod, struct pea_error *err);

/* Whether pod.json (state) was written before the machine last booted: its recorded PIDs mean nothing now. */
bool pod_state_is_from_an_earlier_boot(const json_t *state);
/* Whether the process recorded under key in pod.json ({"pid", "startTime"}: "infra", "shim") still runs: same
 * start time, not a zombie, and not a record from before a reboot. */
bool pod_recorded_process_alive(const struct pea_pod *pod, const char *key);
bool pod_infra_alive(const struct pea_pod *pod);
/* The data root of a pod's data directory, <data root>/pods/<name> as pod_create makes it ("/" at the top). */
char *pod_data_root_of(const char *data_dir);
/* A member container's init as a pidfd (and its pid in *pid_out unless NULL); -1 when it does not run. */
int pod_open_member_pidfd(const char *oci_root, const char *id, pid_t *pid_out);

/* Begin making a member container (created, not started; id = its name) from the manifest entry: generated bundle,
 * fresh overlay upper layer, stdio as given (-1 = /dev/null); container_create_finish completes it, and the init
 * stays our child (its pid, pidfd). A container of that name left from an earlier run is deleted first. */
struct pea_create_job;
int pod_container_create_begin(struct pea_pod *pod, const struct pea_pod_container *c, const int stdio[3],
                               struct pea_create_job **job, struct pea_error *err);
int pod_container_start(struct pea_pod *pod, const char *name, struct pea_error *err);
/* SIGTERM, then SIGKILL to every process after grace_seconds (waiting through pidfd when given, else polling), then
 * delete the container and its overlay layer. Missing is not an error. */
int pod_container_stop(struct pea_pod *pod, const char *name, int pidfd, long long grace_seconds,
                       struct pea_error *err);

/* Tear down everything of the pod named `name` under root, whatever state it is in (also half-made, with its
 * supervisor gone, or with pod.json or a member's state unreadable): the process supervising it when that is still
 * running and is not the caller (SIGKILL: it would go on making or restarting what is being removed), members
 * (SIGTERM, grace, SIGKILL), the infra, then every process left in the pod's cgroup (killed, and waited for with a
 * deadline), pinned namespaces, network devices, cgroups, volumes, overlay layers, state. When it cannot establish
 * that nothing of the pod runs any more, it fails and keeps the pod's state. Idempotent; a missing pod is an error
 * "pod X does not exist". A pod from an earlier boot is cleaned without signalling any recorded PID. */
int pod_remove(const char *root, const char *name, long long grace_seconds, struct pea_error *err);

/* Names of the pods under root (sorted); caller frees with strv_free. */
char **pod_list_names(const char *root, struct pea_error *err);

/* OCI config.json objects (exposed for tests): a member container, and the infra. */
json_t *pod_config_member(const struct pea_pod *pod, const struct pea_pod_container *c, struct pea_error *err);
json_t *pod_config_infra(const struct pea_pod *pod, struct pea_error *err);
/* linux.resources (memory, cpu) for a container's manifest resources, as Kubernetes converts them. */
json_t *pod_config_resources(const struct pea_pod_resources *r);
/* The pod cgroup's limits (sum of the app containers' when every one has a limit), or NULL when none. */
json_t *pod_config_limits(const struct pea_pod_manifest *m);

#endif
