/* Bind sources opened with the runtime's rights. A container with a user namespace sets up its mounts as its own
 * root, which may not walk a path the host's root may (a directory of mode 0700 on the way). A helper forked by
 * create joins the container's mount namespace with our credentials, clones each source there (open_tree), and
 * sends the clones down a socket the child reads in mount order. Cloned in the container's namespace, not in ours,
 * they carry the locks the kernel put on its copy of our mounts (a read-only or nosuid source stays so: the
 * container's root cannot remount it), which a clone of our own mount would not. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/console.h"
#include "pea/rootfs.h"
#include "pea/util.h"
#include "rootfs_internal.h"

/* The propagation a bind made in the container's mount namespace would have, for a clone that joined the peer group
 * (or the master) of its source; 0 keeps it. In a user namespace never more than a slave: the kernel turns shared
 * mounts into slaves in a less privileged namespace, and a container must not send mounts to the host. */
static uint64_t clone_propagation(const struct pea_spec *spec)
{
    unsigned long root = spec->rootfs_propagation ? spec->rootfs_propagation & ~(unsigned long)MS_REC : MS_SLAVE;
    if (root == MS_PRIVATE || root == MS_UNBINDABLE)
        return MS_PRIVATE;
    if (root == MS_SHARED && !spec->namespaces[PEA_NS_USER].is_present)
        return 0; /* the host's peer: an rshared bind propagates both ways */
    return MS_SLAVE;
}

int rootfs_ready_host_tree(const struct pea_spec *spec, const struct pea_mount *m, int tree, struct pea_error *err)
{
    const struct pea_mount made = rootfs_mount_as_made(m);
    uint64_t propagation = clone_propagation(spec);
    if (propagation && rootfs_set_mount_attr(tree, AT_RECURSIVE, 0, 0, propagation) < 0)
        return pea_fail(err, errno, "mount on %s: set the propagation of the source", m->destination);
    if (rootfs_set_bind_flags(tree, &made) < 0)
        return pea_fail(err, errno, "remount bind on %s", m->destination);
    if ((made.rec_attr_set || made.rec_attr_clr) &&
        rootfs_set_mount_attr(tree, AT_RECURSIVE, made.rec_attr_set, made.rec_attr_clr, 0) < 0)
        return pea_fail(err, errno, "set recursive attributes of %s", m->destination);
    return 0;
}

static bool is_root_overlay(const struct pea_mount *m)
{
    return m->type && strcmp(m->type, "overlay") == 0;
}

/* A bind mount of an absolute source nobody resolved already; the root mount only when idmapped (a bind, or an
 * overlay whose lower layers are): see rootfs_is_host_root. */
static bool wants_host_source(const struct pea_spec *spec, size_t i)
{
    const struct pea_mount *m = &spec->mounts[i];
    bool is_root_mount = i == 0 && strcmp(m->destination, "/") == 0;
    if (is_root_mount && m->is_idmapped && is_root_overlay(m))
        return true;
    return (!is_root_mount || m->is_idmapped) && m->is_bind && !m->has_source_tree && m->source &&
           m->source[0] == '/';
}

bool rootfs_is_host_source(const struct pea_spec *spec, size_t i)
{
    return spec->has_host_sources && wants_host_source(spec, i);
}

/* An idmapped bind or overlay on "/" (what a pod with its own user namespace asks for): the helper mounts it onto
 * root.path in the container's mount namespace and sends the mounted root, which the child reaches through that
 * fd, never by a path its mapped ids may not search. */
bool rootfs_is_host_root(const struct pea_spec *spec)
{
    return spec->n_mounts > 0 && strcmp(spec->mounts[0].destination, "/") == 0 && rootfs_is_host_source(spec, 0);
}

/* Above 0-2: the child puts the container's stdio there before it mounts. */
static int above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int above = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return above;
}

