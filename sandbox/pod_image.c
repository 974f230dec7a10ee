/* Images of the store for a pod's containers: resolved, held for the pod, recorded in its state, released; their
 * configuration (Entrypoint, Cmd, Env, WorkingDir, User, StopSignal) read for pod_config.c. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/console.h"
#include "pea/image_accounts.h"
#include "pea/image_store.h"
#include "pea/pod.h"
#include "pea/pod_env.h"
#include "pea/pod_image.h"
#include "pea/rootfs.h"
#include "pea/signals.h"
#include "pea/sys.h"
#include "pea/util.h"

#define IMAGES_KEY "images"
/* /etc/passwd and /etc/group of an image are read up to this size. */
#define ACCOUNT_FILE_MAX (4 << 20)

char *pod_image_lowerdir(char *const *layers, size_t n_layers, const char **bad)
{
    char *lower = xstrdup("");
    for (size_t i = n_layers; i-- > 0;) {
        if (strpbrk(layers[i], ":,")) {
            *bad = layers[i];
            free(lower);
            return NULL;
        }
        char *next = xasprintf("%s%s%s", lower, *lower ? ":" : "", layers[i]);
        free(lower);
        lower = next;
    }
    return lower;
}

void pod_image_free(struct pea_pod_image *image)
{
    if (!image)
        return;
    strv_free(image->layer_dirs);
    strv_free(image->entrypoint);
    strv_free(image->cmd);
    strv_free(image->env);
    free(image->working_dir);
    free(image->user);
    free(image);
}

static int open_store(const struct pea_pod *pod, struct pea_image_store **store, struct pea_error *err)
{
    AUTO_FREE char *data_root = pod_data_root_of(pod->data_dir);
    return pea_image_store_open(data_root, NULL, store, err);
}

/* ---- the image configuration ------------------------------------------------------------------------------------- */

/* A list of strings of the config, NULL when absent or null; *is_bad when it is something else. */
static char **config_strv(json_t *config, const char *key, bool *is_bad)
{
    json_t *list = json_object_get(config, key);
    if (!list || json_is_null(list))
        return NULL;
    size_t i;
    json_t *v;
    char **out = xcalloc(json_array_size(list) + 1, sizeof *out);
    json_array_foreach(list, i, v) {
        if (!json_is_string(v)) {
            *is_bad = true;
            break;
        }
        out[i] = xstrdup(json_string_value(v));
    }
    if (!json_is_array(list))
        *is_bad = true;
    return out;
}

static char *config_string(json_t *config, const char *key, bool *is_bad)
{
    json_t *v = json_object_get(config, key);
    if (v && !json_is_null(v) && !json_is_string(v))
        *is_bad = true;
    const char *s = json_string_value(v);
    return s && *s ? xstrdup(s) : NULL;
}

/* StopSignal as images write it: "SIGTERM", "TERM", "15", "SIGRTMIN+3". */
static int parse_stop_signal(const char *text)
{
    long long n;
    if (parse_int64(text, &n) == 0)
        return n > 0 && n < 65 ? (int)n : -1;
    return signal_parse(text);
}

static int read_config(const char *reference, const struct pea_image *stored, struct pea_pod_image *img,
                       struct pea_error *err)
{
    json_t *config = json_object_get(stored->config, "config");
    bool is_bad = config && !json_is_null(config) && !json_is_object(config);
    img->entrypoint = config_strv(config, "Entrypoint", &is_bad);
    img->cmd = config_strv(config, "Cmd", &is_bad);
    img->env = config_strv(config, "Env", &is_bad);
    if (!img->env)
        img->env = xcalloc(1, sizeof(char *));
    img->working_dir = config_string(config, "WorkingDir", &is_bad);
    img->user = config_string(config, "User", &is_bad);
    AUTO_FREE char *stop_signal = config_string(config, "StopSignal", &is_bad);
    if (is_bad)
        return pea_fail(err, 0, "image %s: its config has a field of the wrong type", reference);
    for (char **e = img->env; *e; e++)
        if (!strchr(*e, '=') || **e == '=')
            return pea_fail(err, 0, "image %s: Env entry \"%s\" is not NAME=VALUE", reference, *e);
    if (img->working_dir && img->working_dir[0] != '/')
        return pea_fail(err, 0, "image %s: WorkingDir \"%s\" is not absolute", reference, img->working_dir);
    if (stop_signal && (img->stop_signal = parse_stop_signal(stop_signal)) <= 0)
        return pea_fail(err, 0, "image %s: StopSignal \"%s\" is not a signal", reference, stop_signal);
    return 0;
}

