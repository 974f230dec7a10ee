/* Pod volumes on the host side: what each container binds in. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/pod_env.h"
#include "pea/pod_image.h"
#include "pea/rootfs.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "pea/volume.h"
#include "pea/volume_named.h"
#include "pod_security.h"

/* The pod's volumes directory (made when missing if create), opened without following a symlink anywhere on its
 * path: the data directory is pea's own (its path was resolved when the pod was made), so a symlink there is not
 * pea's doing, and what is checked in it from here on is reached through this fd, never by its path again. */
static int open_volumes_dir(const struct pea_pod *pod, bool create, struct pea_error *err)
{
    AUTO_FD int data = sys_open_no_symlinks(AT_FDCWD, pod->data_dir, O_PATH | O_DIRECTORY);
    if (data < 0)
        return pea_fail(err, errno, "open the pod's data directory %s", pod->data_dir);
    if (create && mkdirat(data, "volumes", 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s/volumes", pod->data_dir);
    int fd = sys_open_no_symlinks(data, "volumes", O_PATH | O_DIRECTORY);
    return fd < 0 ? pea_fail(err, errno, "open %s/volumes", pod->data_dir) : fd;
}

int volume_mount_tmpfs(int dir, const char *name, mode_t mode, bool has_size, uint64_t size_bytes,
                       struct pea_error *err)
{
    char mode_text[16], size_text[32];
    snprintf(mode_text, sizeof mode_text, "%o", (unsigned)mode);
    snprintf(size_text, sizeof size_text, "%llu", (unsigned long long)size_bytes);
    AUTO_FD int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode_text, 0) < 0 ||
        (has_size && fsconfig(fs, FSCONFIG_SET_STRING, "size", size_text, 0) < 0) ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return pea_fail(err, errno, "volume %s: make a tmpfs", name);
    AUTO_FD int tree = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (tree < 0 || move_mount(tree, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return pea_fail(err, errno, "volume %s: mount a tmpfs on its directory", name);
    int root = openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return root < 0 ? pea_fail(err, errno, "volume %s: open its tmpfs", name) : root;
}

/* The emptyDir's directory: made private, opened once, and every later step (the tmpfs, the mode, fsGroup's group
 * and setgid bit) done on that fd, so nothing swapped in at its name between two steps is what gets changed. */
static int prepare_empty_dir(int volumes_dir, const struct pea_pod_volume *v, const struct pea_pod_groups *groups,
                             struct pea_error *err)
{
    if (mkdirat(volumes_dir, v->name, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "volume %s: create its directory", v->name);
    AUTO_FD int dir = sys_open_no_symlinks(volumes_dir, v->name, O_RDONLY | O_DIRECTORY);
    if (dir < 0)
        return pea_fail(err, errno, "volume %s: open its directory", v->name);
    if (v->is_memory) {
        int root = volume_mount_tmpfs(dir, v->name, v->empty_dir_mode, v->has_size_limit, v->size_limit_bytes, err);
        if (root < 0)
            return -1;
        close(dir);
        dir = root;
    }
    /* Kubernetes' emptyDir is world-writable (or emptyDir.mode), whatever the umask. */
    if (fchmod(dir, v->empty_dir_mode) < 0)
        return pea_fail(err, errno, "volume %s: chmod %o", v->name, (unsigned)v->empty_dir_mode);
    /* fsGroup: the emptyDir's group, and setgid so that what the containers make in it gets that group too. */
    return pod_security_own_volume(dir, groups, false, err) < 0 ? pea_wrap(err, "volume %s", v->name) : 0;
}

static const char *host_path_type_name(enum pea_host_path_type t)
{
    switch (t) {
    case PEA_HOST_PATH_DIRECTORY_OR_CREATE: return "DirectoryOrCreate";
    case PEA_HOST_PATH_DIRECTORY: return "Directory";
    case PEA_HOST_PATH_FILE_OR_CREATE: return "FileOrCreate";
    case PEA_HOST_PATH_FILE: return "File";
    case PEA_HOST_PATH_SOCKET: return "Socket";
    case PEA_HOST_PATH_CHAR_DEVICE: return "CharDevice";
    case PEA_HOST_PATH_BLOCK_DEVICE: return "BlockDevice";
    default: return "";
    }
}

/* Whether a hostPath's object (fstat of the fd that is then bound) is of the type the manifest asks for. */
static int check_host_path_type(const struct pea_pod_volume *v, int fd, struct pea_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "volume %s: hostPath %s", v->name, v->host_path);
    mode_t want = 0;
    switch (v->host_path_type) {
    case PEA_HOST_PATH_ANY: return 0;
    case PEA_HOST_PATH_DIRECTORY_OR_CREATE:
    case PEA_HOST_PATH_DIRECTORY: want = S_IFDIR; break;
    case PEA_HOST_PATH_FILE_OR_CREATE:
    case PEA_HOST_PATH_FILE: want = S_IFREG; break;
    case PEA_HOST_PATH_SOCKET: want = S_IFSOCK; break;
    case PEA_HOST_PATH_CHAR_DEVICE: want = S_IFCHR; break;
    case PEA_HOST_PATH_BLOCK_DEVICE: want = S_IFBLK; break;
    }
    if ((st.st_mode & S_IFMT) != want)
        return pea_fail(err, 0, "volume %s: hostPath %s is not of type %s", v->name, v->host_path,
                        host_path_type_name(v->host_path_type));
    return 0;
}

/* The hostPath as an O_PATH fd of the object that passed the type check: the very one later bound. The path is the
 * manifest's own choice on the host, so it is followed as Kubernetes follows it, symlinks included. */
static int open_host_path(const struct pea_pod_volume *v, struct pea_error *err)
{
    AUTO_FD int fd = open(v->host_path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "volume %s: hostPath %s", v->name, v->host_path);
    if (check_host_path_type(v, fd, err) < 0)
        return -1;
    return take_fd(&fd);
}

static int prepare_host_path(const struct pea_pod_volume *v, struct pea_error *err)
{
    const char *path = v->host_path;
    if (v->host_path_type == PEA_HOST_PATH_DIRECTORY_OR_CREATE && mkdir_p(path, 0755) < 0)
        return pea_fail(err, errno, "volume %s: create directory %s", v->name, path);
    if (v->host_path_type == PEA_HOST_PATH_FILE_OR_CREATE) {
        int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EISDIR)
            return pea_fail(err, errno, "volume %s: create file %s", v->name, path);
        if (fd >= 0)
            close(fd);
    }
    /* Checked now so that a pod with a wrong hostPath fails when it is made; checked again, on the fd that is
     * bound, at every container start. */
    AUTO_FD int fd = open_host_path(v, err);
    return fd < 0 ? -1 : 0;
}

/* An image volume: the image's layers merged at path, for the pod's life, read-only and noexec as the kubelet mounts
 * one (and nosuid, nodev: nothing in it is the host's). Several layers are an overlay without an upper layer (which
 * needs two lower ones at least); a single layer is a bind of its directory, made read-only before it is attached.
 * The layers are the store's, held for the pod (pod_image.c), so they stay while this mount does. */
static int prepare_image(int volumes_dir, const struct pea_pod_volume *v, struct pea_error *err)
{
    const struct pea_pod_image *img = v->image;
    if (!img)
        return pea_fail(err, 0, "volume %s: image %s was not resolved", v->name, v->image_ref);
    if (mkdirat(volumes_dir, v->name, 0755) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "volume %s: create its directory", v->name);
    /* The mount point is opened once, without following a symlink, and both mounts go onto that fd. */
    AUTO_FD int target = openat(volumes_dir, v->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (target < 0)
        return pea_fail(err, errno, "volume %s: open its directory", v->name);
    const unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (img->n_layers > 1) {
        const char *bad = NULL;
        AUTO_FREE char *lower = pod_image_lowerdir(img->layer_dirs, img->n_layers, &bad);
        if (!lower)
            return pea_fail(err, 0, "volume %s: image layer %s: ':' and ',' cannot be used in overlay paths", v->name,
                            bad);
        AUTO_FREE char *options = xasprintf("lowerdir=%s", lower);
        AUTO_FREE char *what = xasprintf("volume %s", v->name);
        char by_fd[64];
        snprintf(by_fd, sizeof by_fd, "/proc/self/fd/%d", target);
        return rootfs_mount_overlay("overlay", by_fd, flags, options, what, err) < 0 ? -1 : 0;
    }
    AUTO_FD int tree = open_tree(AT_FDCWD, img->layer_dirs[0], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                          MOUNT_ATTR_NOEXEC};
    if (tree < 0 || mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 ||
        move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return pea_fail(err, errno, "volume %s: mount layer %s", v->name, img->layer_dirs[0]);
    return 0;
}

int volume_prepare_all(const struct pea_pod *pod, struct pea_error *err)
{
    AUTO_FD int volumes_dir = open_volumes_dir(pod, true, err);
    if (volumes_dir < 0)
        return -1;
    for (size_t i = 0; i < pod->manifest->n_volumes; i++) {
        const struct pea_pod_volume *v = &pod->manifest->volumes[i];
        if (v->type == PEA_VOLUME_HOST_PATH) {
            if (prepare_host_path(v, err) < 0)
                return -1;
            continue;
        }
        if (v->type == PEA_VOLUME_PERSISTENT_CLAIM) {
            if (volume_named_prepare(pod, v, err) < 0)
                return -1;
            continue;
        }
        if (v->type == PEA_VOLUME_IMAGE) {
            if (prepare_image(volumes_dir, v, err) < 0)
                return -1;
            continue;
        }
        if (volume_is_written(v) ? volume_prepare_written(pod, v, volumes_dir, err) < 0
                                  : prepare_empty_dir(volumes_dir, v, &pod->manifest->groups, err) < 0)
            return -1;
    }
    return 0;
}

const struct pea_pod_volume *volume_find(const struct pea_pod_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_volumes; i++)
        if (strcmp(m->volumes[i].name, name) == 0)
            return &m->volumes[i];
    return NULL;
}

char *volume_host_path(const struct pea_pod *pod, const struct pea_pod_volume *v)
{
    if (v->type == PEA_VOLUME_HOST_PATH)
        return xstrdup(v->host_path);
    if (v->type == PEA_VOLUME_PERSISTENT_CLAIM)
        return volume_named_data_path(pod, v);
    return xasprintf("%s/volumes/%s", pod->data_dir, v->name);
}

/* The subPath's object below the volume, O_PATH. One that is missing is made, as a directory, as Kubernetes does:
 * each component in the directory resolved before it (mkdirat does not follow a symlink planted at the name), and
 * resolved again below the volume, so that nothing the container did can lead out of it. */
static int open_sub_path(int volume_fd, const char *sub_path)
{
    int fd = sys_open_beneath(volume_fd, sub_path, O_PATH);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    AUTO_FD int dir = sys_open_beneath(volume_fd, ".", O_PATH | O_DIRECTORY);
    if (dir < 0)
        return -1;
    AUTO_FREE char *prefix = xstrdup(sub_path);
    for (size_t i = 0, len = strlen(prefix); i <= len; i++) {
        if ((prefix[i] != '/' && prefix[i] != '\0') || i == 0 || prefix[i - 1] == '/')
            continue;
        char saved = prefix[i];
        prefix[i] = '\0';
        const char *slash = strrchr(prefix, '/');
        const char *name = slash ? slash + 1 : prefix;
        int next = sys_open_beneath(volume_fd, prefix, O_PATH | O_DIRECTORY);
        if (next < 0 && errno == ENOENT && (mkdirat(dir, name, 0755) == 0 || errno == EEXIST))
            next = sys_open_beneath(volume_fd, prefix, O_PATH | O_DIRECTORY);
        prefix[i] = saved;
        if (next < 0)
            return -1;
        close(dir);
        dir = next;
    }
    return take_fd(&dir);
}

/* The volume's own object: an emptyDir's directory (or a written volume's) is pea's and opened through the pod's
 * data directory without following any symlink; a hostPath is opened and type-checked; a named volume is opened
 * below the data root without following any symlink. */
static int open_volume(const struct pea_pod *pod, const struct pea_pod_volume *v, const char *container,
                       struct pea_error *err)
{
    if (v->type == PEA_VOLUME_HOST_PATH) {
        int fd = open_host_path(v, err);
        return fd < 0 ? pea_wrap(err, "container %s", container) : fd;
    }
    if (v->type == PEA_VOLUME_PERSISTENT_CLAIM) {
        int fd = volume_named_open(pod, v, err);
        return fd < 0 ? pea_wrap(err, "container %s", container) : fd;
    }
    AUTO_FD int volumes_dir = open_volumes_dir(pod, false, err);
    if (volumes_dir < 0)
        return pea_wrap(err, "container %s", container);
    int fd = sys_open_no_symlinks(volumes_dir, v->name, O_PATH | O_DIRECTORY);
    return fd < 0 ? pea_fail(err, errno, "container %s: volume %s: open its directory", container, v->name) : fd;
}

/* containerd's rule (ensureShared, ensureSharedOrSlave): HostToContainer needs a source whose mount receives the
 * host's later mounts (shared or a slave), Bidirectional one that also sends them back (shared); otherwise the
 * propagation asked for would do nothing, without a word. Read from the mountinfo line of the fd's own mount. */
static int check_source_propagation(int fd, const struct pea_pod_volume_mount *vm, const char *container, size_t i,
                                    struct pea_error *err)
{
    if (vm->propagation == PEA_MOUNT_PROPAGATION_NONE)
        return 0;
    bool is_bidirectional = vm->propagation == PEA_MOUNT_PROPAGATION_BIDIRECTIONAL;
    const char *mode = is_bidirectional ? "Bidirectional" : "HostToContainer";
    struct statx stx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) < 0 || !(stx.stx_mask & STATX_MNT_ID))
        return pea_fail(err, errno, "container %s: volumeMounts[%zu].mountPropagation %s: find the source's mount",
                        container, i, mode);
    AUTO_FD int proc = sys_open_procfs();
    AUTO_FREE char *info = proc < 0 ? NULL : read_file_at(proc, "self/mountinfo", 64 << 20, NULL);
    if (!info)
        return pea_fail(err, errno, "container %s: volumeMounts[%zu].mountPropagation %s: read mountinfo", container,
                        i, mode);
    bool is_shared = false, is_slave = false;
    for (char *line = info; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        /* "ID PARENT MAJ:MIN ROOT POINT OPTIONS [shared:N] [master:N]... - TYPE SOURCE SUPER" */
        if (strtoull(line, NULL, 10) == stx.stx_mnt_id) {
            char *end = strstr(line, " - ");
            if (end)
                *end = '\0';
            is_shared = strstr(line, " shared:") != NULL;
            is_slave = strstr(line, " master:") != NULL;
            break;
        }
        line = next;
    }
    if (is_shared || (!is_bidirectional && is_slave))
        return 0;
    return pea_fail(err, 0, "container %s: volumeMounts[%zu].mountPropagation: %s needs the volume's source on a %s "
                    "mount, and it is not (mount --make-%s)", container, i, mode,
                    is_bidirectional ? "shared" : "shared or slave", is_bidirectional ? "shared" : "slave");
}

/* One mount's object: the volume, or its subPath (or its subPathExpr, expanded from *vars, which is built on first
 * need) resolved below it. What is inside a volume is the containers', and is resolved only below it. An image volume
 * is read-only: a subPath missing there is the image's lack, not a directory to make. */
static int open_mount_source(const struct pea_pod *pod, const struct pea_pod_container *c,
                             const struct pea_pod_volume_mount *vm, const struct pea_pod_volume *v, json_t **vars,
                             struct pea_error *err)
{
    AUTO_FREE char *expanded = NULL;
    const char *sub_path = vm->sub_path;
    if (vm->sub_path_expr) {
        AUTO_JSON json_t *env = NULL;
        if ((!*vars && pod_env_build(pod, c, "", "", &env, vars, err) < 0) ||
            pod_env_expand_sub_path(vm->sub_path_expr, *vars, &expanded, err) < 0)
            return pea_wrap(err, "container %s", c->name);
        sub_path = expanded;
    }
    AUTO_FD int base_fd = open_volume(pod, v, c->name, err);
    if (base_fd < 0)
        return -1;
    bool is_image = v->type == PEA_VOLUME_IMAGE;
    int fd = !sub_path ? take_fd(&base_fd)
             : is_image ? sys_open_beneath(base_fd, sub_path, O_PATH)
                        : open_sub_path(base_fd, sub_path);
    if (fd >= 0)
        return fd;
    int saved = errno;
    AUTO_FREE char *what = vm->sub_path_expr ? xasprintf("subPathExpr %s (%s)", vm->sub_path_expr, sub_path)
                                             : xasprintf("subPath %s", sub_path);
    if (saved == EXDEV)
        return pea_fail(err, 0, "container %s: %s in volume %s leads out of the volume: refused", c->name, what,
                        v->name);
    if (saved == ENOENT && is_image)
        return pea_fail(err, 0, "container %s: %s does not exist in image volume %s (image %s)", c->name, what,
                        v->name, v->image_ref);
    return pea_fail(err, saved, "container %s: %s in volume %s", c->name, what, v->name);
}

int volume_open_sources(const struct pea_pod *pod, const struct pea_pod_container *c,
                        struct pea_mount_source **out, size_t *n_out, struct pea_error *err)
{
    struct pea_mount_source *sources = xcalloc(c->n_volume_mounts ? c->n_volume_mounts : 1, sizeof *sources);
    size_t n = 0;
    AUTO_JSON json_t *vars = NULL;
    for (size_t i = 0; i < c->n_volume_mounts; i++) {
        const struct pea_pod_volume_mount *vm = &c->volume_mounts[i];
        const struct pea_pod_volume *v = volume_find(pod->manifest, vm->name);
        if (!v)
            continue;
        int fd = open_mount_source(pod, c, vm, v, &vars, err);
        if (fd < 0 || check_source_propagation(fd, vm, c->name, i, err) < 0) {
            if (fd >= 0)
                close(fd);
            volume_close_sources(sources, n);
            return -1;
        }
        sources[n++] = (struct pea_mount_source){.destination = vm->mount_path, .fd = fd};
    }
    *out = sources;
    *n_out = n;
    return 0;
}

void volume_close_sources(struct pea_mount_source *sources, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(sources[i].fd);
    free(sources);
}

/* The id of the mount fd's object is on (STATX_MNT_ID, Linux 5.8): a bind of a directory of the same filesystem
 * (a single-layer image volume) has the parent's st_dev, but not its mount. */
static int mount_id_at(int dir_fd, const char *name, uint64_t *id)
{
    struct statx stx;
    if (statx(dir_fd, name, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH, STATX_MNT_ID, &stx) < 0)
        return -1;
    if (!(stx.stx_mask & STATX_MNT_ID))
        return errno = ENOTSUP, -1;
    *id = stx.stx_mnt_id;
    return 0;
}

int volume_release_all(const char *data_dir, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/volumes", data_dir);
    /* Reached without following a symlink: one there is not pea's, and what it leads to is left alone (remove_tree
     * then removes the link itself). Each mount point is opened once and unmounted through that fd. */
    AUTO_FD int volumes = sys_open_no_symlinks(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
    if (volumes < 0)
        return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ? 0 : pea_fail(err, errno, "open %s", dir);
    int list = fcntl(volumes, F_DUPFD_CLOEXEC, 3);
    DIR *d = list >= 0 ? fdopendir(list) : NULL;
    if (!d) {
        if (list >= 0)
            close(list);
        return pea_fail(err, errno, "list %s", dir);
    }
    uint64_t parent = 0;
    int r = mount_id_at(volumes, "", &parent) < 0 ? pea_fail(err, errno, "stat %s", dir) : 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        AUTO_FD int point = openat(volumes, de->d_name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        uint64_t id = 0;
        if (point < 0)
            continue;
        /* Fail closed: what cannot be told from a mount is not removed, lest the removal go into a mount. A bind
         * from the same filesystem (an image volume of one layer) has the same st_dev: the mount id tells. */
        if (mount_id_at(point, "", &id) < 0) {
            r = pea_fail(err, errno, "stat volume %s/%s", dir, de->d_name);
            continue;
        }
        if (id == parent)
            continue;
        char by_fd[64];
        snprintf(by_fd, sizeof by_fd, "/proc/self/fd/%d", point);
        if (umount2(by_fd, MNT_DETACH) < 0)
            r = pea_fail(err, errno, "unmount volume %s/%s", dir, de->d_name);
    }
    closedir(d);
    return r < 0 ? -1 : remove_tree(dir, err);
}
