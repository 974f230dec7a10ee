/* OCI hooks: each runs with the container's state JSON on stdin, its args/env, and an optional timeout. */
#ifndef PEA_HOOKS_H
#define PEA_HOOKS_H

#include "pea/error.h"
#include "pea/spec.h"

/* Run the hooks of one kind in order; the first failure stops the list and is returned as
 * "createRuntime hook /path: exit status 3" (or "...: timed out after 5s"). */
int hooks_run(const struct pea_spec *spec, enum pea_hook_kind kind, const char *state_json, struct pea_error *err);
/* hooks_run with dir as the hooks' working directory, where runc starts them: the bundle for prestart and
 * createRuntime, the container's root for createContainer. (The others start in ours: startContainer in the
 * process's cwd inside the container, poststart and poststop in the caller's.) */
int hooks_run_in_dir(const struct pea_spec *spec, enum pea_hook_kind kind, const char *state_json, const char *dir,
                     struct pea_error *err);

#endif
