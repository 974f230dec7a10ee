/* The pod commands' side of pea-shim: finding and starting it, and talking to it over its control socket. */
#ifndef PEA_CLI_POD_CLIENT_H
#define PEA_CLI_POD_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "pea/error.h"
#include "pea/pod.h"

#define POD_DEFAULT_DATA_ROOT "/var/lib/pea"
/* How long a client waits: for a shim to come up (it builds the sandbox first), and for a request answered once
 * containers have started (apply, wait for started). */
#define POD_SHIM_READY_TIMEOUT_MS (120 * 1000)
#define POD_SHIM_REQUEST_TIMEOUT_MS (120 * 1000)
/* A shim answers a plain request at once (nothing blocks its loop): one that has not within this does not answer.
 * It bounds connecting and sending too. */
#define POD_SHIM_ANSWER_TIMEOUT_MS (10 * 1000)
/* `pea pod rm --force` gives a shim this long to take the shutdown before it kills it. */
#define POD_SHIM_FORCE_TIMEOUT_MS (5 * 1000)
/* `pea pod ls` asks each shim; one that does not answer this fast counts as not answering. */
#define POD_SHIM_STATUS_TIMEOUT_MS 2000

/* A helper binary of pea (pea-pause, pea-shim), found from the real pea binary (/proc/self/exe, or argv0 through
 * $PATH when pea runs from its sealed copy; symlinks resolved): beside it, in its directory of a build tree
 * (sandbox/, shim/), in the install's libexec directory relative to it, or in the compiled-in libexec directory.
 * The error lists where it looked (and names --pause for pea-pause). */
char *pod_find_helper(const char *argv0, const char *name, const char *build_subdir, struct pea_error *err);

/* Start pea-shim for the manifest in manifest_fd (manifest_source_memfd: the very text checked, not the file read
 * again, which may have changed since or been stdin) and wait until it serves the new pod (or say why not). */
int pod_spawn_shim(const struct cli_globals *g, int manifest_fd, const char *data_root, const char *pause,
                   struct pea_error *err);
/* Start a new pea-shim for a pod whose shim died while its infra lives (supervisor_adopt). */
int pod_adopt(const struct cli_globals *g, const char *name, struct pea_error *err);

/* Whether the shim recorded in the pod's state is still that process. */
bool pod_shim_is_alive(const struct pea_pod *pod);
/* Connect to the pod's shim; -1 when it does not answer. Connecting, and every send on the connection, waits at most
 * timeout_ms for a shim that does not take them. */
int pod_shim_connect(const struct pea_pod *pod, int timeout_ms, struct pea_error *err);
/* One request (consumed) and its reply: *result (may be NULL) on ok, else the shim's error line in err. fds go with
 * the request; a descriptor that comes with the reply lands in *reply_fd (else -1) when reply_fd is given. After
 * timeout_ms (< 0: never) without the reply: "pea-shim (pid N) did not answer within 10s". */
int pod_shim_call(int fd, json_t *request, const int *fds, size_t n_fds, int timeout_ms, json_t **result,
                  int *reply_fd, struct pea_error *err);
/* The shim at the other end of a connection, as the kernel recorded it when the shim listened (SO_PEERCRED): a
 * message names the process that does not answer by the socket itself, not by a record that may be stale. */
pid_t pod_shim_peer_pid(int fd);
/* A new request of op, with the next id. */
json_t *pod_shim_request(const char *op);
/* Wait for the next message (timeout_ms < 0: for ever); *msg NULL when the shim closed the connection. */
int pod_shim_receive(int fd, int timeout_ms, json_t **msg, int *reply_fd, struct pea_error *err);
/* A reply's outcome: *result (when given) on ok, else its error line in err. */
int pod_shim_outcome(json_t *msg, json_t **result, struct pea_error *err);
/* Open a pod served by a live shim, connect to it, and check that it answers (POD_SHIM_ANSWER_TIMEOUT_MS), so that a
 * request whose answer may take long (wait, events, apply) is not sent to a shim that answers nothing; else say why
 * not. */
int pod_open_served(const struct cli_globals *g, const char *name, struct pea_pod **pod, int *fd,
                    struct pea_error *err);
