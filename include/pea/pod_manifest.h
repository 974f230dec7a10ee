/* Pod manifests: a Kubernetes Pod (apiVersion v1, kind Pod) in YAML or JSON, validated strictly (an unknown field is
 * an error naming its path, as `kubectl --validate=strict`), plus a `pea` section for what Kubernetes leaves to other
 * layers (network mode and address). The result is plain C data; pod.c turns it into container configs. */
#ifndef PEA_POD_MANIFEST_H
#define PEA_POD_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"

enum pea_restart_policy { PEA_RESTART_ALWAYS, PEA_RESTART_ON_FAILURE, PEA_RESTART_NEVER };

enum pea_seccomp_profile_type {
    PEA_SECCOMP_PROFILE_RUNTIME_DEFAULT, /* also what an absent seccompProfile means for pea */
    PEA_SECCOMP_PROFILE_UNCONFINED,
    PEA_SECCOMP_PROFILE_LOCALHOST, /* localhost_profile: path of an OCI linux.seccomp JSON file */
};

enum pea_apparmor_profile_type {
    PEA_APPARMOR_PROFILE_RUNTIME_DEFAULT,
    PEA_APPARMOR_PROFILE_UNCONFINED,
    PEA_APPARMOR_PROFILE_LOCALHOST,
};

/* Where a value comes from: written in the manifest, or looked up when the container is made (env valueFrom,
 * downwardAPI items). */
enum pea_value_source {
    PEA_VALUE_LITERAL,
    PEA_VALUE_FIELD,          /* key: a fieldPath ("metadata.name", "metadata.labels['app']") */
    PEA_VALUE_RESOURCE,       /* key: "limits.cpu" ...; name: containerName (NULL: the container itself) */
    PEA_VALUE_CONFIG_MAP_KEY, /* name: the ConfigMap; key: its key */
    PEA_VALUE_SECRET_KEY,     /* name: the Secret; key: its key */
};

struct pea_value_ref {
    enum pea_value_source source;
    char *name, *key;
    uint64_t divisor; /* RESOURCE: in millicores for cpu, bytes for memory and ephemeral-storage */
    bool is_optional; /* CONFIG_MAP_KEY, SECRET_KEY */
};

struct pea_pod_env {
    char *name, *value; /* value: LITERAL only (may hold $(VAR) references), else NULL; it lives in name's allocation */
    struct pea_value_ref from;
    /* The entry as canonical JSON when it is more than a string name and a string value, else NULL: with name and
     * value, what tells two manifests' entries apart (see pea_pod_container.identity). */
    char *entry_json;
};

/* envFrom: every key of a ConfigMap's data or a Secret's data, prefixed. */
struct pea_pod_env_from {
    char *name;
    bool is_secret;
    char *prefix; /* NULL when absent */
    bool is_optional;
};

/* volumeMounts[].mountPropagation, in the order of Kubernetes' names (None is the default). */
enum pea_mount_propagation {
    PEA_MOUNT_PROPAGATION_NONE,               /* rprivate */
    PEA_MOUNT_PROPAGATION_HOST_TO_CONTAINER,  /* rslave: the host's later mounts below the source arrive */
    PEA_MOUNT_PROPAGATION_BIDIRECTIONAL,      /* rshared: and the container's go back (privileged only) */
};

/* volumeMounts[].recursiveReadOnly (Disabled is the default). */
enum pea_recursive_read_only {
    PEA_RECURSIVE_READ_ONLY_DISABLED,
    PEA_RECURSIVE_READ_ONLY_IF_POSSIBLE, /* as Enabled: every kernel pea runs on has mount_setattr */
    PEA_RECURSIVE_READ_ONLY_ENABLED,     /* the submounts read-only too (readOnly: true, propagation None) */
};

struct pea_pod_volume_mount {
    char *name;       /* a volume of the pod */
    char *mount_path; /* absolute, inside the container */
    char *sub_path;   /* NULL or relative, without ".." components */
    /* NULL, or subPathExpr: a subPath with $(VAR) references, expanded from the container's environment at each
     * start (sub_path is then NULL: the two are mutually exclusive). */
    char *sub_path_expr;
    bool read_only;
    enum pea_mount_propagation propagation;
    enum pea_recursive_read_only recursive_read_only;
};

