/* The shim's containers through libpea (see backend.h). Each call runs to completion while the shim's loop waits,
 * as the runc shim waits for runc; a container's setup takes milliseconds. */
#include "backend.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "pea/container.h"
#include "pea/log.h"
#include "pea/seccomp.h"
#include "pea/util.h"
#include "shim_log.h"

static const char *pea_root = "/run/containerd/pea";
static bool is_debug;

void backend_configure(const char *root, bool debug)
{
    pea_root = root;
    is_debug = debug;
    /* The shim's stderr is containerd's log, in its own format: pea's lines go to BUNDLE/log.json only. */
    log_use_stderr(false);
    seccomp_cache_use_default_dir();
}

void backend_set_root(const char *root)
{
    pea_root = root;
}

/* Log this call's lines to BUNDLE/log.json, as `pea --log BUNDLE/log.json --log-format json` did. */
static void call_begin(const char *bundle)
{
    AUTO_FREE char *path = xasprintf("%s/log.json", bundle);
    if (log_open(path, PEA_LOG_JSON, is_debug) < 0)
        shim_log_debug("open %s: %s", path, strerror(errno));
}

static int call_end(int rc, const struct pea_error *err)
{
    if (rc < 0)
        log_error("%s", err->msg);
    log_close();
    return rc;
}

int backend_create(const struct backend_process_options *o, pid_t *pid, struct pea_error *err)
{
    struct pea_create_options c = {
        .root = pea_root,
        .id = o->id,
        .bundle = o->bundle,
        .pid_file = o->pid_file,
        .console_socket = o->console_socket,
        .is_detached = true,
        .has_stdio_fds = true,
        .use_systemd_cgroup = o->systemd_cgroup,
        .no_pivot = o->no_pivot_root,
        .no_new_keyring = o->no_new_keyring,
    };
    memcpy(c.stdio_fds, o->stdio, sizeof c.stdio_fds);
    call_begin(o->bundle);
    AUTO_FD int pidfd = -1;
    return call_end(container_create_child(&c, pid, &pidfd, err), err);
}

int backend_start(const char *id, const char *bundle, struct pea_error *err)
{
    call_begin(bundle);
    return call_end(container_start(pea_root, id, err), err);
}

int backend_kill(const char *id, const char *bundle, int signal, bool all, struct pea_error *err)
{
    call_begin(bundle);
    return call_end(container_kill(pea_root, id, signal, all, err), err);
}

int backend_delete(const char *id, const char *bundle, bool force, struct pea_error *err)
{
    call_begin(bundle);
    return call_end(container_delete(pea_root, id, force, err), err);
}

int backend_exec(const struct backend_process_options *o, const char *process_json, size_t process_len, pid_t *pid,
                 struct pea_error *err)
{
    call_begin(o->bundle);
    json_error_t parse_error;
    AUTO_JSON json_t *process = json_loadb(process_json, process_len, JSON_REJECT_DUPLICATES, &parse_error);
    if (!json_is_object(process))
        return call_end(pea_fail(err, 0, "exec %s: process: %s", o->id,
                                 process ? "not a JSON object" : parse_error.text), err);
    struct pea_exec_options e = {
        .root = pea_root,
        .id = o->id,
        .process = process,
        .console_socket = o->console_socket,
        .detach = true,
        .has_stdio_fds = true,
    };
    memcpy(e.stdio_fds, o->stdio, sizeof e.stdio_fds);
    AUTO_FD int pidfd = -1, console_master = -1;
    return call_end(container_exec_child(&e, pid, &pidfd, &console_master, err), err);
}

int backend_pause(const char *id, const char *bundle, struct pea_error *err)
{
    call_begin(bundle);
    return call_end(container_pause(pea_root, id, true, err), err);
}

int backend_resume(const char *id, const char *bundle, struct pea_error *err)
{
    call_begin(bundle);
    return call_end(container_pause(pea_root, id, false, err), err);
}

int backend_update(const char *id, const char *bundle, const char *resources_json, size_t len, struct pea_error *err)
{
    call_begin(bundle);
    json_error_t parse_error;
    AUTO_JSON json_t *resources = json_loadb(resources_json, len, 0, &parse_error);
    if (!json_is_object(resources))
        return call_end(pea_fail(err, 0, "update %s: resources: %s", id,
                                 resources ? "not a JSON object" : parse_error.text), err);
    return call_end(container_update(pea_root, id, resources, err), err);
}

int backend_pids(const char *id, const char *bundle, pid_t **pids, size_t *count, struct pea_error *err)
{
    call_begin(bundle);
    return call_end(container_pids(pea_root, id, pids, count, err), err);
}
