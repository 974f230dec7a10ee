#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "pea/cgroup.h"
#include "pea/util.h"

/* The settings produced for a resources object, as "file=value;..." for compact assertions. */
static char *settings_of(const char *resources_json, struct pea_error *err)
{
    json_t *r = json_loads(resources_json, 0, NULL);
    cr_assert_not_null(r);
    struct cgroup_settings s;
    int rc = cgroup_settings_from_resources(r, &s, err);
    json_decref(r);
    if (rc < 0)
        return NULL;
    char *out = xstrdup("");
    for (size_t i = 0; i < s.n; i++) {
        char *next = xasprintf("%s%s=%s;", out, s.items[i].file, s.items[i].value);
        free(out);
        out = next;
    }
    cgroup_settings_clear(&s);
    return out;
}

static void expect_settings(const char *resources, const char *expected)
{
    struct pea_error err = {0};
    char *got = settings_of(resources, &err);
    cr_assert_not_null(got, "%s", err.msg);
    cr_assert_str_eq(got, expected);
    free(got);
}

static void expect_error(const char *resources, const char *message)
{
    struct pea_error err = {0};
    char *got = settings_of(resources, &err);
    cr_assert_null(got, "expected an error, got %s", got);
    cr_assert_str_eq(err.msg, message);
}

Test(cgroup, shares_to_weight)
{
    cr_assert_eq(cgroup_shares_to_weight(2), 1);
    cr_assert_eq(cgroup_shares_to_weight(1024), 39);
    cr_assert_eq(cgroup_shares_to_weight(262144), 10000);
}

Test(cgroup, resource_conversions)
{
    expect_settings("{\"memory\":{\"limit\":1073741824,\"reservation\":-1,\"swap\":2147483648}}",
                    "memory.max=1073741824;memory.low=max;memory.swap.max=1073741824;");
    expect_settings("{\"memory\":{\"limit\":-1,\"swap\":-1}}", "memory.max=max;memory.swap.max=max;");
    expect_settings("{\"cpu\":{\"shares\":1024,\"quota\":50000,\"period\":100000,\"cpus\":\"0-1\",\"mems\":\"0\"}}",
                    "cpu.weight=39;cpu.max=50000 100000;cpuset.cpus=0-1;cpuset.mems=0;");
    expect_settings("{\"cpu\":{\"quota\":-1}}", "cpu.max=max 100000;");
    expect_settings("{\"pids\":{\"limit\":0}}", "pids.max=max;");
    expect_settings("{\"pids\":{\"limit\":32}}", "pids.max=32;");
    expect_settings("{\"blockIO\":{\"weight\":500,\"weightDevice\":[{\"major\":8,\"minor\":0,\"weight\":300}],"
                    "\"throttleReadBpsDevice\":[{\"major\":8,\"minor\":0,\"rate\":1048576}]}}",
                    "io.weight=default 500;io.weight=8:0 300;io.max=8:0 rbps=1048576;");
    expect_settings("{\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":4194304}]}", "hugetlb.2MB.max=4194304;");
    expect_settings("{\"unified\":{\"memory.high\":\"512M\"}}", "memory.high=512M;");
    expect_settings("{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}", "");
    /* 0 asks for nothing, as runc reads it: no instant OOM, no "swap below the limit" error. */
    expect_settings("{\"memory\":{\"limit\":0,\"swap\":0}}", "");
}

/* Which settings are the kernel's defaults, that need no controller (cgroup_resources.c). */
static char *unset_settings_of(const char *resources_json)
{
    json_t *r = json_loads(resources_json, 0, NULL);
    struct pea_error err = {0};
    struct cgroup_settings s;
    cr_assert_eq(cgroup_settings_from_resources(r, &s, &err), 0, "%s", err.msg);
    json_decref(r);
    char *out = xstrdup("");
    for (size_t i = 0; i < s.n; i++) {
        char *next = xasprintf("%s%s%s;", out, s.items[i].is_unset ? "" : "!", s.items[i].file);
        free(out);
        out = next;
    }
    cgroup_settings_clear(&s);
    return out;
}

