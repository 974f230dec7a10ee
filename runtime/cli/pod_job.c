/* Jobs: what Kubernetes' Job controller does, for one node. Each Job has a record, ROOT/jobs/NAME.json, and a
 * controller: a detached pea process (in a session of its own, its output in ROOT/jobs/NAME.log) that makes the
 * Job's pods NAME-0, NAME-1, ... under pea-shim, watches them finish and keeps the counts:
 * - at most parallelism pods run at once, and no more are made than completions still wanted;
 * - a pod whose app containers all exited 0 succeeded; one that exited otherwise, or vanished, failed and is
 *   replaced after a back-off (1 s, doubled up to 6 minutes: the kubelet's 10 s start shortened as pea shortens
 *   container restarts);
 * - the Job fails (BackoffLimitExceeded) once more pods failed than backoffLimit, or under restartPolicy OnFailure
 *   once the running pods' containers restarted backoffLimit times (as pastBackoffLimitOnFailure counts), and
 *   (DeadlineExceeded) once it has run activeDeadlineSeconds; its running pods are then removed;
 * - it is Complete once completions pods succeeded (without completions: once one did and none runs).
 * Finished pods stay, as in Kubernetes, until the Job is removed (`pea pod rm job/NAME`). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pod_job.h"
#include "pea/log.h"
#include "pea/sys.h"
#include "pea/util.h"

#define JOB_POLL_MS 200
#define JOB_BACKOFF_FIRST_MS 1000LL
#define JOB_BACKOFF_MAX_MS (6 * 60 * 1000LL)
/* A record is small: the counts and one entry per pod made. */
#define JOB_RECORD_MAX (4 << 20)
/* How long `pea pod rm job/NAME` lets the controller finish what it does (making one pod) before killing it. */
#define JOB_CONTROLLER_STOP_MS (POD_SHIM_READY_TIMEOUT_MS + 5000)

static char *jobs_dir(const struct cli_globals *g) { return xasprintf("%s/jobs", g->root); }

static char *record_path(const struct cli_globals *g, const char *name)
{
    return xasprintf("%s/jobs/%s.json", g->root, name);
}

json_t *pod_job_record(const struct cli_globals *g, const char *name, struct pea_error *err)
{
    AUTO_FREE char *path = record_path(g, name);
    size_t len;
    AUTO_FREE char *text = read_file_at(AT_FDCWD, path, JOB_RECORD_MAX, &len);
    if (!text) {
        if (errno == ENOENT)
            pea_fail(err, 0, "job.batch \"%s\" does not exist", name);
        else
            pea_fail(err, errno, "read %s", path);
        return NULL;
    }
    json_error_t jerr;
    json_t *record = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(record)) {
        json_decref(record);
        pea_fail(err, 0, "%s: not a Job record", path);
        return NULL;
    }
    return record;
}

