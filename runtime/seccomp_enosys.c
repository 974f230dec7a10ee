/* The ENOSYS stub: a few BPF instructions before the program libseccomp generates, so that a syscall newer than any
 * the profile names fails with ENOSYS, as on a kernel that lacks it, rather than with the profile's default action.
 * A C library then falls back to the older call (glibc: clone3 to clone, faccessat2 to faccessat), where EPERM
 * would be taken as a real refusal. runc does the same ("patchbpf"); the rules it follows, kept here:
 *  - no stub when the default action lets calls through anyway (ALLOW, LOG, TRACE) or already is ERRNO(ENOSYS);
 *  - per architecture of the filter, the highest number any rule names (whatever its action; names unknown to
 *    libseccomp count for nothing); an architecture with none gets no check;
 *  - x86_64 and x32 share one audit architecture, told apart by bit 30 of the number (x32's numbers carry it);
 *  - on s390 and s390x, number 0 is where the kernel leaves a multiplexed call it does not know: ENOSYS too.
 * pea's filter always holds the native architecture, so unlike runc it checks that one even when the profile lists
 * no architectures. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>

#include "pea/util.h"
#include "seccomp_internal.h"

#define X32_SYSCALL_BIT 0x40000000u

/* One audit architecture of the filter and the highest number named for it; x86_64 carries x32 too. */
struct arch_check {
    uint32_t audit_arch;
    bool has_max, has_x32_max;
    uint32_t max, x32_max;
};

/* Targets of a jump while the stub is built: an instruction index, or one of these. */
enum { TO_FILTER = -1, TO_ENOSYS = -2 };

/* More than libseccomp has architectures; the stub then stays under 256 instructions, so every conditional jump
 * reaches its target. */
#define MAX_ARCHES 24
#define STUB_MAX (3 + MAX_ARCHES * 6)

struct stub {
    struct sock_filter insn[STUB_MAX];
    int jt[STUB_MAX], jf[STUB_MAX]; /* targets of conditional jumps, resolved at the end */
    size_t n;
};

static void emit(struct stub *s, uint16_t code, uint32_t k, int jt, int jf)
{
    s->insn[s->n] = (struct sock_filter){.code = code, .k = k};
    s->jt[s->n] = jt;
    s->jf[s->n] = jf;
    s->n++;
}

/* The next instruction, as a jump target. */
static int next(const struct stub *s) { return (int)s->n + 1; }

static bool is_permissive(const struct pea_seccomp *profile)
{
    switch (profile->default_action) {
    case PEA_SECCOMP_ALLOW:
    case PEA_SECCOMP_LOG:
    case PEA_SECCOMP_TRACE: /* a tracer emulates what it wants, ENOSYS included */
        return true;
    case PEA_SECCOMP_ERRNO:
        return profile->has_default_errno_ret && profile->default_errno_ret == ENOSYS;
    default:
        return false;
    }
}

static uint32_t highest_named(const struct pea_seccomp *profile, uint32_t arch, bool *found)
{
    uint32_t max = 0;
    *found = false;
    for (size_t i = 0; i < profile->n_rules; i++)
        for (char **name = profile->rules[i].names; name && *name; name++) {
            int nr = seccomp_syscall_resolve_name_arch(arch, *name);
            if (nr < 0) /* unknown here, or a pseudo number of a multiplexed call */
                continue;
            if (!*found || (uint32_t)nr > max)
                max = (uint32_t)nr;
            *found = true;
        }
    return max;
}

static void add_arch(struct arch_check *checks, size_t *n, const struct pea_seccomp *profile, uint32_t arch)
{
    bool is_x32 = arch == SCMP_ARCH_X32;
    uint32_t audit = is_x32 ? AUDIT_ARCH_X86_64 : arch; /* libseccomp's tokens are the audit values but x32's */
    size_t i = 0;
    while (i < *n && checks[i].audit_arch != audit)
        i++;
    if (i == *n)
        checks[(*n)++] = (struct arch_check){.audit_arch = audit};
    bool found;
    uint32_t max = highest_named(profile, arch, &found);
    if (!found)
        return;
    if (is_x32) {
        checks[i].has_x32_max = true;
        checks[i].x32_max = max;
    } else {
        checks[i].has_max = true;
        checks[i].max = max;
    }
}

