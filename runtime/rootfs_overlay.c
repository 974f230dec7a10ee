/* The root overlay of a container made of image layers. mount(2) copies one page of options and no more, and fsconfig
 * takes 255 bytes per value (lowerdir+, one layer at a time, needs Linux 6.8): an image of 60 layers under a store
 * path of ~100 bytes each does not fit either way on 6.1. When the options do not fit, each lowerdir is opened here
 * (O_PATH, a directory) and given to overlayfs as /proc/self/fd/N, ~18 bytes whatever its path: the directory
 * opened is the one mounted. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "pea/rootfs.h"
#include "pea/util.h"

/* Overlayfs stacks at most 500 lower layers. */
#define OVERLAY_LOWER_MAX 500

struct lower_fds {
    int fd[OVERLAY_LOWER_MAX];
    size_t n;
};

static void close_lower_fds(struct lower_fds *l)
{
    for (size_t i = 0; i < l->n; i++)
        close(l->fd[i]);
}

/* "lowerdir=A:B:C" as "lowerdir=/proc/self/fd/N:...", the directories opened into l. Escaped colons ("\:") are
 * refused: such a path would have to be unescaped, and pea never writes one. */
static char *short_lowerdir(const char *value, const char *destination, struct lower_fds *l, struct pea_error *err)
{
    if (strchr(value, '\\')) {
        pea_fail(err, 0, "mount overlay on %s: a lowerdir with escapes is too long for mount options", destination);
        return NULL;
    }
    AUTO_FREE char *copy = xstrdup(value);
    AUTO_FREE char *out = xstrdup("lowerdir=");
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (l->n == OVERLAY_LOWER_MAX) {
            pea_fail(err, 0, "mount overlay on %s: more than %d lower directories", destination, OVERLAY_LOWER_MAX);
            return NULL;
        }
        int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            pea_fail(err, errno, "mount overlay on %s: open lower directory %s", destination, dir);
            return NULL;
        }
        l->fd[l->n++] = fd;
        char *next = xasprintf("%s%s/proc/self/fd/%d", out, l->n > 1 ? ":" : "", fd);
        free(out);
        out = next;
    }
    return take_ptr(&out);
}

int rootfs_mount_overlay(const char *source, const char *target, unsigned long flags, const char *data,
                         const char *destination, struct pea_error *err)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!data || strlen(data) < (size_t)page) {
        if (mount(source, target, "overlay", flags, data) < 0)
            return pea_fail(err, errno, "mount overlay on %s", destination);
        return 0;
    }
    struct lower_fds lower = {.n = 0};
    AUTO_FREE char *copy = xstrdup(data);
    AUTO_FREE char *options = xstrdup("");
    int r = 0;
    char *save = NULL;
    for (char *opt = strtok_r(copy, ",", &save); opt && r == 0; opt = strtok_r(NULL, ",", &save)) {
        AUTO_FREE char *shortened = NULL;
        if (strncmp(opt, "lowerdir=", 9) == 0 && !(shortened = short_lowerdir(opt + 9, destination, &lower, err)))
            r = -1;
        char *next = xasprintf("%s%s%s", options, *options ? "," : "", shortened ? shortened : opt);
        free(options);
        options = next;
    }
    if (r == 0 && strlen(options) >= (size_t)page)
        r = pea_fail(err, 0, "mount overlay on %s: its options are longer than %ld bytes even with short lower paths",
                     destination, page - 1);
    if (r == 0 && mount(source, target, "overlay", flags, options) < 0)
        r = pea_fail(err, errno, "mount overlay on %s", destination);
    close_lower_fds(&lower);
    return r;
}
