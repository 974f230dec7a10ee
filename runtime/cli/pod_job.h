/* The pod commands' controllers: a Job's controller and record (pod_job.c), and what the other controllers share
 * with it (pod_workload.c). */
#ifndef PEA_CLI_POD_JOB_H
#define PEA_CLI_POD_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "pod_client.h"
#include "pea/pod_workload.h"

/* kubectl's name of a kind in its output: "deployment.apps", "job.batch", "pod". */
const char *pod_workload_resource(enum pea_workload_kind kind);
/* A pod of that name, if there is one, belongs to owner ("Job/migrate"; NULL: to no controller), else say whose it
 * is. */
int pod_check_owner(const struct cli_globals *g, const char *name, const char *owner, struct pea_error *err);

/* Apply a Job: a new one gets its record (ROOT/jobs/NAME.json) and a controller process of its own, detached, that
 * makes its pods NAME-0, NAME-1, ... as the Job controller would: at most parallelism at once, until completions
 * have succeeded, a failed pod replaced after a back-off, the Job failed once its failures pass backoffLimit or it
 * has run activeDeadlineSeconds (its running pods then removed). A Job's spec cannot change, as in Kubernetes. */
int pod_job_apply(const struct cli_globals *g, const struct pea_manifest_objects *objects,
                  const struct pea_workload *w, const struct pod_apply_options *o);
/* Stop a Job's controller and remove its record (its pods stay for the caller); *existed says whether there was
 * one. */
int pod_job_remove(const struct cli_globals *g, const char *name, bool *existed, struct pea_error *err);
/* A Job's record: name, status (Running, Complete, Failed), reason, active, succeeded, failed, completions,
 * parallelism, backoffLimit, activeDeadlineSeconds, startTime, completionTime, pods; NULL when there is none. */
json_t *pod_job_record(const struct cli_globals *g, const char *name, struct pea_error *err);

#endif
