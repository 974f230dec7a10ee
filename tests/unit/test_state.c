#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/state.h"
#include "pea/sys.h"
#include "pea/util.h"

static char root[64];

static void make_root(void)
{
    snprintf(root, sizeof root, "/tmp/pea-state-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void remove_root(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(state, .init = make_root, .fini = remove_root);

Test(state, id_validation)
{
    struct pea_error err = {0};
    cr_assert_eq(state_validate_id("web-1.app_x+y", &err), 0);
    cr_assert_eq(state_validate_id("a/b", &err), -1);
    cr_assert_str_eq(err.msg, "invalid container id \"a/b\": only letters, digits and _ - . + are allowed");
    cr_assert_eq(state_validate_id("..", &err), -1);
    cr_assert_str_eq(err.msg, "invalid container id \"..\"");
    cr_assert_eq(state_validate_id("", &err), -1);
    cr_assert_str_eq(err.msg, "container id: must not be empty");
}

Test(state, create_twice_and_missing)
{
    struct pea_error err = {0};
    int root_fd = state_root_open(root, true, &err);
    cr_assert_geq(root_fd, 0);
    int dir = state_dir_create(root_fd, "c1", &err);
    cr_assert_geq(dir, 0);
    struct stat st;
    cr_assert_eq(fstat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    cr_assert_eq(state_dir_create(root_fd, "c1", &err), -1);
    cr_assert_str_eq(err.msg, "container with id c1 already exists");
    cr_assert_eq(state_dir_open(root_fd, "nope", &err), -1);
    cr_assert_str_eq(err.msg, "container nope does not exist");
    close(dir);
    cr_assert_eq(state_dir_remove(root_fd, "c1", &err), 0);
    close(root_fd);
}

Test(state, save_load_round_trip_and_json)
{
    struct pea_error err = {0};
    int root_fd = state_root_open(root, true, &err);
    int dir = state_dir_create(root_fd, "c2", &err);
    struct pea_state st = {0};
    st.id = xstrdup("c2");
    st.pid = getpid();
    st.start_time = sys_process_start_time(getpid(), NULL);
    st.bundle = xstrdup("/b");
    st.rootfs = xstrdup("/b/rootfs");
    strcpy(st.created, "2026-11-22T07:15:02.123456789Z");
    st.annotations = json_object();
    st.is_created = true;
    st.cgroup_path = xstrdup("/pea/c2");
    cr_assert_eq(state_save(dir, &st, &err), 0, "%s", err.msg);
    struct pea_state back;
    cr_assert_eq(state_load(dir, root, &back, &err), 0, "%s", err.msg);
    cr_assert_str_eq(back.id, "c2");
    cr_assert_eq(back.pid, getpid());
    cr_assert_eq(back.start_time, st.start_time);
    cr_assert_str_eq(back.cgroup_path, "/pea/c2");
    /* Our own process is alive and there is no exec fifo: running. */
    cr_assert_eq(state_status(dir, &back), PEA_STATUS_RUNNING);
    json_t *j = state_to_json(&back, PEA_STATUS_RUNNING);
    cr_assert_null(json_object_get(j, "annotations"), "empty annotations must be left out");
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "running");
    cr_assert_eq(json_integer_value(json_object_get(j, "pid")), getpid());
    json_decref(j);
    j = state_to_json(&back, PEA_STATUS_STOPPED);
    cr_assert_eq(json_integer_value(json_object_get(j, "pid")), 0, "a stopped container reports pid 0");
    json_decref(j);
    state_clear(&st);
    state_clear(&back);
    close(dir);
    close(root_fd);
}

Test(state, recycled_pid_is_stopped)
{
    struct pea_error err = {0};
    int root_fd = state_root_open(root, true, &err);
    int dir = state_dir_create(root_fd, "c3", &err);
    struct pea_state st = {0};
    st.pid = getpid();
    st.start_time = sys_process_start_time(getpid(), NULL) + 1; /* same pid, another process */
    st.is_created = true;
    cr_assert_eq(state_status(dir, &st), PEA_STATUS_STOPPED);
    cr_assert_eq(mkfifoat(dir, PEA_EXEC_FIFO, 0600), 0);
    st.start_time -= 1;
    cr_assert_eq(state_status(dir, &st), PEA_STATUS_CREATED);
    close(dir);
    close(root_fd);
}

static int dir_with_state(const char *id, const char *text)
{
    struct pea_error err = {0};
    int root_fd = state_root_open(root, true, &err);
    int dir = state_dir_create(root_fd, id, &err);
    close(root_fd);
    cr_assert_geq(dir, 0, "%s", err.msg);
    if (text)
        cr_assert_eq(write_file_atomic_at(dir, "state.json", text, strlen(text), 0600), 0);
    return dir;
}

/* Every way state.json can be unreadable names the file and what is wrong with it. */
Test(state, unreadable_state_names_the_file_and_the_problem)
{
    static const struct {
        const char *text, *words;
    } cases[] = {
        {"", "state.json: empty"},
        {"{\"id\":\"c4\",\"pid\":", "state.json: not JSON: "},
        {"\x8f\x01\xff garbage", "state.json: not JSON: "},
        {"null", "state.json: holds null, not an object"},
        {"[1,2]", "state.json: holds an array, not an object"},
        {"{\"id\":5}", "state.json: \"id\" is an integer, not a string"},
        {"{\"id\":\"c4\"}", "state.json: \"pid\" is missing"},
        {"{\"id\":\"c4\",\"pid\":-3}", "state.json: \"pid\" is negative"},
    };
    int dir = dir_with_state("c4", NULL);
    char dir_path[128];
    snprintf(dir_path, sizeof dir_path, "%s/c4", root);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(write_file_atomic_at(dir, "state.json", cases[i].text, strlen(cases[i].text), 0600), 0);
        struct pea_error err = {0};
        struct pea_state st;
        cr_assert_eq(state_load(dir, dir_path, &st, &err), -1, "case %zu loaded", i);
        char want[256];
        snprintf(want, sizeof want, "%s/%s", dir_path, cases[i].words);
        cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "case %zu: \"%s\" does not start with \"%s\"", i,
                  err.msg, want);
    }
    unlinkat(dir, "state.json", 0);
    struct pea_error err = {0};
    struct pea_state st;
    cr_assert_eq(state_load(dir, dir_path, &st, &err), -1);
    cr_assert_eq(err.errnum, ENOENT, "a missing state.json is told apart: %s", err.msg);
    close(dir);
}