/* ---- the image's user, looked up in its own /etc/passwd and /etc/group ------------------------------------------- */

/* In a child with a mount namespace of its own: the image's root as an overlay of its layers (read-only, no upper),
 * opened O_PATH and sent back; the mount lives while the fd does, and nothing of it is ever mounted on the host. */
static void serve_image_root(int sock, const struct pea_pod_image *img, const char *target)
{
    struct pea_error err = {0};
    const char *bad = NULL;
    AUTO_FREE char *lower = pod_image_lowerdir(img->layer_dirs, img->n_layers, &bad);
    AUTO_FREE char *options = lower ? xasprintf("lowerdir=%s", lower) : NULL;
    int root = -1;
    if (!lower)
        pea_fail(&err, 0, "image layer %s: ':' and ',' cannot be used in overlay paths", bad);
    else if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        pea_fail(&err, errno, "a mount namespace to read the image's accounts");
    else if (rootfs_mount_overlay("overlay", target, MS_RDONLY | MS_NODEV | MS_NOSUID, options, "the image's root",
                                  &err) == 0 &&
             (root = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        pea_fail(&err, errno, "open the image's root");
    console_send_fd(sock, root, err.msg, strlen(err.msg) + 1);
    _exit(0);
}

/* An fd of the image's root: the only layer itself, or the overlay of them all (which needs two at least). */
static int open_image_root(const struct pea_pod *pod, const struct pea_pod_image *img, struct pea_error *err)
{
    if (img->n_layers == 1) {
        int fd = open(img->layer_dirs[0], O_PATH | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? pea_fail(err, errno, "open layer %s", img->layer_dirs[0]) : fd;
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return pea_fail(err, errno, "socketpair");
    AUTO_FD int ours = pair[0];
    pid_t pid = fork();
    if (pid == 0) {
        close(pair[0]);
        serve_image_root(pair[1], img, pod->dir);
    }
    close(pair[1]);
    if (pid < 0)
        return pea_fail(err, errno, "fork to read the image's accounts");
    int fd = -1;
    char msg[sizeof err->msg] = "";
    ssize_t n = console_recv_fd(ours, &fd, msg, sizeof msg - 1);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (fd >= 0)
        return fd;
    if (n > 0 && msg[0])
        return pea_fail(err, 0, "%.*s", (int)n, msg);
    return pea_fail(err, EIO, "read the image's accounts: the helper process said nothing");
}

/* The file below the image's root, resolved inside it; NULL with errno ENOENT when the image has none. */
static char *read_account_file(int root, const char *path, struct pea_error *err)
{
    AUTO_FD int fd = sys_open_in_root(root, path, O_RDONLY | O_CLOEXEC, 0);
    struct stat st;
    if (fd < 0) {
        if (errno != ENOENT)
            pea_fail(err, errno, "open %s in the image", path);
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        pea_fail(err, 0, "%s in the image is not a regular file", path);
        errno = EINVAL;
        return NULL;
    }
    size_t len = 0;
    char *text = read_fd_all(fd, ACCOUNT_FILE_MAX + 1, &len);
    if (!text || len > ACCOUNT_FILE_MAX) {
        free(text);
        pea_fail(err, text ? EFBIG : errno, "read %s in the image", path);
        errno = EINVAL;
        return NULL;
    }
    return text;
}

int pod_image_user_ids(const char *spec, const char *passwd, const char *groups, uid_t *uid_out, gid_t *gid_out,
                       struct pea_error *err)
{
    AUTO_FREE char *user = xstrdup(spec);
    char *group = strchr(user, ':');
    if (group)
        *group++ = '\0';
    uint32_t uid = 0, gid = 0;
    bool has_uid = image_accounts_parse_id(user, &uid), has_gid = group && image_accounts_parse_id(group, &gid);
    if (!user[0] || (group && (!group[0] || strchr(group, ':'))))
        return pea_fail(err, 0, "image user \"%s\" is not USER[:GROUP]", spec);
    struct image_passwd_entry pw;
    bool is_found = image_passwd_find(passwd, has_uid ? NULL : user, uid, &pw);
    free(pw.name);
    free(pw.home);
    if (!has_uid && !is_found)
        return pea_fail(err, 0, "image user \"%s\": no user %s in the image's /etc/passwd", spec, user);
    if (is_found)
        uid = pw.uid;
    if (!group)
        gid = is_found ? pw.gid : 0;
    else if (!has_gid && !image_group_find(groups, group, &gid))
        return pea_fail(err, 0, "image user \"%s\": no group %s in the image's /etc/group", spec, group);
    *uid_out = uid;
    *gid_out = gid;
    return 0;
}

/* The image's user as ids; its /etc/passwd and /etc/group read only when a name or a missing group needs them. */
static int resolve_user(const struct pea_pod *pod, const char *container, struct pea_pod_image *img,
                        struct pea_error *err)
{
    const char *colon = strchr(img->user, ':');
    uint32_t id = 0;
    AUTO_FREE char *user = xasprintf("%.*s", (int)(colon ? colon - img->user : (ptrdiff_t)strlen(img->user)),
                                     img->user);
    bool is_numeric = image_accounts_parse_id(user, &id) && colon && image_accounts_parse_id(colon + 1, &id);
    AUTO_FREE char *passwd = NULL, *groups = NULL;
    if (!is_numeric) {
        AUTO_FD int root = open_image_root(pod, img, err);
        if (root < 0)
            return pea_wrap(err, "container %s: image user \"%s\"", container, img->user);
        if ((!(passwd = read_account_file(root, "/etc/passwd", err)) && errno != ENOENT) ||
            (!(groups = read_account_file(root, "/etc/group", err)) && errno != ENOENT))
            return pea_wrap(err, "container %s", container);
    }
    if (pod_image_user_ids(img->user, passwd, groups, &img->uid, &img->gid, err) < 0)
        return pea_wrap(err, "container %s", container);
    img->has_ids = true;
    return 0;
}

/* ---- resolving and holding --------------------------------------------------------------------------------------- */

/* WHAT (a reference, or the digest recorded) in the store, held for the pod, read into an image of ours. */
static struct pea_pod_image *take_image(struct pea_pod *pod, struct pea_image_store *store,
                                        const struct pea_pod_container *c, const char *what, struct pea_error *err)
{
    struct pea_image *stored = NULL;
    if (pea_image_resolve(store, what, &stored, err) < 0) {
        if (err->errnum == ENOENT)
            pea_fail(err, ENOENT, "container %s: image %s is not in the store (%s)", c->name, c->image_ref,
                     what == c->image_ref ? "pull it or load it with pea image load" : "removed from under the pod");
        else
            pea_wrap(err, "container %s: image %s", c->name, c->image_ref);
        return NULL;
    }
    struct pea_pod_image *img = xcalloc(1, sizeof *img);
    memcpy(img->manifest_digest, stored->manifest_digest, sizeof img->manifest_digest);
    img->layer_dirs = take_ptr(&stored->layer_dirs);
    img->n_layers = stored->n_layers;
    int r = img->n_layers == 0 ? pea_fail(err, 0, "container %s: image %s has no layers", c->name, c->image_ref)
                               : read_config(c->image_ref, stored, img, err);
    pea_image_free(stored);
    /* The hold is checked under the store's lock against the image still being there: from here it stays. */
    if (r == 0 && pea_image_hold(store, pod->name, img->manifest_digest, err) < 0)
        r = pea_wrap(err, "container %s", c->name);
    if (r == 0 && img->user && !c->security.has_run_as_user)
        r = resolve_user(pod, c->name, img, err);
    if (r < 0) {
        pod_image_free(img);
        return NULL;
    }
    return img;
}

/* An image volume's image: WHAT (its reference, or the digest recorded) in the store, held for the pod; only its
 * layers matter (it runs nothing, so its config is not read). */
static struct pea_pod_image *take_volume_image(struct pea_pod *pod, struct pea_image_store *store,
                                               const struct pea_pod_volume *v, const char *what, struct pea_error *err)
{
    struct pea_image *stored = NULL;
    if (pea_image_resolve(store, what, &stored, err) < 0) {
        if (err->errnum == ENOENT)
            pea_fail(err, ENOENT, "volume %s: image %s is not in the store (%s)", v->name, v->image_ref,
                     what == v->image_ref ? "pull it or load it with pea image load" : "removed from under the pod");
        else
            pea_wrap(err, "volume %s: image %s", v->name, v->image_ref);
        return NULL;
    }
    struct pea_pod_image *img = xcalloc(1, sizeof *img);
    memcpy(img->manifest_digest, stored->manifest_digest, sizeof img->manifest_digest);
    img->layer_dirs = take_ptr(&stored->layer_dirs);
    img->n_layers = stored->n_layers;
    pea_image_free(stored);
    int r = img->n_layers == 0 ? pea_fail(err, 0, "volume %s: image %s has no layers", v->name, v->image_ref) : 0;
    if (r == 0 && pea_image_hold(store, pod->name, img->manifest_digest, err) < 0)
        r = pea_wrap(err, "volume %s", v->name);
    if (r < 0) {
        pod_image_free(img);
        return NULL;
    }
    return img;
}

/* Where the record keeps an image volume's digest: beside the containers', under a key no container name can be
 * (a DNS label has no '/'). */
static char *volume_record_key(const struct pea_pod_volume *v) { return xasprintf("volumes/%s", v->name); }

/* Volumes change only with a new sandbox, so the digest recorded for one is the one it has mounted. */
static int attach_volume(struct pea_pod *pod, struct pea_image_store *store, struct pea_pod_volume *v,
                         const json_t *before, json_t *record, struct pea_error *err)
{
    AUTO_FREE char *key = volume_record_key(v);
    const char *pinned = json_string_value(json_object_get(before, key));
    struct pea_pod_image *img = take_volume_image(pod, store, v, pinned ? pinned : v->image_ref, err);
    if (!img)
        return -1;
    pod_image_free(v->image);
    v->image = img;
    json_object_set_new(record, key, json_string(img->manifest_digest));
    return 0;
}

static const struct pea_pod_container *find_same(const struct pea_pod_manifest *old, const struct pea_pod_container *c)
{
    const struct pea_pod_container *lists[] = {old ? old->init_containers : NULL, old ? old->containers : NULL};
    size_t sizes[] = {old ? old->n_init_containers : 0, old ? old->n_containers : 0};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < sizes[l]; i++)
            if (strcmp(lists[l][i].name, c->name) == 0)
                return manifest_container_same_but_resources(&lists[l][i], c) ? &lists[l][i] : NULL;
    return NULL;
}

json_t *pod_images_record(const struct pea_pod *pod)
{
    json_t *record = json_object_get(pod->state, IMAGES_KEY);
    return record ? json_deep_copy(record) : json_object();
}

static bool record_holds(const json_t *record, const char *digest)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)record, name, v)
        if (json_is_string(v) && strcmp(json_string_value(v), digest) == 0)
            return true;
    return false;
}

