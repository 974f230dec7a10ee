#include "task_service.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "events.h"
#include "events.pb-c.h"
#include "oom.h"
#include "pea/util.h"
#include "rootfs_mount.h"
#include "runtime_options.h"
#include "shim_log.h"
#include "stats.h"
#include "task.h"
#include "task.pb-c.h"

static bool exit_requested;

static const char *default_state_root = "";
static const char *shim_namespace = "";
static char *state_root; /* the backend's root now: the default, or a task's Root */

void task_service_configure(const char *default_root, const char *namespace)
{
    default_state_root = default_root;
    shim_namespace = namespace;
    free(state_root);
    state_root = xstrdup(default_root);
}

bool task_service_should_exit(void) { return exit_requested && task_list_is_empty(); }

static void message_free_p(void *p)
{
    ProtobufCMessage **m = p;
    if (*m)
        protobuf_c_message_free_unpacked(*m, NULL);
}
#define AUTO_MESSAGE __attribute__((cleanup(message_free_p)))

/* Decode the request or answer InvalidArgument and return from the handler. */
#define UNPACK(type, prefix, var)                                                                               \
    AUTO_MESSAGE type *var = prefix##__unpack(NULL, req->payload_len, req->payload);                            \
    if (!var) {                                                                                                 \
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "%s: malformed request", req->method); \
        return;                                                                                                 \
    }

static void timestamp_of(const struct shim_process *p, Google__Protobuf__Timestamp *out,
                         Google__Protobuf__Timestamp **field)
{
    if (p->status != PROCESS_STOPPED)
        return; /* containerd reads a missing time as "not exited" */
    out->seconds = p->exited_at.tv_sec;
    out->nanos = (int32_t)p->exited_at.tv_nsec;
    *field = out;
}

/* Container and exec ids name files in the bundle: no path separators, no dot files. */
static bool is_valid_id(const char *id)
{
    return id && *id && id[0] != '.' && !strchr(id, '/') && strlen(id) <= 255;
}

/* The process, or NotFound answered. */
static struct shim_process *lookup(struct ttrpc_conn *conn, const struct ttrpc_request *req, const char *id,
                                   const char *exec_id)
{
    struct shim_process *p = task_find_process(id, exec_id);
    if (!p) {
        if (exec_id && *exec_id && task_find(id))
            ttrpc_respond_error(conn, req->stream_id, TTRPC_NOT_FOUND, "process %s of task %s: not found", exec_id,
                                id);
        else
            ttrpc_respond_error(conn, req->stream_id, TTRPC_NOT_FOUND, "task %s: not found", id);
    }
    return p;
}

static void respond_failure(struct ttrpc_conn *conn, const struct ttrpc_request *req, const struct pea_error *err)
{
    ttrpc_respond_error(conn, req->stream_id, TTRPC_UNKNOWN, "%s", err->msg);
}

/* Whether config.json gives the container a PID namespace of its own (a pid entry without a path). */
static bool has_own_pid_namespace(const char *bundle)
{
    AUTO_FREE char *path = xasprintf("%s/config.json", bundle);
    AUTO_JSON json_t *spec = json_load_file(path, 0, NULL);
    json_t *ns;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(spec, "linux"), "namespaces"), i, ns) {
        const char *type = json_string_value(json_object_get(ns, "type"));
        if (type && strcmp(type, "pid") == 0)
            return !json_object_get(ns, "path");
    }
    return false;
}

/* Create pea's process (init or exec) with its stdio; on success the process runs (or waits for start). */
static int launch(struct shim_process *p, bool is_exec, const struct runtime_options *options, struct pea_error *err)
{
    struct shim_task *t = p->task;
    struct console_socket console = {.fd = -1};
    if (p->io.terminal && console_socket_open(&console, err) < 0)
        return -1;
    AUTO_FREE char *pid_file = is_exec ? NULL : xasprintf("%s/init.pid", t->bundle);
    struct backend_process_options o = {
        .id = t->id,
        .bundle = t->bundle,
        .pid_file = pid_file,
        .console_socket = p->io.terminal ? console.path : NULL,
        .stdio = p->io.child,
        .systemd_cgroup = options && options->systemd_cgroup,
        .no_pivot_root = options && options->no_pivot_root,
        .no_new_keyring = options && options->no_new_keyring,
    };
    int rc = is_exec ? backend_exec(&o, p->spec_json, p->spec_len, &p->pid, err) : backend_create(&o, &p->pid, err);
    if (rc == 0 && p->io.terminal) {
        int master = -1;
        rc = console_socket_receive(&console, &master, err);
        if (rc == 0)
            rc = stdio_attach_console(&p->io, master, err);
        if (rc < 0 && is_exec && p->pid > 0)
            kill(p->pid, SIGKILL); /* reaped by the loop; the process stays created */
    }
    console_socket_close(&console);
    stdio_close_child_ends(&p->io);
    return rc;
}

