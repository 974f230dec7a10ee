/* spec.hostUsers: false — the pod's own user namespace, as the kubelet makes it: 65536 ids per pod (0 to 65535
 * inside), from a range no other pod on the machine holds, shared by the infra and every member.
 *
 * Where the ids come from: the entries /etc/subuid and /etc/subgid give a user called "pea" (as the kubelet takes
 * the "kubelet" user's), cut into blocks of 65536; without such entries, the blocks from 0x70000000 up to
 * 0x7ffdffff, which systemd leaves unused (below its own container range at 0x7ffe0000 and 2^31, above which many
 * programs take an id for negative). Block N is held by the file /run/pea/userns/N, made with O_EXCL and holding the
 * pod's uid; the pod's teardown removes every block file holding its uid, so a block is never given twice while a
 * pod of the root has it, and a pod that failed midway leaves none behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/idmap.h"
#include "pea/util.h"
#include "pod_userns.h"

#define BLOCK_SIZE 65536u
#define FIXED_FIRST 0x70000000u
#define FIXED_END 0x7ffe0000u /* exclusive */
#define SUBID_USER "pea"

/* The blocks of 65536 ids the ranges hold, in file order, into starts (at most max): each starts at a multiple of
 * 65536 and is never the block of host root, as the kubelet requires. */
static size_t blocks_of(const struct pea_id_range *ranges, size_t n, uint32_t *starts, size_t max)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t first = ((uint64_t)ranges[i].start + BLOCK_SIZE - 1) / BLOCK_SIZE * BLOCK_SIZE;
        for (uint64_t s = first ? first : BLOCK_SIZE; s + BLOCK_SIZE <= (uint64_t)ranges[i].start + ranges[i].count &&
                                                      s + BLOCK_SIZE <= UINT32_MAX && count < max;
             s += BLOCK_SIZE)
            starts[count++] = (uint32_t)s;
    }
    return count;
}

static size_t subid_blocks(const char *file, uint32_t *starts, size_t max)
{
    AUTO_FREE char *text = read_file_at(AT_FDCWD, file, 1 << 20, NULL);
    if (!text)
        return 0;
    struct passwd *pw = getpwnam(SUBID_USER);
    AUTO_FREE struct pea_id_range *ranges = NULL;
    size_t n = idmap_parse_subid(text, SUBID_USER, pw ? pw->pw_uid : (uid_t)-1, &ranges);
    return blocks_of(ranges, n, starts, max);
}

#define BLOCKS_MAX ((FIXED_END - FIXED_FIRST) / BLOCK_SIZE)

int pod_userns_allocate(const char *pod_uid, struct pod_userns *out, struct pea_error *err)
{
    static uint32_t uid_starts[BLOCKS_MAX], gid_starts[BLOCKS_MAX];
    size_t n_uid = subid_blocks("/etc/subuid", uid_starts, BLOCKS_MAX);
    size_t n_gid = subid_blocks("/etc/subgid", gid_starts, BLOCKS_MAX);
    const char *source = "/etc/subuid and /etc/subgid (user " SUBID_USER ")";
    if (n_uid == 0 && n_gid == 0) {
        for (size_t i = 0; i < BLOCKS_MAX; i++)
            uid_starts[i] = gid_starts[i] = FIXED_FIRST + (uint32_t)i * BLOCK_SIZE;
        n_uid = n_gid = BLOCKS_MAX;
        source = "pea's fixed range 0x70000000-0x7ffdffff";
    } else if (n_uid == 0 || n_gid == 0) {
        return pea_fail(err, 0, "spec.hostUsers: false: /etc/%s has no block of 65536 ids for user " SUBID_USER
                        " while /etc/%s has", n_uid ? "subgid" : "subuid", n_uid ? "subuid" : "subgid");
    }
    size_t n = n_uid < n_gid ? n_uid : n_gid;
    const char *dir = POD_USERNS_DIR;
    if ((mkdir("/run/pea", 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return pea_fail(err, errno, "create %s", dir);
    AUTO_FD int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open %s", dir);
    for (size_t i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        AUTO_FD int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST)
            continue;
        AUTO_FREE char *line = xasprintf("%s\n", pod_uid);
        if (fd < 0 || write_all(fd, line, strlen(line)) < 0) {
            int saved = errno;
            if (fd >= 0)
                unlinkat(dir_fd, name, 0);
            return pea_fail(err, saved, "record the pod's ids in %s/%s", dir, name);
        }
        *out = (struct pod_userns){.uid_start = uid_starts[i], .gid_start = gid_starts[i], .size = BLOCK_SIZE};
        return 0;
    }
    return pea_fail(err, 0, "spec.hostUsers: false: all %zu blocks of 65536 ids from %s are held by other pods "
                    "(see %s)", n, source, dir);
}

int pod_userns_release(const char *pod_uid, struct pea_error *err)
{
    const char *dir = POD_USERNS_DIR;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "open %s", dir);
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        close(dir_fd);
        return pea_fail(err, errno, "list %s", dir);
    }
    AUTO_FREE char *wanted = xasprintf("%s\n", pod_uid);
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        AUTO_FREE char *held_by = read_file_at(dir_fd, de->d_name, 64, NULL);
        if (held_by && strcmp(held_by, wanted) == 0 && unlinkat(dir_fd, de->d_name, 0) < 0 && errno != ENOENT)
            r = pea_fail(err, errno, "release %s/%s", dir, de->d_name);
    }
    closedir(d);
    return r;
}

