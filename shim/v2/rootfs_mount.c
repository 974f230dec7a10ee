#include "rootfs_mount.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "pea/util.h"

/* The mount(8) words containerd puts in a mount's options; anything else goes to the filesystem as data. */
static const struct {
    const char *word;
    bool clear;
    unsigned long flag;
} mount_flags[] = {
    {"ro", false, MS_RDONLY},        {"rw", true, MS_RDONLY},         {"bind", false, MS_BIND},
    {"rbind", false, MS_BIND | MS_REC}, {"nosuid", false, MS_NOSUID}, {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},      {"dev", true, MS_NODEV},         {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},       {"sync", false, MS_SYNCHRONOUS}, {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},  {"noatime", false, MS_NOATIME},  {"atime", true, MS_NOATIME},
    {"nodiratime", false, MS_NODIRATIME}, {"diratime", true, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME}, {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME}, {"nostrictatime", true, MS_STRICTATIME},
    {"defaults", false, 0},
};

static void parse_options(char *const *options, size_t count, unsigned long *flags, char **data)
{
    *flags = 0;
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += strlen(options[i]) + 1;
    *data = xcalloc(len + 1, 1);
    for (size_t i = 0; i < count; i++) {
        bool known = false;
        for (size_t f = 0; f < ARRAY_SIZE(mount_flags); f++) {
            if (strcmp(options[i], mount_flags[f].word) == 0) {
                if (mount_flags[f].clear)
                    *flags &= ~mount_flags[f].flag;
                else
                    *flags |= mount_flags[f].flag;
                known = true;
                break;
            }
        }
        if (!known) {
            if (**data)
                strcat(*data, ",");
            strcat(*data, options[i]);
        }
    }
}

static int mount_one(const char *target, const Containerd__Types__Mount *m, struct pea_error *err)
{
    unsigned long flags;
    AUTO_FREE char *data = NULL;
    parse_options(m->options, m->n_options, &flags, &data);
    bool is_bind = flags & MS_BIND;
    unsigned long bind_extra = flags & ~(MS_BIND | MS_REC);
    if (mount(m->source, target, m->type, is_bind ? flags & (MS_BIND | MS_REC) : flags, data) < 0)
        return pea_fail(err, errno, "mount %s (%s) on %s", m->source, m->type, target);
    /* A bind mount takes its flags (read-only among them) only when remounted. */
    if (is_bind && bind_extra) {
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | bind_extra, NULL) < 0) {
            int e = errno;
            umount2(target, MNT_DETACH);
            return pea_fail(err, e, "remount %s with its options", target);
        }
    }
    return 0;
}

int rootfs_mount_all(const char *bundle, Containerd__Types__Mount *const *mounts, size_t count, struct pea_error *err)
{
    AUTO_FREE char *target = xasprintf("%s/rootfs", bundle);
    if (mkdir(target, 0711) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s", target);
    for (size_t i = 0; i < count; i++) {
        if (mount_one(target, mounts[i], err) < 0) {
            for (size_t j = 0; j < i; j++)
                umount2(target, MNT_DETACH);
            return pea_wrap(err, "mount the task's root filesystem: ");
        }
    }
    return 0;
}

void rootfs_unmount_all(const char *bundle)
{
    AUTO_FREE char *target = xasprintf("%s/rootfs", bundle);
    /* Every mount stacked there; EINVAL once none is left. */
    while (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
        ;
}
