/* Subordinate id ranges (subuid(5), subgid(5)) and the setuid helpers newuidmap(1) and newgidmap(1), which write
 * the id maps an unprivileged process may not write itself. */
#ifndef PEA_IDMAP_H
#define PEA_IDMAP_H

#include <stdint.h>
#include <sys/types.h>

#include "pea/error.h"
#include "pea/spec.h"

struct pea_id_range {
    uint32_t start, count;
};

/* The ranges that TEXT (the contents of /etc/subuid or /etc/subgid) grants to the user called NAME (may be NULL)
 * with uid UID, in file order. Lines that are comments, blank or malformed grant nothing. *OUT is malloc'd (NULL
 * when there are none); returns how many. */
size_t idmap_parse_subid(const char *text, const char *name, uid_t uid, struct pea_id_range **out);

/* idmap_parse_subid on the file at PATH for the user UID (named through the passwd database); a missing or
 * unreadable file grants nothing. */
size_t idmap_subid_ranges(const char *path, uid_t uid, struct pea_id_range **out);

/* Where NAME ("newuidmap") is: the first executable regular file in an absolute directory of the caller's PATH,
 * then in /usr/bin. Malloc'd, or NULL when there is none. */
char *idmap_find_helper(const char *name);

/* Write the map FILE ("uid_map" or "gid_map") of PID with the helper NAME ("newuidmap" or "newgidmap"), run
 * without our environment or fds; its first line of output goes into the error. */
int idmap_write_with_helper(const char *name, const char *file, pid_t pid, const struct pea_id_mapping *m, size_t n,
                            struct pea_error *err);

#endif
