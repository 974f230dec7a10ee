/* Taking a pod apart from what is on disk, whatever state it was left in: half-made by a process killed early,
 * its supervisor gone or still running, pod.json or a member's state unreadable. What the teardown needs is kept in
 * two records, pod.json and teardown.json (written once before anything is made, atomically), so that losing one
 * loses nothing; and the pod's cgroup holds every process of the pod, so that killing what runs there does not
 * depend on any member's record. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pea/cgroup.h"
#include "pea/log.h"
#include "pea/net.h"
#include "pea/pod.h"
#include "pea/pod_image.h"
#include "pea/state.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "pea/volume.h"
#include "pod_internal.h"
#include "pod_userns.h"

#define TEARDOWN_RECORD_VERSION 1
/* How long a process SIGKILLed (the supervisor, or what runs in the pod's cgroup) may take to be gone. */
#define TEARDOWN_KILL_TIMEOUT_MS 5000
/* How long a teardown waits for another one (or for a maker to write its record) to let go of the pod. */
#define TEARDOWN_LOCK_TIMEOUT_MS 10000

int pod_save_teardown_record(const struct pea_pod *pod, struct pea_error *err)
{
    const json_t *state = pod->state;
    AUTO_JSON json_t *record = json_pack("{s:i, s:O?, s:O?, s:O?, s:O?, s:{s:i, s:I}}", "version", TEARDOWN_RECORD_VERSION,
                                         "uid", json_object_get(state, "uid"), "cgroup",
                                         json_object_get(state, "cgroup"), "dataDir", json_object_get(state, "dataDir"),
                                         "bootId", json_object_get(state, "bootId"), "supervisor", "pid", (int)getpid(),
                                         "startTime", (json_int_t)sys_process_start_time(getpid(), NULL));
    if (record && pod->manifest->network_mode == PEA_NETWORK_BRIDGE)
        json_object_set_new(record, "bridge", json_string(pod->manifest->bridge));
    AUTO_FREE char *text = record ? json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    AUTO_FD int dir = open(pod->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!text || dir < 0 || write_file_atomic_at(dir, POD_TEARDOWN_RECORD, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "save %s/%s", pod->dir, POD_TEARDOWN_RECORD);
    return 0;
}

/* ---- what the records say, checked: a record that is garbage must not name another pod's cgroup or files ---- */

static bool is_lower_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static bool is_lower_hex(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_lower_hex_digit(s[i]))
            return false;
    return true;
}

/* "/pea/pod-NAME-<8 hex>" (pods of one name under other state roots differ in the hex), or the "/pea/pod-NAME" of
 * a pea from before pods had a uid, which only pod.json can name. */
static bool is_pod_cgroup(const char *name, const char *cgroup, bool may_be_legacy)
{
    AUTO_FREE char *prefix = xasprintf("/pea/pod-%s", name);
    size_t len = strlen(prefix);
    if (!cgroup || strncmp(cgroup, prefix, len) != 0)
        return false;
    if (cgroup[len] == '\0')
        return may_be_legacy;
    return cgroup[len] == '-' && is_lower_hex(cgroup + len + 1, 8);
}

/* An absolute path without "." or ".." components or empty ones, ending in "/pods/NAME": what pod_create makes. */
static bool is_pod_data_dir(const char *name, const char *path)
{
    if (!path || path[0] != '/')
        return false;
    AUTO_FREE char *suffix = xasprintf("/pods/%s", name);
    size_t len = strlen(path), suffix_len = strlen(suffix);
    if (len <= suffix_len || strcmp(path + len - suffix_len, suffix) != 0)
        return false;
    for (const char *p = path; *p; p++) {
        if (*p != '/')
            continue;
        const char *next = p + 1;
        size_t n = strcspn(next, "/");
        if (n == 0 || (n == 1 && next[0] == '.') || (n == 2 && next[0] == '.' && next[1] == '.'))
            return false;
    }
    return true;
}

