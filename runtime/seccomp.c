/* OCI seccomp profiles compiled into a BPF program with libseccomp, in the runtime before clone, once per profile
 * in a process; the container child only hands the program to the kernel. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pea/seccomp.h"
#include "pea/util.h"
#include "seccomp_internal.h"

static uint32_t action_of(enum pea_seccomp_action a, bool has_errno, unsigned errno_ret)
{
    unsigned e = has_errno ? errno_ret : EPERM;
    switch (a) {
    case PEA_SECCOMP_KILL: return SCMP_ACT_KILL;
    case PEA_SECCOMP_KILL_PROCESS: return SCMP_ACT_KILL_PROCESS;
    case PEA_SECCOMP_KILL_THREAD: return SCMP_ACT_KILL_THREAD;
    case PEA_SECCOMP_TRAP: return SCMP_ACT_TRAP;
    case PEA_SECCOMP_ERRNO: return SCMP_ACT_ERRNO(e);
    case PEA_SECCOMP_TRACE: return SCMP_ACT_TRACE(e);
    case PEA_SECCOMP_ALLOW: return SCMP_ACT_ALLOW;
    case PEA_SECCOMP_LOG: return SCMP_ACT_LOG;
    case PEA_SECCOMP_NOTIFY: return SCMP_ACT_NOTIFY;
    }
    return SCMP_ACT_KILL;
}

static const enum scmp_compare compare_ops[] = {
    [PEA_SECCOMP_OP_NE] = SCMP_CMP_NE, [PEA_SECCOMP_OP_LT] = SCMP_CMP_LT, [PEA_SECCOMP_OP_LE] = SCMP_CMP_LE,
    [PEA_SECCOMP_OP_EQ] = SCMP_CMP_EQ, [PEA_SECCOMP_OP_GE] = SCMP_CMP_GE, [PEA_SECCOMP_OP_GT] = SCMP_CMP_GT,
    [PEA_SECCOMP_OP_MASKED_EQ] = SCMP_CMP_MASKED_EQ,
};

uint32_t seccomp_arch_from_profile_name(const char *name)
{
    char lower[64];
    const char *s = strncmp(name, "SCMP_ARCH_", 10) == 0 ? name + 10 : name;
    size_t i = 0;
    for (; s[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)tolower((unsigned char)s[i]);
    lower[i] = '\0';
    return seccomp_arch_resolve_name(lower);
}

static int add_architectures(scmp_filter_ctx ctx, char **names, struct pea_error *err)
{
    for (char **n = names; n && *n; n++) {
        uint32_t arch = seccomp_arch_from_profile_name(*n);
        if (!arch)
            return pea_fail(err, 0, "seccomp: unknown architecture \"%s\"", *n);
        int r = seccomp_arch_add(ctx, arch);
        if (r < 0 && r != -EEXIST)
            return pea_fail(err, -r, "seccomp: add architecture %s", *n);
    }
    return 0;
}

/* The profile's flags: libseccomp's attribute for each, and the kernel flag seccomp_load in libseccomp 2.5.4 passes
 * for it. no_new_privs never (CTL_NNP is 0); NEW_LISTENER comes with SCMP_ACT_NOTIFY rules, not as a flag. */
