/* How a pod manifest becomes OCI configs: namespaces joined through the pinned files, volumes, overlay roots,
 * security context, resources, the infra's config. */
#include <criterion/criterion.h>
#include <string.h>

#include "pea/pod.h"
#include "pea/pod_image.h"
#include "pea/pod_manifest.h"
#include "pea/util.h"

static struct pea_pod pod_from(const char *manifest_json)
{
    struct pea_error err = {0};
    struct pea_pod_manifest *m = manifest_parse(manifest_json, strlen(manifest_json), &err);
    cr_assert_not_null(m, "%s", err.msg);
    struct pea_pod pod = {.name = "web", .root = "/run/pea", .dir = "/run/pea/pods/web",
                          .oci_root = "/run/pea/pods/web/oci", .data_dir = "/var/lib/pea/pods/web",
                          .cgroup = "/pea/pod-web", .manifest = m, .infra_pidfd = -1};
    return pod;
}

#define POD(containers, extra)                                                                                     \
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"}," extra "\"spec\":{\"containers\":[" \
    containers "],\"volumes\":[{\"name\":\"data\",\"emptyDir\":{}}]}}"

static json_t *namespace_of(json_t *cfg, const char *type)
{
    size_t i;
    json_t *ns;
    json_array_foreach(json_object_get(json_object_get(cfg, "linux"), "namespaces"), i, ns) if (
        strcmp(json_string_value(json_object_get(ns, "type")), type) == 0) return ns;
    return NULL;
}

static bool has_string(json_t *array, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v) if (strcmp(json_string_value(v), value) == 0) return true;
    return false;
}

Test(pod_config, member_joins_the_pinned_namespaces)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"]}", ""));
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(namespace_of(cfg, "network"), "path")),
                     "/run/pea/pods/web/ns/net");
    cr_assert_str_eq(json_string_value(json_object_get(namespace_of(cfg, "ipc"), "path")),
                     "/run/pea/pods/web/ns/ipc");
    cr_assert_str_eq(json_string_value(json_object_get(namespace_of(cfg, "uts"), "path")),
                     "/run/pea/pods/web/ns/uts");
    cr_assert_null(json_object_get(namespace_of(cfg, "pid"), "path"), "own pid namespace unless shared");
    cr_assert_null(json_object_get(namespace_of(cfg, "mount"), "path"));
    cr_assert_null(json_object_get(cfg, "hostname"), "the UTS namespace is the infra's: no hostname to set");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg, "linux"), "cgroupsPath")),
                     "/pea/pod-web/a");
    cr_assert_not_null(json_object_get(json_object_get(cfg, "linux"), "seccomp"), "RuntimeDefault by default");
    manifest_free(pod.manifest);
}

Test(pod_config, host_network_shares_the_callers_network_and_uts)
{
    struct pea_pod pod = pod_from("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"},"
                                  "\"spec\":{\"hostNetwork\":true,\"shareProcessNamespace\":true,"
                                  "\"containers\":[{\"name\":\"a\",\"image\":\"/img\",\"args\":[\"sh\"]}]}}");
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    cr_assert_null(namespace_of(cfg, "network"));
    cr_assert_null(namespace_of(cfg, "uts"));
    cr_assert_str_eq(json_string_value(json_object_get(namespace_of(cfg, "pid"), "path")),
                     "/run/pea/pods/web/ns/pid");
    AUTO_JSON json_t *infra = pod_config_infra(&pod, &err);
    cr_assert_null(namespace_of(infra, "network"));
    json_t *sysctl = json_object_get(json_object_get(infra, "linux"), "sysctl");
    cr_assert_null(json_object_get(sysctl, "net.ipv4.ip_unprivileged_port_start"),
                   "no network sysctls in the host's namespace");
    manifest_free(pod.manifest);
}

Test(pod_config, a_joined_network_namespace_gets_no_sysctls)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"]}",
                                      "\"pea\":{\"network\":{\"mode\":\"netns\",\"path\":\"/run/netns/x\"}},"));
    struct pea_error err = {0};
    AUTO_JSON json_t *infra = pod_config_infra(&pod, &err);
    cr_assert_not_null(infra, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(namespace_of(infra, "network"), "path")), "/run/netns/x");
    json_t *sysctl = json_object_get(json_object_get(infra, "linux"), "sysctl");
    cr_assert_eq(json_object_size(sysctl), 0, "sysctls for a namespace pea does not own");
    manifest_free(pod.manifest);
}

Test(pod_config, layers_become_an_overlay_root_lowest_first)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":[\"/base\",\"/app\"],\"command\":[\"sh\"]}", ""));
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    json_t *first = json_array_get(json_object_get(cfg, "mounts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "destination")), "/");
    cr_assert_str_eq(json_string_value(json_object_get(first, "type")), "overlay");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(first, "options"), 0)),
                     "lowerdir=/app:/base,upperdir=/var/lib/pea/pods/web/containers/a/upper,"
                     "workdir=/var/lib/pea/pods/web/containers/a/work");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg, "root"), "path")),
                     "/var/lib/pea/pods/web/containers/a/rootfs");
    manifest_free(pod.manifest);
}

