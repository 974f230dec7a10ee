/* create: the state directory, the cgroup, and the container's init up to "created" (blocked on the exec fifo until
 * start). In two halves for a caller that makes several containers at once (a pod's members): while one child sets
 * up its root on its own, the parent begins the next. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container_internal.h"
#include "pea/cgroup.h"
#include "pea/console.h"
#include "pea/hooks.h"
#include "pea/log.h"
#include "pea/rootfs.h"
#include "pea/state.h"
#include "pea/sys.h"
#include "pea/util.h"

struct create_context {
    struct pea_state *state;
    int dir_fd;
    const struct pea_spec *spec;
    int host_sources_sender; /* -1, or where the bind sources go (rootfs_host_sources_send) */
    const struct cgroup_systemd_unit *scope; /* --systemd-cgroup: the scope systemd makes around the init */
};

struct pea_create_job {
    char *id, *pid_file, *pidfd_socket, *console_socket;
    char bundle_abs[PATH_MAX], rootfs_abs[PATH_MAX];
    struct pea_spec *spec;
    int root_fd, dir_fd, lock_fd, cgroup_fd, host_sources_sender;
    struct cgroup_systemd_unit scope;
    struct pea_state st;
    struct create_context ctx;
    struct pea_launch l;
    int interrupt_slot;
};

