/* What create prepares on the host side, in our mount and user namespaces, before the container's init is cloned:
 * detached clones (open_tree) of what the container's root could not reach itself once its user namespace has
 * taken our rights. The child attaches them as they are. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "pea/rootfs.h"
#include "pea/util.h"
#include "rootfs_internal.h"

/* The propagation a bind made in the container's mount namespace would have, for a clone of ours (which joined the
 * peer group of its source, if that is shared); 0 keeps it. In a user namespace never more than a slave: the kernel
 * turns shared mounts into slaves in a less privileged namespace, and a container must not send mounts to the
 * host. */
static uint64_t host_clone_propagation(const struct pea_spec *spec)
{
    unsigned long root = spec->rootfs_propagation ? spec->rootfs_propagation & ~(unsigned long)MS_REC : MS_SLAVE;
    if (spec->namespaces[PEA_NS_USER].is_present)
        return MS_SLAVE;
    if (root == MS_SHARED)
        return 0; /* the host's peer: an rshared bind propagates both ways */
    if (root == MS_PRIVATE || root == MS_UNBINDABLE)
        return MS_PRIVATE;
    return MS_SLAVE;
}

int rootfs_ready_host_tree(const struct pea_spec *spec, const struct pea_mount *m, int tree, struct pea_error *err)
{
    const struct pea_mount made = rootfs_mount_as_made(m);
    uint64_t propagation = host_clone_propagation(spec);
    if (propagation && rootfs_set_mount_attr(tree, AT_RECURSIVE, 0, 0, propagation) < 0)
        return pea_fail(err, errno, "mount on %s: set the propagation of the source", m->destination);
    if (rootfs_set_bind_flags(tree, &made) < 0)
        return pea_fail(err, errno, "remount bind on %s", m->destination);
    if ((made.rec_attr_set || made.rec_attr_clr) &&
        rootfs_set_mount_attr(tree, AT_RECURSIVE, made.rec_attr_set, made.rec_attr_clr, 0) < 0)
        return pea_fail(err, errno, "set recursive attributes of %s", m->destination);
    return 0;
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

static bool is_cgroup(const struct pea_mount *m)
{
    return !m->is_bind && m->type && (strcmp(m->type, "cgroup") == 0 || strcmp(m->type, "cgroup2") == 0);
}

int rootfs_open_host_sources(struct pea_spec *spec, int cgroup_fd, struct pea_error *err)
{
    /* Only a user namespace takes the rights a source may need; and a runtime without privilege could not clone
     * mounts here, nor reach more than the container's root can. */
    if (!spec->namespaces[PEA_NS_USER].is_present || geteuid() != 0)
        return 0;
    const struct pea_namespace *cgroup_ns = &spec->namespaces[PEA_NS_CGROUP];
    bool has_own_cgroup_ns = cgroup_ns->is_present && !cgroup_ns->path;
    for (size_t i = 0; i < spec->n_mounts; i++) {
        struct pea_mount *m = &spec->mounts[i];
        if (m->has_source_tree)
            continue;
        AUTO_FD int tree = -1;
        if (m->is_bind) {
            /* Resolved with our rights: a source behind a directory only the host's root may enter still mounts
             * (as with runc, which opens them before joining the user namespace). */
            tree = open_tree(AT_FDCWD, m->source,
                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m->is_recursive ? AT_RECURSIVE : 0));
            if (tree < 0)
                return pea_fail(err, errno, "mount bind on %s: source %s", m->destination, m->source);
        } else if (is_cgroup(m) && !has_own_cgroup_ns && cgroup_fd >= 0) {
            /* cgroup2 will refuse the container's root (EPERM): its own cgroup to bind instead. */
            tree = open_tree(cgroup_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
            if (tree < 0)
                return pea_fail(err, errno, "mount cgroup2 on %s: bind the container's cgroup", m->destination);
        } else {
            continue;
        }
        if (rootfs_ready_host_tree(spec, m, tree, err) < 0)
            return -1;
        if ((tree = above_stdio(tree)) < 0)
            return pea_fail(err, errno, "mount on %s: keep the source's fd", m->destination);
        m->source_tree_fd = take_fd(&tree);
        m->has_source_tree = true;
    }
    return 0;
}

void rootfs_close_host_sources(struct pea_spec *spec)
{
    for (size_t i = 0; i < spec->n_mounts; i++) {
        struct pea_mount *m = &spec->mounts[i];
        if (m->has_source_tree)
            close(m->source_tree_fd);
        m->has_source_tree = false;
        m->source_tree_fd = -1;
    }
}
