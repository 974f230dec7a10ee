#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroups_v2.pb-c.h"
#include "pea/util.h"

/* A one-number file; "max" is the largest value, as containerd's cgroups library reads it. */
static uint64_t read_number(int dir, const char *name)
{
    AUTO_FREE char *text = read_file_at(dir, name, 64, NULL);
    if (!text)
        return 0;
    if (strncmp(text, "max", 3) == 0)
        return UINT64_MAX;
    return strtoull(text, NULL, 10);
}

/* "key value" lines into the uint64 fields of a message, by field name. */
static void read_keyed(int dir, const char *name, ProtobufCMessage *message)
{
    AUTO_FREE char *text = read_file_at(dir, name, 1 << 16, NULL);
    if (!text)
        return;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *space = strchr(line, ' ');
        if (!space)
            continue;
        *space = '\0';
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(message->descriptor, line);
        if (f && f->type == PROTOBUF_C_TYPE_UINT64 && f->label == PROTOBUF_C_LABEL_NONE)
            *(uint64_t *)((char *)message + f->offset) = strtoull(space + 1, NULL, 10);
    }
}

/* io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" per device. */
static void read_io(int dir, Io__Containerd__Cgroups__V2__IOStat *io, Io__Containerd__Cgroups__V2__IOEntry **entries)
{
    AUTO_FREE char *text = read_file_at(dir, "io.stat", 1 << 16, NULL);
    size_t count = 0;
    if (text) {
        for (const char *c = text; *c; c++)
            count += *c == '\n';
    }
    *entries = xcalloc(count + 1, sizeof **entries);
    io->usage = xcalloc(count + 1, sizeof *io->usage);
    if (!text)
        return;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && io->n_usage < count; line = strtok_r(NULL, "\n", &save)) {
        Io__Containerd__Cgroups__V2__IOEntry *e = &(*entries)[io->n_usage];
        io__containerd__cgroups__v2__ioentry__init(e);
        unsigned major, minor;
        if (sscanf(line, "%u:%u", &major, &minor) != 2)
            continue;
        e->major = major;
        e->minor = minor;
        char *inner = NULL;
        for (char *word = strtok_r(strchr(line, ' '), " ", &inner); word; word = strtok_r(NULL, " ", &inner)) {
            unsigned long long v;
            if (sscanf(word, "rbytes=%llu", &v) == 1)
                e->rbytes = v;
            else if (sscanf(word, "wbytes=%llu", &v) == 1)
                e->wbytes = v;
            else if (sscanf(word, "rios=%llu", &v) == 1)
                e->rios = v;
            else if (sscanf(word, "wios=%llu", &v) == 1)
                e->wios = v;
        }
        io->usage[io->n_usage++] = e;
    }
}

/* Where the unified hierarchy's root is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host
 * (libpea's cgroup_root does the same; its module brings more than a static shim should link). */
static char *cgroup2_mount_point(struct pea_error *err)
{
    AUTO_FREE char *text = read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, NULL);
    if (!text) {
        pea_fail(err, errno, "read /proc/self/mountinfo");
        return NULL;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* "36 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw" */
        char *sep = strstr(line, " - ");
        char root[4096], point[4096];
        if (sep && strncmp(sep + 3, "cgroup2 ", 8) == 0 &&
            sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) == 2 && strcmp(root, "/") == 0)
            return xstrdup(point);
    }
    pea_fail(err, 0, "no cgroup2 hierarchy is mounted (stats need cgroup v2)");
    return NULL;
}

int stats_open_cgroup(pid_t pid, struct pea_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    AUTO_FREE char *text = read_file_at(AT_FDCWD, path, 1 << 16, NULL);
    if (!text)
        return pea_fail(err, errno, "read %s", path);
    /* The unified hierarchy's line: "0::/path". */
    char *line = strstr(text, "0::/");
    if (!line || (line != text && line[-1] != '\n'))
        return pea_fail(err, 0, "process %d is in no cgroup v2 hierarchy (stats need cgroup v2)", (int)pid);
    char *end = strchr(line, '\n');
    if (end)
        *end = '\0';
    AUTO_FREE char *root = cgroup2_mount_point(err);
    if (!root)
        return -1;
    AUTO_FREE char *dir = xasprintf("%s%s", root, line + 3);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pea_fail(err, errno, "open cgroup %s", dir);
    return fd;
}

int stats_collect(pid_t pid, uint8_t **packed, size_t *len, struct pea_error *err)
{
    AUTO_FD int dir = stats_open_cgroup(pid, err);
    if (dir < 0)
        return -1;
    Io__Containerd__Cgroups__V2__Metrics metrics = IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
    Io__Containerd__Cgroups__V2__PidsStat pids = IO__CONTAINERD__CGROUPS__V2__PIDS_STAT__INIT;
    Io__Containerd__Cgroups__V2__CPUStat cpu = IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
    Io__Containerd__Cgroups__V2__MemoryStat memory = IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;
    Io__Containerd__Cgroups__V2__MemoryEvents events = IO__CONTAINERD__CGROUPS__V2__MEMORY_EVENTS__INIT;
    Io__Containerd__Cgroups__V2__IOStat io = IO__CONTAINERD__CGROUPS__V2__IOSTAT__INIT;
    AUTO_FREE Io__Containerd__Cgroups__V2__IOEntry *io_entries = NULL;

    pids.current = read_number(dir, "pids.current");
    pids.limit = read_number(dir, "pids.max");
    read_keyed(dir, "cpu.stat", &cpu.base);
    read_keyed(dir, "memory.stat", &memory.base);
    memory.usage = read_number(dir, "memory.current");
    memory.usage_limit = read_number(dir, "memory.max");
    memory.swap_usage = read_number(dir, "memory.swap.current");
    memory.swap_limit = read_number(dir, "memory.swap.max");
    read_keyed(dir, "memory.events", &events.base);
    read_io(dir, &io, &io_entries);
    metrics.pids = &pids;
    metrics.cpu = &cpu;
    metrics.memory = &memory;
    metrics.memory_events = &events;
    metrics.io = &io;

    *len = io__containerd__cgroups__v2__metrics__get_packed_size(&metrics);
    *packed = xmalloc(*len + 1);
    io__containerd__cgroups__v2__metrics__pack(&metrics, *packed);
    free(io.usage);
    return 0;
}