int rootfs_host_sources_begin(struct pea_spec *spec, int *sender, struct pea_error *err)
{
    *sender = -1;
    /* Only the helper, which has rights over the container's user namespace, can make an idmapped mount. */
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const struct pea_mount *m = &spec->mounts[i];
        if (m->is_idmapped && (!spec->namespaces[PEA_NS_USER].is_present || geteuid() != 0))
            return pea_fail(err, 0, "mount %s on %s: mount option \"%s\" needs a user namespace and a runtime "
                            "running as root", m->is_bind ? "bind" : m->type, m->destination,
                            m->is_idmap_recursive ? "ridmap" : "idmap");
    }
    /* Only a user namespace takes rights a source may need; a runtime without privilege has none to lend. */
    if (!spec->namespaces[PEA_NS_USER].is_present || geteuid() != 0 || spec->has_host_sources)
        return 0;
    bool is_needed = false;
    for (size_t i = 0; i < spec->n_mounts; i++)
        is_needed |= wants_host_source(spec, i);
    if (!is_needed)
        return 0;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return pea_fail(err, errno, "socketpair for the bind sources");
    int receiver = above_stdio(pair[1]);
    if (receiver < 0) {
        close(pair[0]);
        return pea_fail(err, errno, "socketpair for the bind sources");
    }
    spec->host_sources_fd = receiver;
    spec->has_host_sources = true;
    *sender = pair[0];
    return 0;
}

/* The clone of m's source, ready, shown through the container's ids when asked, and for the root attached onto the
 * rootfs; -1 with errno. */
