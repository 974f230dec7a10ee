/* `pea image bundle`: an OCI runtime bundle written from an image of the store. The rootfs and config.json are
 * built in a work directory inside DIR and renamed into place, so DIR holds a whole bundle or what it held before. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_bundle_internal.h"
#include "image_internal.h"
#include "pea/image_bundle.h"
#include "pea/log.h"
#include "pea/spec.h"
#include "pea/sys.h"
#include "pea/util.h"

/* /etc/passwd and /etc/group of a real image are a few KiB; more is not a user database. */
#define USER_DB_MAX (4u << 20)

/* An entry other than "." and "..": 1, none: 0, -1 on error. */
static int dir_has_entries(int dir_fd, const char *dir, struct pea_error *err)
{
    int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return pea_fail(err, errno, "list %s", dir);
    }
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)))
        found = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return found;
}

/* A user database of the image, read inside its root (its symlinks resolved there); NULL when it has none. */
static int read_user_db(int rootfs_fd, const char *path, char **text, struct pea_error *err)
{
    *text = NULL;
    AUTO_FD int fd = sys_open_in_root(rootfs_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "open the image's %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pea_fail(err, errno, "stat the image's %s", path);
    if (!S_ISREG(st.st_mode))
        return pea_fail(err, 0, "the image's %s is not a regular file", path);
    if (st.st_size > USER_DB_MAX)
        return pea_fail(err, 0, "the image's %s is larger than %u MiB: refused", path, USER_DB_MAX >> 20);
    *text = read_fd_all(fd, USER_DB_MAX, NULL);
    return *text ? 0 : pea_fail(err, errno, "read the image's %s", path);
}

static int write_config(int work_fd, int rootfs_fd, const struct pea_image *img,
                        const struct pea_image_bundle_options *o, struct pea_error *err)
{
    json_t *config = json_object_get(img->config, "config");
    const char *user_text = json_string_value(json_object_get(json_is_object(config) ? config : NULL, "User"));
    AUTO_FREE char *passwd = NULL;
    AUTO_FREE char *group = NULL;
    if (read_user_db(rootfs_fd, "/etc/passwd", &passwd, err) < 0 ||
        read_user_db(rootfs_fd, "/etc/group", &group, err) < 0)
        return -1;
    struct pea_image_user user;
    if (pea_image_user_resolve(user_text ? user_text : "", passwd, group, &user, err) < 0)
        return pea_wrap(err, "image config: User");
    AUTO_JSON json_t *spec = spec_default_json(o->is_rootless);
    /* A container of an image writes where its image says (caches, pid files), as under docker and podman. */
    json_object_set_new(json_object_get(spec, "root"), "readonly", json_false());
    AUTO_STRV char **notices = NULL;
    int r = pea_image_runtime_config(spec, img->config, &user, o->has_terminal, &notices, err);
    pea_image_user_clear(&user);
    if (r < 0)
        return -1;
    for (size_t i = 0; notices && notices[i]; i++)
        log_warn("%s", notices[i]);
    AUTO_FREE char *text = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    AUTO_FREE char *with_newline = xasprintf("%s\n", text);
    if (write_file_atomic_at(work_fd, "config.json", with_newline, strlen(with_newline), 0644) < 0)
        return pea_fail(err, errno, "write config.json");
    return 0;
}

/* Move NAME from the work directory into DIR: over what is there when forced (exchanged, so that the old one is
 * removed with the work directory), else only where nothing is. */
static int move_into_place(int work_fd, int dir_fd, const char *name, bool is_forced, const char *dir,
                           struct pea_error *err)
{
    if (is_forced && renameat2(work_fd, name, dir_fd, name, RENAME_EXCHANGE) == 0)
        return 0;
    if (is_forced && errno != ENOENT)
        return pea_fail(err, errno, "replace %s/%s", dir, name);
    if (renameat2(work_fd, name, dir_fd, name, RENAME_NOREPLACE) < 0)
        return pea_fail(err, errno, "move %s into %s", name, dir);
    return 0;
}

/* Undo a move_into_place: the new NAME back into the work directory (and the old one back into DIR). */
static void move_back(int work_fd, int dir_fd, const char *name, bool is_forced)
{
    if (is_forced && renameat2(work_fd, name, dir_fd, name, RENAME_EXCHANGE) == 0)
        return;
    renameat2(dir_fd, name, work_fd, name, RENAME_NOREPLACE);
}

static int build_bundle(struct pea_image_store *s, const char *what, int dir_fd, const char *dir, int work_fd,
                        const struct pea_image_bundle_options *o, struct pea_error *err)
{
    struct pea_image *img = NULL;
    if (pea_image_resolve(s, what, &img, err) < 0)
        return -1;
    int r = mkdirat(work_fd, "rootfs", 0755) < 0 ? pea_fail(err, errno, "create rootfs") : 0;
    AUTO_FD int rootfs_fd = r == 0 ? openat(work_fd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (r == 0 && rootfs_fd < 0)
        r = pea_fail(err, errno, "open rootfs");
    if (r == 0)
        r = bundle_apply_layers(rootfs_fd, img->layer_dirs, img->diff_ids, err);
    if (r == 0)
        r = write_config(work_fd, rootfs_fd, img, o, err);
    pea_image_free(img);
    if (r < 0)
        return -1;
    if (move_into_place(work_fd, dir_fd, "rootfs", o->is_forced, dir, err) < 0)
        return -1;
    if (move_into_place(work_fd, dir_fd, "config.json", o->is_forced, dir, err) < 0) {
        move_back(work_fd, dir_fd, "rootfs", o->is_forced);
        return -1;
    }
    return 0;
}

/* A fresh work directory inside DIR: hidden, named for this process. */
static int make_work_dir(int dir_fd, const char *dir, char *name, size_t len, struct pea_error *err)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned char rnd[4];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            return pea_fail(err, errno, "get random bytes");
        snprintf(name, len, ".pea-bundle-%d-%02x%02x%02x%02x", (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
        if (mkdirat(dir_fd, name, 0700) == 0) {
            int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            return fd >= 0 ? fd : pea_fail(err, errno, "open %s/%s", dir, name);
        }
        if (errno != EEXIST)
            return pea_fail(err, errno, "create a work directory in %s", dir);
    }
    return pea_fail(err, EEXIST, "create a work directory in %s", dir);
}

int pea_image_bundle_write(struct pea_image_store *s, const char *what, const char *dir,
                           const struct pea_image_bundle_options *o, struct pea_error *err)
{
    /* Held shared until the store closes: prune (exclusive) removes no layer while we copy it. */
    if (store_hold_gc_shared(s, err) < 0)
        return pea_wrap(err, "bundle %s", what);
    bool is_made_here = mkdir(dir, 0755) == 0;
    if (!is_made_here && errno != EEXIST)
        return pea_fail(err, errno, "bundle %s: create %s", what, dir);
    /* DIR is the user's own path, followed as given; inside it, nothing is reached by name again. */
    AUTO_FD int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "bundle %s: open %s", what, dir);
    int has_entries = is_made_here ? 0 : dir_has_entries(dir_fd, dir, err);
    if (has_entries < 0)
        return pea_wrap(err, "bundle %s", what);
    if (has_entries && !o->is_forced)
        return pea_fail(err, 0, "bundle %s: %s is not empty: refused (--force replaces its rootfs and config.json)",
                        what, dir);
    char work_name[64];
    AUTO_FD int work_fd = make_work_dir(dir_fd, dir, work_name, sizeof work_name, err);
    int r = work_fd < 0 ? -1 : build_bundle(s, what, dir_fd, dir, work_fd, o, err);
    if (r < 0)
        pea_wrap(err, "bundle %s", what);
    struct pea_error cleanup_err = {0};
    if (work_fd >= 0 && remove_tree_at(dir_fd, work_name, work_name, &cleanup_err) < 0)
        log_warn("bundle %s: remove the work directory: %s", what, cleanup_err.msg);
    if (r < 0 && is_made_here && rmdir(dir) < 0)
        log_warn("bundle %s: remove %s: %s", what, dir, strerror(errno));
    return r;
}
