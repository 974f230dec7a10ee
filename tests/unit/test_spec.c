#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/spec.h"
#include "pea/util.h"

#define MINIMAL_PROCESS "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"}"

/* A config made of the minimal valid parts plus `extra` top-level members. */
static struct pea_spec *parse_with(const char *extra, struct pea_error *err)
{
    char *text = xasprintf("{\"ociVersion\":\"1.2.0\",\"root\":{\"path\":\"rootfs\"}%s%s}", *extra ? "," : "", extra);
    struct pea_spec *s = spec_parse_string(text, err);
    free(text);
    return s;
}

static void expect_error(const char *extra, const char *message)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(extra, &err);
    cr_assert_null(s, "expected a failure for %s", extra);
    cr_assert_str_eq(err.msg, message);
}

Test(spec, minimal_config_parses)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(MINIMAL_PROCESS, &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(s->process->args[0], "sh");
    cr_assert_str_eq(s->root_path, "rootfs");
    cr_assert_eq(json_object_size(s->annotations), 0);
    cr_assert_not_null(s->masked_paths);
    spec_free(s);
}

Test(spec, field_errors_name_the_field)
{
    expect_error("\"process\":{\"args\":[],\"cwd\":\"/\"}", "process.args: must hold at least one element");
    expect_error("\"process\":{\"cwd\":\"/\"}", "process.args: must hold at least one element");
    expect_error("\"process\":{\"args\":[\"sh\"],\"cwd\":\"tmp\"}", "process.cwd: must be an absolute path");
    expect_error("\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"user\":{\"uid\":-1}}",
                 "process.user.uid: must be a non-negative integer");
    expect_error("\"process\":{\"args\":[\"sh\",3],\"cwd\":\"/\"}", "process.args: element 1 must be a string");
    expect_error(MINIMAL_PROCESS ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},"
                                 "{\"type\":\"foo\"}]}",
                 "linux.namespaces[2].type: unknown namespace type \"foo\"");
    expect_error(MINIMAL_PROCESS ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"pid\"}]}",
                 "linux.namespaces[1].type: duplicate namespace type \"pid\"");
    expect_error(MINIMAL_PROCESS ",\"mounts\":[{\"destination\":\"proc\",\"type\":\"proc\"}]",
                 "mounts[0].destination: must be an absolute path, not \"proc\"");
    expect_error("\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"rlimits\":[{\"type\":\"RLIMIT_X\",\"soft\":1,"
                 "\"hard\":1}]}",
                 "process.rlimits[0].type: unknown rlimit \"RLIMIT_X\"");
    expect_error("\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"capabilities\":{\"bounding\":[\"CAP_NOPE\"]}}",
                 "process.capabilities.bounding: unknown capability \"CAP_NOPE\"");
    expect_error(MINIMAL_PROCESS ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
                                 "\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\"},{\"names\":[\"b\"],\"action\":"
                                 "\"SCMP_ACT_FOO\"}]}}",
                 "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_FOO\"");
    expect_error(MINIMAL_PROCESS ",\"hooks\":{\"prestart\":[{\"path\":\"hook\"}]}",
                 "hooks.prestart[0].path: must be an absolute path");
    expect_error(MINIMAL_PROCESS ",\"hostname\":7", "hostname: must be a string");
}

Test(spec, missing_and_malformed_documents)
{
    struct pea_error err = {0};
    cr_assert_null(spec_parse_string("{\"root\":{\"path\":\"r\"}}", &err));
    cr_assert_str_eq(err.msg, "ociVersion: missing");
    cr_assert_null(spec_parse_string("{\"ociVersion\":\"1.0.0\",\n \"root\": }", &err));
    cr_assert(strncmp(err.msg, "config.json: invalid JSON at line 2 column", 42) == 0, "%s", err.msg);
    cr_assert_null(spec_parse_string("[1,2]", &err));
    cr_assert_str_eq(err.msg, "config.json: must be a JSON object");
    cr_assert_null(spec_parse_string("{\"ociVersion\":\"1.0.0\"}", &err));
    cr_assert_str_eq(err.msg, "root: missing");
}

Test(spec, unknown_keys_are_ignored)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(MINIMAL_PROCESS ",\"vm\":{},\"windows\":3,\"linux\":{\"intelRdt\":{}}", &err);
    cr_assert_not_null(s, "%s", err.msg);
    spec_free(s);
}

