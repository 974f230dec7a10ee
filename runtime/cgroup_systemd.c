/* The systemd cgroup driver (--systemd-cgroup): each container's cgroup is a transient scope that systemd makes for
 * its init, "prefix-name.scope" in the slice that linux.cgroupsPath "slice:prefix:name" names, with Delegate=yes and
 * the resources systemd knows as unit properties (systemd re-applies its own view of a unit's cgroup, on
 * daemon-reload for one, and would otherwise undo the limits). pea then writes every resource to the scope's cgroup
 * itself, as it does for its own cgroups, for what systemd has no property for.
 *
 * libsystemd is loaded here, on first use (dlopen): linked, it would cost every pea start the loading of it and its
 * libraries (about 1.5 ms each, and a create starts pea twice), also where no caller uses systemd. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "pea/cgroup.h"
#include "pea/log.h"
#include "pea/util.h"

#define SYSTEMD_SERVICE "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
/* How long a start or stop job may take, as runc waits. */
#define JOB_TIMEOUT_USEC (30ULL * 1000 * 1000)

#define SD_BUS_FUNCTIONS(X)                                                                                            \
    X(sd_bus_open_system)                                                                                              \
    X(sd_bus_new)                                                                                                      \
    X(sd_bus_set_address)                                                                                              \
    X(sd_bus_start)                                                                                                    \
    X(sd_bus_flush_close_unref)                                                                                        \
    X(sd_bus_message_new_method_call)                                                                                  \
    X(sd_bus_message_append)                                                                                           \
    X(sd_bus_message_append_array)                                                                                     \
    X(sd_bus_message_open_container)                                                                                   \
    X(sd_bus_message_close_container)                                                                                  \
    X(sd_bus_message_read)                                                                                             \
    X(sd_bus_message_unref)                                                                                            \
    X(sd_bus_call)                                                                                                     \
    X(sd_bus_call_method)                                                                                              \
    X(sd_bus_match_signal)                                                                                             \
    X(sd_bus_process)                                                                                                  \
    X(sd_bus_wait)                                                                                                     \
    X(sd_bus_slot_unref)                                                                                               \
    X(sd_bus_error_free)                                                                                               \
    X(sd_bus_error_has_name)

static struct {
#define DECLARE_FUNCTION(name) __typeof__(name) *name;
    SD_BUS_FUNCTIONS(DECLARE_FUNCTION)
#undef DECLARE_FUNCTION
} sd;

