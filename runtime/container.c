/* Container lifecycle: create, start, run, state, list, kill, delete, pause/resume, update. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container_internal.h"
#include "pea/cgroup.h"
#include "pea/hooks.h"
#include "pea/log.h"
#include "pea/process.h"
#include "pea/state.h"
#include "pea/sys.h"
#include "pea/util.h"

/* Open (and optionally lock) the container's directory; *is_missing tells "does not exist" from other errors. */
static int container_open_dir(const char *root, const char *id, bool lock, struct pea_container *c, bool *is_missing,
                              struct pea_error *err)
{
    memset(c, 0, sizeof *c);
    c->root_fd = c->dir_fd = c->lock_fd = -1;
    *is_missing = false;
    if (state_validate_id(id, err) < 0)
        return -1;
    size_t root_len = strlen(root);
    while (root_len > 1 && root[root_len - 1] == '/')
        root_len--;
    snprintf(c->dir_path, sizeof c->dir_path, "%.*s/%s", (int)root_len, root, id);
    c->root_fd = state_root_open(root, false, err);
    if (c->root_fd < 0) {
        if (err->errnum == ENOENT) {
            *is_missing = true;
            pea_fail(err, 0, "container %s does not exist", id);
        }
        return -1;
    }
    c->dir_fd = state_dir_open(c->root_fd, id, err);
    if (c->dir_fd < 0)
        *is_missing = err->errnum == 0; /* state_dir_open's "does not exist" */
    if (c->dir_fd < 0 || (lock && (c->lock_fd = state_lock(c->dir_fd, err)) < 0)) {
        container_close(c);
        return -1;
    }
    return 0;
}

