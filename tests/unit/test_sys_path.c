#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/sys.h"

static char root[PATH_MAX];
static int root_fd = -1;

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/pea-path-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    cr_assert_eq(mkdirat(root_fd, "etc", 0755), 0);
    cr_assert_eq(mkdirat(root_fd, "a", 0755), 0);
    cr_assert_eq(symlinkat("/etc", root_fd, "to-etc"), 0);
    cr_assert_eq(symlinkat("../../../../..", root_fd, "a/up"), 0);
    cr_assert_eq(symlinkat("/a/up/etc", root_fd, "chain"), 0);
    cr_assert_eq(symlinkat("loop2", root_fd, "loop1"), 0);
    cr_assert_eq(symlinkat("loop1", root_fd, "loop2"), 0);
}

static void remove_root(void)
{
    close(root_fd);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(sys_path, .init = make_root, .fini = remove_root);

/* Where an fd really points, as the kernel sees it. */
static void assert_inside(int fd, const char *expected_suffix)
{
    cr_assert_geq(fd, 0, "resolution failed: %s", strerror(errno));
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    cr_assert_gt(n, 0);
    target[n] = '\0';
    char expected[PATH_MAX * 2];
    snprintf(expected, sizeof expected, "%s%s", root, expected_suffix);
    cr_assert_str_eq(target, expected);
    close(fd);
}

Test(sys_path, symlinks_stay_inside_the_root)
{
    assert_inside(sys_open_in_root(root_fd, "/to-etc", O_PATH, 0), "/etc");
    assert_inside(sys_open_in_root(root_fd, "a/up", O_PATH, 0), "");
    assert_inside(sys_open_in_root(root_fd, "/chain", O_PATH, 0), "/etc");
    assert_inside(sys_open_in_root(root_fd, "/../../..//./etc", O_PATH, 0), "/etc");
    assert_inside(sys_open_in_root(root_fd, "", O_PATH, 0), "");
}

Test(sys_path, loops_and_magic_links_are_refused)
{
    cr_assert_eq(sys_open_in_root(root_fd, "loop1", O_PATH, 0), -1);
    cr_assert_eq(errno, ELOOP);
    cr_assert_eq(symlinkat("/proc/self/root", root_fd, "magic"), 0);
    int fd = sys_open_in_root(root_fd, "magic", O_PATH, 0);
    cr_assert(fd < 0 || (close(fd), 1));
}

Test(sys_path, mkdir_through_a_symlink_stays_inside)
{
    assert_inside(sys_mkdir_in_root(root_fd, "/to-etc/x/y", 0755), "/etc/x/y");
    assert_inside(sys_mkdir_in_root(root_fd, "/a/up/new", 0755), "/new");
    struct stat st;
    cr_assert_eq(stat("/etc/x", &st), -1, "a directory was created on the host");
}

Test(sys_path, mkdir_through_a_dangling_symlink_creates_its_target_inside)
{
    char host_dir[] = "/tmp/pea-host-XXXXXX";
    cr_assert_not_null(mkdtemp(host_dir));
    char inside[PATH_MAX + 8];
    snprintf(inside, sizeof inside, "%s/x", host_dir);
    cr_assert_eq(symlinkat(host_dir, root_fd, "to-host"), 0);
    assert_inside(sys_mkdir_in_root(root_fd, "/to-host/x", 0755), inside);
    cr_assert_eq(symlinkat("../made/here", root_fd, "a/rel"), 0);
    assert_inside(sys_mkdir_in_root(root_fd, "/a/rel/y", 0755), "/made/here/y");
    cr_assert_eq(sys_mkdir_in_root(root_fd, "/loop1/z", 0755), -1);
    cr_assert_eq(errno, ELOOP);
    cr_assert_eq(rmdir(host_dir), 0, "a directory was created in the host directory");
}

Test(sys_path, mkfile_creates_parents_and_never_follows_out)
{
    assert_inside(sys_mkfile_in_root(root_fd, "/to-etc/dir/file", 0644), "/etc/dir/file");
    assert_inside(sys_mkfile_in_root(root_fd, "/a/up/f", 0644), "/f");
    struct stat st;
    cr_assert_eq(stat("/f", &st), -1);
}

Test(sys_path, beneath_refuses_every_way_out_and_follows_what_stays_inside)
{
    static const char *const ways_out[] = {"to-etc", "a/up", "chain", "a/up/etc", "..", "a/../..", "/etc"};
    for (size_t i = 0; i < sizeof ways_out / sizeof ways_out[0]; i++) {
        int fd = sys_open_beneath(root_fd, ways_out[i], O_PATH);
        cr_assert_eq(fd, -1, "%s was resolved", ways_out[i]);
        cr_assert_eq(errno, EXDEV, "%s: %s", ways_out[i], strerror(errno));
    }
    cr_assert_eq(symlinkat("../etc", root_fd, "a/sibling"), 0);
    assert_inside(sys_open_beneath(root_fd, "a/sibling", O_PATH), "/etc");
    assert_inside(sys_open_beneath(root_fd, "a/../etc", O_PATH), "/etc");
    cr_assert_eq(sys_open_beneath(root_fd, "loop1", O_PATH), -1);
    cr_assert_eq(errno, ELOOP);
}
