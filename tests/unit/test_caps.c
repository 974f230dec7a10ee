#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/caps.h"
#include "pea/util.h"

#define CAP_BIT(n) (1ULL << (n))

/* The value of "Key:" in /proc/self/status, whitespace squeezed. */
static void status_field(const char *key, char *out, size_t len)
{
    char *text = read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, NULL);
    out[0] = '\0';
    char *line = text ? strstr(text, key) : NULL;
    if (line) {
        line += strlen(key);
        while (*line == ' ' || *line == '\t')
            line++;
        size_t n = strcspn(line, "\n");
        snprintf(out, len, "%.*s", (int)n, line);
        for (char *p = out; *p; p++)
            if (*p == '\t')
                *p = ' ';
    }
    free(text);
}

static int run_child(int (*body)(void))
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(body());
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

static int drop_to_user_with_two_caps(void)
{
    gid_t groups[] = {2000};
    uint64_t keep = CAP_BIT(5) | CAP_BIT(10); /* CAP_KILL, CAP_NET_BIND_SERVICE */
    struct pea_process p = {
        .user = {.uid = 1000, .gid = 1000, .additional_gids = groups, .n_additional_gids = 1},
        .has_capabilities = true,
        .capabilities = {.bounding = keep, .effective = keep, .permitted = keep, .inheritable = 0, .ambient = keep},
    };
    struct pea_error err = {0};
    if (caps_apply_user_and_capabilities(&p, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char v[128];
    status_field("CapEff:", v, sizeof v);
    if (strcmp(v, "0000000000000420") != 0)
        return 2;
    status_field("CapPrm:", v, sizeof v);
    if (strcmp(v, "0000000000000420") != 0)
        return 3;
    status_field("CapBnd:", v, sizeof v);
    if (strcmp(v, "0000000000000420") != 0)
        return 4;
    status_field("CapAmb:", v, sizeof v);
    if (strcmp(v, "0000000000000000") != 0) /* not inheritable: left out, as runc does */
        return 5;
    status_field("Uid:", v, sizeof v);
    if (strcmp(v, "1000 1000 1000 1000") != 0)
        return 6;
    status_field("Groups:", v, sizeof v);
    if (strcmp(v, "2000") != 0 && strcmp(v, "2000 ") != 0)
        return 7;
    return 0;
}

Test(caps, user_switch_keeps_exactly_the_asked_capabilities)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    cr_assert_eq(run_child(drop_to_user_with_two_caps), 0);
}

static int rlimits_and_nnp(void)
{
    struct pea_rlimit lim = {.resource = RLIMIT_NOFILE, .soft = 100, .hard = 200};
    struct pea_process p = {.rlimits = &lim, .n_rlimits = 1, .no_new_privileges = true};
    struct pea_error err = {0};
    if (caps_apply_rlimits(&p, &err) < 0 || caps_apply_no_new_privileges(&p, &err) < 0)
        return 1;
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    if (r.rlim_cur != 100 || r.rlim_max != 200)
        return 2;
    char v[32];
    status_field("NoNewPrivs:", v, sizeof v);
    return strcmp(v, "1") == 0 ? 0 : 3;
}

Test(caps, rlimits_and_no_new_privileges)
{
    cr_assert_eq(run_child(rlimits_and_nnp), 0);
}

Test(caps, bad_rlimit_names_the_limit)
{
    struct pea_rlimit lim = {.resource = RLIMIT_NOFILE, .soft = 300, .hard = 200};
    struct pea_process p = {.rlimits = &lim, .n_rlimits = 1};
    struct pea_error err = {0};
    cr_assert_eq(caps_apply_rlimits(&p, &err), -1);
    cr_assert_str_eq(err.msg, "setrlimit RLIMIT_NOFILE: Invalid argument");
}

Test(caps, names)
{
    cr_assert_str_eq(caps_name(0), "CAP_CHOWN");
    cr_assert_str_eq(caps_name(21), "CAP_SYS_ADMIN");
    cr_assert_null(caps_name(caps_last_cap() + 1));
    cr_assert_geq(caps_last_cap(), 40);
}