static bool is_interface_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    return len > 0 && len < 16 && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           strcspn(name, " \t\n:") == len;
}

/* What a teardown takes apart, from both records: each fact from the first record that holds it in a valid form. */
struct teardown_plan {
    const char *cgroup;        /* NULL: the pod never got as far as its cgroup, or neither record names it */
    const char *data_dir;      /* NULL: likewise */
    const char *bridge;        /* NULL: not a bridge pod */
    char host_interface[16];   /* "" when not a bridge pod */
    bool is_from_earlier_boot; /* its processes died with that boot; the PIDs recorded name others now */
    const json_t *supervisors[2];
    const char *uid; /* NULL when neither record names it */
};

static const char *first_valid(json_t *const records[2], const char *key, const char *name,
                               bool (*is_valid)(const char *name, const char *value))
{
    for (int i = 0; i < 2; i++) {
        const char *value = json_string_value(json_object_get(records[i], key));
        if (value && is_valid(name, value))
            return value;
    }
    return NULL;
}

static bool is_new_cgroup(const char *name, const char *value) { return is_pod_cgroup(name, value, false); }
static bool is_any_cgroup(const char *name, const char *value) { return is_pod_cgroup(name, value, true); }
static bool is_uid(const char *name, const char *value) { return (void)name, is_lower_hex(value, 16); }
static bool is_bridge(const char *name, const char *value) { return (void)name, is_interface_name(value); }

/* /proc/sys/kernel/random/boot_id's form: 8-4-4-4-12 lower-case hex digits. */
static bool is_boot_id(const char *name, const char *value)
{
    (void)name;
    if (strlen(value) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool is_dash_position = i == 8 || i == 13 || i == 18 || i == 23;
        if (is_dash_position ? value[i] != '-' : !is_lower_hex_digit(value[i]))
            return false;
    }
    return true;
}

/* records: teardown.json, then pod.json (either NULL when missing or unreadable). */
static void plan_teardown(const char *name, json_t *const records[2], struct teardown_plan *plan)
{
    *plan = (struct teardown_plan){0};
    json_t *const pod_json_only[2] = {records[1], NULL};
    plan->cgroup = first_valid(records, "cgroup", name, is_new_cgroup);
    if (!plan->cgroup)
        plan->cgroup = first_valid(pod_json_only, "cgroup", name, is_any_cgroup);
    plan->data_dir = first_valid(records, "dataDir", name, is_pod_data_dir);
    /* pod.json records the bridge once the network is being set up; teardown.json as soon as the pod exists. */
    json_t *network = json_object_get(records[1], "network");
    json_t *const bridges[2] = {records[0], network};
    plan->bridge = first_valid(bridges, "bridge", name, is_bridge);
    const char *uid = first_valid(records, "uid", name, is_uid);
    plan->uid = uid;
    if (plan->bridge && uid)
        snprintf(plan->host_interface, sizeof plan->host_interface, "pv%.12s", uid);
    /* Either record from another boot, and no PID in them is signalled: failing to remove a pod (its cgroup still
     * populated) is better than killing a process that took a recorded PID over. */
    char now[64];
    pod_read_boot_id(now, sizeof now);
    for (int i = 0; i < 2; i++) {
        const char *boot_id = json_string_value(json_object_get(records[i], "bootId"));
        if (boot_id && is_boot_id(name, boot_id) && now[0] && strcmp(boot_id, now) != 0)
            plan->is_from_earlier_boot = true;
    }
    plan->supervisors[0] = json_object_get(records[0], "supervisor");
    plan->supervisors[1] = json_object_get(records[1], "shim");
}

static json_t *load_record(const char *dir, const char *file)
{
    AUTO_FREE char *path = xasprintf("%s/%s", dir, file);
    json_error_t jerr;
    json_t *record = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (record && !json_is_object(record)) {
        json_decref(record);
        return NULL;
    }
    return record;
}

/* ---- taking it apart ---- */

