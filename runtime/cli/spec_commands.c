/* spec (write a default config.json) and features (what this pea supports). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pea/caps.h"
#include "pea/seccomp.h"
#include "pea/spec.h"
#include "pea/util.h"

int cmd_spec(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    static const struct option opts[] = {{"bundle", required_argument, NULL, 'b'}, {"rootless", no_argument, NULL, 'r'},
                                         {0}};
    const char *bundle = ".";
    bool rootless = false;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "+b:", opts, NULL)) != -1) {
        if (c == 'b')
            bundle = optarg;
        else if (c == 'r')
            rootless = true;
        else
            return cli_usage_error("spec", "unknown option %s", argv[optind - 1]);
    }
    if (optind != argc)
        return cli_usage_error("spec", "takes no arguments");
    struct pea_error err = {0};
    AUTO_FD int dir = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return pea_fail(&err, errno, "spec: bundle %s", bundle), cli_fail(&err);
    if (faccessat(dir, "config.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return pea_fail(&err, 0, "spec: %s/config.json exists; remove it first", bundle), cli_fail(&err);
    AUTO_JSON json_t *j = spec_default_json(rootless);
    AUTO_FREE char *text = json_dumps(j, JSON_INDENT(2));
    AUTO_FREE char *with_newline = xasprintf("%s\n", text);
    if (write_file_atomic_at(dir, "config.json", with_newline, strlen(with_newline), 0644) < 0)
        return pea_fail(&err, errno, "spec: write %s/config.json", bundle), cli_fail(&err);
    return 0;
}

static json_t *string_array(const char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

int cmd_features(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    (void)argv;
    if (argc != 1)
        return cli_usage_error("features", "takes no arguments");
    static const char *const hooks[] = {"prestart", "createRuntime", "createContainer", "startContainer",
                                        "poststart", "poststop"};
    static const char *const mount_options[] = {
        "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
        "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private",
        "ratime", "rbind", "rdev", "rdiratime", "relatime", "remount", "rexec", "rnoatime", "rnodev",
        "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate",
        "rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw",
        "shared", "slave", "strictatime", "suid", "sync", "tmpcopyup", "unbindable"};
    static const char *const namespaces[] = {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"};
    static const char *const actions[] = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                                          "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                                          "SCMP_ACT_NOTIFY", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"};
    static const char *const operators[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                                            "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"};
    static const char *const archs[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
                                        "SCMP_ARCH_X86_64"};
    static const char *const flags[] = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                        "SECCOMP_FILTER_FLAG_TSYNC"};
    json_t *caps = json_array();
    for (int cap = 0; cap <= caps_last_cap(); cap++)
        if (caps_name(cap))
            json_array_append_new(caps, json_string(caps_name(cap)));
    AUTO_JSON json_t *j = json_pack(
        "{s:s, s:s, s:o, s:o, s:{s:o, s:o, s:{s:b, s:b, s:b, s:b, s:b}, s:{s:b, s:o, s:o, s:o, s:o, s:o},"
        " s:{s:b}, s:{s:b}, s:{s:b}}, s:{s:s}}",
        "ociVersionMin", "1.0.0", "ociVersionMax", PEA_OCI_VERSION, "hooks", string_array(hooks, ARRAY_SIZE(hooks)),
        "mountOptions", string_array(mount_options, ARRAY_SIZE(mount_options)), "linux", "namespaces",
        string_array(namespaces, ARRAY_SIZE(namespaces)), "capabilities", caps, "cgroup", "v1", 0, "v2", 1,
        "systemd", 1, "systemdUser", 0, "rdma", 1, "seccomp", "enabled", 1, "actions",
        string_array(actions, ARRAY_SIZE(actions)), "operators", string_array(operators, ARRAY_SIZE(operators)),
        "archs", string_array(archs, ARRAY_SIZE(archs)), "knownFlags", string_array(flags, ARRAY_SIZE(flags)),
        "supportedFlags", string_array(flags, ARRAY_SIZE(flags)), "apparmor", "enabled", 0, "selinux", "enabled",
        0, "intelRdt", "enabled", 0, "annotations", "io.github.seccomp.libseccomp.version",
        seccomp_library_version());
    if (!j)
        return fprintf(stderr, "pea: features: cannot build the JSON\n"), 1;
    json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
    return 0;
}
