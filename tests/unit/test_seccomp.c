#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/seccomp.h"

static char *names_mkdir[] = {"mkdir", "mkdirat", NULL};
static char *names_personality[] = {"personality", NULL};
static char *names_unknown[] = {"no_such_syscall_anywhere", NULL};
static char *no_strings[] = {NULL};

/* Load profile in a forked child and run check there; the child's exit status is the verdict. */
static int in_child(const struct pea_seccomp *profile, int (*check)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        struct pea_error err = {0};
        void *f = seccomp_filter_build(profile, &err);
        if (!f || seccomp_filter_load(f, &err) < 0)
            _exit(100);
        _exit(check());
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
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
    cr_assert_eq(in_child(&p, mkdir_is_eperm), 0);
    rule.has_errno_ret = true;
    rule.errno_ret = ENOSYS;
    cr_assert_eq(in_child(&p, mkdir_is_enosys), 0);
}

Test(seccomp, argument_rules)
{
    struct pea_seccomp_arg arg = {.index = 0, .value = 0xffff, .op = PEA_SECCOMP_OP_EQ};
    struct pea_seccomp_rule rule = {.names = names_personality, .action = PEA_SECCOMP_ERRNO, .args = &arg, .n_args = 1};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    cr_assert_eq(in_child(&p, only_ffff_blocked), 0);
}

Test(seccomp, comparisons_on_one_argument_are_alternatives)
{
    struct pea_seccomp_arg args[] = {{.index = 0, .value = 0xffff, .op = PEA_SECCOMP_OP_EQ},
                                     {.index = 0, .value = 0xfffe, .op = PEA_SECCOMP_OP_EQ}};
    struct pea_seccomp_rule rule = {.names = names_personality, .action = PEA_SECCOMP_ERRNO, .args = args, .n_args = 2};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    cr_assert_eq(in_child(&p, both_listed_values_blocked), 0);
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
    p.architectures = no_strings;
    p.default_action = PEA_SECCOMP_NOTIFY;
    cr_assert_null(seccomp_filter_build(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: SCMP_ACT_NOTIFY needs a listenerPath, which pea does not support");
    char *bad_flag[] = {"SECCOMP_FILTER_FLAG_NOPE", NULL};
    p.default_action = PEA_SECCOMP_ALLOW;
    p.flags = bad_flag;
    cr_assert_null(seccomp_filter_build(&p, &err));
    cr_assert_str_eq(err.msg, "seccomp: unknown flag \"SECCOMP_FILTER_FLAG_NOPE\"");
}

Test(seccomp, version)
{
    const char *v = seccomp_library_version();
    cr_assert(strchr(v, '.') != NULL, "%s", v);
}
