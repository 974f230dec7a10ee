/* The runtime options containerd sends containerd-shim-pea-v2 (CreateTaskRequest.options, `start`'s stdin): what
 * the shim honours is kept, what it cannot is refused by name, nothing is dropped. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "google_shapes.pb-c.h"
#include "pea/util.h"
#include "runtime_options.h"
#include "runtime_options.pb-c.h"
#include "runtime_options_cri.pb-c.h"
#include "runtime_options_linux.pb-c.h"

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *out = xmalloc(*len + 1);
    protobuf_c_message_pack(m, out);
    return out;
}

static int parse(const char *type_url, const ProtobufCMessage *m, struct runtime_options *o, struct pea_error *err)
{
    size_t len;
    AUTO_FREE uint8_t *bytes = pack(m, &len);
    return runtime_options_parse(type_url, bytes, len, o, err);
}

Test(shim_runtime_options, empty_options_are_none)
{
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(runtime_options_parse("", NULL, 0, &o, &err), 0);
    cr_assert_eq(runtime_options_parse_any(NULL, 0, &o, &err), 0);
    cr_assert(!o.systemd_cgroup && !o.root && !o.has_io_owner);
    Runtimeoptions__V1__Options cri = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
    cr_assert_eq(parse("runtimeoptions.v1.Options", &cri.base, &o, &err), 0, "%s", err.msg);
}

Test(shim_runtime_options, runc_options_are_read)
{
    Containerd__Runc__V1__Options m = CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.systemd_cgroup = true;
    m.no_pivot_root = true;
    m.no_new_keyring = true;
    m.root = "/run/other/";
    m.shim_cgroup = "/podruntime/shims";
    m.io_uid = 1000;
    m.io_gid = 1001;
    m.binary_name = "/usr/local/sbin/pea";
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(parse("containerd.runc.v1.Options", &m.base, &o, &err), 0, "%s", err.msg);
    cr_assert(o.systemd_cgroup && o.no_pivot_root && o.no_new_keyring && o.has_io_owner);
    cr_assert_eq(o.io_uid, 1000);
    cr_assert_eq(o.io_gid, 1001);
    cr_assert_str_eq(o.shim_cgroup, "/podruntime/shims");
    AUTO_FREE char *root = runtime_options_state_root(&o, "/run/containerd/pea/k8s.io", "k8s.io");
    cr_assert_str_eq(root, "/run/other/k8s.io");
    runtime_options_release(&o);
    AUTO_FREE char *default_root = runtime_options_state_root(&o, "/run/containerd/pea/k8s.io", "k8s.io");
    cr_assert_str_eq(default_root, "/run/containerd/pea/k8s.io");
}

Test(shim_runtime_options, type_url_with_a_host_prefix_names_the_same_type)
{
    Containerd__Runc__V1__Options m = CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.systemd_cgroup = true;
    size_t len;
    AUTO_FREE uint8_t *value = pack(&m.base, &len);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "types.containerd.io/containerd.runc.v1.Options";
    any.value.data = value;
    any.value.len = len;
    size_t any_len;
    AUTO_FREE uint8_t *packed = pack(&any.base, &any_len);
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(runtime_options_parse_any(packed, any_len, &o, &err), 0, "%s", err.msg);
    cr_assert(o.systemd_cgroup);
}

static void assert_runc_refused(Containerd__Runc__V1__Options *m, const char *message)
{
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(parse("containerd.runc.v1.Options", &m->base, &o, &err), -1);
    cr_assert_str_eq(err.msg, message);
    cr_assert_null(o.root);
    cr_assert_null(o.shim_cgroup);
}

Test(shim_runtime_options, what_pea_cannot_honour_is_refused_by_name)
{
    Containerd__Runc__V1__Options m = CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.binary_name = "/usr/bin/runc";
    m.root = "/run/x";
    assert_runc_refused(&m, "runtime option BinaryName /usr/bin/runc: io.containerd.pea.v2 runs pea, no other "
                            "runtime");
    m = (Containerd__Runc__V1__Options)CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.criu_path = "/usr/sbin/criu";
    assert_runc_refused(&m, "runtime option CriuPath /usr/sbin/criu: not supported by io.containerd.pea.v2 (pea "
                            "implements no CRIU checkpoints)");
    m = (Containerd__Runc__V1__Options)CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.criu_work_path = "/w";
    assert_runc_refused(&m, "runtime option CriuWorkPath /w: not supported by io.containerd.pea.v2 (pea "
                            "implements no CRIU checkpoints)");
    m = (Containerd__Runc__V1__Options)CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.root = "relative";
    assert_runc_refused(&m, "runtime option Root relative: not an absolute path");
    m = (Containerd__Runc__V1__Options)CONTAINERD__RUNC__V1__OPTIONS__INIT;
    m.shim_cgroup = "/a/../b";
    assert_runc_refused(&m, "runtime option ShimCgroup /a/../b: not an absolute cgroup path without \"..\"");
    m.shim_cgroup = "/..";
    assert_runc_refused(&m, "runtime option ShimCgroup /..: not an absolute cgroup path without \"..\"");
    m.shim_cgroup = "/"; /* the fuzzer's find: a check that read before a short string */
    m.io_uid = 0;
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(parse("containerd.runc.v1.Options", &m.base, &o, &err), 0, "%s", err.msg);
    cr_assert_str_eq(o.shim_cgroup, "/");
    runtime_options_release(&o);
}

Test(shim_runtime_options, cri_config_path_is_refused)
{
    Runtimeoptions__V1__Options m = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
    m.config_path = "/etc/pea/runtime.toml";
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(parse("runtimeoptions.v1.Options", &m.base, &o, &err), -1);
    cr_assert_str_eq(err.msg, "runtime option ConfigPath /etc/pea/runtime.toml: io.containerd.pea.v2 reads no "
                              "runtime config file");
}

Test(shim_runtime_options, ctr_no_pivot_create_options_are_read)
{
    Containerd__Linux__Runc__CreateOptions m = CONTAINERD__LINUX__RUNC__CREATE_OPTIONS__INIT;
    m.no_pivot_root = true;
    struct runtime_options o;
    struct pea_error err = {0};
    cr_assert_eq(parse("containerd.linux.runc.CreateOptions", &m.base, &o, &err), 0, "%s", err.msg);
    cr_assert(o.no_pivot_root && !o.no_new_keyring);
    m.open_tcp = true;
    cr_assert_eq(parse("containerd.linux.runc.CreateOptions", &m.base, &o, &err), -1);
}

Test(shim_runtime_options, unknown_types_and_garbage_are_refused)
{
    struct runtime_options o;
    struct pea_error err = {0};
    const uint8_t junk[] = {0x0a, 0x05, 'a'};
    cr_assert_eq(runtime_options_parse("io.example.Options", junk, 0, &o, &err), -1);
    cr_assert_str_eq(err.msg, "runtime options of type io.example.Options are not supported by "
                              "io.containerd.pea.v2 (it takes containerd.runc.v1.Options)");
    cr_assert_eq(runtime_options_parse("containerd.runc.v1.Options", junk, sizeof junk, &o, &err), -1);
    cr_assert_str_eq(err.msg, "runtime options of type containerd.runc.v1.Options: malformed");
    cr_assert_eq(runtime_options_parse_any(junk, sizeof junk, &o, &err), -1);
    cr_assert_eq(runtime_options_parse("", junk, sizeof junk, &o, &err), -1);
}