/* Kubernetes quantities already converted: cpu in millicores ("500m" = 500, "2" = 2000), memory in bytes
 * ("128Mi", "1G", "1e3"). */
struct pea_pod_resources {
    bool has_cpu_limit, has_cpu_request, has_memory_limit, has_memory_request;
    uint64_t cpu_limit_millis, cpu_request_millis;
    uint64_t memory_limit_bytes, memory_request_bytes;
    bool has_pids_limit; /* pod level only: spec.resources.limits.pids */
    uint64_t pids_limit;
};

struct pea_pod_security {
    bool has_run_as_user, has_run_as_group;
    uid_t run_as_user;
    gid_t run_as_group;
    bool read_only_root_filesystem;
    bool privileged;
    bool has_allow_privilege_escalation;
    bool allow_privilege_escalation;
    char **capabilities_add;  /* NULL-terminated, names as written ("NET_ADMIN" or "CAP_NET_ADMIN"), never NULL */
    char **capabilities_drop; /* likewise; may hold "ALL" */
    bool has_seccomp_profile;
    enum pea_seccomp_profile_type seccomp_profile;
    char *seccomp_localhost_profile; /* LOCALHOST only */
    /* runAsNonRoot, appArmorProfile, procMount (manifest_security.c); pod-level values already applied where the
     * container sets none. */
    bool has_run_as_non_root, run_as_non_root;
    bool has_apparmor_profile;
    enum pea_apparmor_profile_type apparmor_profile;
    char *apparmor_localhost_profile; /* LOCALHOST only: the name of a loaded profile */
    bool is_proc_mount_unmasked;      /* procMount: Unmasked (only with hostUsers: false) */
    /* cgroupOptions.mountMode: ReadWrite: /sys/fs/cgroup writable in the container (its own cgroup namespace; the
     * host's cgroup2 must be mounted with nsdelegate, which keeps the container from changing its own limits). */
    bool is_cgroup_writable;
};

/* A probe's or a lifecycle hook's action (Kubernetes' ProbeHandler and LifecycleHandler). */
enum pea_pod_handler_type {
    PEA_HANDLER_NONE, /* not set */
    PEA_HANDLER_EXEC,
    PEA_HANDLER_HTTP_GET,
    PEA_HANDLER_TCP_SOCKET, /* probes only */
    PEA_HANDLER_GRPC,       /* probes only */
    PEA_HANDLER_SLEEP,      /* lifecycle hooks only */
};

struct pea_pod_http_header {
    char *name, *value;
};

struct pea_pod_handler {
    enum pea_pod_handler_type type;
    char **command;        /* EXEC: run in the container, without a shell */
    char *host;            /* HTTP_GET, TCP_SOCKET: an IP address; NULL = the pod's address */
    int port;              /* HTTP_GET, TCP_SOCKET, GRPC: a number (a port name is resolved by the parser) */
    char *path;            /* HTTP_GET: never NULL ("/" by default) */
    bool is_https;         /* HTTP_GET: scheme HTTPS (no certificate verification, as the kubelet) */
    struct pea_pod_http_header *headers; /* HTTP_GET */
    size_t n_headers;
    char *grpc_service;    /* GRPC: never NULL ("" by default: the server's overall health) */
    long long sleep_seconds; /* SLEEP */
};

struct pea_pod_probe {
    struct pea_pod_handler handler; /* type NONE: no probe */
    int initial_delay_seconds;
    int period_seconds;    /* default 10 */
    int timeout_seconds;   /* default 1 */
    int success_threshold; /* default 1, always 1 for liveness and startup */
    int failure_threshold; /* default 3 */
    long long termination_grace_seconds; /* -1: the pod's (liveness and startup only) */
};

/* restartPolicyRules[].action (Kubernetes' container restart rules, KEP-5307 and KEP-5532). */
enum pea_restart_action {
    PEA_RESTART_ACTION_RESTART,     /* this container starts again (with back-off) */
    PEA_RESTART_ACTION_RESTART_ALL, /* RestartAllContainers: every container of the pod is killed (no preStop, no
                                       grace) and the pod starts again from its first init container, in the same
                                       sandbox and with the same volumes */
};