static json_t *mapping(uint32_t host_start, uint32_t size)
{
    return json_pack("[{s:i, s:I, s:I}]", "containerID", 0, "hostID", (json_int_t)host_start, "size",
                     (json_int_t)size);
}

int pod_userns_from_state(const json_t *state, struct pod_userns *out)
{
    json_t *u = json_object_get(state, "userns");
    json_t *uid = json_object_get(u, "uidStart"), *gid = json_object_get(u, "gidStart");
    json_t *size = json_object_get(u, "size");
    if (!json_is_integer(uid) || !json_is_integer(gid) || !json_is_integer(size))
        return -1;
    *out = (struct pod_userns){.uid_start = (uint32_t)json_integer_value(uid),
                               .gid_start = (uint32_t)json_integer_value(gid),
                               .size = (uint32_t)json_integer_value(size)};
    return 0;
}

void pod_userns_record(json_t *state, const struct pod_userns *u)
{
    json_object_set_new(state, "userns", json_pack("{s:I, s:I, s:I}", "uidStart", (json_int_t)u->uid_start,
                                                   "gidStart", (json_int_t)u->gid_start, "size", (json_int_t)u->size));
}

/* Every bind, the root first, shown through the pod's ids: a file of host uid N is uid N inside (the kubelet's
 * idmapped volumes). Made by the runtime with its own rights in the container's mount namespace, so that no path
 * below pea's private roots is walked by the container's mapped ids. */
static void idmap_mounts(json_t *cfg)
{
    json_t *mounts = json_object_get(cfg, "mounts");
    json_t *first = json_array_get(mounts, 0);
    const char *first_dest = json_string_value(json_object_get(first, "destination"));
    /* An image's overlay: overlayfs cannot be idmapped itself, its lower layers are (pod_userns_give_upper gives
     * the upper layer to the pod's root). */
    if (first_dest && strcmp(first_dest, "/") == 0) {
        json_array_append_new(json_object_get(first, "options"), json_string("idmap"));
    } else {
        const char *root = json_string_value(json_object_get(json_object_get(cfg, "root"), "path"));
        json_array_insert_new(mounts, 0, json_pack("{s:s, s:s, s:s, s:[s, s]}", "destination", "/", "type", "bind",
                                                   "source", root, "options", "rbind", "ridmap"));
    }
    size_t i;
    json_t *m;
    json_array_foreach(mounts, i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        if (i > 0 && type && strcmp(type, "bind") == 0)
            json_array_append_new(json_object_get(m, "options"), json_string("ridmap"));
    }
}

int pod_userns_configure(const struct pea_pod *pod, json_t *cfg, bool is_infra, struct pea_error *err)
{
    if (!pod->manifest->has_own_users)
        return 0;
    struct pod_userns u;
    if (pod_userns_from_state(pod->state, &u) < 0)
        return pea_fail(err, 0, "the pod's user namespace ids are not in its state");
    idmap_mounts(cfg);
    json_t *linux = json_object_get(cfg, "linux");
    json_t *namespaces = json_object_get(linux, "namespaces");
    json_t *ns = json_pack("{s:s}", "type", "user");
    if (!is_infra) {
        AUTO_FREE char *path = xasprintf("%s/ns/user", pod->dir);
        json_object_set_new(ns, "path", json_string(path));
    }
    json_array_append_new(namespaces, ns);
    /* The mappings of a joined namespace are the infra's; the runtime reads them to make idmapped mounts. */
    json_object_set_new(linux, "uidMappings", mapping(u.uid_start, u.size));
    json_object_set_new(linux, "gidMappings", mapping(u.gid_start, u.size));
    return 0;
}

int pod_userns_give_upper(const struct pea_pod *pod, int dir_fd, const char *name, struct pea_error *err)
{
    if (!pod->manifest->has_own_users)
        return 0;
    struct pod_userns u;
    if (pod_userns_from_state(pod->state, &u) < 0)
        return pea_fail(err, 0, "the pod's user namespace ids are not in its state");
    /* Made by pea a moment ago through dir_fd, in pea's private data root; a link there would be changed itself. */
    if (fchownat(dir_fd, name, u.uid_start, u.gid_start, AT_SYMLINK_NOFOLLOW) < 0)
        return pea_fail(err, errno, "give the container's %s to the pod's root", name);
    return 0;
}
