/* The on-disk store of compiled seccomp programs: what it keeps, and that anything not exactly ours is a miss. */
#include <criterion/criterion.h>
#include <linux/seccomp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/seccomp.h"
#include "pea/util.h"
#include "seccomp_internal.h"

static char top[] = "/tmp/pea-test-store.XXXXXX";
static char dir[64];

static void make_dirs(void)
{
    cr_assert_not_null(mkdtemp(top));
    snprintf(dir, sizeof dir, "%s/" PEA_SECCOMP_CACHE_NAME, top);
}

static void remove_dirs(void)
{
    seccomp_cache_use_dir(NULL);
    seccomp_cache_clear();
    struct pea_error err = {0};
    remove_tree(top, &err);
}

TestSuite(seccomp_store, .init = make_dirs, .fini = remove_dirs);

static struct sock_filter allow_all[] = {{.code = 0x06, .k = 0x7fff0000}}; /* BPF_RET | BPF_K, RET_ALLOW */
static struct sock_filter errno_all[] = {{.code = 0x06, .k = 0x00050001}}; /* RET_ERRNO(EPERM) */

static const struct pea_seccomp_program program_a = {.prog = {.len = 1, .filter = allow_all}, .flags = 4};
static const struct pea_seccomp_program program_b = {.prog = {.len = 1, .filter = errno_all}, .flags = 0};

static const unsigned char key_a[] = "profile a";
static const unsigned char key_b[] = "profile b";

static char *entry_path(void)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    char *found = NULL;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            cr_assert_null(found, "one entry only");
            found = xasprintf("%s/%s", dir, de->d_name);
        }
    closedir(d);
    cr_assert_not_null(found);
    return found;
}

static size_t entries(void)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(seccomp_store, keeps_a_program_under_its_key)
{
    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    struct pea_seccomp_program got = {0};
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), 0);
    cr_assert_eq(got.flags, 4u);
    cr_assert_eq(got.prog.len, 1);
    cr_assert_eq(memcmp(got.prog.filter, allow_all, sizeof allow_all), 0);
    free(got.prog.filter);
    cr_assert_eq(seccomp_store_load(dir, key_b, sizeof key_b, program_b.flags, &got), -1, "another key is a miss");

    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    AUTO_FREE char *path = entry_path();
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(seccomp_store, an_entry_with_other_flags_than_the_profiles_is_a_miss)
{
    /* A stored SPEC_ALLOW or LOG would quietly weaken a profile that did not ask for it. */
    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    struct pea_seccomp_program got = {0};
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, 0, &got), -1, "the profile asks for no flags");
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags | 1u, &got), -1, "it asks for more");
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), 0);
    free(got.prog.filter);
}

Test(seccomp_store, an_entry_under_another_keys_name_is_a_miss)
{
    /* Names are digests: an entry whose key is not the one asked for must not be taken for it. */
    seccomp_store_save(dir, key_b, sizeof key_b, &program_b);
    AUTO_FREE char *b_path = entry_path();
    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    cr_assert_eq(entries(), 2);
    cr_assert_eq(unlink(b_path), 0);
    AUTO_FREE char *a_path = entry_path();
    cr_assert_eq(rename(a_path, b_path), 0);
    struct pea_seccomp_program got = {0};
    cr_assert_eq(seccomp_store_load(dir, key_b, sizeof key_b, program_b.flags, &got), -1);
}

static void damage(const char *path, off_t length, const char *overwrite_at_start)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    if (length >= 0)
        cr_assert_eq(ftruncate(fd, length), 0);
    if (overwrite_at_start)
        cr_assert_eq(write(fd, overwrite_at_start, strlen(overwrite_at_start)), (ssize_t)strlen(overwrite_at_start));
    close(fd);
}