static const struct {
    const char *name;
    enum scmp_filter_attr attr;
    unsigned kernel_flag;
} filter_flags[] = {
    {"SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG, SECCOMP_FILTER_FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB, SECCOMP_FILTER_FLAG_SPEC_ALLOW},
    {"SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC, SECCOMP_FILTER_FLAG_TSYNC},
};

static int add_flags(scmp_filter_ctx ctx, char **flags, struct pea_error *err)
{
    for (char **f = flags; f && *f; f++) {
        size_t i = 0;
        while (i < ARRAY_SIZE(filter_flags) && strcmp(*f, filter_flags[i].name) != 0)
            i++;
        if (i == ARRAY_SIZE(filter_flags))
            return pea_fail(err, 0, "seccomp: unknown flag \"%s\"", *f);
        int r = seccomp_attr_set(ctx, filter_flags[i].attr, 1);
        if (r < 0)
            return pea_fail(err, -r, "seccomp: set flag %s", *f);
    }
    return 0;
}

static bool has_notify_rule(const struct pea_seccomp *profile)
{
    for (size_t i = 0; i < profile->n_rules; i++)
        if (profile->rules[i].action == PEA_SECCOMP_NOTIFY)
            return true;
    return false;
}

/* The kernel flags a program of this profile is loaded with: what the compiled program carries, and what a
 * stored one must carry to be used. */
static unsigned profile_kernel_flags(const struct pea_seccomp *profile)
{
    unsigned flags = 0;
    for (char **f = profile->flags; f && *f; f++)
        for (size_t i = 0; i < ARRAY_SIZE(filter_flags); i++)
            if (strcmp(*f, filter_flags[i].name) == 0)
                flags |= filter_flags[i].kernel_flag;
    if (has_notify_rule(profile)) {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        /* The kernel takes TSYNC with a listener only when a failed sync is told by ESRCH (not a thread id). */
        if (flags & SECCOMP_FILTER_FLAG_TSYNC)
            flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    }
    return flags;
}

/* libseccomp takes one comparison per argument in a rule: comparisons on the same argument are alternatives
 * (allow when arg0 == A or arg0 == B), so each becomes its own rule together with the other arguments. */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char *name,
                    const struct pea_seccomp_rule *rule, struct pea_error *err)
{
    struct scmp_arg_cmp cmps[6];
    unsigned per_index[6] = {0};
    for (size_t i = 0; i < rule->n_args; i++)
        per_index[rule->args[i].index]++;
    int split = -1;
    for (int i = 0; i < 6; i++)
        if (per_index[i] > 1)
            split = i;
    for (size_t pick = 0; pick < (split < 0 ? 1 : rule->n_args); pick++) {
        if (split >= 0 && rule->args[pick].index != (unsigned)split)
            continue;
        unsigned n = 0;
        for (size_t i = 0; i < rule->n_args && n < 6; i++) {
            const struct pea_seccomp_arg *a = &rule->args[i];
            if (split >= 0 && a->index == (unsigned)split && i != pick)
                continue;
            cmps[n++] = (struct scmp_arg_cmp){.arg = a->index, .op = compare_ops[a->op], .datum_a = a->value,
                                              .datum_b = a->value_two};
        }
        int r = seccomp_rule_add_array(ctx, action, nr, n, cmps);
        if (r < 0)
            return pea_fail(err, -r, "seccomp: add rule for %s", name);
    }
    return 0;
}

void *seccomp_filter_build(const struct pea_seccomp *profile, struct pea_error *err)
{
    /* What the container's setup does between loading the filter and handing its listener to the runtime must not
     * wait for the agent, who has no listener yet: with runc that is write(2), with pea sendmsg(2). */
    if (profile->default_action == PEA_SECCOMP_NOTIFY) {
        pea_fail(err, 0, "seccomp: SCMP_ACT_NOTIFY cannot be the default action");
        return NULL;
    }
    uint32_t default_action =
        action_of(profile->default_action, profile->has_default_errno_ret, profile->default_errno_ret);
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) {
        pea_fail(err, 0, "seccomp: cannot initialise the filter");
        return NULL;
    }
    /* pea sets no_new_privs itself when the config asks for it, never as a side effect of seccomp. A binary tree
     * of syscall numbers rather than a list: compiling takes twice as long (once: then the program is stored),
     * but the kernel checks each syscall in log(n) compares, and installing the filter, which runs the program
     * for every syscall number to build its cache of always-allowed ones, takes half the time. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 || seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0 ||
        add_architectures(ctx, profile->architectures, err) < 0 || add_flags(ctx, profile->flags, err) < 0)
        goto fail;
    for (size_t i = 0; i < profile->n_rules; i++) {
        const struct pea_seccomp_rule *rule = &profile->rules[i];
        for (char **name = rule->names; rule->action == PEA_SECCOMP_NOTIFY && name && *name; name++)
            if (strcmp(*name, "sendmsg") == 0) {
                pea_fail(err, 0, "seccomp: SCMP_ACT_NOTIFY cannot be used for sendmsg");
                goto fail;
            }
        uint32_t action = action_of(rule->action, rule->has_errno_ret, rule->errno_ret);
        if (action == default_action)
            continue; /* libseccomp refuses rules that repeat the default */
        for (char **name = rule->names; name && *name; name++) {
            int nr = seccomp_syscall_resolve_name(*name);
            if (nr == __NR_SCMP_ERROR)
                continue; /* unknown to this libseccomp or kernel: the spec says skip it */
            if (add_rule(ctx, action, nr, *name, rule, err) < 0)
                goto fail;
        }
    }
    return ctx;
