/* linux.resources.devices enforced on cgroup v2: pea turns the rules into a BPF_PROG_TYPE_CGROUP_DEVICE program
 * and attaches it to the container's cgroup. The rules are checked last to first: the last rule that matches a
 * request decides; no match denies. The devices every container needs are allowed after the user's rules. */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "pea/util.h"

enum { ACCESS_MKNOD = BPF_DEVCG_ACC_MKNOD, ACCESS_READ = BPF_DEVCG_ACC_READ, ACCESS_WRITE = BPF_DEVCG_ACC_WRITE };
#define ACCESS_ALL (ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE)

static const struct device_rule default_rules[] = {
    {true, 'c', -1, -1, ACCESS_MKNOD}, {true, 'b', -1, -1, ACCESS_MKNOD}, /* mknod of anything; opening is checked */
    {true, 'c', 1, 3, ACCESS_ALL},     {true, 'c', 1, 5, ACCESS_ALL},     {true, 'c', 1, 7, ACCESS_ALL},
    {true, 'c', 5, 0, ACCESS_ALL},     {true, 'c', 1, 8, ACCESS_ALL},     {true, 'c', 1, 9, ACCESS_ALL},
    {true, 'c', 5, 2, ACCESS_ALL},     {true, 'c', 136, -1, ACCESS_ALL},
};

static int parse_access(const char *text, unsigned *out)
{
    *out = 0;
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case 'r': *out |= ACCESS_READ; break;
        case 'w': *out |= ACCESS_WRITE; break;
        case 'm': *out |= ACCESS_MKNOD; break;
        default: return -1;
        }
    }
    return 0;
}