/* restartPolicyRules[]: the first rule whose exit codes match an exit decides; none matching, restartPolicy does. */
struct pea_restart_rule {
    enum pea_restart_action action;
    bool is_not_in;  /* exitCodes.operator: NotIn (else In) */
    int32_t *values; /* exitCodes.values, at most 255 */
    size_t n_values;
};

/* imagePullPolicy, in the order of Kubernetes' names. */
enum pea_pull_policy { PEA_PULL_ALWAYS, PEA_PULL_IF_NOT_PRESENT, PEA_PULL_NEVER };

struct pea_pod_image; /* an image of the store, resolved for a container (pod_image.h) */

struct pea_pod_container {
    char *name;           /* DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 */
    char **image_layers;  /* `image: /DIR` (an absolute path) is one plain root directory; `image: [a, b]` is an
                             overlay whose lowest layer is a and b lies on top of it. NULL for an image reference. */
    size_t n_image_layers;
    char *image_ref;      /* any other `image:` ("nginx:1.27"): an image of the store, as written; else NULL */
    enum pea_pull_policy pull_policy; /* image_ref: imagePullPolicy, default Always for :latest or no tag, else
                                         IfNotPresent */
    struct pea_pod_image *image; /* image_ref: the image resolved in the store for the pod (pod_image.c), NULL
                                    until then; owned by the container */
    char **command;       /* NULL when absent (an image reference's Entrypoint then; a directory needs args) */
    char **args;          /* NULL when absent */
    struct pea_pod_env *env;
    size_t n_env;
    struct pea_pod_env_from *env_from;
    size_t n_env_from;
    char *working_dir;    /* NULL when absent */
    struct pea_pod_volume_mount *volume_mounts;
    size_t n_volume_mounts;
    struct pea_pod_resources resources;
    struct pea_pod_security security;
    bool is_sidecar;      /* an init container with restartPolicy: Always */
    /* The container's own restartPolicy (Kubernetes 1.34+): it overrides the pod's for this container. An init
     * container's Always is a sidecar; its OnFailure restarts it until it succeeds, its Never fails the pod. */
    bool has_restart_policy;
    enum pea_restart_policy restart_policy;
    struct pea_restart_rule *restart_rules; /* restartPolicyRules, in order */
    size_t n_restart_rules;
    struct pea_pod_probe liveness_probe, readiness_probe, startup_probe;
    struct pea_pod_handler post_start, pre_stop; /* lifecycle hooks; type NONE when absent */
    int stop_signal;      /* lifecycle.stopSignal, else the image's StopSignal, else SIGTERM */
    bool has_stop_signal; /* lifecycle.stopSignal was given */
    /* stdin: the shim keeps the container's stdin open (a pipe, or the pty) for `pea pod attach -i`; without it,
     * /dev/null. stdinOnce: closed after the first attach session with stdin ends. tty: a pty whose master the
     * shim holds (its output still goes to the log). */
    bool has_stdin, is_stdin_once, has_tty;
    /* For comparing two manifests without keeping either's parse tree: the container's object as canonical JSON
     * (compact, keys sorted) without its resources and with an env list written empty (the entries are compared
     * from env), and its resources alone (NULL when absent). */
    char *identity;
    char *resources_json;
};

enum pea_pod_volume_type {
    PEA_VOLUME_EMPTY_DIR,
    PEA_VOLUME_HOST_PATH,
    /* Files pea writes from the manifest (configMap, secret, downwardAPI, projected): each a list of projections,
     * written as the kubelet's atomic writer does and mounted read-only. */
    PEA_VOLUME_CONFIG_MAP,
    PEA_VOLUME_SECRET,
    PEA_VOLUME_DOWNWARD_API,
    PEA_VOLUME_PROJECTED,
    /* A named volume under the data root that outlives the pod (volume_named.c). */
    PEA_VOLUME_PERSISTENT_CLAIM,
    /* An image of the store (Kubernetes' image volume): its layers merged, mounted read-only and noexec. */
    PEA_VOLUME_IMAGE,
};