/* Release each digest of `from` that `to` does not hold. */
static void release_missing(struct pea_pod *pod, const json_t *from, const json_t *to)
{
    if (json_object_size(from) == 0)
        return;
    struct pea_error err = {0};
    struct pea_image_store *store = NULL;
    if (open_store(pod, &store, &err) < 0) {
        fprintf(stderr, "pea: pod %s: release images: %s\n", pod->name, err.msg);
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)from, name, v) {
        const char *digest = json_string_value(v);
        if (digest && !record_holds(to, digest) && pea_image_release(store, pod->name, digest, &err) < 0)
            fprintf(stderr, "pea: pod %s: release image %s: %s\n", pod->name, digest, err.msg);
    }
    pea_image_store_close(store);
}

void pod_images_release_dropped(struct pea_pod *pod, const json_t *before)
{
    release_missing(pod, before, json_object_get(pod->state, IMAGES_KEY));
}

void pod_images_restore(struct pea_pod *pod, json_t *before)
{
    AUTO_JSON json_t *now = pod_images_record(pod);
    json_object_set(pod->state, IMAGES_KEY, before);
    release_missing(pod, now, before);
}

/* An unchanged container (same name and spec in old) keeps the image `before` records for it. */
static int attach_one(struct pea_pod *pod, struct pea_image_store *store, struct pea_pod_container *c,
                      const struct pea_pod_manifest *old, const json_t *before, json_t *record,
                      struct pea_error *err)
{
    const char *pinned = find_same(old, c) ? json_string_value(json_object_get(before, c->name)) : NULL;
    struct pea_pod_image *img = take_image(pod, store, c, pinned ? pinned : c->image_ref, err);
    if (!img)
        return -1;
    pod_image_free(c->image);
    c->image = img;
    if (!c->has_stop_signal && img->stop_signal > 0)
        c->stop_signal = img->stop_signal;
    json_object_set_new(record, c->name, json_string(img->manifest_digest));
    return 0;
}