Test(cgroup, requests_for_the_defaults_are_marked_unset)
{
    const struct {
        const char *resources, *expected; /* "!" marks a real limit */
    } cases[] = {
        {"{\"cpu\":{\"shares\":1024,\"quota\":-1,\"period\":100000,\"burst\":0,\"idle\":0}}",
         "cpu.weight;cpu.max;cpu.max.burst;cpu.idle;"},
        {"{\"cpu\":{\"shares\":512,\"quota\":-1,\"period\":50000}}", "!cpu.weight;!cpu.max;"},
        {"{\"cpu\":{\"quota\":50000}}", "!cpu.max;"},
        {"{\"pids\":{\"limit\":-1}}", "pids.max;"},
        {"{\"pids\":{\"limit\":0}}", "pids.max;"},
        {"{\"pids\":{\"limit\":1}}", "!pids.max;"},
        {"{\"memory\":{\"limit\":-1,\"swap\":-1,\"reservation\":0}}", "memory.max;memory.low;memory.swap.max;"},
        {"{\"memory\":{\"limit\":1048576,\"reservation\":-1}}", "!memory.max;!memory.low;"},
        {"{\"unified\":{\"cpu.weight\":\"100\"}}", "!cpu.weight;"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *got = unset_settings_of(cases[i].resources);
        cr_assert_str_eq(got, cases[i].expected, "%s", cases[i].resources);
        free(got);
    }
}

Test(cgroup, resource_errors)
{
    expect_error("{\"memory\":{\"limit\":2048,\"swap\":1024}}",
                 "linux.resources.memory.swap: 1024 is below memory.limit 2048");
    expect_error("{\"memory\":{\"limit\":\"1G\"}}", "linux.resources.memory.limit: must be an integer");
    expect_error("{\"unified\":{\"../cgroup.procs\":\"1\"}}", "linux.resources.unified: invalid key \"../cgroup.procs\"");
    expect_error("{\"unified\":{\"a/b.c\":\"1\"}}", "linux.resources.unified: invalid key \"a/b.c\"");
    expect_error("{\"unified\":{\".\":\"1\"}}", "linux.resources.unified: invalid key \".\"");
}

Test(cgroup, path_for)
{
    struct pea_error err = {0};
    char *p = cgroup_path_for(NULL, "c1", &err);
    cr_assert_str_eq(p, "/pea/c1");
    free(p);
    p = cgroup_path_for("/kubepods/pod1/c1", "c1", &err);
    cr_assert_str_eq(p, "/kubepods/pod1/c1");
    free(p);
    p = cgroup_path_for("mine/c1", "c1", &err);
    cr_assert_str_eq(p, "/pea/mine/c1");
    free(p);
    p = cgroup_path_for("kubepods-besteffort.slice:cri-containerd:abc", "abc", &err);
    cr_assert_str_eq(p, "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope");
    free(p);
    cr_assert_null(cgroup_path_for("/a/../../etc", "c1", &err));
    cr_assert_str_eq(err.msg, "linux.cgroupsPath: \"..\" is not allowed");
}

Test(cgroup, systemd_unit_for)
{
    const struct {
        const char *cgroups_path, *name, *slice, *path;
    } cases[] = {
        {"system.slice:docker:abc", "docker-abc.scope", "system.slice", "/system.slice/docker-abc.scope"},
        {"kubepods-besteffort.slice:cri-containerd:abc", "cri-containerd-abc.scope", "kubepods-besteffort.slice",
         "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope"},
        {":p:abc", "p-abc.scope", "system.slice", "/system.slice/p-abc.scope"},
        {"-.slice:p:abc", "p-abc.scope", "-.slice", "/p-abc.scope"},
        {NULL, "pea-c1.scope", "system.slice", "/system.slice/pea-c1.scope"},
        {"", "pea-c1.scope", "system.slice", "/system.slice/pea-c1.scope"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct pea_error err = {0};
        struct cgroup_systemd_unit u;
        cr_assert_eq(cgroup_systemd_unit_for(cases[i].cgroups_path, "c1", &u, &err), 0, "%s", err.msg);
        cr_assert_str_eq(u.name, cases[i].name);
        cr_assert_str_eq(u.slice, cases[i].slice);
        cr_assert_str_eq(u.path, cases[i].path);
        cgroup_systemd_unit_clear(&u);
    }
    struct pea_error err = {0};
    struct cgroup_systemd_unit u;
    cr_assert_eq(cgroup_systemd_unit_for("/kubepods/c1", "c1", &u, &err), -1);
    cr_assert_str_eq(err.msg, "linux.cgroupsPath \"/kubepods/c1\": --systemd-cgroup needs the form slice:prefix:name");
    cr_assert_eq(cgroup_systemd_unit_for("a.slice:p:b:c", "c1", &u, &err), -1);
    cr_assert_eq(cgroup_systemd_unit_for("a.slice:p:x.slice", "c1", &u, &err), -1);
    cr_assert(strstr(err.msg, "a slice of its own for the container is not supported") != NULL, "%s", err.msg);
    cr_assert_eq(cgroup_systemd_unit_for("a--b.slice:p:x", "c1", &u, &err), -1);
    cr_assert(strstr(err.msg, "is not a systemd slice name") != NULL, "%s", err.msg);
}

/* Live tests on this machine's cgroup2 hierarchy, in a cgroup of our own. */
static char test_path[64];

static void live_init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    snprintf(test_path, sizeof test_path, "/pea-unit-%d", (int)getpid());
}

static void live_fini(void)
{
    if (geteuid() == 0) {
        cgroup_kill_all(test_path, SIGKILL, NULL);
        cgroup_destroy(test_path, NULL);
    }
}

TestSuite(cgroup_live, .init = live_init, .fini = live_fini);

static bool exists(const char *path)
{
    struct pea_error err = {0};
    const char *root = cgroup_root(&err);
    char full[512];
    snprintf(full, sizeof full, "%s%s", root, path);
    struct stat st;
    return stat(full, &st) == 0;
}

Test(cgroup_live, create_and_destroy_leave_nothing)
{
    struct pea_error err = {0};
    int fd = cgroup_create(test_path, NULL, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    close(fd);
    cr_assert(exists(test_path));
    cr_assert_eq(cgroup_destroy(test_path, &err), 0, "%s", err.msg);
    cr_assert(!exists(test_path));
}

Test(cgroup_live, a_missing_controller_is_a_clear_error_and_leaves_nothing)
{
    struct pea_error err = {0};
    const char *root = cgroup_root(&err);
    char controllers[512];
    snprintf(controllers, sizeof controllers, "%s/cgroup.controllers", root);
    char *available = read_file_at(AT_FDCWD, controllers, 4096, NULL);
    bool has_memory = available && strstr(available, "memory");
    free(available);
    if (has_memory)
        cr_skip_test("this host has the memory controller");
    json_t *r = json_loads("{\"memory\":{\"limit\":67108864}}", 0, NULL);
    cr_assert_eq(cgroup_create(test_path, r, &err), -1);
    json_decref(r);
    cr_assert(strstr(err.msg, "needs the \"memory\" controller, which is not available in") != NULL, "%s", err.msg);
    cr_assert(!exists(test_path), "a failed create left its cgroup behind");
}

Test(cgroup_live, freeze_stops_a_process_and_thaw_resumes_it)
{
    struct pea_error err = {0};
    int fd = cgroup_create(test_path, NULL, &err);
    cr_assert_geq(fd, 0, "%s", err.msg);
    close(fd);
    volatile unsigned long *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t child = fork();
    if (child == 0) {
        for (;;)
            (*counter)++;
    }
    cr_assert_eq(cgroup_enter(test_path, child, &err), 0, "%s", err.msg);
    cr_assert_eq(cgroup_freeze(test_path, true, &err), 0, "%s", err.msg);
    cr_assert_eq(cgroup_is_frozen(test_path, &err), 1);
    unsigned long before = *counter;
    struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cr_assert_eq(*counter, before, "the counter moved while frozen");
    cr_assert_eq(cgroup_freeze(test_path, false, &err), 0, "%s", err.msg);
    nanosleep(&ts, NULL);
    cr_assert_gt(*counter, before, "the counter did not resume");
    pid_t *pids = NULL;
    size_t n = 0;
    cr_assert_eq(cgroup_pids(test_path, &pids, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(pids[0], child);
    free(pids);
    json_t *stats = cgroup_stats(test_path, &err);
    cr_assert_not_null(stats);
    json_decref(stats);
    cr_assert_eq(cgroup_kill_all(test_path, SIGKILL, &err), 0, "%s", err.msg);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

Test(cgroup, device_rules_and_program)
{
    struct pea_error err = {0};
    json_t *devices = json_loads("[{\"allow\":false,\"access\":\"rwm\"},"
                                 "{\"allow\":true,\"type\":\"c\",\"major\":10,\"minor\":200,\"access\":\"rw\"}]",
                                 0, NULL);
    struct device_rule *rules;
    size_t n;
    cr_assert_eq(cgroup_device_rules_from_json(devices, &rules, &n, &err), 0, "%s", err.msg);
    cr_assert_gt(n, 2, "the defaults every container needs come after the user's rules");
    cr_assert(!rules[0].is_allow && rules[0].type == 'a' && rules[0].major == -1);
    cr_assert(rules[1].is_allow && rules[1].type == 'c' && rules[1].major == 10 && rules[1].minor == 200);
    struct bpf_insn *prog = calloc(8 * n + 8, sizeof(struct bpf_insn));
    size_t count = cgroup_device_program(rules, n, prog);
    /* The deny-all rule matches everything: it ends the program, with nothing unreachable after it. */
    cr_assert_eq(prog[count - 1].code, BPF_JMP | BPF_EXIT);
    cr_assert_eq(prog[count - 2].imm, 0, "the catch-all rule denies");
    for (size_t i = 0; i < count; i++)
        if (BPF_CLASS(prog[i].code) == BPF_JMP && BPF_OP(prog[i].code) == BPF_JNE)
            cr_assert_lt(i + 1 + (size_t)prog[i].off, count, "jump %zu leaves the program", i);
    free(prog);
    free(rules);
    json_decref(devices);
    devices = json_loads("[{\"allow\":true,\"access\":\"rwx\"}]", 0, NULL);
    cr_assert_eq(cgroup_device_rules_from_json(devices, &rules, &n, &err), -1);
    cr_assert_str_eq(err.msg, "linux.resources.devices[0].access: unknown access \"rwx\"");
    json_decref(devices);
}
