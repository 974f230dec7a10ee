/* The security context of a pod's containers, as the kubelet and containerd apply it: the groups of the process
 * (runAsGroup, fsGroup, supplementalGroups, and with the Merge policy the user's groups from the image's
 * /etc/group), the runAsNonRoot check, AppArmor, procMount, Localhost seccomp profiles, and fsGroup on volumes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/log.h"
#include "pea/lsm.h"
#include "pea/pod_image.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "pod_security.h"

/* /etc/passwd and /etc/group of an image are read whole, up to this size. */
#define ACCOUNT_FILE_MAX (4 << 20)

/* ---- checks once per pod ---- */

static void note_apparmor_default(const char *container)
{
    if (lsm_apparmor_is_enabled())
        log_warn("container %s: appArmorProfile RuntimeDefault: pea loads no AppArmor profile of its own; the "
                 "container runs without one (use Localhost to name a loaded profile)", container);
    else
        log_warn("container %s: appArmorProfile RuntimeDefault: AppArmor is not enabled on this host; the container "
                 "runs without a profile", container);
}

int pod_security_check(const struct pea_pod_manifest *m, struct pea_error *err)
{
    for (size_t i = 0; i < m->n_init_containers + m->n_containers; i++) {
        const struct pea_pod_container *c =
            i < m->n_init_containers ? &m->init_containers[i] : &m->containers[i - m->n_init_containers];
        const struct pea_pod_security *s = &c->security;
        if (!s->has_apparmor_profile || s->privileged)
            continue;
        if (s->apparmor_profile == PEA_APPARMOR_PROFILE_RUNTIME_DEFAULT)
            note_apparmor_default(c->name);
        if (s->apparmor_profile == PEA_APPARMOR_PROFILE_LOCALHOST && !lsm_apparmor_is_enabled())
            return pea_fail(err, 0, "container %s: appArmorProfile Localhost \"%s\": AppArmor is not enabled on this "
                            "host", c->name, s->apparmor_localhost_profile);
    }
    return 0;
}

/* ---- groups ---- */

/* The image's file at path ("/etc/group"), resolved inside each layer from the top down: the first layer that has
 * it. NULL when none has (or it cannot be read). */