Test(spec, mount_options_become_flags_and_data)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(
        MINIMAL_PROCESS ",\"mounts\":[{\"destination\":\"/t\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":"
                        "[\"nosuid\",\"noexec\",\"mode=755\",\"size=64k\",\"ro\",\"rprivate\"]},"
                        "{\"destination\":\"/b\",\"source\":\"/x\",\"options\":[\"rbind\",\"rw\"]}]",
        &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(s->mounts[0].flags, MS_NOSUID | MS_NOEXEC | MS_RDONLY);
    cr_assert_str_eq(s->mounts[0].data, "mode=755,size=64k");
    cr_assert_eq(s->mounts[0].propagation, MS_PRIVATE | MS_REC);
    cr_assert(s->mounts[1].is_bind && s->mounts[1].is_recursive);
    cr_assert_eq(s->mounts[1].clear_flags, MS_RDONLY);
    cr_assert_null(s->mounts[1].data);
    spec_free(s);
}

/* One mount with these options ("\"a\",\"b\"") at /m; NULL on a parse error (err set). */
static struct pea_spec *parse_mount(const char *type, const char *options, struct pea_error *err)
{
    char *extra = xasprintf(MINIMAL_PROCESS ",\"mounts\":[{\"destination\":\"/m\",\"type\":\"%s\",\"source\":\"/x\","
                                            "\"options\":[%s]}]",
                            type, options);
    struct pea_spec *s = parse_with(extra, err);
    free(extra);
    return s;
}