/* An exec process's fifos, whose names Exec recorded, opened when it starts. */
static int open_exec_stdio(struct shim_process *p, struct pea_error *err)
{
    AUTO_FREE char *in = take_ptr(&p->io.stdin_path);
    AUTO_FREE char *out = take_ptr(&p->io.stdout_path);
    AUTO_FREE char *err_path = take_ptr(&p->io.stderr_path);
    return stdio_open(&p->io, in, out, err_path, p->io.terminal, &(struct stdio_context){
        .container_id = p->task->id, .has_io_owner = p->task->has_io_owner, .io_uid = p->task->io_uid,
        .io_gid = p->task->io_gid}, err);
}

/* Whether this shim runs in the cgroup ShimCgroup names (containerd gives it when the shim starts). */
static int check_shim_cgroup(const char *shim_cgroup, struct pea_error *err)
{
    AUTO_FREE char *text = read_file_at(AT_FDCWD, "/proc/self/cgroup", 4096, NULL);
    if (!text)
        return pea_fail(err, errno, "read /proc/self/cgroup");
    const char *line = strstr(text, "0::");
    if (!line)
        return pea_fail(err, 0, "runtime option ShimCgroup %s: the shim is in no cgroup v2", shim_cgroup);
    line += 3;
    size_t len = strcspn(line, "\n");
    size_t want = strlen(shim_cgroup);
    while (want > 1 && shim_cgroup[want - 1] == '/')
        want--;
    if (len != want || strncmp(line, shim_cgroup, len) != 0)
        return pea_fail(err, 0, "runtime option ShimCgroup %s: this shim runs in %.*s (ShimCgroup applies when "
                        "containerd starts the shim, from the runtime's options)", shim_cgroup, (int)len, line);
    return 0;
}

/* Check a new task's runtime options against what this shim can do, and set its state root. */
static int apply_runtime_options(struct shim_task *t, const struct runtime_options *o, struct pea_error *err)
{
    if (o->shim_cgroup && check_shim_cgroup(o->shim_cgroup, err) < 0)
        return -1;
    AUTO_FREE char *root = runtime_options_state_root(o, default_state_root, shim_namespace);
    if (strcmp(root, state_root) != 0) {
        /* The backend has one root: it moves only while no other task lives under the old one. */
        if (!task_is_only(t))
            return pea_fail(err, 0, "runtime option Root: this shim's other tasks use the state root %s, not %s",
                            state_root, root);
        if (mkdir_p(root, 0700) < 0)
            return pea_fail(err, errno, "create the state root %s", root);
        backend_set_root(root);
        free(state_root);
        state_root = take_ptr(&root);
    }
    AUTO_FREE char *root_file = xasprintf("%s/%s", t->bundle, TASK_STATE_ROOT_FILE);
    if (strcmp(state_root, default_state_root) != 0 &&
        write_file_atomic_at(AT_FDCWD, root_file, state_root, strlen(state_root), 0600) < 0)
        return pea_fail(err, errno, "write %s", root_file);
    t->has_io_owner = o->has_io_owner;
    t->io_uid = o->io_uid;
    t->io_gid = o->io_gid;
    return 0;
}