static char *read_image_file(const struct pea_pod_container *c, const char *path)
{
    for (size_t i = c->n_image_layers; i-- > 0;) {
        AUTO_FD int root = open(c->image_layers[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
            continue;
        AUTO_FD int fd = sys_open_in_root(root, path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        return read_fd_all(fd, ACCOUNT_FILE_MAX, NULL);
    }
    return NULL;
}

/* The next ':'-separated field of *line, NUL-terminated in place. */
static char *next_field(char **line)
{
    char *start = *line;
    char *colon = start ? strchr(start, ':') : NULL;
    if (colon) {
        *colon = '\0';
        *line = colon + 1;
    } else {
        *line = NULL;
    }
    return start;
}

static bool parse_id(const char *text, uint32_t *out)
{
    long long v;
    if (!text || parse_int64(text, &v) < 0 || v < 0 || v > UINT32_MAX - 1)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* The name /etc/passwd gives uid, NULL when none. */
static char *user_name(char *passwd, uid_t uid)
{
    for (char *save = NULL, *line = strtok_r(passwd, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *rest = line;
        char *name = next_field(&rest);
        next_field(&rest); /* password */
        uint32_t id;
        if (parse_id(next_field(&rest), &id) && id == uid && name[0])
            return xstrdup(name);
    }
    return NULL;
}

static void add_gid(json_t *gids, uint32_t gid)
{
    for (size_t i = 0; i < json_array_size(gids); i++)
        if (json_integer_value(json_array_get(gids, i)) == (json_int_t)gid)
            return;
    json_array_append_new(gids, json_integer((json_int_t)gid));
}

/* With supplementalGroupsPolicy Merge (the default), as containerd: every group of the image's /etc/group that lists
 * the user (by the name /etc/passwd gives the uid) among its members. */
static void add_image_groups(const struct pea_pod_container *c, uid_t uid, json_t *gids)
{
    AUTO_FREE char *passwd = read_image_file(c, "/etc/passwd");
    AUTO_FREE char *name = passwd ? user_name(passwd, uid) : NULL;
    AUTO_FREE char *group = name ? read_image_file(c, "/etc/group") : NULL;
    for (char *save = NULL, *line = group ? strtok_r(group, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        char *rest = line;
        next_field(&rest); /* name */
        next_field(&rest); /* password */
        uint32_t gid;
        if (!parse_id(next_field(&rest), &gid) || !rest)
            continue;
        for (char *msave = NULL, *member = strtok_r(rest, ",", &msave); member; member = strtok_r(NULL, ",", &msave))
            if (strcmp(member, name) == 0)
                add_gid(gids, gid);
    }
}

static void set_groups(const struct pea_pod_manifest *m, const struct pea_pod_container *c, json_t *process)
{
    const struct pea_pod_groups *g = &m->groups;
    AUTO_JSON json_t *gids = json_array();
    if (!g->is_supplemental_groups_strict)
        add_image_groups(c, c->security.run_as_user, gids);
    if (g->has_fs_group)
        add_gid(gids, g->fs_group);
    for (size_t i = 0; i < g->n_supplemental_groups; i++)
        add_gid(gids, g->supplemental_groups[i]);
    if (json_array_size(gids))
        json_object_set(json_object_get(process, "user"), "additionalGids", gids);
}

/* ---- runAsNonRoot ---- */

/* The kubelet's verifyRunAsNonRoot, in its words. Directory images carry no user: they run as root. */
static int check_non_root(const struct pea_pod *pod, const struct pea_pod_container *c, struct pea_error *err)
{
    const struct pea_pod_security *s = &c->security;
    if (!s->has_run_as_non_root || !s->run_as_non_root)
        return 0;
    const struct pea_pod_manifest *m = pod->manifest;
    const char *uid = json_string_value(json_object_get(pod->state, "uid"));
    AUTO_FREE char *who = xasprintf("pod: \"%s_%s(%s)\", container: %s", m->name, m->namespace, uid ? uid : "",
                                    c->name);
    if (s->has_run_as_user && s->run_as_user == 0)
        return pea_fail(err, 0, "container's runAsUser breaks non-root policy (%s)", who);
    if (!s->has_run_as_user && c->image)
        return pod_image_check_non_root(who, c, err);
    if (!s->has_run_as_user)
        return pea_fail(err, 0, "container has runAsNonRoot and image will run as root (%s)", who);
    return 0;
}

int pod_security_configure(const struct pea_pod *pod, const struct pea_pod_container *c, json_t *cfg,
                           struct pea_error *err)
{
    const struct pea_pod_security *s = &c->security;
    json_t *process = json_object_get(cfg, "process");
    json_t *linux = json_object_get(cfg, "linux");
    if (check_non_root(pod, c, err) < 0)
        return -1;
    set_groups(pod->manifest, c, process);
    if (s->has_apparmor_profile && s->apparmor_profile == PEA_APPARMOR_PROFILE_LOCALHOST && !s->privileged)
        json_object_set_new(process, "apparmorProfile", json_string(s->apparmor_localhost_profile));
    if (s->is_proc_mount_unmasked) {
        json_object_set_new(linux, "maskedPaths", json_array());
        json_object_set_new(linux, "readonlyPaths", json_array());
    }
    return 0;
}

/* ---- seccomp ---- */

json_t *pod_security_localhost_seccomp(const struct pea_pod *pod, const struct pea_pod_container *c,
                                       struct pea_error *err)
{
    const char *name = c->security.seccomp_localhost_profile;
    AUTO_FREE char *data_root = pod_data_root_of(pod->data_dir);
    AUTO_FREE char *dir = xasprintf("%s/" POD_SECCOMP_PROFILE_DIR, data_root);
    AUTO_FD int fd = -1;
    if (name[0] == '/') {
        fd = open(name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    } else {
        AUTO_FD int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        fd = dir_fd < 0 ? -1 : sys_open_beneath(dir_fd, name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        pea_fail(err, errno, "container %s: seccompProfile Localhost %s%s%s", c->name, name[0] == '/' ? "" : dir,
                 name[0] == '/' ? "" : "/", name);
        return NULL;
    }
    json_error_t jerr;
    AUTO_FREE char *text = S_ISREG(st.st_mode) ? read_fd_all(fd, 16 << 20, NULL) : NULL;
    json_t *profile = text ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(profile)) {
        json_decref(profile);
        pea_fail(err, 0, "container %s: seccompProfile Localhost %s: %s", c->name, name,
                 !S_ISREG(st.st_mode) ? "not a regular file"
                 : !text             ? "cannot be read"
                 : profile           ? "not a JSON object"
                                     : jerr.text);
        return NULL;
    }
    return profile;
}

/* ---- fsGroup on volumes ---- */

#define OWNERSHIP_DEPTH_MAX 256

static mode_t wanted_bits(bool is_dir, bool is_read_only)
{
    mode_t bits = is_read_only ? 0440 : 0660;
    return is_dir ? bits | S_ISGID | 0110 : bits;
}

static int own_tree(int dir_fd, gid_t gid, bool is_read_only, int depth, struct pea_error *err)
{
    if (depth > OWNERSHIP_DEPTH_MAX)
        return pea_fail(err, ELOOP, "fsGroup: directories nested deeper than %d", OWNERSHIP_DEPTH_MAX);
    struct stat st;
    if (fstat(dir_fd, &st) < 0 || fchown(dir_fd, (uid_t)-1, gid) < 0 ||
        fchmod(dir_fd, (st.st_mode & 07777) | wanted_bits(true, is_read_only)) < 0)
        return pea_fail(err, errno, "fsGroup: set the group of a directory");
    int list_fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!d) {
        if (list_fd >= 0)
            close(list_fd);
        return pea_fail(err, errno, "fsGroup: list a directory");
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat entry;
        if (fstatat(dir_fd, name, &entry, AT_SYMLINK_NOFOLLOW) < 0) {
            r = errno == ENOENT ? 0 : pea_fail(err, errno, "fsGroup: stat %s", name);
            continue;
        }
        if (S_ISLNK(entry.st_mode))
            continue; /* never followed: it may point anywhere */
        if (S_ISDIR(entry.st_mode)) {
            AUTO_FD int sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            r = sub < 0 ? pea_fail(err, errno, "fsGroup: open %s", name)
                        : own_tree(sub, gid, is_read_only, depth + 1, err);
            continue;
        }
        mode_t bits = wanted_bits(false, is_read_only);
        if (fchownat(dir_fd, name, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            fchmodat(dir_fd, name, (entry.st_mode & 07777) | bits, AT_SYMLINK_NOFOLLOW) < 0)
            r = pea_fail(err, errno, "fsGroup: set the group of %s", name);
    }
    closedir(d);
    return r;
}

int pod_security_own_volume(int dir_fd, const struct pea_pod_groups *g, bool is_read_only, struct pea_error *err)
{
    if (!g->has_fs_group)
        return 0;
    struct stat st;
    if (fstat(dir_fd, &st) < 0)
        return pea_fail(err, errno, "fsGroup: stat the volume");
    mode_t wanted = wanted_bits(true, is_read_only);
    if (g->is_fs_group_change_on_root_mismatch && st.st_gid == g->fs_group && (st.st_mode & wanted) == wanted)
        return 0;
    return own_tree(dir_fd, g->fs_group, is_read_only, 0, err);
}
