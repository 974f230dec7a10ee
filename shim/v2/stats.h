/* Stats: the task's cgroup v2 files as io.containerd.cgroups.v2.Metrics (what containerd's runc shim answers on a
 * unified hierarchy). */
#ifndef PEA_SHIM_V2_STATS_H
#define PEA_SHIM_V2_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"

#define STATS_TYPE_URL "io.containerd.cgroups.v2.Metrics"

/* The directory of the cgroup v2 the process is in, opened O_DIRECTORY. */
int stats_open_cgroup(pid_t pid, struct pea_error *err);
/* The packed Metrics of the cgroup the process is in (the shim's child: its PID names it until reaped). */
int stats_collect(pid_t pid, uint8_t **packed, size_t *len, struct pea_error *err);

#endif