Test(pod_config, volumes_and_pod_files_are_bound)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"volumeMounts\":"
                                      "[{\"name\":\"data\",\"mountPath\":\"/d\",\"subPath\":\"x/y\","
                                      "\"readOnly\":true}]}",
                                      ""));
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    bool saw_volume = false, saw_hosts = false;
    size_t i;
    json_t *mnt;
    json_array_foreach(json_object_get(cfg, "mounts"), i, mnt)
    {
        const char *dest = json_string_value(json_object_get(mnt, "destination"));
        const char *src = json_string_value(json_object_get(mnt, "source"));
        if (strcmp(dest, "/d") == 0) {
            saw_volume = true;
            cr_assert_str_eq(src, "/var/lib/pea/pods/web/volumes/data/x/y");
            cr_assert(has_string(json_object_get(mnt, "options"), "ro"));
        }
        if (strcmp(dest, "/etc/hosts") == 0) {
            saw_hosts = true;
            cr_assert_str_eq(src, "/run/pea/pods/web/etc/hosts");
        }
    }
    cr_assert(saw_volume && saw_hosts);
    manifest_free(pod.manifest);
}

Test(pod_config, security_context)
{
    struct pea_pod pod = pod_from(POD(
        "{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"securityContext\":{\"runAsUser\":33,"
        "\"runAsGroup\":34,\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,"
        "\"capabilities\":{\"drop\":[\"ALL\"],\"add\":[\"NET_ADMIN\"]},\"seccompProfile\":{\"type\":\"Unconfined\"}}}",
        ""));
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    json_t *process = json_object_get(cfg, "process");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(process, "user"), "uid")), 33);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(process, "user"), "gid")), 34);
    cr_assert(json_is_true(json_object_get(process, "noNewPrivileges")));
    json_t *bounding = json_object_get(json_object_get(process, "capabilities"), "bounding");
    cr_assert_eq(json_array_size(bounding), 1);
    cr_assert_str_eq(json_string_value(json_array_get(bounding, 0)), "CAP_NET_ADMIN");
    cr_assert(json_is_true(json_object_get(json_object_get(cfg, "root"), "readonly")));
    cr_assert_null(json_object_get(json_object_get(cfg, "linux"), "seccomp"));
    manifest_free(pod.manifest);
}

Test(pod_config, default_capabilities_and_privilege_escalation)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"securityContext\":"
                                      "{\"capabilities\":{\"drop\":[\"NET_RAW\"]}}}",
                                      ""));
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    json_t *process = json_object_get(cfg, "process");
    json_t *bounding = json_object_get(json_object_get(process, "capabilities"), "bounding");
    cr_assert(has_string(bounding, "CAP_CHOWN") && has_string(bounding, "CAP_NET_BIND_SERVICE"));
    cr_assert_not(has_string(bounding, "CAP_NET_RAW"));
    cr_assert_not(has_string(bounding, "CAP_SYS_ADMIN"));
    cr_assert(json_is_false(json_object_get(process, "noNewPrivileges")), "Kubernetes allows escalation by default");
    manifest_free(pod.manifest);
}

Test(pod_config, resources_as_kubernetes_converts_them)
{
    struct pea_pod pod = pod_from(POD(
        "{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"resources\":{\"limits\":{\"cpu\":\"500m\","
        "\"memory\":\"64Mi\"},\"requests\":{\"cpu\":\"100m\"}}},"
        "{\"name\":\"b\",\"image\":\"/img\",\"command\":[\"sh\"],\"resources\":{\"limits\":{\"cpu\":\"250m\","
        "\"memory\":\"32Mi\"}}}",
        ""));
    AUTO_JSON json_t *res = pod_config_resources(&pod.manifest->containers[0].resources);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")), 64 << 20);
    json_t *cpu = json_object_get(res, "cpu");
    cr_assert_eq(json_integer_value(json_object_get(cpu, "quota")), 50000);
    cr_assert_eq(json_integer_value(json_object_get(cpu, "period")), 100000);
    cr_assert_eq(json_integer_value(json_object_get(cpu, "shares")), 102);
    AUTO_JSON json_t *limits = pod_config_limits(pod.manifest);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(limits, "memory"), "limit")), 96 << 20);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(limits, "cpu"), "quota")), 75000);
    manifest_free(pod.manifest);
}

Test(pod_config, no_pod_limit_unless_every_container_has_one)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"resources\":"
                                      "{\"limits\":{\"memory\":\"64Mi\"}}},"
                                      "{\"name\":\"b\",\"image\":\"/img\",\"command\":[\"sh\"]}",
                                      ""));
    cr_assert_null(pod_config_limits(pod.manifest));
    manifest_free(pod.manifest);
}