/* The recorded process ({"pid", "startTime"}) when it still is that process, as a pidfd opened before the check
 * (checked first, the PID could pass to another process before the open); -1 otherwise. Never the caller. */
static int open_recorded_process(const json_t *record)
{
    pid_t pid = (pid_t)json_integer_value(json_object_get(record, "pid"));
    json_int_t start = json_integer_value(json_object_get(record, "startTime"));
    if (pid <= 0 || start <= 0 || pid == getpid())
        return -1;
    int pidfd = sys_pidfd_open(pid, 0);
    if (pidfd >= 0 && sys_process_start_time(pid, NULL) != (unsigned long long)start) {
        close(pidfd);
        return -1;
    }
    return pidfd;
}

/* The process that made the pod, or the shim that took it over, goes first: alive, it would go on making,
 * restarting or tearing down what is being removed here. */
static int stop_supervisors(const char *name, const struct teardown_plan *plan, struct pea_error *err)
{
    for (size_t i = 0; i < ARRAY_SIZE(plan->supervisors); i++) {
        AUTO_FD int pidfd = open_recorded_process(plan->supervisors[i]);
        if (pidfd < 0)
            continue;
        pid_t pid = (pid_t)json_integer_value(json_object_get(plan->supervisors[i], "pid"));
        if (sys_pidfd_send_signal(pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
            return pea_fail(err, errno, "pod %s: kill its supervisor (pid %d)", name, (int)pid);
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, TEARDOWN_KILL_TIMEOUT_MS)) < 0 && errno == EINTR)
            ;
        if (r == 0)
            return pea_fail(err, ETIMEDOUT, "pod %s: its supervisor (pid %d) did not exit %d ms after SIGKILL", name,
                            (int)pid, TEARDOWN_KILL_TIMEOUT_MS);
    }
    return 0;
}

/* Keep the first error, go on cleaning: a teardown removes all it can. */
static void note_failure(int r, struct pea_error *first, const struct pea_error *this_one)
{
    if (r < 0 && first->msg[0] == '\0')
        *first = *this_one;
}

/* The members (the infra last) stopped through their own records, then whatever is left in the pod's cgroup
 * killed. Once the pod's cgroup is empty, a member whose record could not be used has nothing left running: its
 * state goes with the pod's directory. Without a known cgroup, nothing but the members' records says so. */
static void stop_everything(const char *dir, const struct teardown_plan *plan, long long grace_seconds,
                            struct pea_error *first)
{
    struct pea_error one = {0}, members_err = {0};
    AUTO_FREE char *oci_root = xasprintf("%s/oci", dir);
    AUTO_STRV char **ids = pod_dir_names(oci_root, &one);
    note_failure(ids ? 0 : -1, first, &one);
    size_t n_members = 0;
    for (char **id = ids; id && *id; id++)
        if (strcmp(*id, PEA_POD_INFRA_ID) != 0)
            ids[n_members++] = *id;
        else
            free(*id);
    if (ids)
        ids[n_members] = NULL;
    char *infra[] = {PEA_POD_INFRA_ID, NULL};
    int r = pod_stop_containers(oci_root, ids, n_members, NULL, grace_seconds, &members_err);
    if (pod_stop_containers(oci_root, infra, 1, NULL, 2, &one) < 0 && r == 0) {
        members_err = one;
        r = -1;
    }
    if (!plan->cgroup) {
        note_failure(r, first, &members_err);
        return;
    }
    if (r < 0)
        log_debug("%s; the pod's cgroup %s is emptied instead", members_err.msg, plan->cgroup);
    note_failure(cgroup_kill_and_wait_empty(plan->cgroup, TEARDOWN_KILL_TIMEOUT_MS, &one), first, &one);
}

/* The records as they are now: NULL for one that is missing or unreadable. */
static void load_records(const char *dir, json_t *records[2])
{
    records[0] = load_record(dir, POD_TEARDOWN_RECORD);
    records[1] = load_record(dir, POD_STATE_FILE);
}