fail:
    seccomp_release(ctx);
    return NULL;
}

void seccomp_filter_free(void *filter)
{
    if (filter)
        seccomp_release(filter);
}

static void filter_free_p(void *p) { seccomp_filter_free(*(void **)p); }
#define AUTO_FILTER __attribute__((cleanup(filter_free_p)))

/* The sock_fprog length is 16 bits; the kernel refuses more than BPF_MAXINSNS at load, as it did before. */
#define PROGRAM_MAX ((size_t)USHRT_MAX * sizeof(struct sock_filter))

static int compile(const struct pea_seccomp *profile, struct pea_seccomp_program *out, struct pea_error *err)
{
    AUTO_FILTER void *filter = seccomp_filter_build(profile, err);
    if (!filter)
        return -1;
    out->flags = profile_kernel_flags(profile);
    AUTO_FD int fd = memfd_create("pea-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "seccomp: create a memfd for the BPF program");
    int r = seccomp_export_bpf(filter, fd);
    if (r < 0)
        return pea_fail(err, -r, "seccomp: export the BPF program");
    size_t len = 0;
    AUTO_FREE char *bytes = lseek(fd, 0, SEEK_SET) < 0 ? NULL : read_fd_all(fd, PROGRAM_MAX, &len);
    if (!bytes)
        return pea_fail(err, errno, "seccomp: read back the BPF program");
    if (len == 0 || len % sizeof(struct sock_filter) != 0)
        return pea_fail(err, EINVAL, "seccomp: exported BPF program of %zu bytes", len);
    struct sock_filter *program = (struct sock_filter *)take_ptr(&bytes);
    size_t instructions = len / sizeof(struct sock_filter);
    if (seccomp_enosys_prepend(profile, &program, &instructions, err) < 0) {
        free(program);
        return -1;
    }
    if (instructions > USHRT_MAX) {
        free(program);
        return pea_fail(err, E2BIG, "seccomp: BPF program of %zu instructions", instructions);
    }
    out->prog.len = (unsigned short)instructions;
    out->prog.filter = program;
    return 0;
}

/* ---- caches: pea-shim and `pea pod run` launch many containers with one profile, in one process; a node runs
 * many processes with one profile (containerd's default in every CRI container) ---- */

struct key_buffer {
    unsigned char *data;
    size_t len, cap;
};

static void key_put(struct key_buffer *k, const void *p, size_t n)
{
    if (k->len + n > k->cap) {
        k->cap = (k->len + n) * 2;
        k->data = xrealloc(k->data, k->cap);
    }
    memcpy(k->data + k->len, p, n);
    k->len += n;
}

static void key_u64(struct key_buffer *k, uint64_t v) { key_put(k, &v, sizeof v); }

/* Length-prefixed strings and count-prefixed lists, so that no two different profiles serialize alike. */
static void key_strv(struct key_buffer *k, char **v)
{
    key_u64(k, strv_len(v));
    for (; v && *v; v++) {
        size_t n = strlen(*v);
        key_u64(k, n);
        key_put(k, *v, n);
    }
}

static void profile_key(const struct pea_seccomp *p, struct key_buffer *k)
{
    key_u64(k, p->default_action);
    key_u64(k, p->has_default_errno_ret);
    key_u64(k, p->default_errno_ret);
    key_strv(k, p->architectures);
    key_strv(k, p->flags);
    key_u64(k, p->n_rules);
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct pea_seccomp_rule *r = &p->rules[i];
        key_strv(k, r->names);
        key_u64(k, r->action);
        key_u64(k, r->has_errno_ret);
        key_u64(k, r->errno_ret);
        key_u64(k, r->n_args);
        for (size_t j = 0; j < r->n_args; j++) {
            key_u64(k, r->args[j].index);
            key_u64(k, r->args[j].value);
            key_u64(k, r->args[j].value_two);
            key_u64(k, r->args[j].op);
        }
    }
}

#define CACHE_SIZE 8

struct cache_entry {
    uint64_t digest, last_used;
    unsigned char *key;
    size_t key_len;
    struct pea_seccomp_program program;
};

static struct cache_entry cache[CACHE_SIZE];
static uint64_t cache_clock;
static char *store_dir;