Test(seccomp_store, damaged_entries_are_misses)
{
    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    AUTO_FREE char *path = entry_path();
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    struct pea_seccomp_program got = {0};

    damage(path, st.st_size - 1, NULL);
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), -1, "truncated");

    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    damage(path, st.st_size + 8, NULL);
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), -1, "longer than its header says");

    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    damage(path, -1, "NOTOURS!");
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), -1, "another magic");

    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), 0, "saved again, a hit");
    free(got.prog.filter);
}

Test(seccomp_store, a_directory_others_can_write_is_not_used)
{
    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    cr_assert_eq(chmod(dir, 0770), 0);
    struct pea_seccomp_program got = {0};
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), -1);
    seccomp_store_save(dir, key_b, sizeof key_b, &program_b);
    cr_assert_eq(entries(), 1, "nothing written there either");
}

Test(seccomp_store, a_full_store_starts_over)
{
    cr_assert_eq(mkdir(dir, 0700), 0);
    for (int i = 0; i < SECCOMP_STORE_MAX_ENTRIES; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%016x.bpf", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
    }
    seccomp_store_save(dir, key_a, sizeof key_a, &program_a);
    cr_assert_eq(entries(), 1, "only the new entry");
    struct pea_seccomp_program got = {0};
    cr_assert_eq(seccomp_store_load(dir, key_a, sizeof key_a, program_a.flags, &got), 0);
    free(got.prog.filter);
}

static char *names_mkdir[] = {"mkdir", "mkdirat", NULL};
static char *no_strings[] = {NULL};

static ino_t inode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return st.st_ino;
}

Test(seccomp_store, compile_goes_through_the_store_of_its_root)
{
    seccomp_cache_use_dir(dir);
    struct pea_seccomp_rule rule = {.names = names_mkdir, .action = PEA_SECCOMP_ERRNO};
    struct pea_seccomp p = {.default_action = PEA_SECCOMP_ALLOW, .architectures = no_strings, .flags = no_strings,
                            .rules = &rule, .n_rules = 1};
    struct pea_error err = {0};
    const struct pea_seccomp_program *first = seccomp_compile(&p, &err);
    cr_assert_not_null(first, "%s", err.msg);
    unsigned short len = first->prog.len;
    AUTO_FREE struct sock_filter *saved = xmalloc(len * sizeof *saved);
    memcpy(saved, first->prog.filter, len * sizeof *saved);
    AUTO_FREE char *path = entry_path();
    ino_t stored = inode_of(path);

    /* A new process (here: an emptied in-process cache) loads it rather than compiling and storing again. */
    seccomp_cache_clear();
    const struct pea_seccomp_program *loaded = seccomp_compile(&p, &err);
    cr_assert_not_null(loaded, "%s", err.msg);
    cr_assert_eq(loaded->prog.len, len);
    cr_assert_eq(memcmp(loaded->prog.filter, saved, len * sizeof *saved), 0);
    cr_assert_eq(inode_of(path), stored, "not written again");

    /* A damaged entry is compiled over: the same program, stored anew. */
    seccomp_cache_clear();
    damage(path, 3, NULL);
    const struct pea_seccomp_program *again = seccomp_compile(&p, &err);
    cr_assert_not_null(again, "%s", err.msg);
    cr_assert_eq(again->prog.len, len);
    cr_assert_eq(memcmp(again->prog.filter, saved, len * sizeof *saved), 0);
    cr_assert_neq(inode_of(path), stored, "written again");

    /* An entry whose flags were changed on disk (SPEC_ALLOW, at offset 8 of the header) is not loaded with them. */
    seccomp_cache_clear();
    stored = inode_of(path);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    uint32_t spec_allow = SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    cr_assert_eq(pwrite(fd, &spec_allow, sizeof spec_allow, 8), (ssize_t)sizeof spec_allow);
    close(fd);
    const struct pea_seccomp_program *unweakened = seccomp_compile(&p, &err);
    cr_assert_not_null(unweakened, "%s", err.msg);
    cr_assert_eq(unweakened->flags, 0u);
    cr_assert_neq(inode_of(path), stored, "compiled and written again");
}