/* Mount the rootfs, open the stdio, create the container; the caller undoes what was done on failure. */
static int create_task(struct shim_task *t, const Containerd__Task__V2__CreateTaskRequest *r,
                       const struct runtime_options *options, struct pea_error *err)
{
    if (apply_runtime_options(t, options, err) < 0)
        return -1;
    t->has_own_pid_namespace = has_own_pid_namespace(r->bundle);
    if (r->n_rootfs) {
        if (rootfs_mount_all(r->bundle, r->rootfs, r->n_rootfs, err) < 0)
            return -1;
        t->has_rootfs_mounts = true;
    }
    struct stdio_context context = {.container_id = t->id, .has_io_owner = t->has_io_owner, .io_uid = t->io_uid,
                                    .io_gid = t->io_gid};
    if (stdio_open(&t->init.io, r->stdin, r->stdout, r->stderr, r->terminal, &context, err) < 0)
        return -1;
    return launch(&t->init, false, options, err);
}

static void handle_create(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__CreateTaskRequest, containerd__task__v2__create_task_request, r);
    struct pea_error err = {0};
    if (!is_valid_id(r->id) || r->bundle[0] != '/') {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "create: invalid id %s or bundle %s", r->id,
                            r->bundle);
        return;
    }
    if (task_find(r->id)) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_ALREADY_EXISTS, "task %s: already exists", r->id);
        return;
    }
    if (r->checkpoint[0] || r->parent_checkpoint[0]) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_UNIMPLEMENTED,
                            "create %s from a checkpoint: not supported (pea implements no CRIU restore)", r->id);
        return;
    }
    struct runtime_options options __attribute__((cleanup(runtime_options_release))) = {0};
    if (r->options && runtime_options_parse(r->options->type_url, r->options->value.data, r->options->value.len,
                                            &options, &err) < 0) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "create %s: %s", r->id, err.msg);
        return;
    }
    struct shim_task *t = task_add(r->id, r->bundle);
    if (create_task(t, r, &options, &err) < 0) {
        if (t->init.pid > 0) {
            struct pea_error ignored = {0};
            backend_delete(t->id, t->bundle, true, &ignored);
        }
        if (t->has_rootfs_mounts)
            rootfs_unmount_all(t->bundle);
        task_remove(t);
        ttrpc_respond_error(conn, req->stream_id, TTRPC_UNKNOWN, "create %s: %s", r->id, err.msg);
        return;
    }
    oom_watch(t->id, t->init.pid);

    Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
    io.stdin = r->stdin;
    io.stdout = r->stdout;
    io.stderr = r->stderr;
    io.terminal = r->terminal;
    Containerd__Events__TaskCreate e = CONTAINERD__EVENTS__TASK_CREATE__INIT;
    e.container_id = r->id;
    e.bundle = r->bundle;
    e.n_rootfs = r->n_rootfs;
    e.rootfs = r->rootfs;
    e.io = &io;
    e.pid = (uint32_t)t->init.pid;
    events_publish("/tasks/create", &e.base);

    Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
    resp.pid = (uint32_t)t->init.pid;
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
}

static void handle_start(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__StartRequest, containerd__task__v2__start_request, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (!p)
        return;
    if (p->status != PROCESS_CREATED) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_FAILED_PRECONDITION, "start %s: it was started already",
                            process_id(p));
        return;
    }
    struct pea_error err = {0};
    if (p->exec_id) {
        if (p->task->init.status != PROCESS_RUNNING) {
            ttrpc_respond_error(conn, req->stream_id, TTRPC_FAILED_PRECONDITION,
                                "exec %s in %s: the container is not running", p->exec_id, p->task->id);
            return;
        }
        if (open_exec_stdio(p, &err) < 0 || launch(p, true, NULL, &err) < 0) {
            stdio_release(&p->io);
            ttrpc_respond_error(conn, req->stream_id, TTRPC_UNKNOWN, "exec %s in %s: %s", p->exec_id, p->task->id,
                                err.msg);
            return;
        }
        free(p->spec_json);
        p->spec_json = NULL;
        p->status = PROCESS_RUNNING;
        Containerd__Events__TaskExecStarted e = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
        e.container_id = p->task->id;
        e.exec_id = p->exec_id;
        e.pid = (uint32_t)p->pid;
        events_publish("/tasks/exec-started", &e.base);
    } else {
        if (backend_start(p->task->id, p->task->bundle, &err) < 0) {
            respond_failure(conn, req, &err);
            return;
        }
        p->status = PROCESS_RUNNING;
        Containerd__Events__TaskStart e = CONTAINERD__EVENTS__TASK_START__INIT;
        e.container_id = p->task->id;
        e.pid = (uint32_t)p->pid;
        events_publish("/tasks/start", &e.base);
    }
    Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
    resp.pid = (uint32_t)p->pid;
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
}