Test(state, cgroup_path_that_climbs_out_is_refused)
{
    int dir = dir_with_state("c5", "{\"id\":\"c5\",\"pid\":0,\"start_time\":0,\"bundle\":\"/b\",\"rootfs\":\"/r\","
                                   "\"created\":\"x\",\"annotations\":{},\"owner\":0,\"cgroup_path\":\"/pea/../..\"}");
    struct pea_error err = {0};
    struct pea_state st;
    cr_assert_eq(state_load(dir, "R/c5", &st, &err), -1);
    cr_assert_str_eq(err.msg, "R/c5/state.json: \"cgroup_path\" is not an absolute cgroup path without \"..\"");
    close(dir);
}

Test(state, cleanup_record_round_trip)
{
    int dir = dir_with_state("c6", NULL);
    struct pea_state st = {0};
    st.cgroup_path = xstrdup("/a/b/c6");
    st.cgroup_made_from = xstrdup("/a");
    st.pid = 4242;
    st.start_time = 99;
    state_boot_id(st.boot_id);
    cr_assert_eq(strlen(st.boot_id), 36);
    struct pea_error err = {0};
    cr_assert_eq(state_save_record(dir, &st, &err), 0, "%s", err.msg);
    struct pea_state back;
    cr_assert_eq(state_load_record(dir, "R/c6", &back, &err), 0, "%s", err.msg);
    cr_assert_str_eq(back.cgroup_path, "/a/b/c6");
    cr_assert_str_eq(back.cgroup_made_from, "/a");
    cr_assert_eq(back.pid, 4242);
    cr_assert_eq(back.start_time, 99);
    cr_assert_str_eq(back.boot_id, st.boot_id);
    cr_assert_null(back.id, "the record holds only what delete --force needs");
    state_clear(&back);
    cr_assert_eq(write_file_atomic_at(dir, "cleanup.json", "{\"pid\":1", 8, 0600), 0);
    cr_assert_eq(state_load_record(dir, "R/c6", &back, &err), -1);
    cr_assert(strncmp(err.msg, "R/c6/cleanup.json: not JSON: ", 29) == 0, "%s", err.msg);
    state_clear(&st);
    close(dir);
}
