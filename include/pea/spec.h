/* The OCI runtime configuration (config.json) as C structures, parsed and validated by spec.c. */
#ifndef PEA_SPEC_H
#define PEA_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"

#define PEA_OCI_VERSION "1.2.0"

enum pea_ns_type {
    PEA_NS_PID,
    PEA_NS_NETWORK,
    PEA_NS_MOUNT,
    PEA_NS_IPC,
    PEA_NS_UTS,
    PEA_NS_USER,
    PEA_NS_CGROUP,
    PEA_NS_TIME,
    PEA_NS_COUNT,
};

struct pea_namespace {
    bool is_present; /* listed in linux.namespaces */
    char *path;      /* join this namespace file; NULL = create a new one */
};

struct pea_id_mapping {
    uint32_t container_id, host_id, size;
};

struct pea_time_offset {
    int64_t secs;
    uint32_t nanosecs;
};

struct pea_mount {
    char *destination; /* absolute, inside the container */
    char *type;        /* may be NULL for a bind mount */
    char *source;      /* may be NULL */
    char **options;    /* the raw options, NULL-terminated */
    /* Derived from options by spec.c: */
    unsigned long flags;       /* MS_* to set */
    unsigned long clear_flags; /* MS_* the options cleared explicitly (rw, suid, dev, exec, atime...) */
    unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), 0 = unchanged */
    bool is_bind;              /* bind or rbind, or type "bind" */
    bool is_recursive;         /* rbind */
    bool is_tmpcopyup;         /* "tmpcopyup" (runc's extension): fill the new tmpfs with what it covers */
    char *data;                /* the options that are not flags, comma-joined, for mount(2) data; may be NULL */
    uint64_t rec_attr_set;     /* MOUNT_ATTR_* set on the whole mounted tree (rro, rnosuid, rnoatime...) */
    uint64_t rec_attr_clr;     /* MOUNT_ATTR_* cleared on it (rrw, rsuid..., MOUNT_ATTR__ATIME with an atime mode) */
    /* Never from config.json: a detached copy (open_tree) of a bind source the caller resolved itself
     * (pea_create_options.mount_sources), attached at destination instead of binding source by its path. Closed by
     * spec_free. */
    bool has_source_tree;
    int source_tree_fd;
    /* "idmap" / "ridmap" (the top mount / the whole tree): a bind mount shown through the container's own user
     * namespace's mappings (rootfs_host.c makes it). */
    bool is_idmapped, is_idmap_recursive;
    /* Never from config.json: with a user namespace, the device and inode of the object the caller resolved
     * (pea_create_options.mount_sources); the source is cloned by path in the container's mount namespace and must
     * be that object. */
    bool has_source_identity;
    dev_t source_dev;
    ino_t source_ino;
};

struct pea_device {
    char type; /* 'c', 'b', 'u', 'p' */
    char *path;
    int64_t major, minor;
    bool has_file_mode, has_uid, has_gid;
    mode_t file_mode;
    uid_t uid;
    gid_t gid;
};

struct pea_rlimit {
    int resource; /* RLIMIT_* */
    uint64_t soft, hard;
};

/* Capability sets as bit masks of capability numbers (bit N = capability N). */
struct pea_capabilities {
    uint64_t bounding, effective, inheritable, permitted, ambient;
};

struct pea_user {
    uid_t uid;
    gid_t gid;
    bool has_umask;
    mode_t umask;
    gid_t *additional_gids;
    size_t n_additional_gids;
};

struct pea_process {
    bool terminal;
    unsigned console_height, console_width;
    struct pea_user user;
    char **args; /* at least one element */
    char **env;  /* NULL-terminated, may be empty */
    char *cwd;   /* absolute */
    bool has_capabilities; /* "capabilities" present: otherwise keep what the runtime has */
    struct pea_capabilities capabilities;
    struct pea_rlimit *rlimits;
    size_t n_rlimits;
    bool no_new_privileges;
    bool has_oom_score_adj;
    int oom_score_adj;
    char *apparmor_profile;
    char *selinux_label;
};

struct pea_hook {
    char *path; /* absolute */
    char **args;
    char **env;
    int timeout; /* seconds, 0 = none */
};

enum pea_hook_kind {
    PEA_HOOK_PRESTART,
    PEA_HOOK_CREATE_RUNTIME,
    PEA_HOOK_CREATE_CONTAINER,
    PEA_HOOK_START_CONTAINER,
    PEA_HOOK_POSTSTART,
    PEA_HOOK_POSTSTOP,
    PEA_HOOK_KIND_COUNT,
};

struct pea_hook_list {
    struct pea_hook *hooks;
    size_t n;
};