/* A create still running holds the directory's lock: its state.json may simply not be written yet. */
static bool is_being_created(int dir_fd)
{
    AUTO_FD int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

int container_open(const char *root, const char *id, bool lock, struct pea_container *c, struct pea_error *err)
{
    bool is_missing;
    if (container_open_dir(root, id, lock, c, &is_missing, err) < 0)
        return -1;
    if (state_load(c->dir_fd, c->dir_path, &c->state, err) < 0) {
        /* Holding the lock ourselves, we know no create runs. */
        if (!lock && err->errnum == ENOENT && is_being_created(c->dir_fd))
            pea_fail(err, 0, "container %s is still being created", id);
        container_close(c);
        return -1;
    }
    c->status = state_status(c->dir_fd, &c->state);
    return 0;
}

void container_close(struct pea_container *c)
{
    state_clear(&c->state);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    if (c->root_fd >= 0)
        close(c->root_fd);
    c->lock_fd = c->dir_fd = c->root_fd = -1;
}

struct pea_spec *container_load_config(const struct pea_container *c, struct pea_error *err)
{
    AUTO_FREE char *text = read_file_at(c->dir_fd, PEA_CONFIG_COPY, 16 << 20, NULL);
    if (!text) {
        pea_fail(err, errno, "read the container's saved config");
        return NULL;
    }
    return spec_parse_string(text, err);
}

char *container_state_json_text(const struct pea_state *st, enum pea_status status)
{
    AUTO_JSON json_t *j = state_to_json(st, status);
    return json_dumps(j, JSON_COMPACT);
}

int container_write_pid_file(const char *path, pid_t pid, struct pea_error *err)
{
    if (!path)
        return 0;
    char abs[PATH_MAX];
    const char *slash = strrchr(path, '/');
    AUTO_FD int dir = -1;
    const char *name = path;
    if (slash) {
        snprintf(abs, sizeof abs, "%.*s", (int)(slash - path), path);
        dir = open(slash == path ? "/" : abs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        name = slash + 1;
    } else {
        dir = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%d", (int)pid);
    if (dir < 0 || write_file_atomic_at(dir, name, text, (size_t)n, 0644) < 0)
        return pea_fail(err, errno, "write pid file %s", path);
    return 0;
}

/* ---- start, kill, delete ---- */

static int start_created(struct pea_container *c, struct pea_error *err)
{
    switch (c->status) {
    case PEA_STATUS_CREATED: break;
    case PEA_STATUS_STOPPED: return pea_fail(err, 0, "cannot start a container that has stopped");
    case PEA_STATUS_CREATING: return pea_fail(err, 0, "cannot start a container that is still being created");
    default: return pea_fail(err, 0, "cannot start an already running container");
    }
    /* Non-blocking open fails with ENXIO when the init (the only reader) is gone. */
    AUTO_FD int fifo = openat(c->dir_fd, PEA_EXEC_FIFO, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo < 0)
        return errno == ENXIO ? pea_fail(err, 0, "container not running") : pea_fail(err, errno, "open exec fifo");
    unlinkat(c->dir_fd, PEA_EXEC_FIFO, 0);
    if (write_all(fifo, "0", 1) < 0)
        return pea_fail(err, errno, "signal the container to start");
    AUTO_SPEC struct pea_spec *spec = container_load_config(c, err);
    if (spec) {
        AUTO_FREE char *text = container_state_json_text(&c->state, PEA_STATUS_RUNNING);
        struct pea_error hook_err = {0};
        /* The spec says a failing poststart hook is a warning: the container runs on. */
        if (hooks_run(spec, PEA_HOOK_POSTSTART, text, &hook_err) < 0)
            log_warn("%s", hook_err.msg);
    }
    return 0;
}

int container_start(const char *root, const char *id, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, true, &c, err) < 0)
        return -1;
    int r = start_created(&c, err);
    container_close(&c);
    return r < 0 ? pea_wrap(err, "start %s", id) : 0;
}

static int signal_init(const struct pea_container *c, int sig, struct pea_error *err)
{
    AUTO_FD int pidfd = sys_pidfd_open(c->state.pid, 0);
    /* The pid could have been reused between the status check and pidfd_open: check the start time again. */
    if (pidfd < 0 || sys_process_start_time(c->state.pid, NULL) != c->state.start_time)
        return pea_fail(err, 0, "container not running");
    if (sys_pidfd_send_signal(pidfd, sig, NULL, 0) < 0) {
        if (errno == ESRCH)
            return pea_fail(err, 0, "container not running");
        return pea_fail(err, errno, "kill");
    }
    return 0;
}

int container_kill(const char *root, const char *id, int sig, bool all, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, false, &c, err) < 0)
        return -1;
    int r;
    if (all && c.state.cgroup_path) {
        /* Stopped too, as runc: what the init left behind in its cgroup (children reparented outside a private
         * PID namespace; containerd's shim kills them so after the init's exit). A cgroup already gone is done. */
        r = cgroup_kill_all(c.state.cgroup_path, sig, err);
        if (r < 0 && c.status == PEA_STATUS_STOPPED && err && err->errnum == ENOENT)
            r = 0;
    } else if (c.status == PEA_STATUS_STOPPED) {
        r = pea_fail(err, 0, "container not running");
    } else {
        r = signal_init(&c, sig, err);
    }
    container_close(&c);
    return r;
}

/* Wait until the init is gone (it is not our child: poll its pidfd). */
static void wait_init_gone(const struct pea_state *st, int timeout_ms)
{
    AUTO_FD int pidfd = sys_pidfd_open(st->pid, 0);
    if (pidfd < 0 || sys_process_start_time(st->pid, NULL) != st->start_time)
        return;
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
        ;
}

/* Kill what runs in the container's cgroup and its init, and wait for the init to go. */
static void kill_everything(const struct pea_container *c)
{
    if (c->state.cgroup_path) {
        cgroup_freeze(c->state.cgroup_path, false, NULL);
        cgroup_kill_all(c->state.cgroup_path, SIGKILL, NULL);
    }
    if (c->state.pid > 0)
        signal_init(c, SIGKILL, NULL);
    wait_init_gone(&c->state, 10000);
}

