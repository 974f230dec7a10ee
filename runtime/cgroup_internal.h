/* Shared by cgroup.c and cgroup_resources.c. */
#ifndef PEA_CGROUP_INTERNAL_H
#define PEA_CGROUP_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "pea/error.h"

/* Relative cgroupsPath values and containers without one live under this cgroup. */
#define CGROUP_DEFAULT_PARENT "pea"
/* Where pea moves the processes of an ancestor that must hand controllers down (no-internal-processes rule). */
#define CGROUP_LEAF_NAME "pea-leaf"

struct cgroup_setting {
    char *file;    /* "memory.max" */
    char *value;   /* "1073741824" */
    bool is_unset; /* the request is the kernel's default (shares 1024, pids.limit 0, memory.limit -1): callers
                    * send these when they ask for nothing, so they need no controller */
};

struct cgroup_settings {
    struct cgroup_setting *items;
    size_t n;
};

/* linux.resources -> the (file, value) pairs to write, validated. Pure: touches no file. */
int cgroup_settings_from_resources(json_t *resources, struct cgroup_settings *out, struct pea_error *err);
void cgroup_settings_clear(struct cgroup_settings *s);

/* The standard shares (2..262144) to cpu.weight (1..10000) mapping. */
unsigned long long cgroup_shares_to_weight(unsigned long long shares);

struct device_rule {
    bool is_allow;
    char type; /* 'a', 'b', 'c' */
    long long major, minor; /* -1 = any */
    unsigned access;        /* BPF_DEVCG_ACC_* bits */
};
struct bpf_insn;

/* linux.resources.devices plus the defaults every container needs, in evaluation order. */
int cgroup_device_rules_from_json(json_t *devices, struct device_rule **rules, size_t *n, struct pea_error *err);
/* The device filter program for the rules; out holds at least 8 * n + 8 instructions. Returns the count. */
size_t cgroup_device_program(const struct device_rule *rules, size_t n, struct bpf_insn *out);
/* Load the program and attach it to the cgroup; devices == NULL attaches nothing. */
int cgroup_apply_devices(int cgroup_fd, json_t *devices, struct pea_error *err);

/* Remove every cgroup below dir_fd (named path, for messages), deepest first, waiting briefly for each to drain. */
int cgroup_remove_descendants(int dir_fd, const char *path, struct pea_error *err);

/* Move the process named pid_text (a line of cgroup.procs) to the cgroup to_fd, if a pidfd of it shows it is
 * still alive in cgroup_path (relative to the cgroup2 root). A process gone meanwhile is not an error. */
int cgroup_move_if_still_in(int to_fd, const char *pid_text, const char *cgroup_path, struct pea_error *err);

int cgroup_write(int dir_fd, const char *file, const char *value, struct pea_error *err);
char *cgroup_read(int dir_fd, const char *file);

#endif