enum pea_projection_kind { PEA_PROJECT_CONFIG_MAP, PEA_PROJECT_SECRET, PEA_PROJECT_DOWNWARD_API };

struct pea_projection_item {
    char *key;  /* CONFIG_MAP, SECRET: the key */
    char *path; /* relative, without ".." */
    bool has_mode;
    uint32_t mode;
    struct pea_value_ref ref; /* DOWNWARD_API: FIELD or RESOURCE */
};

struct pea_projection {
    enum pea_projection_kind kind;
    char *name; /* CONFIG_MAP, SECRET */
    bool is_optional;
    bool has_items; /* CONFIG_MAP, SECRET: only the items' keys, else every key as a file of its name */
    struct pea_projection_item *items;
    size_t n_items;
};

enum pea_host_path_type {
    PEA_HOST_PATH_ANY, /* "" or absent: no check */
    PEA_HOST_PATH_DIRECTORY_OR_CREATE,
    PEA_HOST_PATH_DIRECTORY,
    PEA_HOST_PATH_FILE_OR_CREATE,
    PEA_HOST_PATH_FILE,
    PEA_HOST_PATH_SOCKET,
    PEA_HOST_PATH_CHAR_DEVICE,
    PEA_HOST_PATH_BLOCK_DEVICE,
};

struct pea_pod_volume {
    char *name;
    enum pea_pod_volume_type type;
    /* emptyDir */
    bool is_memory; /* medium: Memory */
    bool has_size_limit;
    uint64_t size_limit_bytes;
    mode_t empty_dir_mode; /* mode: the directory's permission bits, 0777 unless given (at most 01777) */
    /* hostPath */
    char *host_path; /* absolute */
    enum pea_host_path_type host_path_type;
    /* configMap, secret, downwardAPI, projected */
    struct pea_projection *projections;
    size_t n_projections;
    uint32_t default_mode; /* 0644 unless defaultMode */
    /* persistentVolumeClaim */
    char *claim_name; /* a DNS subdomain: the named volume's name */
    bool is_read_only; /* also always for an image volume */
    /* image */
    char *image_ref;                        /* image.reference, as written */
    enum pea_pull_policy image_pull_policy; /* image.pullPolicy, defaulted as a container's imagePullPolicy */
    struct pea_pod_image *image;            /* resolved in the store for the pod (pod_image.c), NULL until then */
};

/* A key of a ConfigMap or Secret: bytes, since binaryData and Secret data may hold any. */
struct pea_config_entry {
    char *key;
    char *value;    /* NUL-terminated as well */
    size_t len;
    bool is_binary; /* ConfigMap binaryData: a file, never an environment variable */
};

/* A ConfigMap or Secret given beside the Pod (in its file, or with --configmap / --secret). */
struct pea_config_object {
    char *name;
    bool is_secret;
    bool is_immutable;
    struct pea_config_entry *entries; /* sorted by key */
    size_t n_entries;
};

enum pea_network_mode {
    PEA_NETWORK_NONE,   /* a new namespace with loopback only (the default) */
    PEA_NETWORK_HOST,   /* the caller's namespace (also spec.hostNetwork: true) */
    PEA_NETWORK_NETNS,  /* join netns_path, prepared by CNI or the caller */
    PEA_NETWORK_BRIDGE, /* a veth pair: eth0 in the pod, the peer on a bridge in the caller's namespace */
};

struct pea_pod_sysctl {
    char *name, *value;
};

/* What spec.securityContext says about the pod as a whole (manifest_security.c): groups and volume ownership. */
struct pea_pod_groups {
    bool has_fs_group;
    gid_t fs_group;
    bool is_fs_group_change_on_root_mismatch; /* fsGroupChangePolicy: OnRootMismatch (default Always) */
    gid_t *supplemental_groups;               /* in manifest order */
    size_t n_supplemental_groups;
    bool is_supplemental_groups_strict;       /* supplementalGroupsPolicy: Strict (default Merge) */
};

/* spec.hostAliases[]: a line of the pod's /etc/hosts each. */
struct pea_host_alias {
    char *ip;         /* an IPv4 or IPv6 address */
    char **hostnames; /* DNS subdomains, NULL-terminated, never NULL */
};