static int container_destroy(struct pea_container *c, const char *id, struct pea_error *err)
{
    if (c->status != PEA_STATUS_STOPPED)
        kill_everything(c);
    else if (c->state.cgroup_path)
        cgroup_kill_all(c->state.cgroup_path, SIGKILL, NULL); /* what the init left (no PID namespace of its own) */
    if (c->state.cgroup_unit && cgroup_systemd_stop_scope(c->state.cgroup_unit, err) < 0)
        return -1;
    if (c->state.cgroup_path && cgroup_destroy_made(c->state.cgroup_path, c->state.cgroup_made_from, err) < 0)
        return -1;
    if (c->state.is_created) {
        AUTO_SPEC struct pea_spec *spec = container_load_config(c, err);
        if (spec) {
            AUTO_FREE char *text = container_state_json_text(&c->state, PEA_STATUS_STOPPED);
            struct pea_error hook_err = {0};
            if (hooks_run(spec, PEA_HOOK_POSTSTOP, text, &hook_err) < 0)
                log_warn("%s", hook_err.msg);
        }
    }
    return state_dir_remove(c->root_fd, id, err);
}

/* The cgroup pea places the id in, from the saved config.json, or by the id alone when that is unreadable too and
 * the cgroup pea gives an id without cgroupsPath exists. NULL when it cannot tell. */
static char *derive_cgroup_path(const struct pea_container *c, const char *id, struct pea_error *err)
{
    struct pea_error config_err = {0};
    AUTO_SPEC struct pea_spec *spec = container_load_config(c, &config_err);
    if (spec)
        return cgroup_path_for(spec->cgroups_path, id, err);
    char *by_id = cgroup_path_for(NULL, id, err);
    AUTO_FD int dir = cgroup_open_dir(by_id, NULL);
    if (dir >= 0)
        return by_id;
    free(by_id);
    pea_fail(err, 0, "%s/%s: %s", c->dir_path, PEA_CONFIG_COPY, config_err.msg);
    return NULL;
}

/* delete --force when state.json cannot be read: find what belongs to the id without it (cleanup.json, written
 * before anything it names was made; else the cgroup derived from the id), kill it, and only then remove the
 * state. When it cannot establish that nothing of the container runs, it fails and keeps the state. */
static int destroy_unreadable(struct pea_container *c, const char *id, const struct pea_error *state_err,
                              struct pea_error *err)
{
    struct pea_error record_err = {0};
    if (state_load_record(c->dir_fd, c->dir_path, &c->state, &record_err) < 0) {
        bool is_config_missing = faccessat(c->dir_fd, PEA_CONFIG_COPY, F_OK, AT_SYMLINK_NOFOLLOW) < 0;
        /* Killed between making the directory and writing the record: nothing else was made. */
        if (state_err->errnum == ENOENT && record_err.errnum == ENOENT && is_config_missing)
            return state_dir_remove(c->root_fd, id, err);
        struct pea_error derive_err = {0};
        c->state.cgroup_path = derive_cgroup_path(c, id, &derive_err);
        AUTO_FD int cgroup = c->state.cgroup_path ? cgroup_open_dir(c->state.cgroup_path, NULL) : -1;
        /* Without its cgroup only a container that runs without one (rootless, no delegation) could be alive. */
        if (!c->state.cgroup_path || (cgroup < 0 && geteuid() != 0))
            return pea_fail(err, 0, "delete %s: cannot tell whether anything of it still runs (%s; %s%s%s): its "
                            "state is kept", id, state_err->msg, record_err.msg,
                            c->state.cgroup_path ? "" : "; ", c->state.cgroup_path ? "" : derive_err.msg);
    }
    char boot_id[40];
    state_boot_id(boot_id);
    if (c->state.boot_id[0] && strcmp(c->state.boot_id, boot_id) != 0)
        c->state.pid = 0; /* recorded in another boot: that number names another process now */
    log_debug("delete %s: %s; killing what cleanup.json or the id names (cgroup %s, init %d)", id, state_err->msg,
              c->state.cgroup_path ? c->state.cgroup_path : "none", (int)c->state.pid);
    kill_everything(c);
    if (c->state.cgroup_unit && cgroup_systemd_stop_scope(c->state.cgroup_unit, err) < 0)
        return pea_wrap(err, "delete %s: its state is kept", id);
    if (c->state.cgroup_path && cgroup_destroy_made(c->state.cgroup_path, c->state.cgroup_made_from, err) < 0)
        return pea_wrap(err, "delete %s: its state is kept", id);
    bool is_zombie;
    if (c->state.pid > 0 && sys_process_start_time(c->state.pid, &is_zombie) == c->state.start_time && !is_zombie)
        return pea_fail(err, 0, "delete %s: its init %d does not die: its state is kept", id, (int)c->state.pid);
    return state_dir_remove(c->root_fd, id, err);
}

