#include <criterion/criterion.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/ns.h"
#include "pea/sys.h"
#include "pea/util.h"

static struct pea_spec *spec_with_namespaces(const char *namespaces)
{
    struct pea_error err = {0};
    char *text = xasprintf("{\"ociVersion\":\"1.2.0\",\"root\":{\"path\":\"rootfs\"},"
                           "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},\"linux\":{\"namespaces\":[%s]}}",
                           namespaces);
    struct pea_spec *spec = spec_parse_string(text, &err);
    free(text);
    cr_assert_not_null(spec, "%s", err.msg);
    return spec;
}

/* A pidfd of a child that has exited; reap it or leave it a zombie. */
static int pidfd_of_exited_child(bool reap)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    int pidfd = sys_pidfd_open(pid, 0);
    cr_assert_geq(pidfd, 0);
    siginfo_t info;
    cr_assert_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | (reap ? 0 : WNOWAIT)), 0);
    return pidfd;
}

static void expect_not_running(bool reap)
{
    AUTO_SPEC struct pea_spec *spec = spec_with_namespaces("{\"type\":\"mount\"},{\"type\":\"network\"}");
    AUTO_FD int pidfd = pidfd_of_exited_child(reap);
    struct pea_error err = {0};
    cr_assert_eq(ns_join_process(pidfd, spec, NS_JOIN_SELF, &err), -1);
    cr_assert_str_eq(err.msg, "container not running");
}

Test(ns, joining_an_exited_process_fails_as_not_running) { expect_not_running(true); }

Test(ns, joining_a_zombie_fails_as_not_running) { expect_not_running(false); }

Test(ns, a_phase_with_no_listed_namespace_joins_nothing)
{
    AUTO_SPEC struct pea_spec *spec = spec_with_namespaces("{\"type\":\"mount\"}");
    AUTO_FD int pidfd = pidfd_of_exited_child(true);
    struct pea_error err = {0};
    /* Neither pid nor time listed: they stay ours, so no setns, which would fail on the exited process. */
    cr_assert_eq(ns_join_process(pidfd, spec, NS_JOIN_FOR_CHILDREN, &err), 0, "%s", err.msg);
}

Test(ns, without_a_mount_namespace_an_exited_init_is_not_running)
{
    /* No mount namespace to join: the init's root is looked up instead, and a dead init has none. */
    AUTO_SPEC struct pea_spec *spec = spec_with_namespaces("{\"type\":\"network\"}");
    AUTO_FD int pidfd = pidfd_of_exited_child(true);
    struct pea_error err = {0};
    cr_assert_eq(ns_join_process(pidfd, spec, NS_JOIN_SELF, &err), -1);
    cr_assert_str_eq(err.msg, "container not running");
}

Test(ns, a_config_without_a_mount_namespace_is_valid)
{
    AUTO_SPEC struct pea_spec *spec = spec_with_namespaces("{\"type\":\"pid\"}");
    struct pea_error err = {0};
    cr_assert_eq(ns_validate(spec, &err), 0, "%s", err.msg);
}

Test(ns, masked_paths_without_a_mount_namespace_are_refused)
{
    struct pea_error err = {0};
    AUTO_SPEC struct pea_spec *spec = spec_parse_string(
        "{\"ociVersion\":\"1.2.0\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"},"
        "\"linux\":{\"namespaces\":[{\"type\":\"pid\"}],\"maskedPaths\":[\"/proc/kcore\"]}}",
        &err);
    cr_assert_not_null(spec, "%s", err.msg);
    cr_assert_eq(ns_validate(spec, &err), -1);
    cr_assert_str_eq(err.msg, "linux.maskedPaths: needs a private mount namespace (linux.namespaces)");
}
