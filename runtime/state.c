#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/cgroup.h"
#include "pea/log.h"
#include "pea/spec.h"
#include "pea/state.h"
#include "pea/sys.h"
#include "pea/util.h"

int state_validate_id(const char *id, struct pea_error *err)
{
    size_t len = id ? strlen(id) : 0;
    if (len == 0)
        return pea_fail(err, 0, "container id: must not be empty");
    /* The id names the state directory: one file name. */
    if (len > NAME_MAX)
        return pea_fail(err, 0, "container id: longer than %d bytes", NAME_MAX);
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return pea_fail(err, 0, "invalid container id \"%s\"", id);
    for (const char *p = id; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.' || c == '+';
        if (!ok)
            return pea_fail(err, 0, "invalid container id \"%s\": only letters, digits and _ - . + are allowed", id);
    }
    return 0;
}

/* mkdir -p: every component we create gets `mode`; the ones that exist stay as they are. */
static int mkdir_parents(const char *path, mode_t mode)
{
    AUTO_FREE char *copy = xstrdup(path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(copy, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int state_private_dir_open(const char *path, const char *what, struct pea_error *err)
{
    if (mkdir_parents(path, 0700) < 0)
        return pea_fail(err, errno, "create %s %s", what, path);
    /* Not through a symlink: whoever could plant one would have pea chmod the directory it names. A symlink the
     * caller made is followed, but the directory it leads to is then only checked, never changed. */
    bool is_through_symlink = false;
    AUTO_FD int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        is_through_symlink = true;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return pea_fail(err, errno, "open %s %s", what, path);
    if (st.st_uid != geteuid())
        return pea_fail(err, 0, "%s %s belongs to uid %u, not to uid %u running pea: refused", what, path,
                        (unsigned)st.st_uid, (unsigned)geteuid());
    mode_t others = st.st_mode & 077;
    if (others & (S_IWGRP | S_IWOTH))
        return pea_fail(err, 0,
                        "%s %s is writable by other users (mode %04o): refused, give pea a directory of its own", what,
                        path, (unsigned)(st.st_mode & 07777));
    if (!others)
        return take_fd(&fd);
    if (is_through_symlink)
        return pea_fail(err, 0, "%s %s is a symlink to a directory other users can reach (mode %04o): refused, make it "
                        "0700", what, path, (unsigned)(st.st_mode & 07777));
    if (fchmod(fd, 0700) < 0)
        return pea_fail(err, errno, "make %s %s private (chmod 0700)", what, path);
    log_warn("%s %s was mode %04o; made it 0700, so that only its owner reaches what is under it", what, path,
             (unsigned)(st.st_mode & 07777));
    return take_fd(&fd);
}

int state_root_open(const char *root, bool create, struct pea_error *err)
{
    if (create)
        return state_private_dir_open(root, "state root", err);
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "open state root %s", root);
    return fd;
}

int state_dir_create(int root_fd, const char *id, struct pea_error *err)
{
    if (mkdirat(root_fd, id, 0700) < 0) {
        if (errno == EEXIST)
            return pea_fail(err, 0, "container with id %s already exists", id);
        return pea_fail(err, errno, "create state directory %s", id);
    }
    int fd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return pea_fail(err, errno, "open state directory %s", id);
    return fd;
}

int state_dir_open(int root_fd, const char *id, struct pea_error *err)
{
    int fd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return pea_fail(err, 0, "container %s does not exist", id);
        return pea_fail(err, errno, "open state directory %s", id);
    }
    return fd;
}

int state_dir_remove(int root_fd, const char *id, struct pea_error *err)
{
    AUTO_FD int dir_fd = openat(root_fd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dir_fd < 0)
        return errno == ENOENT ? 0 : pea_fail(err, errno, "open state directory %s", id);
    DIR *dir = fdopendir(dup(dir_fd));
    if (!dir)
        return pea_fail(err, errno, "list state directory %s", id);
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dir_fd, de->d_name, 0) < 0 && errno != ENOENT) {
            int saved = errno;
            closedir(dir);
            return pea_fail(err, saved, "remove %s/%s", id, de->d_name);
        }
    }
    closedir(dir);
    if (unlinkat(root_fd, id, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return pea_fail(err, errno, "remove state directory %s", id);
    return 0;
}

int state_lock(int dir_fd, struct pea_error *err)
{
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "open state directory for locking");
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int saved = errno;
            close(fd);
            return pea_fail(err, saved, "lock state directory");
        }
    }
    return fd;
}