int container_delete(const char *root, const char *id, bool force, struct pea_error *err)
{
    struct pea_container c;
    bool is_missing;
    if (container_open_dir(root, id, true, &c, &is_missing, err) < 0)
        return force && is_missing ? 0 : -1; /* what --force asked for holds */
    int r;
    struct pea_error state_err = {0};
    if (state_load(c.dir_fd, c.dir_path, &c.state, &state_err) < 0) {
        if (force) {
            r = destroy_unreadable(&c, id, &state_err, err);
        } else {
            *err = state_err;
            r = -1;
        }
    } else {
        c.status = state_status(c.dir_fd, &c.state);
        if (!force && (c.status == PEA_STATUS_RUNNING || c.status == PEA_STATUS_PAUSED))
            r = pea_fail(err, 0, "cannot delete container %s that is not stopped: %s", id,
                         state_status_name(c.status));
        else
            r = container_destroy(&c, id, err);
    }
    container_close(&c);
    return r;
}

/* ---- state, list, pause, ps, update, stats ---- */

json_t *container_state(const char *root, const char *id, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, false, &c, err) < 0)
        return NULL;
    json_t *j = state_to_json(&c.state, c.status);
    container_close(&c);
    return j;
}

/* `list`'s entry for a container whose state cannot be read: status "unknown", and a creation time (callers parse
 * it as RFC 3339) from its directory. */
static json_t *unknown_entry(const struct pea_container *c, const char *id)
{
    struct statx stx;
    struct timespec when = {0};
    if (statx(c->dir_fd, "", AT_EMPTY_PATH, STATX_BTIME | STATX_MTIME, &stx) == 0) {
        struct statx_timestamp t = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime : stx.stx_mtime;
        when = (struct timespec){.tv_sec = t.tv_sec, .tv_nsec = t.tv_nsec};
    }
    struct pea_state st = {.id = (char *)id, .bundle = "", .rootfs = ""};
    format_rfc3339_nano(&when, st.created, sizeof st.created);
    return state_to_json(&st, PEA_STATUS_UNKNOWN);
}

/* As runc's list: the owner is the user owning the container's state directory, by name, or "#UID" when the
 * user database does not know it. */
static void set_owner(json_t *entry, int dir_fd)
{
    struct stat st;
    if (fstat(dir_fd, &st) < 0)
        return;
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwuid_r(st.st_uid, &pw, buf, sizeof buf, &found) == 0 && found)
        json_object_set_new(entry, "owner", json_string(found->pw_name));
    else
        json_object_set_new(entry, "owner", json_sprintf("#%u", (unsigned)st.st_uid));
}

