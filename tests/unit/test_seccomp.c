#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/seccomp.h"
#include "pea/util.h"

static char *names_mkdir[] = {"mkdir", "mkdirat", NULL};
static char *names_personality[] = {"personality", NULL};
static char *names_unknown[] = {"no_such_syscall_anywhere", NULL};
static char *no_strings[] = {NULL};

TestSuite(seccomp, .fini = seccomp_cache_clear);

enum load_via { VIA_LIBSECCOMP, VIA_PROGRAM };

/* Load profile in a forked child, through libseccomp's own seccomp_load or as the runtime does (compiled in the
 * parent, the program installed in the child), and run check there; the child's exit status is the verdict. */
static int in_child(const struct pea_seccomp *profile, int (*check)(void), enum load_via via)
{
    struct pea_error err = {0};
    const struct pea_seccomp_program *program = NULL;
    if (via == VIA_PROGRAM)
        cr_assert_not_null(program = seccomp_compile(profile, &err), "%s", err.msg);
    pid_t pid = fork();
    if (pid == 0) {
        /* So that the test needs no CAP_SYS_ADMIN. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            _exit(99);
        if (via == VIA_PROGRAM) {
            int listener = -1;
            if (seccomp_program_load(program, &listener, &err) < 0)
                _exit(100);
        } else {
            void *f = seccomp_filter_build(profile, &err);
            if (!f || seccomp_load(f) < 0)
                _exit(100);
        }
        /* Not _exit: a sanitizer's _exit hook makes calls the profile under test may deny. */
        syscall(SYS_exit_group, check());
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

/* The compiled program behaves as the filter loaded by libseccomp itself. */
static void check_both(const struct pea_seccomp *profile, int (*check)(void))
{
    cr_assert_eq(in_child(profile, check, VIA_LIBSECCOMP), 0, "through seccomp_load");
    cr_assert_eq(in_child(profile, check, VIA_PROGRAM), 0, "through the compiled program");
}

static int mkdir_is_eperm(void)
{
    return mkdir("/tmp/pea-seccomp-never", 0700) < 0 && errno == EPERM && getpid() > 0 ? 0 : 1;
}

static int mkdir_is_enosys(void) { return mkdir("/tmp/pea-seccomp-never", 0700) < 0 && errno == ENOSYS ? 0 : 1; }

static int personality_query(unsigned long value) { return (int)syscall(SYS_personality, value); }

static int only_ffff_blocked(void)
{
    errno = 0;
    int blocked = personality_query(0xffff) < 0 && errno == EPERM;
    int allowed = personality_query(0xffffffff) >= 0;
    return blocked && allowed ? 0 : 1;
}

static int both_listed_values_blocked(void)
{
    errno = 0;
    int a = personality_query(0xffff) < 0 && errno == EPERM;
    errno = 0;
    int b = personality_query(0xfffe) < 0 && errno == EPERM;
    int other = personality_query(0xffffffff) >= 0;
    return a && b && other ? 0 : 1;
}

Test(seccomp, errno_rule_blocks_one_syscall)
{
    struct pea_seccomp_rule rule = {.names = names_mkdir, .action = PEA_SECCOMP_ERRNO};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    check_both(&p, mkdir_is_eperm);
    rule.has_errno_ret = true;
    rule.errno_ret = ENOSYS;
    check_both(&p, mkdir_is_enosys);
}

Test(seccomp, argument_rules)
{
    struct pea_seccomp_arg arg = {.index = 0, .value = 0xffff, .op = PEA_SECCOMP_OP_EQ};
    struct pea_seccomp_rule rule = {.names = names_personality, .action = PEA_SECCOMP_ERRNO, .args = &arg, .n_args = 1};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    check_both(&p, only_ffff_blocked);
}

Test(seccomp, comparisons_on_one_argument_are_alternatives)
{
    struct pea_seccomp_arg args[] = {{.index = 0, .value = 0xffff, .op = PEA_SECCOMP_OP_EQ},
                                     {.index = 0, .value = 0xfffe, .op = PEA_SECCOMP_OP_EQ}};
    struct pea_seccomp_rule rule = {.names = names_personality, .action = PEA_SECCOMP_ERRNO, .args = args, .n_args = 2};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    check_both(&p, both_listed_values_blocked);
}

Test(seccomp, unknown_names_are_skipped_and_bad_input_refused)
{
    struct pea_error err = {0};
    struct pea_seccomp_rule rule = {.names = names_unknown, .action = PEA_SECCOMP_ERRNO};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    void *f = seccomp_filter_build(&p, &err);
    cr_assert_not_null(f, "%s", err.msg);
    seccomp_filter_free(f);
    char *bad_arch[] = {"SCMP_ARCH_FOO", NULL};
    p.architectures = bad_arch;
    cr_assert_null(seccomp_filter_build(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: unknown architecture \"SCMP_ARCH_FOO\"");
    /* Refused, and not cached: asking again gives the error again. */
    for (int i = 0; i < 2; i++) {
        memset(&err, 0, sizeof err);
        cr_assert_null(seccomp_compile(&p, &err));
        cr_assert_str_eq(err.msg, "seccomp: unknown architecture \"SCMP_ARCH_FOO\"");
    }
    p.architectures = no_strings;
    p.default_action = PEA_SECCOMP_NOTIFY;
    cr_assert_null(seccomp_filter_build(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: SCMP_ACT_NOTIFY cannot be the default action");
    cr_assert_null(seccomp_compile(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: SCMP_ACT_NOTIFY cannot be the default action");
    p.default_action = PEA_SECCOMP_ALLOW;
    char *names_sendmsg[] = {"mkdir", "sendmsg", NULL};
    rule.names = names_sendmsg;
    rule.action = PEA_SECCOMP_NOTIFY;
    cr_assert_null(seccomp_compile(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: SCMP_ACT_NOTIFY cannot be used for sendmsg");
    rule.names = names_mkdir;
    rule.action = PEA_SECCOMP_ERRNO;
    char *bad_flag[] = {"SECCOMP_FILTER_FLAG_NOPE", NULL};
    p.default_action = PEA_SECCOMP_ALLOW;
    p.flags = bad_flag;
    cr_assert_null(seccomp_filter_build(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: unknown flag \"SECCOMP_FILTER_FLAG_NOPE\"");
}

static int seccomp_mode_is_filter(void)
{
    return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2 && mkdir_is_eperm() == 0 ? 0 : 1;
}

Test(seccomp, profile_flags_become_kernel_flags)
{
    struct pea_error err = {0};
    char *flags[] = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC", NULL};
    struct pea_seccomp_rule rule = {.names = names_mkdir, .action = PEA_SECCOMP_ERRNO};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    const struct pea_seccomp_program *none = seccomp_compile(&p, &err);
    cr_assert_not_null(none, "%s", err.msg);
    cr_assert_eq(none->flags, 0u);
    p.flags = flags;
    const struct pea_seccomp_program *all = seccomp_compile(&p, &err);
    cr_assert_not_null(all, "%s", err.msg);
    cr_assert_eq(all->flags, SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW | SECCOMP_FILTER_FLAG_TSYNC);
    check_both(&p, seccomp_mode_is_filter);
}

/* A deep copy: equal contents, no pointer shared with the original. */
static char **strv_copy(char **v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **c = xcalloc(n + 1, sizeof *c);
    for (size_t i = 0; i < n; i++)
        c[i] = xstrdup(v[i]);
    return c;
}

static bool same_program(const struct pea_seccomp_program *a, const struct sock_filter *b, unsigned short len)
{
    return a->prog.len == len && memcmp(a->prog.filter, b, len * sizeof *b) == 0;
}

Test(seccomp, cache_returns_one_program_per_profile)
{
    struct pea_error err = {0};
    char *arch[] = {"SCMP_ARCH_X86_64", NULL};
    struct pea_seccomp_arg arg = {.index = 0, .value = 0xffff, .op = PEA_SECCOMP_OP_EQ};
    struct pea_seccomp_rule rules[] = {
        {.names = names_mkdir, .action = PEA_SECCOMP_ERRNO, .has_errno_ret = true, .errno_ret = ENOSYS},
        {.names = names_personality, .action = PEA_SECCOMP_ERRNO, .args = &arg, .n_args = 1},
    };
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = arch, .flags = no_strings,
                            .rules = rules, .n_rules = 2};
    const struct pea_seccomp_program *first = seccomp_compile(&p, &err);
    cr_assert_not_null(first, "%s", err.msg);
    unsigned short len = first->prog.len;
    struct sock_filter *saved = xmalloc(len * sizeof *saved);
    memcpy(saved, first->prog.filter, len * sizeof *saved);

    struct pea_seccomp_arg arg_copy = arg;
    struct pea_seccomp_rule rules_copy[] = {rules[0], rules[1]};
    rules_copy[0].names = strv_copy(names_mkdir);
    rules_copy[1].names = strv_copy(names_personality);
    rules_copy[1].args = &arg_copy;
    struct pea_seccomp equal = p;
    equal.architectures = strv_copy(arch);
    equal.rules = rules_copy;
    cr_assert_eq(seccomp_compile(&equal, &err), first, "an equal profile is compiled once");

    rules_copy[0].errno_ret = EACCES;
    const struct pea_seccomp_program *other = seccomp_compile(&equal, &err);
    cr_assert_not_null(other, "%s", err.msg);
    cr_assert_neq(other, first);
    cr_assert_not(same_program(other, saved, len), "one errno value apart, another program");
    cr_assert_eq(seccomp_compile(&p, &err), first, "the first is still cached");

    /* Eight other profiles push the first out; compiled again, it is the same program. */
    for (unsigned e = 1; e <= 8; e++) {
        rules_copy[0].errno_ret = e;
        cr_assert_not_null(seccomp_compile(&equal, &err), "%s", err.msg);
    }
    const struct pea_seccomp_program *again = seccomp_compile(&p, &err);
    cr_assert_not_null(again, "%s", err.msg);
    cr_assert(same_program(again, saved, len));
    check_both(&p, mkdir_is_enosys);

    free(saved);
    strv_free(rules_copy[0].names);
    strv_free(rules_copy[1].names);
    strv_free(equal.architectures);
}

Test(seccomp, version)
{
    const char *v = seccomp_library_version();
    cr_assert(strchr(v, '.') != NULL, "%s", v);
}

Test(seccomp, notify_rules_ask_the_kernel_for_a_listener)
{
    struct pea_error err = {0};
    struct pea_seccomp_rule rule = {.names = names_mkdir, .action = PEA_SECCOMP_NOTIFY};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    const struct pea_seccomp_program *program = seccomp_compile(&p, &err);
    cr_assert_not_null(program, "%s", err.msg);
    cr_assert(seccomp_program_has_listener(program));
    cr_assert_eq(program->flags, SECCOMP_FILTER_FLAG_NEW_LISTENER);
    char *tsync[] = {"SECCOMP_FILTER_FLAG_TSYNC", NULL};
    p.flags = tsync;
    cr_assert_not_null(program = seccomp_compile(&p, &err), "%s", err.msg);
    cr_assert_eq(program->flags, SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC |
                                     SECCOMP_FILTER_FLAG_TSYNC_ESRCH);
}

/* Exits through exit_group, which the profiles below must allow. */
static char *names_old[] = {"exit_group", "exit", "getpid", "mkdir", "mkdirat", NULL};

static int call_fails_with(long nr, int expected)
{
    errno = 0;
    return syscall(nr, -1L, NULL, 0L, 0L) < 0 && errno == expected;
}

/* getpid is allowed; getppid (older than every name) is the default's EPERM; faccessat2 and clone3 (newer than
 * every name) fail with ENOSYS, as on a kernel without them. */
static int newer_calls_are_enosys(void)
{
    bool ok = syscall(SYS_getpid) > 0 && call_fails_with(SYS_getppid, EPERM) &&
              call_fails_with(SYS_faccessat2, ENOSYS) && call_fails_with(SYS_clone3, ENOSYS);
    return ok ? 0 : 1;
}

static int newer_calls_get_the_default(void)
{
    return call_fails_with(SYS_faccessat2, EPERM) && call_fails_with(SYS_getppid, EPERM) ? 0 : 1;
}

Test(seccomp, syscalls_newer_than_the_profile_get_enosys)
{
    struct pea_seccomp_rule rule = {.names = names_old, .action = PEA_SECCOMP_ALLOW};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ERRNO, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    cr_assert_eq(in_child(&p, newer_calls_are_enosys, VIA_PROGRAM), 0, "no architectures: the native one");
    char *arches[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", NULL};
    p.architectures = arches;
    cr_assert_eq(in_child(&p, newer_calls_are_enosys, VIA_PROGRAM), 0, "x86_64 with x32 beside it");
    /* libseccomp's own program (no stub) gives the default action. */
    cr_assert_eq(in_child(&p, newer_calls_get_the_default, VIA_LIBSECCOMP), 0);
}

/* The size of the program libseccomp itself makes for p. */
static size_t libseccomp_program_len(const struct pea_seccomp *p)
{
    struct pea_error err = {0};
    void *f = seccomp_filter_build(p, &err);
    cr_assert_not_null(f, "%s", err.msg);
    int fd = memfd_create("bpf", MFD_CLOEXEC);
    cr_assert_eq(seccomp_export_bpf(f, fd), 0);
    off_t bytes = lseek(fd, 0, SEEK_END);
    close(fd);
    seccomp_filter_free(f);
    return (size_t)bytes / sizeof(struct sock_filter);
}

Test(seccomp, no_enosys_stub_when_the_default_lets_calls_through)
{
    struct pea_error err = {0};
    struct pea_seccomp_rule rule = {.names = names_mkdir, .action = PEA_SECCOMP_ERRNO};
    struct pea_seccomp p = {.architectures = no_strings, .flags = no_strings, .rules = &rule, .n_rules = 1};
    enum pea_seccomp_action permissive[] = {PEA_SECCOMP_ALLOW, PEA_SECCOMP_LOG, PEA_SECCOMP_TRACE, PEA_SECCOMP_ERRNO};
    for (size_t i = 0; i < ARRAY_SIZE(permissive); i++) {
        p.default_action = permissive[i];
        /* ERRNO(ENOSYS) already is what the stub would say; ENOSYS on mkdir keeps the rule apart from it. */
        p.has_default_errno_ret = p.default_action == PEA_SECCOMP_ERRNO;
        p.default_errno_ret = ENOSYS;
        const struct pea_seccomp_program *program = seccomp_compile(&p, &err);
        cr_assert_not_null(program, "%s", err.msg);
        cr_assert_eq(program->prog.len, libseccomp_program_len(&p), "libseccomp's program alone");
    }
    p.default_action = PEA_SECCOMP_KILL_PROCESS;
    const struct pea_seccomp_program *program = seccomp_compile(&p, &err);
    cr_assert_not_null(program, "%s", err.msg);
    cr_assert_gt(program->prog.len, libseccomp_program_len(&p), "the stub goes first");
}