int state_save(int dir_fd, const struct pea_state *st, struct pea_error *err)
{
    AUTO_JSON json_t *j = json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:O, s:i, s:b, s:b}", "id", st->id, "pid",
                                    (int)st->pid, "start_time", (json_int_t)st->start_time, "bundle", st->bundle,
                                    "rootfs", st->rootfs, "created", st->created, "annotations",
                                    st->annotations ? st->annotations : json_object(), "owner", (int)st->owner,
                                    "is_created", st->is_created, "has_terminal", st->has_terminal);
    if (!j)
        return pea_fail(err, ENOMEM, "encode state of %s", st->id);
    if (st->cgroup_path)
        json_object_set_new(j, "cgroup_path", json_string(st->cgroup_path));
    if (st->cgroup_made_from)
        json_object_set_new(j, "cgroup_made_from", json_string(st->cgroup_made_from));
    if (st->cgroup_unit)
        json_object_set_new(j, "cgroup_unit", json_string(st->cgroup_unit));
    json_object_set_new(j, "format", json_integer(1));
    AUTO_FREE char *text = json_dumps(j, JSON_COMPACT);
    if (!text || write_file_atomic_at(dir_fd, PEA_STATE_FILE, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "write state of %s", st->id);
    return 0;
}

void state_clear(struct pea_state *st)
{
    free(st->id);
    free(st->bundle);
    free(st->rootfs);
    free(st->cgroup_path);
    free(st->cgroup_made_from);
    free(st->cgroup_unit);
    json_decref(st->annotations);
    memset(st, 0, sizeof *st);
}

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* The JSON object in dir/file; NULL with *err naming the file and what is wrong with it. */
static json_t *load_object(int dir_fd, const char *dir_path, const char *file, size_t max, struct pea_error *err)
{
    const char *dir = dir_path ? dir_path : ".";
    size_t len = 0;
    AUTO_FREE char *text = read_file_at(dir_fd, file, max, &len);
    if (!text) {
        pea_fail(err, errno, "%s/%s", dir, file);
        return NULL;
    }
    if (len == 0) {
        pea_fail(err, 0, "%s/%s: empty", dir, file);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!j) {
        pea_fail(err, 0, "%s/%s: not JSON: %s at line %d column %d", dir, file, jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        pea_fail(err, 0, "%s/%s: holds %s, not an object", dir, file, json_type_name(j));
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Member key of the object j (NULL when optional and absent or null) when it has the type wanted. */
static int get_member(json_t *j, const char *key, json_type type, bool is_optional, json_t **out, const char *dir,
                      const char *file, struct pea_error *err)
{
    static const char *const wanted[] = {
        [JSON_OBJECT] = "an object", [JSON_STRING] = "a string", [JSON_INTEGER] = "an integer",
        [JSON_TRUE] = "a boolean",
    };
    json_t *v = json_object_get(j, key);
    *out = NULL;
    if (!v || (is_optional && json_is_null(v))) {
        if (is_optional)
            return 0;
        return pea_fail(err, 0, "%s/%s: \"%s\" is missing", dir, file, key);
    }
    bool is_right = type == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == type;
    if (type == JSON_INTEGER && is_right && json_integer_value(v) < 0)
        return pea_fail(err, 0, "%s/%s: \"%s\" is negative", dir, file, key);
    if (!is_right)
        return pea_fail(err, 0, "%s/%s: \"%s\" is %s, not %s", dir, file, key, json_type_name(v), wanted[type]);
    *out = v;
    return 0;
}

/* A cgroup path pea removes and kills in: absolute, nothing that climbs out of the hierarchy. */
static int get_cgroup_member(json_t *j, const char *key, char **out, const char *dir, const char *file,
                             struct pea_error *err)
{
    json_t *v;
    if (get_member(j, key, JSON_STRING, true, &v, dir, file, err) < 0)
        return -1;
    if (!v)
        return 0;
    const char *path = json_string_value(v);
    if (path[0] != '/' || strstr(path, "/../") || (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
        return pea_fail(err, 0, "%s/%s: \"%s\" is not an absolute cgroup path without \"..\"", dir, file, key);
    *out = xstrdup(path);
    return 0;
}

/* A systemd unit pea stops on delete: a scope's name, nothing that could name a path. */
static int get_unit_member(json_t *j, char **out, const char *dir, const char *file, struct pea_error *err)
{
    json_t *v;
    if (get_member(j, "cgroup_unit", JSON_STRING, true, &v, dir, file, err) < 0)
        return -1;
    if (!v)
        return 0;
    const char *name = json_string_value(v);
    size_t len = strlen(name);
    if (len <= 6 || len > 255 || strcmp(name + len - 6, ".scope") != 0 || strchr(name, '/'))
        return pea_fail(err, 0, "%s/%s: \"cgroup_unit\" is not the name of a systemd scope", dir, file);
    *out = xstrdup(name);
    return 0;
}

/* The members state.json and the cleanup record share: the init's pid and start time, the cgroup made for it and
 * its systemd unit. */
static int get_process_members(json_t *j, struct pea_state *st, const char *dir, const char *file,
                               struct pea_error *err)
{
    json_t *pid, *start_time;
    if (get_member(j, "pid", JSON_INTEGER, false, &pid, dir, file, err) < 0 ||
        get_member(j, "start_time", JSON_INTEGER, false, &start_time, dir, file, err) < 0)
        return -1;
    if (json_integer_value(pid) > INT_MAX)
        return pea_fail(err, 0, "%s/%s: \"pid\" is out of range", dir, file);
    if (get_cgroup_member(j, "cgroup_path", &st->cgroup_path, dir, file, err) < 0 ||
        get_cgroup_member(j, "cgroup_made_from", &st->cgroup_made_from, dir, file, err) < 0 ||
        get_unit_member(j, &st->cgroup_unit, dir, file, err) < 0) {
        state_clear(st);
        return -1;
    }
    st->pid = (pid_t)json_integer_value(pid);
    st->start_time = (unsigned long long)json_integer_value(start_time);
    return 0;
}

int state_load(int dir_fd, const char *dir_path, struct pea_state *st, struct pea_error *err)
{
    memset(st, 0, sizeof *st);
    const char *dir = dir_path ? dir_path : ".", *file = PEA_STATE_FILE;
    /* The state carries the annotations of a config.json (at most 16 MiB): a container that could be created
     * must stay loadable, or nothing could find its process to kill it. */
    AUTO_JSON json_t *j = load_object(dir_fd, dir_path, file, 32 << 20, err);
    if (!j)
        return -1;
    json_t *id, *bundle, *rootfs, *created, *annotations, *owner, *is_created, *has_terminal;
    if (get_member(j, "id", JSON_STRING, false, &id, dir, file, err) < 0 ||
        get_process_members(j, st, dir, file, err) < 0)
        return -1;
    if (get_member(j, "bundle", JSON_STRING, false, &bundle, dir, file, err) < 0 ||
        get_member(j, "rootfs", JSON_STRING, false, &rootfs, dir, file, err) < 0 ||
        get_member(j, "created", JSON_STRING, false, &created, dir, file, err) < 0 ||
        get_member(j, "annotations", JSON_OBJECT, false, &annotations, dir, file, err) < 0 ||
        get_member(j, "owner", JSON_INTEGER, false, &owner, dir, file, err) < 0 ||
        get_member(j, "is_created", JSON_TRUE, true, &is_created, dir, file, err) < 0 ||
        get_member(j, "has_terminal", JSON_TRUE, true, &has_terminal, dir, file, err) < 0) {
        state_clear(st);
        return -1;
    }
    st->id = xstrdup(json_string_value(id));
    st->bundle = xstrdup(json_string_value(bundle));
    st->rootfs = xstrdup(json_string_value(rootfs));
    snprintf(st->created, sizeof st->created, "%s", json_string_value(created));
    st->annotations = json_incref(annotations);
    st->owner = (uid_t)json_integer_value(owner);
    st->is_created = json_is_true(is_created);
    st->has_terminal = json_is_true(has_terminal);
    return 0;
}

int state_save_record(int dir_fd, const struct pea_state *st, struct pea_error *err)
{
    AUTO_JSON json_t *j = json_pack("{s:i, s:I, s:s}", "pid", (int)st->pid, "start_time",
                                    (json_int_t)st->start_time, "boot_id", st->boot_id);
    if (!j)
        return pea_fail(err, ENOMEM, "encode %s", PEA_CLEANUP_RECORD);
    if (st->cgroup_path)
        json_object_set_new(j, "cgroup_path", json_string(st->cgroup_path));
    if (st->cgroup_made_from)
        json_object_set_new(j, "cgroup_made_from", json_string(st->cgroup_made_from));
    if (st->cgroup_unit)
        json_object_set_new(j, "cgroup_unit", json_string(st->cgroup_unit));
    AUTO_FREE char *text = json_dumps(j, JSON_COMPACT);
    if (!text || write_file_atomic_at(dir_fd, PEA_CLEANUP_RECORD, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "write %s", PEA_CLEANUP_RECORD);
    return 0;
}

int state_load_record(int dir_fd, const char *dir_path, struct pea_state *st, struct pea_error *err)
{
    memset(st, 0, sizeof *st);
    const char *dir = dir_path ? dir_path : ".", *file = PEA_CLEANUP_RECORD;
    AUTO_JSON json_t *j = load_object(dir_fd, dir_path, file, 64 << 10, err);
    if (!j)
        return -1;
    json_t *boot_id;
    if (get_member(j, "boot_id", JSON_STRING, false, &boot_id, dir, file, err) < 0 ||
        get_process_members(j, st, dir, file, err) < 0)
        return -1;
    snprintf(st->boot_id, sizeof st->boot_id, "%s", json_string_value(boot_id));
    return 0;
}

void state_boot_id(char out[40])
{
    size_t len = 0;
    AUTO_FREE char *text = read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 4096, &len);
    snprintf(out, 40, "%.*s", text ? (int)strcspn(text, "\n") : 0, text ? text : "");
}

static bool is_init_alive(const struct pea_state *st)
{
    if (st->pid <= 0)
        return false;
    bool is_zombie;
    unsigned long long start = sys_process_start_time(st->pid, &is_zombie);
    return start != 0 && start == st->start_time && !is_zombie;
}

enum pea_status state_status(int dir_fd, const struct pea_state *st)
{
    if (!is_init_alive(st))
        return st->is_created || st->pid > 0 ? PEA_STATUS_STOPPED : PEA_STATUS_CREATING;
    if (!st->is_created)
        return PEA_STATUS_CREATING;
    if (faccessat(dir_fd, PEA_EXEC_FIFO, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return PEA_STATUS_CREATED;
    if (st->cgroup_path && cgroup_is_frozen(st->cgroup_path, NULL) == 1)
        return PEA_STATUS_PAUSED;
    return PEA_STATUS_RUNNING;
}

const char *state_status_name(enum pea_status status)
{
    switch (status) {
    case PEA_STATUS_CREATING: return "creating";
    case PEA_STATUS_CREATED: return "created";
    case PEA_STATUS_RUNNING: return "running";
    case PEA_STATUS_PAUSED: return "paused";
    case PEA_STATUS_STOPPED: return "stopped";
    case PEA_STATUS_UNKNOWN: return "unknown";
    }
    return "unknown";
}

json_t *state_to_json(const struct pea_state *st, enum pea_status status)
{
    json_t *j = json_object();
    json_object_set_new(j, "ociVersion", json_string(PEA_OCI_VERSION));
    json_object_set_new(j, "id", json_string(st->id));
    json_object_set_new(j, "pid", json_integer(status == PEA_STATUS_STOPPED ? 0 : st->pid));
    json_object_set_new(j, "status", json_string(state_status_name(status)));
    json_object_set_new(j, "bundle", json_string(st->bundle));
    json_object_set_new(j, "rootfs", json_string(st->rootfs));
    json_object_set_new(j, "created", json_string(st->created));
    if (st->annotations && json_object_size(st->annotations) > 0)
        json_object_set(j, "annotations", st->annotations);
    json_object_set_new(j, "owner", json_string(""));
    return j;
}
