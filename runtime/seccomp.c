/* OCI seccomp profiles compiled into a BPF filter with libseccomp. */
#include <ctype.h>
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "pea/seccomp.h"
#include "pea/util.h"

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

static int add_architectures(scmp_filter_ctx ctx, char **names, struct pea_error *err)
{
    for (char **n = names; n && *n; n++) {
        char lower[64];
        const char *s = strncmp(*n, "SCMP_ARCH_", 10) == 0 ? *n + 10 : *n;
        size_t i = 0;
        for (; s[i] && i < sizeof lower - 1; i++)
            lower[i] = (char)tolower((unsigned char)s[i]);
        lower[i] = '\0';
        uint32_t arch = seccomp_arch_resolve_name(lower);
        if (!arch)
            return pea_fail(err, 0, "seccomp: unknown architecture \"%s\"", *n);
        int r = seccomp_arch_add(ctx, arch);
        if (r < 0 && r != -EEXIST)
            return pea_fail(err, -r, "seccomp: add architecture %s", *n);
    }
    return 0;
}

static int add_flags(scmp_filter_ctx ctx, char **flags, struct pea_error *err)
{
    for (char **f = flags; f && *f; f++) {
        enum scmp_filter_attr attr;
        if (strcmp(*f, "SECCOMP_FILTER_FLAG_LOG") == 0)
            attr = SCMP_FLTATR_CTL_LOG;
        else if (strcmp(*f, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
            attr = SCMP_FLTATR_CTL_SSB;
        else if (strcmp(*f, "SECCOMP_FILTER_FLAG_TSYNC") == 0)
            attr = SCMP_FLTATR_CTL_TSYNC;
        else
            return pea_fail(err, 0, "seccomp: unknown flag \"%s\"", *f);
        int r = seccomp_attr_set(ctx, attr, 1);
        if (r < 0)
            return pea_fail(err, -r, "seccomp: set flag %s", *f);
    }
    return 0;
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
    if (profile->default_action == PEA_SECCOMP_NOTIFY) {
        pea_fail(err, 0, "seccomp: SCMP_ACT_NOTIFY needs a listenerPath, which pea does not support");
        return NULL;
    }
    uint32_t default_action =
        action_of(profile->default_action, profile->has_default_errno_ret, profile->default_errno_ret);
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) {
        pea_fail(err, 0, "seccomp: cannot initialise the filter");
        return NULL;
    }
    /* pea sets no_new_privs itself when the config asks for it, never as a side effect of seccomp. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 || add_architectures(ctx, profile->architectures, err) < 0 ||
        add_flags(ctx, profile->flags, err) < 0)
        goto fail;
    for (size_t i = 0; i < profile->n_rules; i++) {
        const struct pea_seccomp_rule *rule = &profile->rules[i];
        if (rule->action == PEA_SECCOMP_NOTIFY) {
            pea_fail(err, 0, "seccomp: SCMP_ACT_NOTIFY needs a listenerPath, which pea does not support");
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

int seccomp_filter_load(void *filter, struct pea_error *err)
{
    int r = seccomp_load(filter);
    if (r < 0)
        return pea_fail(err, -r, "seccomp: load filter");
    return 0;
}

void seccomp_filter_free(void *filter)
{
    if (filter)
        seccomp_release(filter);
}

const char *seccomp_library_version(void)
{
    static char version[32];
    const struct scmp_version *v = seccomp_version();
    snprintf(version, sizeof version, "%u.%u.%u", v->major, v->minor, v->micro);
    return version;
}