static int save_record(const struct cli_globals *g, json_t *record, struct pea_error *err)
{
    AUTO_FREE char *dir = jobs_dir(g);
    AUTO_FD int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    AUTO_FREE char *text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    AUTO_FREE char *file = xasprintf("%s.json", json_string_value(json_object_get(record, "name")));
    if (dir_fd < 0 || write_file_atomic_at(dir_fd, file, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "write %s/%s", dir, file);
    return 0;
}

static void now_rfc3339(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* ---- the controller ---- */

static volatile sig_atomic_t is_stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    is_stop_requested = 1;
}

enum pod_outcome { POD_ACTIVE, POD_SUCCEEDED, POD_FAILED };

/* What became of one of the Job's pods; *restarts: its containers' restarts while it runs. */
static enum pod_outcome observe_pod(const struct cli_globals *g, const char *name, long long *restarts)
{
    struct pea_error err = {0};
    AUTO_POD struct pea_pod *pod = NULL;
    *restarts = 0;
    /* Removed from under the Job: Kubernetes counts a deleted running pod as failed. */
    if (pod_open(g->root, name, &pod, &err) < 0)
        return POD_FAILED;
    AUTO_JSON json_t *status = pod_shim_status(pod);
    const char *phase = json_string_value(json_object_get(status, "status"));
    if (!phase)
        return POD_FAILED; /* its shim is gone: nothing runs or reports it any more */
    json_t *containers = json_object_get(status, "containers");
    size_t i;
    json_t *c;
    bool is_finished = strcmp(phase, "finished") == 0, has_failed = false;
    json_array_foreach(containers, i, c) {
        *restarts += json_integer_value(json_object_get(c, "restarts"));
        bool is_sidecar = json_is_true(json_object_get(c, "sidecar"));
        json_t *code = json_object_get(c, "exitCode");
        if (is_finished && !is_sidecar && (!json_is_integer(code) || json_integer_value(code) != 0))
            has_failed = true;
    }
    if (strcmp(phase, "stopping") == 0)
        return POD_FAILED;
    return !is_finished ? POD_ACTIVE : has_failed ? POD_FAILED : POD_SUCCEEDED;
}

struct job_run {
    const struct cli_globals *g;
    const struct pea_manifest_objects *objects;
    const struct pea_workload *w;
    const struct pod_apply_options *o;
    json_t *record;
    bool is_on_failure;
    long long started_ms;     /* monotonic, when this controller started */
    long long elapsed_before; /* seconds the Job had run before this controller took it over */
    long long next_pod_ms;    /* no pod is made before this (the back-off after a failure) */
    long long backoff_ms;
};

static void set_count(json_t *record, const char *key, long long n)
{
    json_object_set_new(record, key, json_integer(n));
}

/* Remove the pods still running and record the end. */
static void finish(struct job_run *run, const char *status, const char *reason)
{
    json_t *pods = json_object_get(run->record, "pods");
    const char *name;
    json_t *outcome;
    json_object_foreach(pods, name, outcome) {
        if (strcmp(json_string_value(outcome), "Active") != 0)
            continue;
        struct pea_error err = {0};
        if (pod_rm_one(run->g, name, false, -1, &err) < 0)
            log_warn("job %s: remove pod %s: %s", run->w->name, name, err.msg);
        json_object_set_new(pods, name, json_string("Failed"));
        set_count(run->record, "failed", json_integer_value(json_object_get(run->record, "failed")) + 1);
    }
    char when[32];
    now_rfc3339(when, sizeof when);
    json_object_set_new(run->record, "status", json_string(status));
    if (reason)
        json_object_set_new(run->record, "reason", json_string(reason));
    json_object_set_new(run->record, strcmp(status, "Complete") == 0 ? "completionTime" : "failedTime",
                        json_string(when));
    set_count(run->record, "active", 0);
    log_msg(PEA_LOG_INFO, "job %s: %s%s%s", run->w->name, status, reason ? ": " : "", reason ? reason : "");
}

static void make_pod(struct job_run *run)
{
    json_int_t index = json_integer_value(json_object_get(run->record, "next"));
    json_object_set_new(run->record, "next", json_integer(index + 1));
    struct pea_error err = {0};
    AUTO_FREE char *owner = xasprintf("Job/%s", run->w->name);
    struct pea_pod_manifest *m = manifest_workload_pod(run->objects, run->w, index, &err);
    const char *name = m ? m->name : NULL;
    AUTO_FREE char *pod_name = name ? xstrdup(name) : xasprintf("%s-%lld", run->w->name, (long long)index);
    /* A pod that cannot be made counts as failed, as a pod that cannot start would. */
    json_t *pods = json_object_get(run->record, "pods");
    if (!m || pod_check_owner(run->g, pod_name, owner, &err) < 0) {
        manifest_free(m);
        log_warn("job %s: %s", run->w->name, err.msg);
        json_object_set_new(pods, pod_name, json_string("Failed"));
        return;
    }
    json_object_set_new(pods, pod_name, json_string("Active"));
    if (pod_apply_manifest(run->g, m, run->o) != 0)
        log_warn("job %s: pod %s did not start as it should", run->w->name, pod_name);
}

/* One look at the pods, and what follows from it; false once the Job has finished. */
static bool control_step(struct job_run *run)
{
    const struct pea_workload *w = run->w;
    json_t *pods = json_object_get(run->record, "pods");
    long long active = 0, succeeded = 0, failed = 0, restarts = 0;
    bool has_new_failure = false;
    const char *name;
    json_t *outcome;
    json_object_foreach(pods, name, outcome) {
        if (strcmp(json_string_value(outcome), "Active") == 0) {
            long long pod_restarts;
            enum pod_outcome now = observe_pod(run->g, name, &pod_restarts);
            if (now == POD_SUCCEEDED)
                json_object_set_new(pods, name, json_string("Succeeded"));
            if (now == POD_FAILED) {
                json_object_set_new(pods, name, json_string("Failed"));
                has_new_failure = true;
            }
            if (now == POD_ACTIVE)
                restarts += pod_restarts;
        }
        const char *o = json_string_value(json_object_get(pods, name));
        active += strcmp(o, "Active") == 0;
        succeeded += strcmp(o, "Succeeded") == 0;
        failed += strcmp(o, "Failed") == 0;
    }
    set_count(run->record, "active", active);
    set_count(run->record, "succeeded", succeeded);
    set_count(run->record, "failed", failed);
    bool is_past_restarts = run->is_on_failure && (w->backoff_limit == 0 ? restarts > 0
                                                                          : restarts >= w->backoff_limit);
    long long elapsed = run->elapsed_before + (now_ms() - run->started_ms) / 1000;
    bool is_done = w->completions < 0 ? succeeded > 0 && active == 0 : succeeded >= w->completions;
    if (is_done) {
        finish(run, "Complete", NULL);
        return false;
    }
    if (failed > w->backoff_limit || is_past_restarts) {
        finish(run, "Failed", "BackoffLimitExceeded");
        return false;
    }
    if (w->active_deadline_seconds >= 0 && elapsed >= w->active_deadline_seconds) {
        finish(run, "Failed", "DeadlineExceeded");
        return false;
    }
    if (has_new_failure) {
        run->backoff_ms = run->backoff_ms ? run->backoff_ms * 2 : JOB_BACKOFF_FIRST_MS;
        if (run->backoff_ms > JOB_BACKOFF_MAX_MS)
            run->backoff_ms = JOB_BACKOFF_MAX_MS;
        run->next_pod_ms = now_ms() + run->backoff_ms;
    }
    /* Without completions no pod is added once one has succeeded: the others finish the work queue. */
    long long wanted = w->completions < 0 ? (succeeded ? 0 : w->replicas) : w->completions - succeeded;
    if (wanted > w->replicas)
        wanted = w->replicas;
    while (active < wanted && now_ms() >= run->next_pod_ms && !is_stop_requested) {
        make_pod(run);
        active++;
    }
    set_count(run->record, "active", active);
    return true;
}

static int job_control(struct job_run *run)
{
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    struct pea_error err = {0};
    AUTO_FREE char *path = record_path(run->g, run->w->name);
    for (;;) {
        bool is_running = control_step(run);
        /* Removed (pea pod rm job/NAME): the record is not written back. */
        if (is_stop_requested || access(path, F_OK) != 0)
            return 0;
        if (save_record(run->g, run->record, &err) < 0) {
            log_error("job %s: %s", run->w->name, err.msg);
            return 1;
        }
        if (!is_running)
            return 0;
        poll(NULL, 0, JOB_POLL_MS);
    }
}

/* The controller, detached: a grandchild in a session of its own, its output in the Job's log. It records its pid
 * and start time in the record before it says it is ready, so that `pea pod rm job/NAME` finds it from then on. */
static int spawn_controller(struct job_run *run, struct pea_error *err)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "pipe for the controller of job %s", run->w->name);
    AUTO_FD int ready_read = ready[0];
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(ready[1]);
        return pea_fail(err, errno, "fork the controller of job %s", run->w->name);
    }
    if (pid == 0) {
        close(ready[0]);
        if (setsid() < 0)
            _exit(1);
        pid_t controller = fork();
        if (controller != 0)
            _exit(controller < 0);
        AUTO_FREE char *log_path = xasprintf("%s/jobs/%s.log", run->g->root, run->w->name);
        int log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (log_fd < 0 || null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
            dup2(log_fd, STDERR_FILENO) < 0)
            _exit(1);
        struct pea_error child_err = {0};
        json_object_set_new(run->record, "controller",
                            json_pack("{s:i, s:I}", "pid", (int)getpid(), "startTime",
                                      (json_int_t)sys_process_start_time(getpid(), NULL)));
        if (save_record(run->g, run->record, &child_err) < 0) {
            log_error("%s", child_err.msg);
            _exit(1);
        }
        if (write(ready[1], "1", 1) != 1)
            _exit(1);
        close(ready[1]);
        int code = job_control(run);
        fflush(NULL);
        _exit(code);
    }
    close(ready[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    char byte;
    ssize_t n;
    while ((n = read(ready_read, &byte, 1)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        return pea_fail(err, 0, "the controller of job %s did not start (see %s/jobs/%s.log)", run->w->name,
                        run->g->root, run->w->name);
    return 0;
}

/* The controller recorded, opened as a pidfd that is that very process (its start time checked after opening), or
 * -1 when it is gone. */
static int open_controller(json_t *record)
{
    json_t *controller = json_object_get(record, "controller");
    pid_t pid = (pid_t)json_integer_value(json_object_get(controller, "pid"));
    unsigned long long start = (unsigned long long)json_integer_value(json_object_get(controller, "startTime"));
    if (pid <= 0)
        return -1;
    AUTO_FD int pidfd = sys_pidfd_open(pid, 0);
    bool is_zombie = false;
    if (pidfd < 0 || sys_process_start_time(pid, &is_zombie) != start || is_zombie)
        return -1;
    return take_fd(&pidfd);
}

int pod_job_apply(const struct cli_globals *g, const struct pea_manifest_objects *objects,
                  const struct pea_workload *w, const struct pod_apply_options *o)
{
    struct pea_error err = {0};
    AUTO_JSON json_t *record = NULL;
    AUTO_FREE char *path = record_path(g, w->name);
    bool is_new = access(path, F_OK) != 0;
    if (!is_new) {
        record = pod_job_record(g, w->name, &err);
        if (!record)
            return cli_fail(&err);
        const char *spec = json_string_value(json_object_get(record, "spec"));
        if (!spec || strcmp(spec, w->spec_json) != 0) {
            pea_fail(&err, 0, "job.batch/%s: its spec cannot change (as in Kubernetes, where a Job's template and "
                     "completions are immutable): pea pod rm job/%s, then apply", w->name, w->name);
            return cli_fail(&err);
        }
        AUTO_FD int controller = open_controller(record);
        const char *status = json_string_value(json_object_get(record, "status"));
        bool needs_controller = controller < 0 && status && strcmp(status, "Running") == 0;
        if (!needs_controller || o->is_dry_run) {
            printf("%s/%s unchanged%s\n", pod_workload_resource(w->kind), w->name, o->is_dry_run ? " (dry run)" : "");
            return 0;
        }
    } else if (o->is_dry_run) {
        printf("%s/%s created (dry run)\n", pod_workload_resource(w->kind), w->name);
        return 0;
    } else {
        AUTO_FREE char *dir = jobs_dir(g);
        if (mkdir_p(dir, 0700) < 0) {
            pea_fail(&err, errno, "create %s", dir);
            return cli_fail(&err);
        }
        char when[32];
        now_rfc3339(when, sizeof when);
        record = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:I, s:{}}", "name", w->name,
                           "spec", w->spec_json, "status", "Running", "completions", (json_int_t)w->completions,
                           "parallelism", (json_int_t)w->replicas, "backoffLimit", (json_int_t)w->backoff_limit,
                           "activeDeadlineSeconds", (json_int_t)w->active_deadline_seconds, "startedAt",
                           (json_int_t)time(NULL), "active", 0, "succeeded", 0, "failed", 0, "next",
                           (json_int_t)w->first_index, "pods");
        json_object_set_new(record, "startTime", json_string(when));
        if (save_record(g, record, &err) < 0)
            return cli_fail(&err);
    }
    /* A controller that was gone (the machine or it was killed) is taken over: the Job's time goes on from its
     * start, as wall-clock time. */
    struct pod_apply_options quiet = *o;
    quiet.no_wait = true;
    struct job_run run = {.g = g, .objects = objects, .w = w, .o = &quiet, .record = record,
                          .started_ms = now_ms(),
                          .elapsed_before = time(NULL) - json_integer_value(json_object_get(record, "startedAt"))};
    json_t *policy = json_object_get(json_object_get(w->pod, "spec"), "restartPolicy");
    run.is_on_failure = json_is_string(policy) && strcmp(json_string_value(policy), "OnFailure") == 0;
    if (spawn_controller(&run, &err) < 0)
        return cli_fail(&err);
    if (o->is_name_only)
        printf("%s/%s\n", pod_workload_resource(w->kind), w->name);
    else
        printf("%s/%s %s\n", pod_workload_resource(w->kind), w->name, is_new ? "created" : "controller restarted");
    return 0;
}

int pod_job_remove(const struct cli_globals *g, const char *name, bool *existed, struct pea_error *err)
{
    AUTO_FREE char *path = record_path(g, name);
    *existed = access(path, F_OK) == 0;
    if (!*existed)
        return 0;
    AUTO_JSON json_t *record = pod_job_record(g, name, err);
    AUTO_FD int controller = record ? open_controller(record) : -1;
    if (controller >= 0) {
        /* It stops between two steps; one making a pod may take as long as a pod takes to come up. */
        sys_pidfd_send_signal(controller, SIGTERM, NULL, 0);
        struct pollfd p = {.fd = controller, .events = POLLIN};
        if (poll(&p, 1, JOB_CONTROLLER_STOP_MS) == 0) {
            sys_pidfd_send_signal(controller, SIGKILL, NULL, 0);
            poll(&p, 1, 5000);
        }
    }
    AUTO_FREE char *log_path = xasprintf("%s/jobs/%s.log", g->root, name);
    if (unlink(path) < 0 && errno != ENOENT)
        return pea_fail(err, errno, "remove %s", path);
    unlink(log_path);
    return 0;
}