static char *create_on_namespaces_ready(struct pea_launch *l, struct pea_error *err)
{
    struct create_context *ctx = l->context;
    /* The child has its mount namespace and waits for us: its bind sources first, before it mounts. */
    if (ctx->host_sources_sender >= 0 &&
        rootfs_host_sources_send(ctx->spec, l->pid, l->pidfd, l->rootfs, ctx->host_sources_sender, err) < 0)
        return NULL;
    ctx->state->pid = l->pid;
    ctx->state->start_time = sys_process_start_time(l->pid, NULL);
    log_debug("create %s: init %d has its namespaces (cgroup %s)", ctx->state->id, (int)l->pid,
              ctx->state->cgroup_path ? ctx->state->cgroup_path : "none");
    state_boot_id(ctx->state->boot_id);
    if (state_save_record(ctx->dir_fd, ctx->state, err) < 0 || state_save(ctx->dir_fd, ctx->state, err) < 0)
        return NULL;
    char *text = container_state_json_text(ctx->state, PEA_STATUS_CREATING);
    if (hooks_run_in_dir(ctx->spec, PEA_HOOK_PRESTART, text, ctx->state->bundle, err) < 0 ||
        hooks_run_in_dir(ctx->spec, PEA_HOOK_CREATE_RUNTIME, text, ctx->state->bundle, err) < 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* --systemd-cgroup: systemd makes the scope around the init, just cloned and waiting, and pea configures its cgroup
 * before the init goes on. The records name the scope and its cgroup only once systemd made them for this init
 * (saved next, in create_on_namespaces_ready): a unit of that name may exist already, and is another's. Killed before
 * that, pea leaves an init that exits as its sync socket closes, and a scope systemd removes once it is empty. */
static int create_place_in_scope(struct pea_launch *l, struct pea_error *err)
{
    struct create_context *ctx = l->context;
    struct pea_state *st = ctx->state;
    const char *key;
    json_t *value;
    json_object_foreach(ctx->spec->annotations, key, value)
    {
        if (strncmp(key, "org.systemd.property.", strlen("org.systemd.property.")) == 0)
            log_warn("create %s: annotation %s: pea does not set systemd unit properties from annotations", st->id,
                     key);
    }
    AUTO_FREE char *description = xasprintf("pea container %s", st->id);
    char *path = cgroup_systemd_start_scope(ctx->scope, description, l->pid, ctx->spec->resources, err);
    if (!path)
        return -1;
    st->cgroup_path = path;
    st->cgroup_unit = xstrdup(ctx->scope->name);
    l->cgroup_path = path;
    return cgroup_configure(path, ctx->spec->resources, err);
}

/* Resolve the bundle and its rootfs to absolute paths and load config.json. */
static struct pea_spec *load_bundle(const char *bundle, char *bundle_abs, char *rootfs_abs, struct pea_error *err)
{
    if (!realpath(bundle ? bundle : ".", bundle_abs)) {
        pea_fail(err, errno, "bundle %s", bundle ? bundle : ".");
        return NULL;
    }
    AUTO_FD int bundle_fd = open(bundle_abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bundle_fd < 0) {
        pea_fail(err, errno, "open bundle %s", bundle_abs);
        return NULL;
    }
    AUTO_SPEC struct pea_spec *spec = spec_load(bundle_fd, err);
    if (!spec)
        return NULL;
    if (!spec->process) {
        pea_fail(err, 0, "process: missing");
        return NULL;
    }
    char joined[PATH_MAX];
    int n = spec->root_path[0] == '/' ? snprintf(joined, sizeof joined, "%s", spec->root_path)
                                      : snprintf(joined, sizeof joined, "%s/%s", bundle_abs, spec->root_path);
    if (n < 0 || (size_t)n >= sizeof joined) {
        pea_fail(err, ENAMETOOLONG, "root.path %s", spec->root_path);
        return NULL;
    }
    struct stat st;
    if (!realpath(joined, rootfs_abs) || stat(rootfs_abs, &st) < 0) {
        pea_fail(err, errno, "root.path %s", joined);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        pea_fail(err, 0, "root.path %s: not a directory", joined);
        return NULL;
    }
    return take_ptr(&spec);
}

/* Give each bind mount the caller resolved itself a detached copy of that object, for the child to attach. The copy
 * is made here: the child, in a mount namespace of its own, may not clone a mount of ours. */
static int attach_mount_sources(struct pea_spec *spec, const struct pea_create_options *o, struct pea_error *err)
{
    /* A copy made in our namespace carries none of the kernel's locks a user namespace would put on it: the
     * container's root could make a read-only source writable. With a user namespace the runtime's helper clones
     * the source in the container's namespace instead (rootfs_host.c), and only if it is the object checked here. */
    bool is_in_user_namespace = spec->namespaces[PEA_NS_USER].is_present;
    if (o->n_mount_sources > 0 && is_in_user_namespace && geteuid() != 0)
        return pea_fail(err, 0, "mount sources resolved by the caller need a runtime running as root with a user "
                        "namespace");
    for (size_t i = 0; i < o->n_mount_sources; i++) {
        const struct pea_mount_source *s = &o->mount_sources[i];
        struct pea_mount *m = NULL;
        for (size_t k = spec->n_mounts; k-- > 0 && !m;)
            if (spec->mounts[k].is_bind && strcmp(spec->mounts[k].destination, s->destination) == 0)
                m = &spec->mounts[k];
        if (!m || m->has_source_tree || m->has_source_identity)
            return pea_fail(err, 0, "mount source for %s: no bind mount of its own there in config.json",
                            s->destination);
        if (is_in_user_namespace) {
            struct stat st;
            if (fstat(s->fd, &st) < 0)
                return pea_fail(err, errno, "the mount source of %s", s->destination);
            m->source_dev = st.st_dev;
            m->source_ino = st.st_ino;
            m->has_source_identity = true;
            continue;
        }
        unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (m->is_recursive ? AT_RECURSIVE : 0);
        AUTO_FD int tree = open_tree(s->fd, "", flags);
        /* Above 0-2: the child puts the container's stdio there before it mounts. */
        if (tree >= 0 && tree < 3) {
            int above = fcntl(tree, F_DUPFD_CLOEXEC, 3);
            close(tree);
            tree = above;
        }
        if (tree < 0)
            return pea_fail(err, errno, "copy the mount source of %s", s->destination);
        /* Made in our namespace, it joined its source's peer group: ready here as a bind made in the container's
         * would be (a user namespace could not change it before attaching it). */
        if (rootfs_ready_host_tree(spec, m, tree, err) < 0)
            return -1;
        m->source_tree_fd = take_fd(&tree);
        m->has_source_tree = true;
    }
    return 0;
}

static int save_config_copy(int dir_fd, const char *bundle_abs, struct pea_error *err)
{
    AUTO_FD int bundle_fd = open(bundle_abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t len = 0;
    AUTO_FREE char *text = bundle_fd < 0 ? NULL : read_file_at(bundle_fd, "config.json", 16 << 20, &len);
    if (!text || write_file_atomic_at(dir_fd, PEA_CONFIG_COPY, text, len, 0600) < 0)
        return pea_fail(err, errno, "save config.json in the state directory");
    return 0;
}

/* ---- SIGINT/SIGTERM/SIGHUP while creates are in flight: kill their half-made children, so that each create's
 * normal failure path cleans up ---- */

#define INTERRUPT_SLOTS 32

static volatile pid_t interruptible[INTERRUPT_SLOTS];
static volatile sig_atomic_t is_interrupted;
static size_t jobs_in_flight;
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction saved_actions[ARRAY_SIZE(stop_signals)];

static void on_create_interrupt(int sig)
{
    (void)sig;
    is_interrupted = 1;
    for (size_t i = 0; i < INTERRUPT_SLOTS; i++)
        if (interruptible[i] > 0)
            kill(interruptible[i], SIGKILL);
}

static void interrupts_enter(struct pea_create_job *job)
{
    job->interrupt_slot = -1;
    if (jobs_in_flight++ > 0)
        return;
    is_interrupted = 0;
    struct sigaction sa = {.sa_handler = on_create_interrupt};
    for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
        sigaction(stop_signals[i], &sa, &saved_actions[i]);
}

/* The child exists: a signal from now on kills it. With every slot taken it is only aborted in finish. */
static void interrupts_watch(struct pea_create_job *job)
{
    for (int i = 0; i < INTERRUPT_SLOTS; i++)
        if (interruptible[i] == 0) {
            interruptible[i] = job->l.pid;
            job->interrupt_slot = i;
            return;
        }
}

static void interrupts_leave(struct pea_create_job *job)
{
    if (job->interrupt_slot >= 0)
        interruptible[job->interrupt_slot] = 0;
    job->interrupt_slot = -1;
    if (--jobs_in_flight > 0)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(stop_signals); i++)
        sigaction(stop_signals[i], &saved_actions[i], NULL);
}

/* ---- the two halves ---- */

static void job_free(struct pea_create_job *job)
{
    close_fdp(&job->cgroup_fd);
    close_fdp(&job->host_sources_sender);
    cgroup_systemd_unit_clear(&job->scope);
    close_fdp(&job->lock_fd);
    close_fdp(&job->dir_fd);
    close_fdp(&job->root_fd);
    spec_free(job->spec);
    state_clear(&job->st);
    free(job->id);
    free(job->pid_file);
    free(job->pidfd_socket);
    free(job->console_socket);
    free(job);
}

/* Before the state directory exists there is nothing to undo, and the error stays as it is. */
static int job_discard(struct pea_create_job *job)
{
    job_free(job);
    return -1;
}

/* Undo what the job made (the child, when there is one, is already gone) and free it. */
static int job_fail(struct pea_create_job *job, struct pea_error *err)
{
    if (job->st.cgroup_unit)
        cgroup_systemd_stop_scope(job->st.cgroup_unit, NULL);
    if (job->st.cgroup_path)
        cgroup_destroy_made(job->st.cgroup_path, job->st.cgroup_made_from, NULL);
    state_dir_remove(job->root_fd, job->id, NULL);
    pea_wrap(err, "create %s", job->id);
    job_free(job);
    return -1;
}

/* Up to the child setting up its root: everything on the parent's side but the wait for "ready". */
static int create_begin(const struct pea_create_options *o, struct pea_create_job **out, struct pea_error *err)
{
    if (state_validate_id(o->id, err) < 0)
        return -1;
    struct pea_create_job *job = xcalloc(1, sizeof *job);
    job->root_fd = job->dir_fd = job->lock_fd = job->cgroup_fd = job->host_sources_sender = -1;
    job->interrupt_slot = -1;
    job->id = xstrdup(o->id);
    job->pid_file = o->pid_file ? xstrdup(o->pid_file) : NULL;
    job->pidfd_socket = o->pidfd_socket ? xstrdup(o->pidfd_socket) : NULL;
    job->console_socket = o->console_socket ? xstrdup(o->console_socket) : NULL;
    process_launch_init(&job->l);
    job->spec = load_bundle(o->bundle, job->bundle_abs, job->rootfs_abs, err);
    if (!job->spec || ns_validate(job->spec, err) < 0 || attach_mount_sources(job->spec, o, err) < 0)
        return job_discard(job);
    const struct pea_spec *spec = job->spec;
    if (spec->process->terminal && o->is_detached && !o->console_socket) {
        pea_fail(err, 0, "create %s: process.terminal needs --console-socket when pea does not stay attached", o->id);
        return job_discard(job);
    }
    job->root_fd = state_root_open(o->root, true, err);
    if (job->root_fd < 0)
        return job_discard(job);
    job->dir_fd = state_dir_create(job->root_fd, o->id, err);
    if (job->dir_fd < 0)
        return job_discard(job); /* an existing one is another container's */
    job->lock_fd = state_lock(job->dir_fd, err);
    struct pea_state *st = &job->st;
    st->id = xstrdup(o->id);
    st->bundle = xstrdup(job->bundle_abs);
    st->rootfs = xstrdup(job->rootfs_abs);
    st->annotations = json_incref(spec->annotations);
    st->owner = geteuid();
    st->has_terminal = spec->process->terminal;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    format_rfc3339_nano(&now, st->created, sizeof st->created);
    if (job->lock_fd < 0)
        return job_fail(job, err);
    if (o->use_systemd_cgroup) {
        /* systemd makes the scope and any slice it needs, and removes them: nothing of it is pea's to remove. */
        if (cgroup_systemd_unit_for(spec->cgroups_path, o->id, &job->scope, err) < 0)
            return job_fail(job, err);
    } else {
        st->cgroup_path = cgroup_path_for(spec->cgroups_path, o->id, err);
        if (!st->cgroup_path || cgroup_check_placement(spec->cgroups_path, st->cgroup_path, err) < 0)
            return job_fail(job, err);
        /* Killed at any point from here on, `delete --force` must find everything made for the id: the cgroup and
         * the parents made for it are in both records before they exist. */
        st->cgroup_made_from = cgroup_topmost_missing_parent(st->cgroup_path);
    }
    if (state_save_record(job->dir_fd, st, err) < 0 || save_config_copy(job->dir_fd, job->bundle_abs, err) < 0 ||
        state_save(job->dir_fd, st, err) < 0)
        return job_fail(job, err);
    if (!o->use_systemd_cgroup)
        job->cgroup_fd = cgroup_create(st->cgroup_path, spec->resources, err);
    if (!o->use_systemd_cgroup && job->cgroup_fd < 0) {
        /* cgroup_create left nothing behind; the records name the cgroup until the init is recorded. */
        free(st->cgroup_path);
        free(st->cgroup_made_from);
        st->cgroup_path = st->cgroup_made_from = NULL;
        /* Rootless without a delegated subtree: the container runs without a cgroup of its own (no pause, no
         * kill --all), which is only acceptable when it asked for no limits. */
        bool is_denied = err->errnum == EACCES || err->errnum == EPERM || err->errnum == EROFS;
        if (!(geteuid() != 0 && is_denied && !spec->resources))
            return job_fail(job, err);
        log_debug("create %s: no cgroup of its own (%s)", o->id, err->msg);
    }
    /* Bind sources its user namespace could keep the container's root from reaching: a helper with our rights opens
     * them once the child has its mount namespace (create_on_namespaces_ready). */
    if (rootfs_host_sources_begin(job->spec, &job->host_sources_sender, err) < 0)
        return job_fail(job, err);
    struct pea_launch *l = &job->l;
    if (mkfifoat(job->dir_fd, PEA_EXEC_FIFO, 0600) < 0) {
        pea_fail(err, errno, "create exec fifo");
        return job_fail(job, err);
    }
    l->exec_fifo_fd = openat(job->dir_fd, PEA_EXEC_FIFO, O_RDWR | O_CLOEXEC);
    if (l->exec_fifo_fd < 0) {
        pea_fail(err, errno, "open exec fifo");
        return job_fail(job, err);
    }
    job->ctx = (struct create_context){.state = st,
                                       .dir_fd = job->dir_fd,
                                       .spec = spec,
                                       .host_sources_sender = job->host_sources_sender,
                                       .scope = &job->scope};
    l->spec = spec;
    l->rootfs = job->rootfs_abs;
    l->cgroup_fd = job->cgroup_fd;
    l->cgroup_path = st->cgroup_path;
    l->place_child = o->use_systemd_cgroup ? create_place_in_scope : NULL;
    l->console_socket = job->console_socket; /* the child may send its console while finish waits */
    l->preserve_fds = o->preserve_fds;
    for (int i = 0; o->has_stdio_fds && i < 3; i++)
        l->stdio_fds[i] = o->stdio_fds[i];
    l->no_pivot = o->no_pivot;
    l->no_new_keyring = o->no_new_keyring;
    l->on_namespaces_ready = create_on_namespaces_ready;
    l->context = &job->ctx;
    interrupts_enter(job);
    if (process_launch_begin(l, err) < 0) {
        interrupts_leave(job);
        close_fdp(&l->exec_fifo_fd);
        return job_fail(job, err);
    }
    interrupts_watch(job);
    *out = job;
    return 0;
}

/* Wait until the child is ready, then record it: created. On failure the child is gone and the job freed. */
static int create_finish(struct pea_create_job *job, struct pea_error *err)
{
    struct pea_launch *l = &job->l;
    int r = process_launch_finish(l, err);
    /* The child attached its copies of the host-side sources, or is gone. */
    rootfs_close_host_sources(job->spec);
    /* Also when it failed: the handler's SIGKILL may be why. */
    if (is_interrupted) {
        if (r == 0)
            process_abort(l);
        r = pea_fail(err, EINTR, "create interrupted");
    }
    if (r == 0) {
        job->st.is_created = true;
        /* The pidfd goes last: whoever receives it may already ask for the container's state. */
        bool is_done = state_save(job->dir_fd, &job->st, err) == 0 &&
                       container_write_pid_file(job->pid_file, l->pid, err) == 0 &&
                       (!job->pidfd_socket || console_send_fd_to_socket(job->pidfd_socket, "pidfd socket", l->pidfd,
                                                                         "pidfd", err) == 0);
        if (!is_done) {
            process_abort(l);
            r = -1;
        }
    }
    interrupts_leave(job);
    close_fdp(&l->exec_fifo_fd);
    l->exec_fifo_fd = -1;
    l->spec = NULL; /* the job's, freed with it or handed on */
    l->rootfs = NULL;
    l->cgroup_path = NULL;
    l->context = NULL;
    return r < 0 ? job_fail(job, err) : 0;
}

int container_create_launch(const struct pea_create_options *o, struct pea_launch *l, struct pea_spec **spec_out,
                            struct pea_error *err)
{
    struct pea_create_job *job = NULL;
    if (create_begin(o, &job, err) < 0 || create_finish(job, err) < 0)
        return -1;
    *l = job->l;
    l->console_socket = o->console_socket;
    *spec_out = take_ptr(&job->spec);
    job_free(job);
    return 0;
}

int container_create_begin(const struct pea_create_options *o, struct pea_create_job **job, struct pea_error *err)
{
    return create_begin(o, job, err);
}

int container_create_finish_console(struct pea_create_job *job, pid_t *pid, int *pidfd, int *console_master,
                                    struct pea_error *err)
{
    if (console_master)
        *console_master = -1;
    if (create_finish(job, err) < 0)
        return -1;
    int r = process_release(&job->l, err);
    if (r == 0 && pid)
        *pid = job->l.pid;
    if (r == 0 && pidfd)
        *pidfd = take_fd(&job->l.pidfd);
    if (r == 0 && console_master)
        *console_master = take_fd(&job->l.console_master);
    process_launch_close(&job->l);
    job_free(job);
    return r;
}

int container_create_finish(struct pea_create_job *job, pid_t *pid, int *pidfd, struct pea_error *err)
{
    return container_create_finish_console(job, pid, pidfd, NULL, err);
}

int container_create_child(const struct pea_create_options *o, pid_t *pid, int *pidfd, struct pea_error *err)
{
    struct pea_create_job *job = NULL;
    if (create_begin(o, &job, err) < 0)
        return -1;
    return container_create_finish(job, pid, pidfd, err);
}

int container_create(const struct pea_create_options *o, struct pea_error *err)
{
    return container_create_child(o, NULL, NULL, err);
}