static void free_records(json_t *records[2])
{
    json_decref(records[0]);
    json_decref(records[1]);
}

/* The pod directory's lock: pod_create holds it from making the directory until teardown.json is written, and a
 * teardown holds it while it runs. Taken before the records are read, it means a pod being made is found with its
 * record (never removed from under a maker about to write it), and two teardowns do not interleave. */
static int lock_pod_dir(const char *name, const char *dir, struct pea_error *err)
{
    AUTO_FD int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? pea_fail(err, 0, "pod %s does not exist", name)
                               : pea_fail(err, errno, "open %s", dir);
    for (int waited_ms = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited_ms += 5) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            return pea_fail(err, errno, "lock %s", dir);
        if (waited_ms >= TEARDOWN_LOCK_TIMEOUT_MS)
            return pea_fail(err, ETIMEDOUT, "pod %s: another process has been making or removing it for %d ms",
                            name, TEARDOWN_LOCK_TIMEOUT_MS);
        struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return take_fd(&fd);
}

int pod_remove(const char *root, const char *name, long long grace_seconds, struct pea_error *err)
{
    if (state_validate_id(name, err) < 0)
        return -1;
    AUTO_FREE char *dir = xasprintf("%s/pods/%s", root, name);
    if (access(dir, F_OK) < 0)
        return pea_fail(err, 0, "pod %s does not exist", name);
    struct pea_error first = {0}, one = {0};
    json_t *records[2];
    struct teardown_plan plan;
    /* A supervisor still running goes first: one in its own teardown holds the lock. */
    load_records(dir, records);
    plan_teardown(name, records, &plan);
    if (!plan.is_from_earlier_boot)
        note_failure(stop_supervisors(name, &plan, &one), &first, &one);
    free_records(records);
    AUTO_FD int lock = lock_pod_dir(name, dir, &one);
    if (lock < 0) {
        *err = first.msg[0] ? first : one;
        return first.msg[0] ? pea_wrap(err, "remove pod %s", name) : -1;
    }
    /* Read again under the lock: a pod being made has its record now, naming its maker. */
    load_records(dir, records);
    plan_teardown(name, records, &plan);
    if (plan.is_from_earlier_boot) {
        /* Its processes died with the boot and the PIDs recorded now name others: nothing is signalled. What
         * could outlive a reboot is the state on disk, removed below with the pod's directory. */
    } else {
        note_failure(stop_supervisors(name, &plan, &one), &first, &one);
        if (!first.msg[0])
            stop_everything(dir, &plan, grace_seconds, &first);
    }
    note_failure(pod_unpin_namespaces(dir, &one), &first, &one);
    if (plan.host_interface[0])
        note_failure(net_link_delete(-1, plan.host_interface, &one), &first, &one);
    if (plan.bridge)
        note_failure(pod_release_bridge(root, plan.bridge, &one), &first, &one);
    /* Killing nothing: what still runs there keeps it (and the pod's state) in place. */
    if (plan.cgroup)
        note_failure(cgroup_destroy_tree(plan.cgroup, &one), &first, &one);
    if (plan.data_dir) {
        int r = volume_release_all(plan.data_dir, &one);
        note_failure(r, &first, &one);
        if (r == 0)
            note_failure(remove_tree(plan.data_dir, &one), &first, &one);
    }
    /* The pod's images go free once nothing of it runs. */
    if (!first.msg[0] && plan.data_dir)
        note_failure(pod_images_release_all(plan.data_dir, name, &one), &first, &one);
    if (!first.msg[0])
        note_failure(remove_tree(dir, &one), &first, &one);
    /* hostUsers: false: the pod's ids are free once nothing of it runs. */
    if (!first.msg[0] && plan.uid)
        note_failure(pod_userns_release(plan.uid, &one), &first, &one);
    free_records(records);
    if (first.msg[0]) {
        *err = first;
        return pea_wrap(err, "remove pod %s", name);
    }
    return 0;
}