enum pea_seccomp_action {
    PEA_SECCOMP_KILL,         /* SCMP_ACT_KILL (= kill thread) */
    PEA_SECCOMP_KILL_PROCESS, /* SCMP_ACT_KILL_PROCESS */
    PEA_SECCOMP_KILL_THREAD,  /* SCMP_ACT_KILL_THREAD */
    PEA_SECCOMP_TRAP,
    PEA_SECCOMP_ERRNO,
    PEA_SECCOMP_TRACE,
    PEA_SECCOMP_ALLOW,
    PEA_SECCOMP_LOG,
    PEA_SECCOMP_NOTIFY,
};

enum pea_seccomp_op {
    PEA_SECCOMP_OP_NE,
    PEA_SECCOMP_OP_LT,
    PEA_SECCOMP_OP_LE,
    PEA_SECCOMP_OP_EQ,
    PEA_SECCOMP_OP_GE,
    PEA_SECCOMP_OP_GT,
    PEA_SECCOMP_OP_MASKED_EQ,
};

struct pea_seccomp_arg {
    unsigned index;
    uint64_t value, value_two;
    enum pea_seccomp_op op;
};

struct pea_seccomp_rule {
    char **names; /* NULL-terminated */
    enum pea_seccomp_action action;
    bool has_errno_ret;
    unsigned errno_ret;
    struct pea_seccomp_arg *args;
    size_t n_args;
};

struct pea_seccomp {
    enum pea_seccomp_action default_action;
    bool has_default_errno_ret;
    unsigned default_errno_ret;
    char **architectures; /* "SCMP_ARCH_X86_64" ..., NULL-terminated, may be empty */
    char **flags;         /* "SECCOMP_FILTER_FLAG_LOG" ..., NULL-terminated, may be empty */
    struct pea_seccomp_rule *rules;
    size_t n_rules;
    char *listener_path;     /* the seccomp agent's unix socket (SCMP_ACT_NOTIFY); NULL when absent */
    char *listener_metadata; /* sent to the agent as "metadata"; NULL when absent */
};

struct pea_sysctl {
    char *key, *value;
};

struct pea_spec {
    char *oci_version;
    struct pea_process *process; /* NULL when absent (allowed for `create` only by the spec; pea requires it) */
    char *root_path;             /* as written (relative to the bundle or absolute) */
    bool root_readonly;
    char *hostname;
    char *domainname;
    struct pea_mount *mounts;
    size_t n_mounts;
    struct pea_hook_list hooks[PEA_HOOK_KIND_COUNT];
    json_t *annotations; /* object, never NULL (empty when absent) */

    /* linux */
    struct pea_namespace namespaces[PEA_NS_COUNT];
    struct pea_id_mapping *uid_mappings, *gid_mappings;
    size_t n_uid_mappings, n_gid_mappings;
    bool has_time_offsets;
    struct pea_time_offset time_monotonic, time_boottime;
    struct pea_device *devices;
    size_t n_devices;
    char *cgroups_path;   /* may be NULL */
    json_t *resources;    /* linux.resources as given (object) or NULL; parsed by the cgroup module */
    unsigned long rootfs_propagation; /* MS_* | MS_REC, 0 = default (private) */
    char **masked_paths;   /* NULL-terminated */
    char **readonly_paths; /* NULL-terminated */
    struct pea_sysctl *sysctls;
    size_t n_sysctls;
    struct pea_seccomp *seccomp; /* NULL when absent */
    char *mount_label;
    /* Never from config.json: the receiving end of the socket on which create's helper sends the bind sources it
     * opened for a user namespace (rootfs_host_sources_begin). Closed by spec_free. */
    bool has_host_sources;
    int host_sources_fd;
};

/* Parse and validate. On failure returns NULL and err->msg names the field: "process.args: must hold at least
 * one element". */
struct pea_spec *spec_parse_string(const char *json, struct pea_error *err);
struct pea_spec *spec_parse_json(json_t *root, struct pea_error *err);
/* Read bundle_fd/config.json (a regular file, bounded size) and parse it. */
struct pea_spec *spec_load(int bundle_fd, struct pea_error *err);
void spec_free(struct pea_spec *spec);
static inline void spec_free_p(struct pea_spec **s) { spec_free(*s); }
#define AUTO_SPEC __attribute__((cleanup(spec_free_p)))

const char *spec_ns_name(enum pea_ns_type type);        /* "pid", "network", ... as in config.json */
int spec_ns_clone_flag(enum pea_ns_type type);           /* CLONE_NEWPID, ... */
const char *spec_hook_kind_name(enum pea_hook_kind kind); /* "prestart", "createRuntime", ... */

/* Map "RLIMIT_NOFILE" to RLIMIT_NOFILE; -1 when unknown. */
int spec_rlimit_from_name(const char *name);
/* Map "CAP_SYS_ADMIN" to its number; -1 when unknown to libcap. */
int spec_capability_from_name(const char *name);

/* The default config.json that `pea spec` writes (runc's defaults, pea's RuntimeDefault seccomp). */
json_t *spec_default_json(bool rootless);
/* pea's RuntimeDefault seccomp profile (linux.seccomp), shared by `pea spec` and pods. */
json_t *spec_default_seccomp_json(void);

#endif