Test(spec, recursive_mount_attributes)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_mount("bind", "\"rbind\",\"rro\",\"rnosuid\",\"rnodev\",\"rnoexec\",\"rnodiratime\"", &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(s->mounts[0].rec_attr_set,
                 MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME);
    cr_assert_eq(s->mounts[0].rec_attr_clr, 0);
    cr_assert_eq(s->mounts[0].flags, 0, "r-options are not the top mount's flags");
    cr_assert_null(s->mounts[0].data);
    spec_free(s);

    s = parse_mount("bind", "\"rbind\",\"rrw\",\"rsuid\",\"rdev\",\"rexec\",\"rdiratime\",\"rsymfollow\"", &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(s->mounts[0].rec_attr_set, 0);
    cr_assert_eq(s->mounts[0].rec_attr_clr, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                 MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW);
    spec_free(s);

    /* The last of two opposites wins. */
    s = parse_mount("bind", "\"rbind\",\"rro\",\"rrw\",\"rsuid\",\"rnosuid\"", &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(s->mounts[0].rec_attr_set, MOUNT_ATTR_NOSUID);
    cr_assert_eq(s->mounts[0].rec_attr_clr, MOUNT_ATTR_RDONLY);
    spec_free(s);
}

Test(spec, recursive_atime_is_one_mode_with_the_whole_mask_cleared)
{
    static const struct {
        const char *option;
        uint64_t mode;
    } cases[] = {
        {"\"rnoatime\"", MOUNT_ATTR_NOATIME},         {"\"rstrictatime\"", MOUNT_ATTR_STRICTATIME},
        {"\"rrelatime\"", MOUNT_ATTR_RELATIME},       {"\"ratime\"", MOUNT_ATTR_RELATIME},
        {"\"rnostrictatime\"", MOUNT_ATTR_RELATIME},  {"\"rnorelatime\"", MOUNT_ATTR_STRICTATIME},
        {"\"rnoatime\",\"rstrictatime\"", MOUNT_ATTR_STRICTATIME},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pea_error err = {0};
        struct pea_spec *s = parse_mount("tmpfs", cases[i].option, &err);
        cr_assert_not_null(s, "%s", err.msg);
        cr_assert_eq(s->mounts[0].rec_attr_set, cases[i].mode, "%s", cases[i].option);
        cr_assert_eq(s->mounts[0].rec_attr_clr, MOUNT_ATTR__ATIME, "%s", cases[i].option);
        spec_free(s);
    }
}

Test(spec, unknown_bind_options_are_refused)
{
    struct pea_error err = {0};
    cr_assert_null(parse_mount("bind", "\"rbind\",\"ro\",\"foo\"", &err));
    cr_assert_str_eq(err.msg, "mount bind on /m: unknown mount option \"foo\"");
    cr_assert_null(parse_mount("none", "\"bind\",\"mode=755\"", &err));
    cr_assert_str_eq(err.msg, "mount bind on /m: unknown mount option \"mode=755\"");
    cr_assert_null(parse_mount("bind", "\"rrro\"", &err));
    cr_assert_str_eq(err.msg, "mount bind on /m: unknown mount option \"rrro\"");
    /* idmap/ridmap are made by the runtime's helper for binds (rootfs_host.c); nothing else has a source. */
    cr_assert_null(parse_mount("tmpfs", "\"ridmap\"", &err));
    cr_assert_str_eq(err.msg, "mount tmpfs on /m: mount option \"ridmap\" is only for bind mounts");
}

Test(spec, idmapped_mounts_are_refused_not_ignored)
{
    struct pea_error err = {0};
    static const char *const fields[] = {"uidMappings", "gidMappings"};
    for (size_t i = 0; i < 2; i++) {
        char *extra = xasprintf(MINIMAL_PROCESS ",\"mounts\":[{\"destination\":\"/m\",\"type\":\"bind\",\"source\":"
                                                "\"/x\",\"options\":[\"rbind\"],\"%s\":[{\"containerID\":0,\"hostID\":1000,"
                                                "\"size\":1}]}]",
                                fields[i]);
        cr_assert_null(parse_with(extra, &err));
        free(extra);
        char *expected = xasprintf("mounts[0].%s: idmapped mounts with mappings of their own are not supported "
                                   "(\"idmap\" alone uses the container's)", fields[i]);
        cr_assert_str_eq(err.msg, expected);
        free(expected);
    }
}

Test(spec, what_callers_pass_for_binds_parses)
{
    /* containerd, CRI-O and podman */
    struct pea_error err = {0};
    struct pea_spec *s = parse_mount(
        "bind", "\"rbind\",\"rprivate\",\"ro\",\"nosuid\",\"nodev\",\"noexec\",\"relatime\",\"strictatime\","
                "\"noatime\",\"nodiratime\",\"rslave\",\"shared\",\"rshared\",\"slave\",\"private\",\"unbindable\","
                "\"runbindable\",\"bind\",\"defaults\",\"rw\",\"rro\",\"tmpcopyup\"",
        &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(s->mounts[0].propagation, MS_UNBINDABLE | MS_REC);
    cr_assert(s->mounts[0].is_bind && !s->mounts[0].is_recursive, "the last of bind and rbind wins");
    cr_assert_null(s->mounts[0].data);
    spec_free(s);
}

Test(spec, filesystem_options_become_data)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_mount("devpts", "\"nosuid\",\"newinstance\",\"ptmxmode=0666\",\"gid=5\",\"rro\"", &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(s->mounts[0].data, "newinstance,ptmxmode=0666,gid=5");
    cr_assert_eq(s->mounts[0].rec_attr_set, MOUNT_ATTR_RDONLY);
    spec_free(s);
}

Test(spec, process_details)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(
        "\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"env\":[\"A=1\"],\"user\":{\"uid\":1000,\"gid\":1000,"
        "\"umask\":18,\"additionalGids\":[2000,2001]},\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_CHOWN\"],"
        "\"ambient\":[\"CAP_KILL\"]},\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":123,\"hard\":456}],"
        "\"noNewPrivileges\":true,\"oomScoreAdj\":-500,\"terminal\":true,\"consoleSize\":{\"height\":24,"
        "\"width\":80}}",
        &err);
    cr_assert_not_null(s, "%s", err.msg);
    struct pea_process *p = s->process;
    cr_assert_eq(p->user.uid, 1000);
    cr_assert(p->user.has_umask && p->user.umask == 022);
    cr_assert_eq(p->user.n_additional_gids, 2);
    cr_assert_eq(p->user.additional_gids[1], 2001);
    cr_assert(p->has_capabilities);
    cr_assert_eq(p->capabilities.bounding, (1ULL << 5) | (1ULL << 0));
    cr_assert_eq(p->capabilities.ambient, 1ULL << 5);
    cr_assert_eq(p->capabilities.effective, 0);
    cr_assert_eq(p->rlimits[0].resource, RLIMIT_NOFILE);
    cr_assert_eq(p->rlimits[0].hard, 456);
    cr_assert(p->no_new_privileges && p->has_oom_score_adj && p->oom_score_adj == -500);
    cr_assert(p->terminal && p->console_height == 24 && p->console_width == 80);
    spec_free(s);
}

Test(spec, linux_section)
{
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(
        MINIMAL_PROCESS ",\"linux\":{\"namespaces\":[{\"type\":\"user\"},{\"type\":\"network\",\"path\":"
                        "\"/proc/1/ns/net\"},{\"type\":\"time\"}],\"uidMappings\":[{\"containerID\":0,\"hostID\":"
                        "100000,\"size\":65536}],\"timeOffsets\":{\"monotonic\":{\"secs\":10}},\"devices\":[{"
                        "\"type\":\"c\",\"path\":\"/dev/fuse\",\"major\":10,\"minor\":229,\"fileMode\":438}],"
                        "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"},\"cgroupsPath\":\"/x/y\",\"resources\":{"
                        "\"pids\":{\"limit\":5}},\"rootfsPropagation\":\"rslave\",\"maskedPaths\":[\"/proc/kcore\"],"
                        "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
                        "\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{"
                        "\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]}]}}",
        &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert(s->namespaces[PEA_NS_USER].is_present && !s->namespaces[PEA_NS_USER].path);
    cr_assert_str_eq(s->namespaces[PEA_NS_NETWORK].path, "/proc/1/ns/net");
    cr_assert(!s->namespaces[PEA_NS_PID].is_present);
    cr_assert_eq(s->uid_mappings[0].host_id, 100000);
    cr_assert(s->has_time_offsets && s->time_monotonic.secs == 10);
    cr_assert_eq(s->devices[0].minor, 229);
    cr_assert_eq(s->devices[0].file_mode, 0666);
    cr_assert_str_eq(s->sysctls[0].key, "net.ipv4.ip_forward");
    cr_assert_str_eq(s->cgroups_path, "/x/y");
    cr_assert_not_null(s->resources);
    cr_assert_eq(s->rootfs_propagation, MS_SLAVE | MS_REC);
    cr_assert_str_eq(s->masked_paths[0], "/proc/kcore");
    cr_assert_eq(s->seccomp->default_action, PEA_SECCOMP_ERRNO);
    cr_assert_eq(s->seccomp->rules[0].args[0].op, PEA_SECCOMP_OP_EQ);
    cr_assert_eq(s->seccomp->rules[0].args[0].value, 8);
    spec_free(s);
}

Test(spec, seccomp_listener)
{
    expect_error(MINIMAL_PROCESS ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{"
                                 "\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}}",
                 "linux.seccomp.listenerPath: required by SCMP_ACT_NOTIFY");
    expect_error(MINIMAL_PROCESS ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\","
                                 "\"listenerMetadata\":\"m\"}}",
                 "linux.seccomp.listenerMetadata: must not be set without listenerPath");
    struct pea_error err = {0};
    struct pea_spec *s = parse_with(MINIMAL_PROCESS ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\","
                                                    "\"listenerPath\":\"/run/agent.sock\",\"listenerMetadata\":\"m\","
                                                    "\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":"
                                                    "\"SCMP_ACT_NOTIFY\"}]}}",
                                    &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(s->seccomp->listener_path, "/run/agent.sock");
    cr_assert_str_eq(s->seccomp->listener_metadata, "m");
    spec_free(s);
}

Test(spec, default_specs_round_trip)
{
    for (int rootless = 0; rootless <= 1; rootless++) {
        struct pea_error err = {0};
        json_t *j = spec_default_json(rootless);
        cr_assert_not_null(j);
        struct pea_spec *s = spec_parse_json(j, &err);
        cr_assert_not_null(s, "%s", err.msg);
        cr_assert_eq(s->namespaces[PEA_NS_USER].is_present, rootless);
        cr_assert(s->namespaces[PEA_NS_MOUNT].is_present);
        spec_free(s);
        json_decref(j);
    }
}

Test(spec, hostile_inputs_fail_cleanly)
{
    struct pea_error err = {0};
    char *deep = xcalloc(200001, 1);
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    cr_assert_null(spec_parse_string(deep, &err));
    free(deep);
    char *huge = xcalloc(3000100, 1);
    strcpy(huge, "{\"ociVersion\":\"");
    memset(huge + strlen(huge), 'a', 3000000);
    strcat(huge, "\"}");
    cr_assert_null(spec_parse_string(huge, &err));
    cr_assert_str_eq(err.msg, "root: missing");
    free(huge);
    cr_assert_null(spec_parse_string("{\"ociVersion\":\"1\",\"root\":{\"path\":\"r\"},\"process\":{\"args\":"
                                     "[\"s\\u0000h\"],\"cwd\":\"/\"}}",
                                     &err));
    cr_assert(strstr(err.msg, "config.json: invalid JSON") == err.msg, "%s", err.msg);
}

Test(spec, load_refuses_fifo_and_devices_without_hanging)
{
    char dir[] = "/tmp/pea-spec-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_eq(mkfifoat(fd, "config.json", 0600), 0);
    struct pea_error err = {0};
    cr_assert_null(spec_load(fd, &err));
    cr_assert_str_eq(err.msg, "config.json: not a regular file");
    cr_assert_eq(unlinkat(fd, "config.json", 0), 0);
    cr_assert_eq(symlinkat("/dev/zero", fd, "config.json"), 0);
    cr_assert_null(spec_load(fd, &err));
    cr_assert_str_eq(err.msg, "config.json: is a symlink: refused, it must be a regular file in the bundle");
    cr_assert_eq(unlinkat(fd, "config.json", 0), 0);
    close(fd);
    cr_assert_eq(rmdir(dir), 0);
}