static int load_libsystemd(struct pea_error *err)
{
    static void *handle;
    if (handle)
        return 0;
    void *h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return pea_fail(err, 0, "--systemd-cgroup: load libsystemd.so.0: %s", dlerror());
#define LOAD_FUNCTION(name)                                                                                            \
    if (!(sd.name = (__typeof__(sd.name))dlsym(h, #name))) {                                                           \
        dlclose(h);                                                                                                    \
        return pea_fail(err, 0, "--systemd-cgroup: libsystemd.so.0 has no %s", #name);                                \
    }
    SD_BUS_FUNCTIONS(LOAD_FUNCTION)
#undef LOAD_FUNCTION
    handle = h;
    return 0;
}

static void bus_closep(sd_bus **bus)
{
    if (*bus)
        sd.sd_bus_flush_close_unref(*bus);
}
static void message_unrefp(sd_bus_message **m)
{
    if (*m)
        sd.sd_bus_message_unref(*m);
}
static void slot_unrefp(sd_bus_slot **slot)
{
    if (*slot)
        sd.sd_bus_slot_unref(*slot);
}
static void bus_error_freep(sd_bus_error *e) { sd.sd_bus_error_free(e); }
#define AUTO_BUS __attribute__((cleanup(bus_closep)))
#define AUTO_MESSAGE __attribute__((cleanup(message_unrefp)))
#define AUTO_SLOT __attribute__((cleanup(slot_unrefp)))
#define AUTO_BUS_ERROR __attribute__((cleanup(bus_error_freep)))

/* "what: message (errno text)" from a failed call. */
static int fail_call(struct pea_error *err, int r, const sd_bus_error *e, const char *what)
{
    if (e && e->message)
        return pea_fail(err, -r, "systemd: %s: %s", what, e->message);
    return pea_fail(err, -r, "systemd: %s", what);
}

/* The system's systemd: over the system bus as runc asks it, else (no D-Bus daemon runs) over systemd's own socket,
 * as systemctl does as root. Fails clearly where systemd is not the host's init: there is no silent fallback to
 * cgroups pea makes itself. */
static sd_bus *bus_connect(struct pea_error *err)
{
    if (load_libsystemd(err) < 0)
        return NULL;
    struct stat st;
    /* sd_booted(3)'s test: systemd creates this directory when it runs as the host's init. */
    if (stat("/run/systemd/system", &st) < 0 || !S_ISDIR(st.st_mode)) {
        pea_fail(err, 0, "--systemd-cgroup: systemd does not run this host (no /run/systemd/system); without "
                         "--systemd-cgroup pea makes the container's cgroup itself");
        return NULL;
    }
    if (geteuid() != 0) {
        pea_fail(err, EPERM, "--systemd-cgroup: asking the system's systemd for a scope needs root (pea does not "
                             "use a user's systemd instance)");
        return NULL;
    }
    sd_bus *bus = NULL;
    int r = sd.sd_bus_open_system(&bus);
    if (r >= 0)
        return bus;
    r = sd.sd_bus_new(&bus);
    if (r >= 0 && (r = sd.sd_bus_set_address(bus, "unix:path=/run/systemd/private")) >= 0 &&
        (r = sd.sd_bus_start(bus)) >= 0)
        return bus;
    if (bus)
        sd.sd_bus_flush_close_unref(bus);
    pea_fail(err, -r, "--systemd-cgroup: connect to systemd (system bus, /run/systemd/private)");
    return NULL;
}

/* ---- waiting for a job ---- */

struct job_wait {
    const char *job;   /* the job's object path, known before any signal is dispatched */
    char result[32];   /* "done", "failed", "canceled", "timeout", ... once removed */
};

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    struct job_wait *w = userdata;
    uint32_t id;
    const char *path, *unit, *result;
    if (sd.sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) >= 0 && w->job && strcmp(path, w->job) == 0)
        snprintf(w->result, sizeof w->result, "%s", result);
    return 0;
}

static long long monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Read the job path from a StartTransientUnit/StopUnit reply and wait for its JobRemoved signal (matched before the
 * call, so it cannot be missed; sd_bus_call queues what arrives meanwhile). An error unless the result is "done". */
static int wait_for_job(sd_bus *bus, sd_bus_message *reply, struct job_wait *w, const char *what,
                        struct pea_error *err)
{
    const char *job;
    int r = sd.sd_bus_message_read(reply, "o", &job);
    if (r < 0)
        return fail_call(err, r, NULL, what);
    w->job = job;
    long long deadline = monotonic_usec() + (long long)JOB_TIMEOUT_USEC;
    while (!w->result[0]) {
        r = sd.sd_bus_process(bus, NULL);
        if (r < 0)
            return fail_call(err, r, NULL, what);
        if (r > 0)
            continue;
        long long left = deadline - monotonic_usec();
        if (left <= 0)
            return pea_fail(err, ETIMEDOUT, "systemd: %s: job %s did not finish within %llu s", what, job,
                            JOB_TIMEOUT_USEC / 1000000);
        r = sd.sd_bus_wait(bus, (uint64_t)left);
        if (r < 0 && r != -EINTR)
            return fail_call(err, r, NULL, what);
    }
    if (strcmp(w->result, "done") != 0)
        return pea_fail(err, 0, "systemd: %s: job %s", what, w->result);
    return 0;
}

static int match_job_removed(sd_bus *bus, sd_bus_slot **slot, struct job_wait *w, struct pea_error *err)
{
    /* No sender: on systemd's own socket messages carry none. */
    int r = sd.sd_bus_match_signal(bus, slot, NULL, SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved", on_job_removed, w);
    return r < 0 ? fail_call(err, r, NULL, "watch for JobRemoved") : 0;
}

/* ---- resources as unit properties ---- */

static bool parse_bytes(const char *text, uint64_t *out)
{
    long long v;
    if (strcmp(text, "max") == 0) {
        *out = UINT64_MAX;
        return true;
    }
    if (parse_int64(text, &v) < 0 || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* "0-3,8" -> a bit mask, byte i holding CPUs (or nodes) 8i..8i+7, as systemd's AllowedCPUs takes it. */
static int append_cpu_mask(sd_bus_message *m, const char *property, const char *list, struct pea_error *err)
{
    uint8_t mask[1024] = {0};
    size_t used = 0;
    AUTO_FREE char *copy = xstrdup(list);
    char *save = NULL;
    for (char *part = strtok_r(copy, ",\n", &save); part; part = strtok_r(NULL, ",\n", &save)) {
        unsigned first, last;
        int n = 0;
        if (sscanf(part, "%u-%u%n", &first, &last, &n) == 2 && part[n] == '\0')
            ;
        else if (sscanf(part, "%u%n", &first, &n) == 1 && part[n] == '\0')
            last = first;
        else
            return pea_fail(err, 0, "%s \"%s\": not a list of numbers and ranges", property, list);
        if (first > last || last >= sizeof mask * 8)
            return pea_fail(err, 0, "%s \"%s\": range out of bounds", property, list);
        for (unsigned i = first; i <= last; i++)
            mask[i / 8] |= (uint8_t)(1u << (i % 8));
        if (last / 8 + 1 > used)
            used = last / 8 + 1;
    }
    int r = sd.sd_bus_message_open_container(m, 'r', "sv");
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "s", property);
    if (r >= 0)
        r = sd.sd_bus_message_open_container(m, 'v', "ay");
    if (r >= 0)
        r = sd.sd_bus_message_append_array(m, 'y', mask, used);
    if (r >= 0)
        r = sd.sd_bus_message_close_container(m);
    if (r >= 0)
        r = sd.sd_bus_message_close_container(m);
    return r < 0 ? fail_call(err, r, NULL, "encode AllowedCPUs") : 0;
}

static int append_u64(sd_bus_message *m, const char *property, uint64_t value, struct pea_error *err)
{
    int r = sd.sd_bus_message_append(m, "(sv)", property, "t", value);
    return r < 0 ? fail_call(err, r, NULL, "encode a unit property") : 0;
}

/* The settings systemd has a property for (systemd.resource-control(5)), the others only written to the files.
 * A new scope without a pids limit gets TasksMax=infinity: the container gets what it asked for, not systemd's
 * DefaultTasksMax. An update leaves what it does not name as it is. */
static int append_resource_properties(sd_bus_message *m, json_t *resources, bool is_new_scope,
                                      struct pea_error *err)
{
    struct cgroup_settings s;
    if (cgroup_settings_from_resources(resources, &s, err) < 0)
        return -1;
    static const struct {
        const char *file, *property;
    } byte_properties[] = {{"memory.max", "MemoryMax"},       {"memory.low", "MemoryLow"},
                           {"memory.high", "MemoryHigh"},     {"memory.min", "MemoryMin"},
                           {"memory.swap.max", "MemorySwapMax"}, {"pids.max", "TasksMax"},
                           {"cpu.weight", "CPUWeight"}};
    bool has_tasks_max = false;
    int r = 0;
    for (size_t i = 0; r == 0 && i < s.n; i++) {
        const char *file = s.items[i].file, *value = s.items[i].value;
        uint64_t v;
        for (size_t k = 0; k < ARRAY_SIZE(byte_properties); k++)
            if (strcmp(file, byte_properties[k].file) == 0 && parse_bytes(value, &v)) {
                r = append_u64(m, byte_properties[k].property, v, err);
                has_tasks_max |= strcmp(file, "pids.max") == 0;
            }
        unsigned long long period;
        char quota[32];
        if (r == 0 && strcmp(file, "cpu.max") == 0 && sscanf(value, "%31s %llu", quota, &period) == 2 && period) {
            /* systemd counts a quota per second, in steps of 10 ms: rounded up, as runc does. */
            long long q;
            uint64_t per_second = UINT64_MAX;
            if (parse_int64(quota, &q) == 0 && q > 0) {
                per_second = (uint64_t)q * 1000000 / period;
                per_second = (per_second + 9999) / 10000 * 10000;
            }
            r = append_u64(m, "CPUQuotaPerSecUSec", per_second, err);
            if (r == 0)
                r = append_u64(m, "CPUQuotaPeriodUSec", period, err);
        }
        if (r == 0 && strcmp(file, "cpuset.cpus") == 0)
            r = append_cpu_mask(m, "AllowedCPUs", value, err);
        if (r == 0 && strcmp(file, "cpuset.mems") == 0)
            r = append_cpu_mask(m, "AllowedMemoryNodes", value, err);
    }
    if (r == 0 && is_new_scope && !has_tasks_max)
        r = append_u64(m, "TasksMax", UINT64_MAX, err);
    cgroup_settings_clear(&s);
    return r;
}

/* ---- the unit ---- */

int cgroup_systemd_unit_for(const char *cgroups_path, const char *id, struct cgroup_systemd_unit *out,
                            struct pea_error *err)
{
    memset(out, 0, sizeof *out);
    /* runc's default for an empty cgroupsPath is ":runc:ID"; pea names its own units. */
    AUTO_FREE char *form = cgroups_path && *cgroups_path ? xstrdup(cgroups_path) : xasprintf(":pea:%s", id);
    const char *colon = strchr(form, ':');
    const char *second = colon ? strchr(colon + 1, ':') : NULL;
    if (!second || strchr(second + 1, ':') || form[0] == '/')
        return pea_fail(err, 0, "linux.cgroupsPath \"%s\": --systemd-cgroup needs the form slice:prefix:name", form);
    const char *name = second + 1;
    size_t name_len = strlen(name);
    if (name_len > 6 && strcmp(name + name_len - 6, ".slice") == 0)
        return pea_fail(err, 0, "linux.cgroupsPath \"%s\": a slice of its own for the container is not supported "
                        "with --systemd-cgroup (pea asks systemd for a scope)", form);
    /* Validates the slice and the name, and gives the cgroup systemd will make. */
    out->path = cgroup_path_for(form, id, err);
    if (!out->path)
        return -1;
    out->slice = colon == form ? xstrdup("system.slice") : xasprintf("%.*s", (int)(colon - form), form);
    int prefix_len = (int)(second - colon - 1);
    out->name = xasprintf("%.*s%s%s.scope", prefix_len, colon + 1, prefix_len ? "-" : "", name);
    return 0;
}

void cgroup_systemd_unit_clear(struct cgroup_systemd_unit *u)
{
    free(u->name);
    free(u->slice);
    free(u->path);
    memset(u, 0, sizeof *u);
}

/* The cgroup v2 path pid is in, from /proc/PID/cgroup ("0::/system.slice/x.scope"). */
static char *cgroup_of(pid_t pid, struct pea_error *err)
{
    char file[64];
    snprintf(file, sizeof file, "/proc/%d/cgroup", (int)pid);
    AUTO_FREE char *text = read_file_at(AT_FDCWD, file, 1 << 16, NULL);
    char *line = text ? strstr(text, "0::") : NULL;
    if (!line || (line != text && line[-1] != '\n')) {
        pea_fail(err, errno, "read the cgroup of %d from %s", (int)pid, file);
        return NULL;
    }
    line += 3;
    line[strcspn(line, "\n")] = '\0';
    return xstrdup(line);
}

/* StopUnit, waited for; ResetFailedUnit after it. A unit systemd no longer knows is gone already. */
static int stop_unit(sd_bus *bus, const char *unit, struct pea_error *err)
{
    struct job_wait w = {0};
    AUTO_SLOT sd_bus_slot *slot = NULL;
    if (match_job_removed(bus, &slot, &w, err) < 0)
        return -1;
    AUTO_BUS_ERROR sd_bus_error e = SD_BUS_ERROR_NULL;
    AUTO_MESSAGE sd_bus_message *reply = NULL;
    AUTO_FREE char *what = xasprintf("stop %s", unit);
    int r = sd.sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "StopUnit", &e, &reply, "ss",
                                  unit, "replace");
    /* A scope goes by itself once its last process is gone (and an unloaded unit is no longer known). */
    if (r < 0 && sd.sd_bus_error_has_name(&e, "org.freedesktop.systemd1.NoSuchUnit"))
        return 0;
    if (r < 0)
        return fail_call(err, r, &e, what);
    if (wait_for_job(bus, reply, &w, what, err) < 0)
        return -1;
    /* A scope whose processes were killed may stay loaded as "failed": let it go. */
    AUTO_BUS_ERROR sd_bus_error ignored = SD_BUS_ERROR_NULL;
    sd.sd_bus_call_method(bus, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER, "ResetFailedUnit", &ignored, NULL,
                          "s", unit);
    return 0;
}

char *cgroup_systemd_start_scope(const struct cgroup_systemd_unit *u, const char *description, pid_t pid,
                                 json_t *resources, struct pea_error *err)
{
    AUTO_BUS sd_bus *bus = bus_connect(err);
    if (!bus)
        return NULL;
    struct job_wait w = {0};
    AUTO_SLOT sd_bus_slot *slot = NULL;
    if (match_job_removed(bus, &slot, &w, err) < 0)
        return NULL;
    AUTO_MESSAGE sd_bus_message *m = NULL;
    int r = sd.sd_bus_message_new_method_call(bus, &m, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                              "StartTransientUnit");
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "ss", u->name, "fail");
    if (r >= 0)
        r = sd.sd_bus_message_open_container(m, 'a', "(sv)");
    /* As runc: accounting on for every controller, and no dependencies on shutdown or basic targets. */
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "(sv)(sv)(sv)(sv)(sv)(sv)(sv)(sv)(sv)", "Slice", "s", u->slice,
                                     "Description", "s", description, "Delegate", "b", 1, "DefaultDependencies",
                                     "b", 0, "MemoryAccounting", "b", 1, "CPUAccounting", "b", 1, "IOAccounting",
                                     "b", 1, "TasksAccounting", "b", 1, "PIDs", "au", 1, (uint32_t)pid);
    if (r < 0) {
        fail_call(err, r, NULL, "encode StartTransientUnit");
        return NULL;
    }
    if (append_resource_properties(m, resources, true, err) < 0)
        return NULL;
    r = sd.sd_bus_message_close_container(m);
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "a(sa(sv))", 0);
    if (r < 0) {
        fail_call(err, r, NULL, "encode StartTransientUnit");
        return NULL;
    }
    AUTO_BUS_ERROR sd_bus_error e = SD_BUS_ERROR_NULL;
    AUTO_MESSAGE sd_bus_message *reply = NULL;
    AUTO_FREE char *what = xasprintf("start %s in %s", u->name, u->slice);
    r = sd.sd_bus_call(bus, m, 0, &e, &reply);
    if (r < 0) {
        if (sd.sd_bus_error_has_name(&e, "org.freedesktop.systemd1.UnitExists"))
            pea_fail(err, 0, "systemd: %s: the unit already exists", what);
        else
            fail_call(err, r, &e, what);
        return NULL;
    }
    if (wait_for_job(bus, reply, &w, what, err) < 0) {
        /* The unit is ours (systemd took the call): it goes with the failure. */
        struct pea_error ignored = {0};
        stop_unit(bus, u->name, &ignored);
        return NULL;
    }
    char *path = cgroup_of(pid, err);
    if (path && strcmp(path, u->path) != 0)
        log_debug("cgroup: systemd placed %s in %s (expected %s)", u->name, path, u->path);
    return path;
}