json_t *container_list(const char *root, struct pea_error *err)
{
    json_t *out = json_array();
    DIR *dir = opendir(root);
    if (!dir) {
        if (errno == ENOENT)
            return out;
        json_decref(out);
        pea_fail(err, errno, "open state root %s", root);
        return NULL;
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        struct pea_container c;
        struct pea_error problem = {0};
        bool is_missing;
        if (container_open_dir(root, de->d_name, false, &c, &is_missing, &problem) < 0)
            continue; /* deleted meanwhile, or not a container's directory */
        json_t *entry = NULL;
        if (state_load(c.dir_fd, c.dir_path, &c.state, &problem) == 0) {
            entry = state_to_json(&c.state, state_status(c.dir_fd, &c.state));
        } else if (problem.errnum != ENOENT || !is_being_created(c.dir_fd)) {
            /* Never skipped: a container nothing lists is one nothing will ever stop. */
            log_warn("%s (listed as unknown; delete --force kills what belongs to it and removes it)", problem.msg);
            entry = unknown_entry(&c, de->d_name);
        }
        if (entry) {
            set_owner(entry, c.dir_fd);
            json_array_append_new(out, entry);
        }
        container_close(&c);
    }
    closedir(dir);
    return out;
}

static int require_cgroup(const struct pea_container *c, struct pea_error *err)
{
    if (c->status == PEA_STATUS_STOPPED)
        return pea_fail(err, 0, "container not running");
    if (!c->state.cgroup_path)
        return pea_fail(err, 0, "container has no cgroup");
    return 0;
}

int container_pause(const char *root, const char *id, bool frozen, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, true, &c, err) < 0)
        return -1;
    int r = require_cgroup(&c, err);
    if (r == 0 && frozen && c.status != PEA_STATUS_RUNNING && c.status != PEA_STATUS_CREATED)
        r = pea_fail(err, 0, "container not running");
    if (r == 0 && !frozen && c.status != PEA_STATUS_PAUSED)
        r = pea_fail(err, 0, "container not paused");
    if (r == 0)
        r = cgroup_freeze(c.state.cgroup_path, frozen, err);
    container_close(&c);
    return r;
}

int container_pids(const char *root, const char *id, pid_t **pids, size_t *n, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, false, &c, err) < 0)
        return -1;
    int r;
    *pids = NULL;
    *n = 0;
    if (c.status == PEA_STATUS_STOPPED) {
        /* As runc: a stopped container lists what its init left in its cgroup (without a PID namespace of its own,
         * its children live on), and nothing once that cgroup is gone. */
        r = c.state.cgroup_path ? cgroup_pids(c.state.cgroup_path, pids, n, err) : 0;
        if (r < 0 && err->errnum == ENOENT)
            r = 0;
    } else {
        r = require_cgroup(&c, err);
        if (r == 0)
            r = cgroup_pids(c.state.cgroup_path, pids, n, err);
    }
    container_close(&c);
    return r;
}

int container_update(const char *root, const char *id, json_t *resources, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, true, &c, err) < 0)
        return -1;
    int r = require_cgroup(&c, err);
    /* systemd first: it writes its view of the unit's limits, which pea's files then complete. */
    if (r == 0 && c.state.cgroup_unit)
        r = cgroup_systemd_update_scope(c.state.cgroup_unit, resources, err);
    if (r == 0)
        r = cgroup_apply_resources(c.state.cgroup_path, resources, err);
    container_close(&c);
    return r;
}

json_t *container_stats(const char *root, const char *id, struct pea_error *err)
{
    struct pea_container c;
    if (container_open(root, id, false, &c, err) < 0)
        return NULL;
    json_t *j = require_cgroup(&c, err) < 0 ? NULL : cgroup_stats(c.state.cgroup_path, err);
    container_close(&c);
    return j;
}

long long container_oom_kill_count(const char *root, const char *id)
{
    struct pea_container c;
    struct pea_error ignored;
    if (container_open(root, id, false, &c, &ignored) < 0)
        return -1;
    long long n = c.state.cgroup_path ? cgroup_oom_kill_count(c.state.cgroup_path) : -1;
    container_close(&c);
    return n;
}
