#include "runtime_options.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "google_shapes.pb-c.h"
#include "pea/util.h"
#include "runtime_options.pb-c.h"
#include "runtime_options_cri.pb-c.h"
#include "runtime_options_linux.pb-c.h"

#define RUNC_OPTIONS "containerd.runc.v1.Options"
#define LINUX_CREATE_OPTIONS "containerd.linux.runc.CreateOptions"
#define CRI_OPTIONS "runtimeoptions.v1.Options"

/* The message name of a type URL: containerd sends bare names; a "host/path/" prefix names the same type. */
static const char *message_name(const char *type_url)
{
    const char *slash = strrchr(type_url, '/');
    return slash ? slash + 1 : type_url;
}

/* BinaryName may only name pea itself: the shim creates containers with pea and no other runtime. */
static bool names_pea(const char *binary)
{
    size_t len = strlen(binary);
    return strcmp(binary, "pea") == 0 || (len > 4 && strcmp(binary + len - 4, "/pea") == 0);
}

static int refuse_if_set(const char *value, const char *option, struct pea_error *err)
{
    if (value && *value)
        return pea_fail(err, 0, "runtime option %s %s: not supported by io.containerd.pea.v2 (pea implements no "
                        "CRIU checkpoints)", option, value);
    return 0;
}

/* Whether some component of path is "..". */
static bool has_dot_dot(const char *path)
{
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += len;
        p += *p == '/';
    }
    return false;
}

static int common_fields(struct runtime_options *o, bool no_pivot_root, bool no_new_keyring, const char *shim_cgroup,
                         uint32_t io_uid, uint32_t io_gid, struct pea_error *err)
{
    o->no_pivot_root = no_pivot_root;
    o->no_new_keyring = no_new_keyring;
    if (shim_cgroup && *shim_cgroup) {
        if (shim_cgroup[0] != '/' || has_dot_dot(shim_cgroup))
            return pea_fail(err, 0, "runtime option ShimCgroup %s: not an absolute cgroup path without \"..\"",
                            shim_cgroup);
        o->shim_cgroup = xstrdup(shim_cgroup);
    }
    o->has_io_owner = io_uid || io_gid;
    o->io_uid = (uid_t)io_uid;
    o->io_gid = (gid_t)io_gid;
    return 0;
}

static int from_runc_options(const uint8_t *value, size_t len, struct runtime_options *o, struct pea_error *err)
{
    Containerd__Runc__V1__Options *m = containerd__runc__v1__options__unpack(NULL, len, value);
    if (!m)
        return pea_fail(err, 0, "runtime options of type %s: malformed", RUNC_OPTIONS);
    int rc = 0;
    if (m->binary_name[0] && !names_pea(m->binary_name))
        rc = pea_fail(err, 0, "runtime option BinaryName %s: io.containerd.pea.v2 runs pea, no other runtime",
                      m->binary_name);
    else if (refuse_if_set(m->criu_path, "CriuPath", err) < 0 ||
             refuse_if_set(m->criu_image_path, "CriuImagePath", err) < 0 ||
             refuse_if_set(m->criu_work_path, "CriuWorkPath", err) < 0)
        rc = -1;
    else if (m->root[0] && m->root[0] != '/')
        rc = pea_fail(err, 0, "runtime option Root %s: not an absolute path", m->root);
    else
        rc = common_fields(o, m->no_pivot_root, m->no_new_keyring, m->shim_cgroup, m->io_uid, m->io_gid, err);
    if (rc == 0) {
        o->systemd_cgroup = m->systemd_cgroup;
        o->root = m->root[0] ? xstrdup(m->root) : NULL;
    }
    containerd__runc__v1__options__free_unpacked(m, NULL);
    return rc;
}

static int from_linux_create_options(const uint8_t *value, size_t len, struct runtime_options *o,
                                     struct pea_error *err)
{
    Containerd__Linux__Runc__CreateOptions *m = containerd__linux__runc__create_options__unpack(NULL, len, value);
    if (!m)
        return pea_fail(err, 0, "runtime options of type %s: malformed", LINUX_CREATE_OPTIONS);
    int rc;
    if (m->open_tcp || m->external_unix_sockets || m->terminal || m->file_locks || m->n_empty_namespaces ||
        m->cgroups_mode[0])
        rc = pea_fail(err, 0, "runtime options of type %s: its checkpoint restore fields (OpenTcp, "
                      "ExternalUnixSockets, Terminal, FileLocks, EmptyNamespaces, CgroupsMode) are not supported by "
                      "io.containerd.pea.v2", LINUX_CREATE_OPTIONS);
    else if (refuse_if_set(m->criu_image_path, "CriuImagePath", err) < 0 ||
             refuse_if_set(m->criu_work_path, "CriuWorkPath", err) < 0)
        rc = -1;
    else
        rc = common_fields(o, m->no_pivot_root, m->no_new_keyring, m->shim_cgroup, m->io_uid, m->io_gid, err);
    containerd__linux__runc__create_options__free_unpacked(m, NULL);
    return rc;
}