static int open_host_tree(const struct pea_spec *spec, const struct pea_mount *m, bool is_root, const char *rootfs,
                          int userns_fd)
{
    AUTO_FD int tree = open_tree(AT_FDCWD, m->source,
                                 OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m->is_recursive ? AT_RECURSIVE : 0));
    struct stat st;
    if (tree < 0 || (m->has_source_identity && fstat(tree, &st) < 0))
        return -1;
    /* The caller checked an object by fd; a path names it again only if it leads to that same object. */
    if (m->has_source_identity && (st.st_dev != m->source_dev || st.st_ino != m->source_ino))
        return errno = ESTALE, -1;
    struct pea_error ignored = {0};
    if (rootfs_ready_host_tree(spec, m, tree, &ignored) < 0)
        return errno = ignored.errnum ? ignored.errnum : EINVAL, -1;
    if (m->is_idmapped) {
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
        if (mount_setattr(tree, "", AT_EMPTY_PATH | (m->is_idmap_recursive ? AT_RECURSIVE : 0), &attr,
                              sizeof attr) < 0)
            return -1;
    }
    if (is_root && move_mount(tree, "", AT_FDCWD, rootfs, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return -1;
    return take_fd(&tree);
}

/* Each lower layer of the root overlay's options, idmapped in place: a clone shown through the container's ids,
 * attached over the layer itself in the container's mount namespace (gone with the old root at pivot_root). The
 * upper layer is not: overlayfs writes there with its mounter's (our) ids, which no idmapping of the container's
 * holds; the caller gives it to the container's root instead. */
static int idmap_lower_layers(const char *data, int userns_fd)
{
    const char *value = NULL;
    for (const char *opt = data; opt && *opt; opt = strchr(opt, ',') ? strchr(opt, ',') + 1 : NULL)
        if (strncmp(opt, "lowerdir=", 9) == 0)
            value = opt + 9;
    if (!value)
        return errno = EINVAL, -1;
    AUTO_FREE char *layers = strndup(value, strcspn(value, ","));
    if (!layers)
        return -1;
    char *save = NULL;
    for (char *layer = strtok_r(layers, ":", &save); layer; layer = strtok_r(NULL, ":", &save)) {
        AUTO_FD int tree = open_tree(AT_FDCWD, layer, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
        if (tree < 0 || mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 ||
            move_mount(tree, "", AT_FDCWD, layer, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return -1;
    }
    return 0;
}

/* The root overlay, over idmapped lower layers, mounted onto the rootfs; its fd, or -1 with errno. */
static int open_host_overlay(const struct pea_mount *m, const char *rootfs, int userns_fd)
{
    /* pea writes no escaped ':' in layer paths; one here would be split wrongly. */
    if (!m->data || strchr(m->data, '\\'))
        return errno = EINVAL, -1;
    if (idmap_lower_layers(m->data, userns_fd) < 0)
        return -1;
    struct pea_error ignored = {0};
    if (rootfs_mount_overlay(m->source ? m->source : "overlay", rootfs, m->flags & ~(unsigned long)MS_REMOUNT,
                             m->data, "/", &ignored) < 0)
        return errno = ignored.errnum ? ignored.errnum : EINVAL, -1;
    return open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* The helper, in the container's mount namespace with our credentials: one message per source, in mount order,
 * its errno and, when 0, the clone (for the root: the root, mounted). Returns the exit status. */
static int send_sources(const struct pea_spec *spec, int pidfd, int userns_fd, const char *rootfs, int sender)
{
    if (setns(pidfd, CLONE_NEWNS) < 0)
        return errno & 0xff ? errno & 0xff : 1;
    for (size_t i = 0; i < spec->n_mounts; i++) {
        if (!rootfs_is_host_source(spec, i))
            continue;
        const struct pea_mount *m = &spec->mounts[i];
        bool is_root = i == 0 && rootfs_is_host_root(spec);
        int tree = is_root && is_root_overlay(m) ? open_host_overlay(m, rootfs, userns_fd)
                                                 : open_host_tree(spec, m, is_root, rootfs, userns_fd);
        int errnum = tree < 0 ? errno : 0;
        int r = console_send_fd(sender, tree, &errnum, sizeof errnum);
        if (tree >= 0)
            close(tree);
        if (r < 0)
            return errno & 0xff ? errno & 0xff : 1;
    }
    return 0;
}

int rootfs_host_sources_send(const struct pea_spec *spec, pid_t pid, int pidfd, const char *rootfs, int sender,
                             struct pea_error *err)
{
    /* pid is our child, not yet waited for: the number cannot name another process. */
    AUTO_FD int userns_fd = -1;
    bool is_idmapping = false;
    for (size_t i = 0; i < spec->n_mounts; i++)
        is_idmapping |= spec->mounts[i].is_idmapped;
    if (is_idmapping) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
        if ((userns_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            return pea_fail(err, errno, "open the container's user namespace for idmapped mounts");
    }
    pid_t helper = fork();
    if (helper < 0)
        return pea_fail(err, errno, "fork to open the bind sources");
    if (helper == 0)
        _exit(send_sources(spec, pidfd, userns_fd, rootfs, sender));
    int status = 0;
    while (waitpid(helper, &status, 0) < 0)
        if (errno != EINTR)
            return pea_fail(err, errno, "wait for the bind sources");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return pea_fail(err, WIFEXITED(status) ? WEXITSTATUS(status) : 0,
                        "open the bind sources in the container's mount namespace");
    return 0;
}

int rootfs_host_source_receive(const struct pea_spec *spec, const struct pea_mount *m, int *tree,
                               struct pea_error *err)
{
    int errnum = 0;
    *tree = -1;
    ssize_t n = console_recv_fd(spec->host_sources_fd, tree, &errnum, sizeof errnum);
    /* What only the helper can make (an idmapped mount, the object the caller checked) the child does not try. */
    bool is_helper_only = m->is_idmapped || m->has_source_identity;
    if (n == (ssize_t)sizeof errnum && errnum != 0 && *tree < 0 && is_helper_only) {
        const char *what = m->is_bind ? "bind" : m->type;
        if (errnum == ESTALE && m->has_source_identity)
            return pea_fail(err, 0, "mount bind on %s: source %s is no longer the object that was checked",
                            m->destination, m->source);
        /* tmpfs (a pod's secrets, configMaps, memory emptyDirs) takes idmapped mounts from Linux 6.3 on. */
        if (errnum == EINVAL && m->is_idmapped)
            return pea_fail(err, errnum, "mount %s on %s: idmap %s (its filesystem cannot be idmapped on this "
                            "kernel)", what, m->destination, m->is_bind ? m->source : "the lower layers");
        return pea_fail(err, errnum, "mount %s on %s: source %s", what, m->destination, m->source);
    }
    if (n == (ssize_t)sizeof errnum && (errnum == 0) == (*tree >= 0))
        return 0;
    if (*tree >= 0)
        close(take_fd(tree));
    return pea_fail(err, n < 0 ? errno : EPROTO, "mount bind on %s: receive the source from the runtime",
                    m->destination);
}

void rootfs_close_host_sources(struct pea_spec *spec)
{
    for (size_t i = 0; i < spec->n_mounts; i++) {
        struct pea_mount *m = &spec->mounts[i];
        if (m->has_source_tree)
            close(m->source_tree_fd);
        m->has_source_tree = false;
    }
    if (spec->has_host_sources)
        close(spec->host_sources_fd);
    spec->has_host_sources = false;
}