static void handle_delete(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__DeleteRequest, containerd__task__v2__delete_request, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (!p)
        return;
    if (p->status == PROCESS_RUNNING || p->status == PROCESS_PAUSED) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_FAILED_PRECONDITION,
                            "delete %s: the process is still running; kill it first", process_id(p));
        return;
    }
    struct shim_task *t = p->task;
    if (!p->exec_id) {
        struct pea_error err = {0};
        if (backend_delete(t->id, t->bundle, p->status == PROCESS_CREATED, &err) < 0) {
            respond_failure(conn, req, &err);
            return;
        }
        if (t->has_rootfs_mounts)
            rootfs_unmount_all(t->bundle);
    }
    Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    resp.pid = (uint32_t)p->pid;
    resp.exit_status = p->exit_status;
    timestamp_of(p, &at, &resp.exited_at);
    if (!p->exec_id) {
        Containerd__Events__TaskDelete e = CONTAINERD__EVENTS__TASK_DELETE__INIT;
        e.container_id = t->id;
        e.pid = resp.pid;
        e.exit_status = resp.exit_status;
        e.exited_at = resp.exited_at;
        events_publish("/tasks/delete", &e.base);
    }
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
    if (p->exec_id)
        task_remove_exec(p);
    else
        task_remove(t);
}

static void handle_exec(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__ExecProcessRequest, containerd__task__v2__exec_process_request, r);
    struct shim_task *t = task_find(r->id);
    if (!t) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_NOT_FOUND, "task %s: not found", r->id);
        return;
    }
    if (!is_valid_id(r->exec_id)) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "exec: invalid exec id %s", r->exec_id);
        return;
    }
    if (task_find_process(r->id, r->exec_id)) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_ALREADY_EXISTS, "exec %s in %s: already exists", r->exec_id,
                            r->id);
        return;
    }
    if (!r->spec || !r->spec->value.len) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "exec %s: no process spec", r->exec_id);
        return;
    }
    struct shim_process *p = task_add_exec(t, r->exec_id);
    p->spec_json = xmalloc(r->spec->value.len + 1);
    memcpy(p->spec_json, r->spec->value.data, r->spec->value.len);
    p->spec_json[r->spec->value.len] = '\0';
    p->spec_len = r->spec->value.len;
    /* The fifos are opened when it starts; keep their names for then (and for State). */
    p->io.stdin_path = xstrdup(r->stdin);
    p->io.stdout_path = xstrdup(r->stdout);
    p->io.stderr_path = xstrdup(r->stderr);
    p->io.terminal = r->terminal;
    Containerd__Events__TaskExecAdded e = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
    e.container_id = t->id;
    e.exec_id = p->exec_id;
    events_publish("/tasks/exec-added", &e.base);
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static void handle_state(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__StateRequest, containerd__task__v2__state_request, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (!p)
        return;
    static const Containerd__V1__Types__Status statuses[] = {
        [PROCESS_CREATED] = CONTAINERD__V1__TYPES__STATUS__CREATED,
        [PROCESS_RUNNING] = CONTAINERD__V1__TYPES__STATUS__RUNNING,
        [PROCESS_PAUSED] = CONTAINERD__V1__TYPES__STATUS__PAUSED,
        [PROCESS_STOPPED] = CONTAINERD__V1__TYPES__STATUS__STOPPED,
    };
    Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    resp.id = (char *)process_id(p);
    resp.bundle = p->task->bundle;
    resp.pid = (uint32_t)p->pid;
    resp.status = statuses[p->status];
    resp.stdin = p->io.stdin_path ? p->io.stdin_path : "";
    resp.stdout = p->io.stdout_path ? p->io.stdout_path : "";
    resp.stderr = p->io.stderr_path ? p->io.stderr_path : "";
    resp.terminal = p->io.terminal;
    resp.exit_status = p->exit_status;
    resp.exec_id = p->exec_id ? p->exec_id : "";
    timestamp_of(p, &at, &resp.exited_at);
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
}

