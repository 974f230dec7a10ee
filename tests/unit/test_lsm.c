#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/lsm.h"
#include "pea/sys.h"
#include "pea/util.h"

Test(lsm, labels_reach_only_a_verified_procfs)
{
    /* A directory laid out like /proc, as a container could plant one: the write must be refused, the file kept. */
    char fake[] = "/tmp/pea-lsm-XXXXXX";
    cr_assert_not_null(mkdtemp(fake));
    int fake_fd = open(fake, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_eq(mkdirat(fake_fd, "thread-self", 0755), 0);
    cr_assert_eq(mkdirat(fake_fd, "thread-self/attr", 0755), 0);
    int file = openat(fake_fd, "thread-self/attr/exec", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(file, 0);
    close(file);
    struct pea_lsm_plan plan = {.apparmor_profile = "p", .selinux_label = NULL};
    struct pea_error err = {0};
    cr_assert_eq(lsm_apply_exec_labels(fake_fd, &plan, &err), -1);
    cr_assert_eq(err.errnum, EXDEV, "%s", err.msg);
    struct stat st;
    cr_assert_eq(fstatat(fake_fd, "thread-self/attr/exec", &st, 0), 0);
    cr_assert_eq(st.st_size, 0, "the fake attr file was written");
    close(fake_fd);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fake);
    cr_assert_eq(system(cmd), 0);
}

Test(lsm, nothing_asked_writes_nothing)
{
    struct pea_lsm_plan plan = {0};
    struct pea_error err = {0};
    cr_assert_eq(lsm_apply_exec_labels(-1, &plan, &err), 0);
}