int cgroup_systemd_update_scope(const char *unit, json_t *resources, struct pea_error *err)
{
    AUTO_BUS sd_bus *bus = bus_connect(err);
    if (!bus)
        return -1;
    AUTO_MESSAGE sd_bus_message *m = NULL;
    int r = sd.sd_bus_message_new_method_call(bus, &m, SYSTEMD_SERVICE, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                              "SetUnitProperties");
    if (r >= 0)
        r = sd.sd_bus_message_append(m, "sb", unit, 1);
    if (r >= 0)
        r = sd.sd_bus_message_open_container(m, 'a', "(sv)");
    if (r < 0)
        return fail_call(err, r, NULL, "encode SetUnitProperties");
    if (append_resource_properties(m, resources, false, err) < 0)
        return -1;
    r = sd.sd_bus_message_close_container(m);
    if (r < 0)
        return fail_call(err, r, NULL, "encode SetUnitProperties");
    AUTO_BUS_ERROR sd_bus_error e = SD_BUS_ERROR_NULL;
    AUTO_MESSAGE sd_bus_message *reply = NULL;
    AUTO_FREE char *what = xasprintf("set the resources of %s", unit);
    r = sd.sd_bus_call(bus, m, 0, &e, &reply);
    return r < 0 ? fail_call(err, r, &e, what) : 0;
}

int cgroup_systemd_stop_scope(const char *unit, struct pea_error *err)
{
    AUTO_BUS sd_bus *bus = bus_connect(err);
    return bus ? stop_unit(bus, unit, err) : -1;
}