static void handle_pids(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__PidsRequest, containerd__task__v2__pids_request, r);
    struct shim_process *p = lookup(conn, req, r->id, NULL);
    if (!p)
        return;
    struct pea_error err = {0};
    AUTO_FREE pid_t *pids = NULL;
    size_t count = 0;
    if (backend_pids(r->id, p->task->bundle, &pids, &count, &err) < 0) {
        respond_failure(conn, req, &err);
        return;
    }
    AUTO_FREE Containerd__V1__Types__ProcessInfo *infos = xcalloc(count + 1, sizeof *infos);
    AUTO_FREE Containerd__V1__Types__ProcessInfo **list = xcalloc(count + 1, sizeof *list);
    for (size_t i = 0; i < count; i++) {
        containerd__v1__types__process_info__init(&infos[i]);
        infos[i].pid = (uint32_t)pids[i];
        list[i] = &infos[i];
    }
    Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
    resp.n_processes = count;
    resp.processes = list;
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
}

static void pause_or_resume(struct ttrpc_conn *conn, const struct ttrpc_request *req, const char *id, bool pause)
{
    struct shim_process *p = lookup(conn, req, id, NULL);
    if (!p)
        return;
    if (p->status != (pause ? PROCESS_RUNNING : PROCESS_PAUSED)) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_FAILED_PRECONDITION, "%s %s: the task is not %s",
                            pause ? "pause" : "resume", id, pause ? "running" : "paused");
        return;
    }
    struct pea_error err = {0};
    if ((pause ? backend_pause : backend_resume)(id, p->task->bundle, &err) < 0) {
        respond_failure(conn, req, &err);
        return;
    }
    p->status = pause ? PROCESS_PAUSED : PROCESS_RUNNING;
    if (pause) {
        Containerd__Events__TaskPaused e = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
        e.container_id = p->task->id;
        events_publish("/tasks/paused", &e.base);
    } else {
        Containerd__Events__TaskResumed e = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
        e.container_id = p->task->id;
        events_publish("/tasks/resumed", &e.base);
    }
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static void handle_pause(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__PauseRequest, containerd__task__v2__pause_request, r);
    pause_or_resume(conn, req, r->id, true);
}

static void handle_resume(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__ResumeRequest, containerd__task__v2__resume_request, r);
    pause_or_resume(conn, req, r->id, false);
}

static void handle_checkpoint(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__CheckpointTaskRequest, containerd__task__v2__checkpoint_task_request, r);
    ttrpc_respond_error(conn, req->stream_id, TTRPC_UNIMPLEMENTED,
                        "checkpoint %s: not supported (pea implements no CRIU checkpoints)", r->id);
}