/* The shim's status of the pod, NULL when no shim answers. */
json_t *pod_shim_status(const struct pea_pod *pod);
/* Ask the shim to shut the pod down and wait until it has exited (the pod torn down). */
int pod_shim_shutdown(const struct pea_pod *pod, struct pea_error *err);
/* The same, the shim given answer_timeout_ms (not POD_SHIM_ANSWER_TIMEOUT_MS) to take the request, and the pod
 * grace_seconds (when >= 0) instead of its manifest's grace period. */
int pod_shim_shutdown_within(const struct pea_pod *pod, int answer_timeout_ms, long long grace_seconds,
                             struct pea_error *err);
/* The grace period of pod rm and pod stop from their options, as kubectl delete reads them: --now is 1 s,
 * --grace-period 0 only with --force (else 1), --force alone 0, negative or none: the manifest's (*out -1). 1 after
 * a usage error. */
int pod_stop_grace_seconds(const char *command, bool force, bool now, long long grace_seconds, long long *out);

/* Make present in the store under data_root the images of m's containers that start anew (every one, or those old
 * does not have unchanged), as each one's imagePullPolicy says; pulls run `pea-image image pull` (pod_pull.c). */
int pod_pull_images(const struct cli_globals *g, const struct pea_pod_manifest *m, const struct pea_pod_manifest *old,
                    const char *data_root, struct pea_error *err);

int pod_apply(const struct cli_globals *g, int argc, char **argv);

/* How `pea pod apply` applies: its options. */
struct pod_apply_options {
    const char *data_root, *pause_path; /* pause_path: NULL on a dry run */
    bool recreate, no_wait, is_dry_run, is_name_only;
};
/* Every object of a file (pod_workload.c): its errors all printed, else each Pod, and each controller's pods (made,
 * changed, or removed when there are more than its replicas), in document order. 0, or 1 after a failure. */
int pod_apply_file(const struct cli_globals *g, const char *file, char *const *configmap_files,
                   char *const *secret_files, const struct pod_apply_options *o);
/* One pod (pod_apply.c): made, or changed to what m says; m is consumed. 0, or 1 once the failure is printed. */
int pod_apply_manifest(const struct cli_globals *g, struct pea_pod_manifest *m, const struct pod_apply_options *o);
int pod_apply_dry_run(const struct cli_globals *g, const struct pea_pod_manifest *m, bool recreate);
/* Stop and remove one pod, as `pea pod rm` does (grace_seconds < 0: the manifest's). */
int pod_rm_one(const struct cli_globals *g, const char *name, bool force, long long grace_seconds,
               struct pea_error *err);
/* `pea pod rm TYPE/NAME` of a controller (kind from manifest_workload_kind_from_type): all its pods, and a Job's
 * controller and record. */
int pod_rm_owner(const struct cli_globals *g, int kind, const char *name, bool force, long long grace_seconds,
                 struct pea_error *err);
/* The pods whose owner annotation is owner ("Deployment/web"), by name, NULL-terminated. */
char **pod_owned_by(const struct cli_globals *g, const char *owner);
int pod_get(const struct cli_globals *g, int argc, char **argv);
/* One pod as `pea pod ls` shows it (name, status, ready, restarts, containers, created, ip, shimPid, owner,
 * labels), and a list of them printed as output says (table, wide, json, yaml, name). */
json_t *pod_summary(const struct cli_globals *g, const char *name);
int pod_print_summaries(json_t *list, const char *output);
/* Whether labels match kubectl's equality selector ("app=web,tier!=db,release"). */
bool pod_labels_match(json_t *labels, const char *selector);
/* A JSON value as a YAML document on stdout (block style; strings quoted where YAML would read them otherwise). */
int cli_print_yaml(json_t *value);
int pod_exec(const struct cli_globals *g, int argc, char **argv);
int pod_attach(const struct cli_globals *g, int argc, char **argv);
int pod_stop(const struct cli_globals *g, int argc, char **argv);
int pod_wait(const struct cli_globals *g, int argc, char **argv);
int pod_events(const struct cli_globals *g, int argc, char **argv);
int pod_logs(const struct cli_globals *g, int argc, char **argv);

/* The one app container of a pod when no -c is given; else NULL with the reason in err. */
const char *pod_default_container(const struct pea_pod *pod, struct pea_error *err);

#endif