/* The number is in A. Jump to ENOSYS past the highest named number, else into the filter. */
static void emit_section(struct stub *s, const struct arch_check *c)
{
    if (c->audit_arch == AUDIT_ARCH_S390 || c->audit_arch == AUDIT_ARCH_S390X)
        emit(s, BPF_JMP | BPF_JEQ | BPF_K, 0, TO_ENOSYS, next(s));
    if (c->audit_arch == AUDIT_ARCH_X86_64) {
        if (c->has_max && c->has_x32_max) {
            /* x32 (bit 30 set) is checked by the instruction after the x86_64 one. */
            emit(s, BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, next(s) + 1, next(s));
            emit(s, BPF_JMP | BPF_JGT | BPF_K, c->max, TO_ENOSYS, TO_FILTER);
            emit(s, BPF_JMP | BPF_JGT | BPF_K, c->x32_max, TO_ENOSYS, TO_FILTER);
            return;
        }
        /* Only one of the two ABIs is checked: calls of the other go to the filter as they are. */
        if (c->has_max)
            emit(s, BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, TO_FILTER, next(s));
        else
            emit(s, BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, next(s), TO_FILTER);
    }
    emit(s, BPF_JMP | BPF_JGT | BPF_K, c->has_max ? c->max : c->x32_max, TO_ENOSYS, TO_FILTER);
}

/* Resolve the symbolic targets into the 8-bit forward offsets of classic BPF. */
static int resolve_jumps(struct stub *s, struct pea_error *err)
{
    size_t enosys = s->n - 1, filter = s->n;
    for (size_t i = 0; i < s->n; i++) {
        if (BPF_CLASS(s->insn[i].code) != BPF_JMP || BPF_OP(s->insn[i].code) == BPF_JA)
            continue;
        int targets[2] = {s->jt[i], s->jf[i]};
        uint8_t offsets[2];
        for (int t = 0; t < 2; t++) {
            size_t to = targets[t] == TO_FILTER ? filter : targets[t] == TO_ENOSYS ? enosys : (size_t)targets[t];
            if (to <= i || to - i - 1 > 255)
                return pea_fail(err, 0, "seccomp: ENOSYS stub: jump out of range");
            offsets[t] = (uint8_t)(to - i - 1);
        }
        s->insn[i].jt = offsets[0];
        s->insn[i].jf = offsets[1];
    }
    return 0;
}

int seccomp_enosys_prepend(const struct pea_seccomp *profile, struct sock_filter **program, size_t *len,
                           struct pea_error *err)
{
    if (is_permissive(profile))
        return 0;
    struct arch_check checks[MAX_ARCHES];
    size_t n_checks = 0;
    add_arch(checks, &n_checks, profile, seccomp_arch_native());
    for (char **name = profile->architectures; name && *name; name++) {
        uint32_t arch = seccomp_arch_from_profile_name(*name);
        if (!arch)
            return pea_fail(err, 0, "seccomp: unknown architecture \"%s\"", *name);
        if (n_checks == MAX_ARCHES)
            return pea_fail(err, 0, "seccomp: too many architectures");
        add_arch(checks, &n_checks, profile, arch);
    }
    size_t n_sections = 0;
    for (size_t i = 0; i < n_checks; i++)
        if (checks[i].has_max || checks[i].has_x32_max)
            checks[n_sections++] = checks[i];
    if (n_sections == 0)
        return 0;

    struct stub s = {.n = 0};
    /* ld arch; one jeq per checked architecture (to its section, patched below); anything else to the filter. */
    emit(&s, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
    size_t dispatch = s.n;
    for (size_t i = 0; i < n_sections; i++)
        emit(&s, BPF_JMP | BPF_JEQ | BPF_K, checks[i].audit_arch, 0, next(&s));
    size_t to_filter = s.n;
    emit(&s, BPF_JMP | BPF_JA | BPF_K, 0, 0, 0); /* k set once the stub's length is known */
    for (size_t i = 0; i < n_sections; i++) {
        s.jt[dispatch + i] = (int)s.n;
        emit(&s, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
        emit_section(&s, &checks[i]);
    }
    emit(&s, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS, 0, 0);
    s.insn[to_filter].k = (uint32_t)(s.n - to_filter - 1);
    if (resolve_jumps(&s, err) < 0)
        return -1;

    struct sock_filter *joined = xmalloc((s.n + *len) * sizeof *joined);
    memcpy(joined, s.insn, s.n * sizeof *joined);
    memcpy(joined + s.n, *program, *len * sizeof *joined);
    free(*program);
    *program = joined;
    *len += s.n;
    return 0;
}