static void handle_kill(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__KillRequest, containerd__task__v2__kill_request, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (!p)
        return;
    if (r->signal == 0 || r->signal > 64) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_INVALID_ARGUMENT, "kill %s: invalid signal %u", r->id,
                            r->signal);
        return;
    }
    if (p->status == PROCESS_STOPPED || (p->exec_id && p->pid == 0)) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_NOT_FOUND, "kill %s: process already finished",
                            process_id(p));
        return;
    }
    struct pea_error err = {0};
    if (p->exec_id) {
        /* The exec process is the shim's child (it reaps it), so its PID cannot name another process yet. */
        if (kill(p->pid, (int)r->signal) < 0) {
            ttrpc_respond_error(conn, req->stream_id, errno == ESRCH ? TTRPC_NOT_FOUND : TTRPC_UNKNOWN,
                                "kill %s: %s", p->exec_id, strerror(errno));
            return;
        }
    } else if (backend_kill(r->id, p->task->bundle, (int)r->signal, r->all, &err) < 0) {
        respond_failure(conn, req, &err);
        return;
    }
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static void handle_resize_pty(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__ResizePtyRequest, containerd__task__v2__resize_pty_request, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (!p)
        return;
    struct pea_error err = {0};
    if (stdio_resize(&p->io, r->width, r->height, &err) < 0) {
        respond_failure(conn, req, &err);
        return;
    }
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static void handle_close_io(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__CloseIORequest, containerd__task__v2__close_iorequest, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (!p)
        return;
    if (r->stdin)
        stdio_close_stdin(&p->io);
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static void handle_update(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__UpdateTaskRequest, containerd__task__v2__update_task_request, r);
    struct shim_process *p = lookup(conn, req, r->id, NULL);
    if (!p)
        return;
    if (r->n_annotations)
        shim_log("update %s: annotations are not applied by pea (only resources)", r->id);
    if (!r->resources || !r->resources->value.len) {
        ttrpc_respond_message(conn, req->stream_id, NULL);
        return;
    }
    struct pea_error err = {0};
    if (backend_update(r->id, p->task->bundle, (const char *)r->resources->value.data, r->resources->value.len,
                       &err) < 0) {
        respond_failure(conn, req, &err);
        return;
    }
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static void handle_wait(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__WaitRequest, containerd__task__v2__wait_request, r);
    struct shim_process *p = lookup(conn, req, r->id, r->exec_id);
    if (p)
        task_park_wait(p, conn, req->stream_id, &req->deadline);
}

static void handle_stats(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__StatsRequest, containerd__task__v2__stats_request, r);
    struct shim_process *p = lookup(conn, req, r->id, NULL);
    if (!p)
        return;
    if (p->status == PROCESS_STOPPED || p->pid <= 0) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_NOT_FOUND, "stats %s: the task has no cgroup any more",
                            r->id);
        return;
    }
    struct pea_error err = {0};
    AUTO_FREE uint8_t *metrics = NULL;
    size_t len = 0;
    if (stats_collect(p->pid, &metrics, &len, &err) < 0) {
        respond_failure(conn, req, &err);
        return;
    }
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = STATS_TYPE_URL;
    any.value.data = metrics;
    any.value.len = len;
    Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
    resp.stats = &any;
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
}

static void handle_connect(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__ConnectRequest, containerd__task__v2__connect_request, r);
    struct shim_task *t = task_find(r->id);
    Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
    resp.shim_pid = (uint32_t)getpid();
    resp.task_pid = t ? (uint32_t)t->init.pid : 0;
    resp.version = PEA_VERSION;
    ttrpc_respond_message(conn, req->stream_id, &resp.base);
}

static void handle_shutdown(struct ttrpc_conn *conn, const struct ttrpc_request *req)
{
    UNPACK(Containerd__Task__V2__ShutdownRequest, containerd__task__v2__shutdown_request, r);
    /* A shim with tasks stays (containerd asks after each task's deletion); without, it exits, once every task
     * whose `start` chose this shim has sent its Create (daemon.c), after withdrawing its socket. */
    if (task_list_is_empty())
        exit_requested = true;
    ttrpc_respond_message(conn, req->stream_id, NULL);
}

static const struct {
    const char *name;
    void (*handle)(struct ttrpc_conn *conn, const struct ttrpc_request *req);
} methods[] = {
    {"State", handle_state},   {"Create", handle_create},         {"Start", handle_start},
    {"Delete", handle_delete}, {"Pids", handle_pids},             {"Pause", handle_pause},
    {"Resume", handle_resume}, {"Checkpoint", handle_checkpoint}, {"Kill", handle_kill},
    {"Exec", handle_exec},     {"ResizePty", handle_resize_pty},  {"CloseIO", handle_close_io},
    {"Update", handle_update}, {"Wait", handle_wait},             {"Stats", handle_stats},
    {"Connect", handle_connect}, {"Shutdown", handle_shutdown},
};

void task_service_handle(struct ttrpc_conn *conn, const struct ttrpc_request *req, void *ctx)
{
    (void)ctx;
    if (strcmp(req->service, TASK_SERVICE_NAME) != 0) {
        ttrpc_respond_error(conn, req->stream_id, TTRPC_UNIMPLEMENTED, "service %s", req->service);
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
        if (strcmp(req->method, methods[i].name) == 0) {
            shim_log_debug("%s %s", TASK_SERVICE_NAME, req->method);
            methods[i].handle(conn, req);
            return;
        }
    }
    ttrpc_respond_error(conn, req->stream_id, TTRPC_UNIMPLEMENTED, "method %s", req->method);
}