int cgroup_device_rules_from_json(json_t *devices, struct device_rule **rules, size_t *n, struct pea_error *err)
{
    *rules = NULL;
    *n = 0;
    if (!json_is_array(devices))
        return devices ? pea_fail(err, 0, "linux.resources.devices: must be an array") : 0;
    size_t count = json_array_size(devices);
    *rules = xcalloc(count + ARRAY_SIZE(default_rules), sizeof **rules);
    for (size_t i = 0; i < count; i++) {
        json_t *d = json_array_get(devices, i);
        struct device_rule *r = &(*rules)[i];
        json_t *allow = json_object_get(d, "allow");
        if (!json_is_boolean(allow)) {
            pea_fail(err, 0, "linux.resources.devices[%zu].allow: must be a boolean", i);
            goto fail;
        }
        r->is_allow = json_is_true(allow);
        const char *type = json_string_value(json_object_get(d, "type"));
        r->type = type ? type[0] : 'a';
        if (type && (strlen(type) != 1 || !strchr("abc", type[0]))) {
            pea_fail(err, 0, "linux.resources.devices[%zu].type: unknown type \"%s\"", i, type);
            goto fail;
        }
        json_t *major = json_object_get(d, "major"), *minor = json_object_get(d, "minor");
        r->major = json_is_integer(major) ? json_integer_value(major) : -1;
        r->minor = json_is_integer(minor) ? json_integer_value(minor) : -1;
        const char *access = json_string_value(json_object_get(d, "access"));
        if (parse_access(access ? access : "rwm", &r->access) < 0) {
            pea_fail(err, 0, "linux.resources.devices[%zu].access: unknown access \"%s\"", i, access);
            goto fail;
        }
    }
    memcpy(*rules + count, default_rules, sizeof default_rules);
    *n = count + ARRAY_SIZE(default_rules);
    return 0;
fail:
    free(*rules);
    *rules = NULL;
    return -1;
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

/* r2 = type, r3 = access, r4 = major, r5 = minor; then one block per rule, last rule first. */
size_t cgroup_device_program(const struct device_rule *rules, size_t n, struct bpf_insn *out)
{
    size_t k = 0;
    out[k++] = insn(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
    out[k++] = insn(BPF_ALU | BPF_MOV | BPF_X, 3, 2, 0, 0);
    out[k++] = insn(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xffff);
    out[k++] = insn(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16);
    out[k++] = insn(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
    out[k++] = insn(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
    for (size_t i = n; i-- > 0;) {
        const struct device_rule *r = &rules[i];
        struct bpf_insn block[8];
        size_t m = 0;
        if (r->type != 'a')
            block[m++] = insn(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 0,
                              r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
        if ((r->access & ACCESS_ALL) != ACCESS_ALL) {
            /* The request must ask for nothing the rule does not cover. */
            block[m++] = insn(BPF_ALU | BPF_MOV | BPF_X, 6, 3, 0, 0);
            block[m++] = insn(BPF_ALU | BPF_AND | BPF_K, 6, 0, 0, (int32_t)(~r->access & ACCESS_ALL));
            block[m++] = insn(BPF_JMP | BPF_JNE | BPF_K, 6, 0, 0, 0);
        }
        if (r->major >= 0)
            block[m++] = insn(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, (int32_t)r->major);
        if (r->minor >= 0)
            block[m++] = insn(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, (int32_t)r->minor);
        block[m++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r->is_allow ? 1 : 0);
        block[m++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        /* Every conditional jump leaves the block: to just past its last instruction. */
        for (size_t j = 0; j < m; j++)
            if (BPF_CLASS(block[j].code) == BPF_JMP && BPF_OP(block[j].code) == BPF_JNE)
                block[j].off = (int16_t)(m - j - 1);
        memcpy(out + k, block, m * sizeof *block);
        k += m;
        /* A rule that matches everything decides here: the verifier refuses code that can never run. */
        if (m == 2)
            return k;
    }
    out[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
    out[k++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    return k;
}

/* The kernel verifies and JITs every program it loads (a millisecond here), yet a pod's members, and every container
 * pea-shim makes, have the same rules: a loaded program is kept, by its instructions, and attached again. One
 * program may be attached to any number of cgroups. */
struct loaded_program {
    struct bpf_insn *insns;
    size_t count;
    int fd;
};

static struct loaded_program loaded[4];
static size_t next_slot;

static int load_program(const struct bpf_insn *prog, size_t count, struct pea_error *err)
{
    for (size_t i = 0; i < ARRAY_SIZE(loaded); i++)
        if (loaded[i].insns && loaded[i].count == count &&
            memcmp(loaded[i].insns, prog, count * sizeof *prog) == 0)
            return loaded[i].fd;
    union bpf_attr load = {0};
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (uint64_t)(uintptr_t)prog;
    load.insn_cnt = (uint32_t)count;
    load.license = (uint64_t)(uintptr_t) "GPL";
    int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    if (fd < 0) {
        int saved = errno;
        /* Ask again with the verifier's log, for the one line we report. */
        static char log[65536];
        log[0] = '\0';
        load.log_buf = (uint64_t)(uintptr_t)log;
        load.log_size = sizeof log;
        load.log_level = 1;
        int retry = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
        if (retry >= 0)
            close(retry);
        log[200] = '\0';
        for (char *c = log; *c; c++)
            if (*c == '\n')
                *c = ' ';
        return pea_fail(err, saved, "cgroup: load the device filter%s%s", *log ? ": " : "", log);
    }
    struct loaded_program *slot = &loaded[next_slot++ % ARRAY_SIZE(loaded)];
    if (slot->insns)
        close(slot->fd);
    free(slot->insns);
    slot->insns = xmalloc(count * sizeof *prog);
    memcpy(slot->insns, prog, count * sizeof *prog);
    slot->count = count;
    slot->fd = fd;
    return fd;
}

int cgroup_apply_devices(int cgroup_fd, json_t *devices, struct pea_error *err)
{
    if (!devices)
        return 0;
    AUTO_FREE struct device_rule *rules = NULL;
    size_t n;
    if (cgroup_device_rules_from_json(devices, &rules, &n, err) < 0)
        return -1;
    AUTO_FREE struct bpf_insn *prog = xcalloc(8 * n + 8, sizeof *prog);
    size_t count = cgroup_device_program(rules, n, prog);
    int prog_fd = load_program(prog, count, err);
    if (prog_fd < 0)
        return -1;
    union bpf_attr attach = {0};
    attach.target_fd = (uint32_t)cgroup_fd;
    attach.attach_bpf_fd = (uint32_t)prog_fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach) < 0)
        return pea_fail(err, errno, "cgroup: attach the device filter");
    return 0;
}