int pod_images_attach(struct pea_pod *pod, struct pea_pod_manifest *m, const struct pea_pod_manifest *old,
                      struct pea_error *err)
{
    AUTO_JSON json_t *before = pod_images_record(pod);
    AUTO_JSON json_t *record = json_object();
    struct pea_image_store *store = NULL;
    struct pea_pod_container *lists[] = {m->init_containers, m->containers};
    size_t sizes[] = {m->n_init_containers, m->n_containers};
    int r = 0;
    for (size_t l = 0; l < 2 && r == 0; l++)
        for (size_t i = 0; i < sizes[l] && r == 0; i++) {
            struct pea_pod_container *c = &lists[l][i];
            if (!c->image_ref)
                continue;
            if (!store && open_store(pod, &store, err) < 0) {
                r = pea_wrap(err, "container %s: image %s", c->name, c->image_ref);
                break;
            }
            r = attach_one(pod, store, c, old, before, record, err);
        }
    for (size_t i = 0; i < m->n_volumes && r == 0; i++) {
        struct pea_pod_volume *v = &m->volumes[i];
        if (v->type != PEA_VOLUME_IMAGE)
            continue;
        if (!store && open_store(pod, &store, err) < 0) {
            r = pea_wrap(err, "volume %s: image %s", v->name, v->image_ref);
            break;
        }
        r = attach_volume(pod, store, v, before, record, err);
    }
    pea_image_store_close(store);
    json_object_set(pod->state, IMAGES_KEY, record);
    if (r < 0)
        pod_images_restore(pod, before);
    return r;
}

