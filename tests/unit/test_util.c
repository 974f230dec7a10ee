#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pea/error.h"
#include "pea/util.h"

Test(error, fail_appends_strerror)
{
    struct pea_error err = {0};
    cr_assert_eq(pea_fail(&err, EPERM, "mount proc on %s", "/proc"), -1);
    cr_assert_str_eq(err.msg, "mount proc on /proc: Operation not permitted");
    cr_assert_eq(err.errnum, EPERM);
}

Test(error, validation_error_has_no_errno_text)
{
    struct pea_error err = {0};
    pea_fail(&err, 0, "process.args: must hold at least one element");
    cr_assert_str_eq(err.msg, "process.args: must hold at least one element");
    cr_assert_eq(err.errnum, 0);
}

Test(error, wrap_prefixes_context)
{
    struct pea_error err = {0};
    pea_fail(&err, ENOENT, "open %s", "/x");
    pea_wrap(&err, "create %s", "c1");
    cr_assert_str_eq(err.msg, "create c1: open /x: No such file or directory");
}

Test(error, wrap_truncates_instead_of_overflowing)
{
    struct pea_error err = {0};
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pea_fail(&err, 0, "%s", big);
    pea_wrap(&err, "create %s", "c1");
    cr_assert_eq(strlen(err.msg), sizeof err.msg - 1);
    cr_assert_eq(strncmp(err.msg, "create c1: aaa", 14), 0);
}

Test(util, parse_numbers)
{
    long long s;
    unsigned long long u;
    cr_assert_eq(parse_int64("-12", &s), 0);
    cr_assert_eq(s, -12);
    cr_assert_eq(parse_int64("12a", &s), -1);
    cr_assert_eq(parse_int64("", &s), -1);
    cr_assert_eq(parse_int64("99999999999999999999", &s), -1);
    cr_assert_eq(parse_uint64("18446744073709551615", &u), 0);
    cr_assert_eq(u, 18446744073709551615ULL);
    cr_assert_eq(parse_uint64("-1", &u), -1);
}

Test(util, rfc3339_nano_in_utc)
{
    struct timespec ts = {.tv_sec = 1795331702, .tv_nsec = 123456789};
    char buf[64];
    format_rfc3339_nano(&ts, buf, sizeof buf);
    cr_assert_str_eq(buf, "2026-11-22T07:15:02.123456789Z");
}

Test(util, atomic_write_replaces_and_leaves_no_temp)
{
    char dir[] = "/tmp/pea-util-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_eq(write_file_atomic_at(fd, "f", "one", 3, 0600), 0);
    cr_assert_eq(write_file_atomic_at(fd, "f", "two", 3, 0600), 0);
    size_t len;
    char *text = read_file_at(fd, "f", 100, &len);
    cr_assert_str_eq(text, "two");
    free(text);
    struct stat st;
    cr_assert_eq(fstatat(fd, "f", &st, 0), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(unlinkat(fd, "f", 0), 0);
    close(fd);
    cr_assert_eq(rmdir(dir), 0, "a temporary file was left behind");
}

Test(util, read_file_refuses_oversized)
{
    errno = 0;
    char *text = read_file_at(AT_FDCWD, "/proc/self/maps", 16, NULL);
    cr_assert_null(text);
    cr_assert_eq(errno, EFBIG);
}

/* A scratch directory: TOP/victim/file (what a planted symlink leads to) and TOP/tree/sub/file. */
static void make_scratch(char *top)
{
    cr_assert_not_null(mkdtemp(top));
    char path[256];
    const char *dirs[] = {"victim", "tree", "tree/sub"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", top, dirs[i]);
        cr_assert_eq(mkdir(path, 0700), 0);
    }
    const char *files[] = {"victim/file", "tree/sub/file"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", top, files[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
    }
}

static bool exists_in(const char *top, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", top, name);
    struct stat st;
    return lstat(path, &st) == 0;
}

static void remove_scratch(const char *top)
{
    struct pea_error err = {0};
    cr_assert_eq(remove_tree(top, &err), 0, "%s", err.msg);
}

Test(util, remove_tree_removes_a_planted_symlink_not_what_it_leads_to)
{
    char top[] = "/tmp/pea-util-XXXXXX";
    make_scratch(top);
    char path[256];
    snprintf(path, sizeof path, "%s/tree/sub/link", top);
    cr_assert_eq(symlink("../../victim", path), 0);
    snprintf(path, sizeof path, "%s/top-link", top);
    cr_assert_eq(symlink("victim", path), 0);
    struct pea_error err = {0};
    /* At the top (the path given names a symlink) and below it. */
    cr_assert_eq(remove_tree(path, &err), 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/tree/", top); /* a trailing slash names the same directory */
    cr_assert_eq(remove_tree(path, &err), 0, "%s", err.msg);
    cr_assert(!exists_in(top, "top-link") && !exists_in(top, "tree"));
    cr_assert(exists_in(top, "victim/file"), "the target of a symlink was emptied");
    remove_scratch(top);
}

Test(util, remove_tree_refuses_a_path_ending_in_dot_or_dot_dot)
{
    char top[] = "/tmp/pea-util-XXXXXX";
    make_scratch(top);
    char path[256];
    const char *tails[] = {"tree/sub/..", "tree/.", "tree/sub/../"};
    for (size_t i = 0; i < 3; i++) {
        struct pea_error err = {0};
        snprintf(path, sizeof path, "%s/%s", top, tails[i]);
        cr_assert_eq(remove_tree(path, &err), -1, "%s was removed", path);
        cr_assert_eq(err.errnum, EINVAL);
    }
    cr_assert(exists_in(top, "tree/sub/file") && exists_in(top, "victim/file"));
    remove_scratch(top);
}