static int from_cri_options(const uint8_t *value, size_t len, struct pea_error *err)
{
    Runtimeoptions__V1__Options *m = runtimeoptions__v1__options__unpack(NULL, len, value);
    if (!m)
        return pea_fail(err, 0, "runtime options of type %s: malformed", CRI_OPTIONS);
    int rc = 0;
    if (m->config_path[0])
        rc = pea_fail(err, 0, "runtime option ConfigPath %s: io.containerd.pea.v2 reads no runtime config file",
                      m->config_path);
    else if (m->type_url[0])
        rc = pea_fail(err, 0, "runtime option TypeUrl %s without a ConfigPath: io.containerd.pea.v2 reads no "
                      "runtime config file", m->type_url);
    runtimeoptions__v1__options__free_unpacked(m, NULL);
    return rc;
}

int runtime_options_parse(const char *type_url, const uint8_t *value, size_t len, struct runtime_options *options,
                          struct pea_error *err)
{
    *options = (struct runtime_options){0};
    const char *name = message_name(type_url ? type_url : "");
    int rc;
    if (!*name && !len)
        return 0;
    if (strcmp(name, RUNC_OPTIONS) == 0)
        rc = from_runc_options(value, len, options, err);
    else if (strcmp(name, LINUX_CREATE_OPTIONS) == 0)
        rc = from_linux_create_options(value, len, options, err);
    else if (strcmp(name, CRI_OPTIONS) == 0)
        rc = from_cri_options(value, len, err);
    else
        rc = pea_fail(err, 0, "runtime options of type %s are not supported by io.containerd.pea.v2 (it takes %s)",
                      *name ? name : "(none)", RUNC_OPTIONS);
    if (rc < 0)
        runtime_options_release(options);
    return rc;
}

int runtime_options_parse_any(const uint8_t *data, size_t len, struct runtime_options *options,
                              struct pea_error *err)
{
    *options = (struct runtime_options){0};
    if (!len)
        return 0;
    Google__Protobuf__Any *any = google__protobuf__any__unpack(NULL, len, data);
    if (!any)
        return pea_fail(err, 0, "runtime options: not a protobuf Any");
    int rc = runtime_options_parse(any->type_url, any->value.data, any->value.len, options, err);
    google__protobuf__any__free_unpacked(any, NULL);
    return rc;
}

void runtime_options_release(struct runtime_options *options)
{
    free(options->root);
    free(options->shim_cgroup);
    *options = (struct runtime_options){0};
}

char *runtime_options_state_root(const struct runtime_options *options, const char *default_root,
                                 const char *namespace)
{
    if (!options->root)
        return xstrdup(default_root);
    size_t len = strlen(options->root);
    while (len > 1 && options->root[len - 1] == '/')
        len--;
    return xasprintf("%.*s/%s", (int)len, options->root, namespace);
}

int runtime_options_enter_shim_cgroup(const struct runtime_options *options, pid_t pid, struct pea_error *err)
{
    if (!options->shim_cgroup)
        return 0;
    AUTO_FD int root = open("/sys/fs/cgroup", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct statfs fs;
    if (root < 0 || fstatfs(root, &fs) < 0)
        return pea_fail(err, errno, "runtime option ShimCgroup %s: open /sys/fs/cgroup", options->shim_cgroup);
    if (fs.f_type != CGROUP2_SUPER_MAGIC)
        return pea_fail(err, 0, "runtime option ShimCgroup %s: /sys/fs/cgroup is not cgroup v2, the only "
                        "hierarchy pea supports", options->shim_cgroup);
    AUTO_FREE char *procs = xasprintf("%s/cgroup.procs", options->shim_cgroup + 1);
    struct open_how how = {.flags = O_WRONLY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    AUTO_FD int fd = (int)syscall(SYS_openat2, root, procs, &how, sizeof how);
    if (fd < 0)
        return pea_fail(err, errno, "runtime option ShimCgroup %s: open its cgroup.procs", options->shim_cgroup);
    char text[32];
    int n = snprintf(text, sizeof text, "%d", (int)pid);
    if (write(fd, text, (size_t)n) != n)
        return pea_fail(err, errno, "runtime option ShimCgroup %s: move process %d into it", options->shim_cgroup,
                        (int)pid);
    return 0;
}