int pod_images_release_all(const char *data_dir, const char *name, struct pea_error *err)
{
    AUTO_FREE char *data_root = pod_data_root_of(data_dir);
    AUTO_FREE char *holds = xasprintf("%s/images/holds/%s", data_root, name);
    if (access(holds, F_OK) < 0)
        return 0;
    struct pea_image_store *store = NULL;
    if (pea_image_store_open(data_root, NULL, &store, err) < 0)
        return -1;
    int r = pea_image_release(store, name, NULL, err);
    pea_image_store_close(store);
    return r;
}

/* ---- the process ------------------------------------------------------------------------------------------------- */

static void append_expanded(json_t *args, char *const *list, const json_t *vars)
{
    for (char *const *a = list; a && *a; a++) {
        AUTO_FREE char *expanded = vars ? pod_env_expand(*a, vars) : xstrdup(*a);
        json_array_append_new(args, json_string(expanded));
    }
}

json_t *pod_image_args(const struct pea_pod_container *c, const json_t *vars, struct pea_error *err)
{
    const struct pea_pod_image *img = c->image;
    json_t *args = json_array();
    if (c->command) {
        append_expanded(args, c->command, vars);
        append_expanded(args, c->args, vars);
    } else {
        append_expanded(args, img->entrypoint, NULL);
        if (c->args)
            append_expanded(args, c->args, vars);
        else
            append_expanded(args, img->cmd, NULL);
    }
    if (json_array_size(args) == 0) {
        json_decref(args);
        pea_fail(err, 0, "container %s: no command specified (image %s has no Entrypoint or Cmd, and the manifest "
                 "gives no command or args)", c->name, c->image_ref);
        return NULL;
    }
    return args;
}

json_t *pod_image_env(const struct pea_pod_image *img, const json_t *env, const json_t *vars)
{
    json_t *out = json_array();
    bool has_path = false;
    for (char **e = img->env; *e; e++) {
        AUTO_FREE char *name = xasprintf("%.*s", (int)strcspn(*e, "="), *e);
        has_path |= strcmp(name, "PATH") == 0;
        if (!json_object_get(vars, name))
            json_array_append_new(out, json_string(*e));
    }
    size_t i;
    json_t *entry;
    json_array_foreach(env, i, entry) {
        const char *text = json_string_value(entry);
        /* pod_env_build's default PATH (the container gave none): the image's stands instead. */
        if (has_path && strncmp(text, "PATH=", 5) == 0 && !json_object_get(vars, "PATH"))
            continue;
        json_array_append(out, entry);
    }
    return out;
}

int pod_image_check_non_root(const char *who, const struct pea_pod_container *c, struct pea_error *err)
{
    const struct pea_pod_image *img = c->image;
    if (!img || c->security.has_run_as_user)
        return 0;
    AUTO_FREE char *user = xstrdup(img->user ? img->user : "");
    user[strcspn(user, ":")] = '\0';
    uint32_t uid = 0;
    if (user[0] && !image_accounts_parse_id(user, &uid))
        return pea_fail(err, 0, "container has runAsNonRoot and image has non-numeric user (%s), cannot verify user "
                        "is non-root (%s)", user, who);
    if (uid == 0)
        return pea_fail(err, 0, "container has runAsNonRoot and image will run as root (%s)", who);
    return 0;
}