/* metadata.name, spec.hostname, .shareProcessNamespace, .hostNetwork, .volumes, .securityContext, .dnsConfig, pea,
 * spec.hostUsers, .dnsPolicy, .resources, .hostAliases */
#define PEA_MANIFEST_SANDBOX_FIELDS 12

struct pea_pod_manifest {
    char *name; /* metadata.name: DNS subdomain, at most 63 here (it names directories and cgroups) */
    json_t *labels;      /* object of strings, never NULL */
    json_t *annotations; /* object of strings, never NULL */
    char *namespace;     /* metadata.namespace, "default" when absent */
    char *service_account_name; /* spec.serviceAccountName, "default" when absent (as the admission plugin sets) */
    char *hostname;      /* spec.hostname, NULL = the pod's name */
    bool share_process_namespace;
    enum pea_restart_policy restart_policy; /* default Always */
    int64_t termination_grace_seconds;      /* default 30 */
    struct pea_pod_container *init_containers;
    size_t n_init_containers;
    struct pea_pod_container *containers; /* at least one */
    size_t n_containers;
    struct pea_pod_volume *volumes;
    size_t n_volumes;
    struct pea_pod_sysctl *sysctls; /* spec.securityContext.sysctls */
    size_t n_sysctls;
    struct pea_pod_groups groups; /* spec.securityContext: fsGroup, supplementalGroups and their policies */
    bool has_own_users;           /* spec.hostUsers: false: a user namespace of the pod's own (pod_userns.c) */
    char **dns_nameservers; /* spec.dnsConfig.nameservers, NULL-terminated, never NULL */
    char **dns_searches;    /* spec.dnsConfig.searches, NULL-terminated, never NULL */
    char **dns_options;     /* spec.dnsConfig.options as resolv.conf words (name or name:value), never NULL */
    bool has_dns_config;    /* spec.dnsConfig is given: added to the policy's base (pod_dns.c) */
    bool is_dns_policy_none; /* spec.dnsPolicy: None: dnsConfig alone, without the host's resolv.conf */
    struct pea_host_alias *host_aliases; /* spec.hostAliases, in manifest order */
    size_t n_host_aliases;
    char **notices;         /* fields accepted without effect on one node, a line each; NULL when none */
    struct pea_pod_resources resources; /* spec.resources: the pod cgroup's own limits (pod-level resources) */
    /* pea.network */
    enum pea_network_mode network_mode;
    char *netns_path;  /* NETNS */
    char *bridge;      /* BRIDGE: the bridge's name (default "pea0") */
    char *address;     /* BRIDGE: "198.18.0.2/24" (address/prefix, IPv4 or IPv6) */
    char *gateway;     /* BRIDGE: NULL or an address in address's subnet: the default route; pea puts it on the
                          bridge when it creates the bridge */
    bool adopt_bridge; /* BRIDGE: use `bridge` even when pea did not create it (pea.network.adoptBridge) */
    /* What only a new sandbox can change (see manifest_sandbox_change), each as canonical JSON, NULL when absent. */
    char *sandbox_json[PEA_MANIFEST_SANDBOX_FIELDS];
    /* The ConfigMaps and Secrets beside the Pod (documents of its file, --configmap, --secret). */
    struct pea_config_object *configs;
    size_t n_configs;
    /* The text parsed, as given (YAML or JSON): kept until the pod stores it (manifest_release_source), so that
     * what stays in memory for the pod's life is the structure above, not the text or a parse tree. */
    char *source;
    size_t source_len;
};

/* Whether pea makes the pod's network namespace (modes none and bridge), and so may change it: sysctls, lo. The
 * namespace of modes host and netns is someone else's, and pea leaves it as it finds it. */
static inline bool manifest_network_namespace_is_pea_made(const struct pea_pod_manifest *m)
{
    return m->network_mode == PEA_NETWORK_NONE || m->network_mode == PEA_NETWORK_BRIDGE;
}

/* Kubernetes' object size limit, and so the largest Pod a cluster can hold: every object is stored in etcd, which
 * refuses a request over 1.5 MiB by default (--max-request-bytes; https://etcd.io/docs/v3.5/dev-guide/limit/). The
 * API server reads request bodies up to twice that (MaxRequestBodyBytes, 3 MiB) only because JSON shrinks when
 * stored as protobuf. Larger manifests are refused before parsing, with this text: */