void seccomp_cache_use_dir(const char *dir)
{
    free(store_dir);
    store_dir = NULL;
    if (!dir || !*dir)
        return;
    /* Absolute: the containers' setup may change the working directory before the next compile. */
    char cwd[PATH_MAX];
    if (dir[0] == '/')
        store_dir = xstrdup(dir);
    else if (getcwd(cwd, sizeof cwd))
        store_dir = xasprintf("%s/%s", cwd, dir);
}

void seccomp_cache_use_default_dir(void)
{
    const char *chosen = getenv(PEA_SECCOMP_CACHE_ENV);
    if (chosen) {
        seccomp_cache_use_dir(chosen);
        return;
    }
    /* Beside pea's default state root, never under the --root of a caller (containerd, CRI-O, podman), which owns
     * that directory and expects it empty once its containers are gone. */
    const char *runtime_dir = getenv("XDG_RUNTIME_DIR");
    AUTO_FREE char *dir = NULL;
    if (geteuid() == 0)
        dir = xstrdup("/run/" PEA_SECCOMP_CACHE_NAME);
    else if (runtime_dir && runtime_dir[0] == '/')
        dir = xasprintf("%s/" PEA_SECCOMP_CACHE_NAME, runtime_dir);
    seccomp_cache_use_dir(dir);
}

/* A program for the profile with key from the store, or compiled and then stored. */
static int load_or_compile(const struct pea_seccomp *profile, const unsigned char *key, size_t key_len,
                           struct pea_seccomp_program *out, struct pea_error *err)
{
    if (!store_dir)
        return compile(profile, out, err);
    size_t env_len = 0;
    const unsigned char *env = seccomp_store_environment(&env_len);
    AUTO_FREE unsigned char *full = xmalloc(env_len + key_len);
    memcpy(full, env, env_len);
    memcpy(full + env_len, key, key_len);
    if (seccomp_store_load(store_dir, full, env_len + key_len, profile_kernel_flags(profile), out) == 0)
        return 0;
    if (compile(profile, out, err) < 0)
        return -1;
    seccomp_store_save(store_dir, full, env_len + key_len, out);
    return 0;
}

static void entry_clear(struct cache_entry *e)
{
    free(e->key);
    free(e->program.prog.filter);
    *e = (struct cache_entry){0};
}

void seccomp_cache_clear(void)
{
    for (size_t i = 0; i < CACHE_SIZE; i++)
        entry_clear(&cache[i]);
}

const struct pea_seccomp_program *seccomp_compile(const struct pea_seccomp *profile, struct pea_error *err)
{
    struct key_buffer k = {0};
    profile_key(profile, &k);
    AUTO_FREE unsigned char *key = k.data;
    uint64_t h = seccomp_key_digest(key, k.len);
    struct cache_entry *victim = &cache[0];
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        struct cache_entry *e = &cache[i];
        if (e->key && e->digest == h && e->key_len == k.len && memcmp(e->key, key, k.len) == 0) {
            e->last_used = ++cache_clock;
            return &e->program;
        }
        if (victim->key && (!e->key || e->last_used < victim->last_used))
            victim = e;
    }
    struct pea_seccomp_program program = {0};
    if (load_or_compile(profile, key, k.len, &program, err) < 0)
        return NULL;
    entry_clear(victim);
    *victim = (struct cache_entry){.digest = h, .last_used = ++cache_clock, .key = take_ptr(&key),
                                   .key_len = k.len, .program = program};
    return &victim->program;
}

int seccomp_program_load(const struct pea_seccomp_program *program, int *listener_fd, struct pea_error *err)
{
    struct sock_fprog prog = program->prog;
    *listener_fd = -1;
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, program->flags, &prog);
    if (r >= 0 && (program->flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)) {
        *listener_fd = (int)r; /* close-on-exec, from the kernel */
        return 0;
    }
    /* Kernels before 3.17 have only the prctl, and none of the flags (libseccomp refused them when building). */
    if (r < 0 && errno == ENOSYS && program->flags == 0)
        r = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
    if (r < 0)
        return pea_fail(err, errno, "seccomp: load filter");
    /* With TSYNC, a positive result is the thread that could not be synchronised (libseccomp: ESRCH). */
    if (r > 0)
        return pea_fail(err, ESRCH, "seccomp: load filter: thread %ld not synchronised", r);
    return 0;
}

const char *seccomp_library_version(void)
{
    static char version[32];
    const struct scmp_version *v = seccomp_version();
    snprintf(version, sizeof version, "%u.%u.%u", v->major, v->minor, v->micro);
    return version;
}