Test(pod_config, infra_owns_the_namespaces)
{
    struct pea_pod pod = pod_from(
        POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"]}", "\"pea\":{\"network\":{\"mode\":\"bridge\","
                                                                         "\"address\":\"198.18.0.2/24\"}},"));
    struct pea_error err = {0};
    AUTO_JSON json_t *infra = pod_config_infra(&pod, &err);
    cr_assert_not_null(infra, "%s", err.msg);
    cr_assert_not_null(namespace_of(infra, "network"));
    cr_assert_null(json_object_get(namespace_of(infra, "network"), "path"));
    cr_assert_str_eq(json_string_value(json_object_get(infra, "hostname")), "web");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(infra, "process"), "args"), 0)),
                     "/pea-pause");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(infra, "process"), "user"),
                                                    "uid")),
                 65535);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(infra, "linux"), "sysctl"),
                                                       "net.ipv4.ip_unprivileged_port_start")),
                     "0");
    cr_assert(json_is_true(json_object_get(json_object_get(infra, "root"), "readonly")));
    manifest_free(pod.manifest);
}

Test(pod_config, a_container_needs_something_to_run)
{
    struct pea_error err = {0};
    const char *text = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"},"
                       "\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"/img\"}]}}";
    struct pea_pod_manifest *m = manifest_parse(text, strlen(text), &err);
    cr_assert_null(m, "the manifest parser refuses a container without command or args");
    cr_assert(err.msg[0]);
}

/* PATH and HOSTNAME first; of several entries of one name the last wins, at its own place, as if each replaced the
 * earlier ones and went to the end. */
Test(pod_config, env_later_entries_of_a_name_win)
{
    struct pea_pod pod = pod_from(POD("{\"name\":\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"env\":["
                                      "{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"PATH\",\"value\":\"/bin\"},"
                                      "{\"name\":\"B\",\"value\":\"2\"},{\"name\":\"A\",\"value\":\"3\"},"
                                      "{\"name\":\"C\"}]}",
                                      ""));
    struct pea_error err = {0};
    AUTO_JSON json_t *cfg = pod_config_member(&pod, &pod.manifest->containers[0], &err);
    cr_assert_not_null(cfg, "%s", err.msg);
    AUTO_FREE char *env = json_dumps(json_object_get(json_object_get(cfg, "process"), "env"), JSON_COMPACT);
    cr_assert_str_eq(env, "[\"HOSTNAME=web\",\"PATH=/bin\",\"B=2\",\"A=3\",\"C=\"]");
    manifest_free(pod.manifest);
}

/* An image's User against its own /etc/passwd and /etc/group texts. */
Test(pod_image, user_forms_resolve_as_containerd_does)
{
    const char *passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/:/bin/sh\nbad:x:notanumber:1\n";
    const char *groups = "root:x:0:\nstaff:x:2345:\ncrew:x:3456:app\n";
    static const struct {
        const char *spec;
        uid_t uid;
        gid_t gid;
    } ok[] = {{"app", 1234, 2345}, {"1234", 1234, 2345}, {"4000", 4000, 0}, {"app:crew", 1234, 3456},
              {"app:77", 1234, 77}, {"5:6", 5, 6}, {"root", 0, 0}};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        uid_t uid = 99;
        gid_t gid = 99;
        struct pea_error err = {0};
        cr_assert_eq(pod_image_user_ids(ok[i].spec, passwd, groups, &uid, &gid, &err), 0, "%s: %s", ok[i].spec,
                     err.msg);
        cr_assert(uid == ok[i].uid && gid == ok[i].gid, "%s: %u:%u", ok[i].spec, uid, gid);
    }
    uid_t uid;
    gid_t gid;
    struct pea_error err = {0};
    cr_assert_eq(pod_image_user_ids("ghost", passwd, groups, &uid, &gid, &err), -1);
    cr_assert_str_eq(err.msg, "image user \"ghost\": no user ghost in the image's /etc/passwd");
    cr_assert_eq(pod_image_user_ids("app:nogroup", passwd, groups, &uid, &gid, &err), -1);
    cr_assert_str_eq(err.msg, "image user \"app:nogroup\": no group nogroup in the image's /etc/group");
    cr_assert_eq(pod_image_user_ids("bad", passwd, groups, &uid, &gid, &err), -1);
    cr_assert_eq(pod_image_user_ids("app", NULL, NULL, &uid, &gid, &err), -1);
    cr_assert_eq(pod_image_user_ids("1:", passwd, groups, &uid, &gid, &err), -1);
    cr_assert_str_eq(err.msg, "image user \"1:\" is not USER[:GROUP]");
    cr_assert_eq(pod_image_user_ids("7", NULL, NULL, &uid, &gid, &err), 0);
    cr_assert(uid == 7 && gid == 0);
}