#define PEA_MANIFEST_MAX_SIZE (3 << 19)
#define PEA_MANIFEST_LIMIT_TEXT "1.5 MiB, Kubernetes' object size limit"

/* Parse a manifest from text: JSON values (each starting with '{'), then YAML documents (no aliases); one of them
 * the Pod, the others its ConfigMaps and Secrets, and every one the Pod names without optional: true must be there.
 * Every error names the field: "spec.containers[1].volumeMounts[0].mountpath: unknown field". */
struct pea_pod_manifest *manifest_parse(const char *text, size_t len, struct pea_error *err);
/* Read a file (regular, at most PEA_MANIFEST_MAX_SIZE; "-" is stdin) and parse it; errors are prefixed with the file
 * name. */
struct pea_pod_manifest *manifest_load(const char *path, struct pea_error *err);
/* Also the ConfigMaps in configmap_files and the Secrets in secret_files (NULL-terminated lists, each may be NULL;
 * every document of such a file must be of that kind): they join the manifest's source as further documents, so
 * that the shim and a re-opened pod see them too. */
struct pea_pod_manifest *manifest_load_with_configs(const char *path, char *const *configmap_files,
                                                    char *const *secret_files, struct pea_error *err);
/* The ConfigMap (is_secret false) or Secret of that name beside the Pod, NULL when there is none. */
const struct pea_config_object *manifest_config_find(const struct pea_pod_manifest *m, const char *name,
                                                     bool is_secret);
const struct pea_config_entry *manifest_config_entry(const struct pea_config_object *o, const char *key);
/* Refuse a change of an immutable ConfigMap or Secret between what a pod runs (old) and what is applied (new). */
int manifest_check_immutable(const struct pea_pod_manifest *old, const struct pea_pod_manifest *new,
                             struct pea_error *err);
/* Standard base64 with padding, as Kubernetes reads Secret data (line breaks ignored); *out NUL-terminated. */
int manifest_base64_decode(const char *text, size_t len, char **out, size_t *out_len);
/* How the pod commands hand a manifest to pea-shim: exactly the text they checked (m->source), in a sealed memfd
 * (close-on-exec, at any offset), and read back from one, refused unless sealed against writing, shrinking and
 * growing (name prefixes the errors). */
int manifest_source_memfd(const struct pea_pod_manifest *m, struct pea_error *err);
struct pea_pod_manifest *manifest_load_sealed(int fd, const char *name, struct pea_error *err);
void manifest_free(struct pea_pod_manifest *m);
/* Free m->source, once stored. */
void manifest_release_source(struct pea_pod_manifest *m);

/* The first field that differs between a and b and that only a new sandbox can change, as its path
 * ("spec.volumes", "spec.initContainers", "pea"); NULL when there is none. */
const char *manifest_sandbox_change(const struct pea_pod_manifest *a, const struct pea_pod_manifest *b);
/* Whether two containers are the same but for their resources; whether their resources are the same. */
bool manifest_container_same_but_resources(const struct pea_pod_container *a, const struct pea_pod_container *b);
bool manifest_container_same_resources(const struct pea_pod_container *a, const struct pea_pod_container *b);
static inline void manifest_free_p(struct pea_pod_manifest **m) { manifest_free(*m); }
#define AUTO_MANIFEST __attribute__((cleanup(manifest_free_p)))

/* YAML text to JSON (exposed for tests): plain scalars become null/true/false/integers/reals where YAML 1.2's core
 * schema says so (a leading 0 makes an integer octal, as in Kubernetes),
 * quoted scalars stay strings; anchors, aliases, tags other than the core ones and more than one
 * document are errors. */
json_t *manifest_yaml_to_json(const char *text, size_t len, struct pea_error *err);

/* Kubernetes quantities: "500m" cpu → 500 millicores; "128Mi" → 134217728 bytes. */
int manifest_parse_cpu(const char *text, uint64_t *millis, struct pea_error *err);
int manifest_parse_bytes(const char *text, uint64_t *bytes, struct pea_error *err);

#endif
