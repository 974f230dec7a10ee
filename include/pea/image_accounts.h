/* An image's /etc/passwd and /etc/group, as texts the caller read inside the image's root (never the host's files):
 * the one parser `pea image bundle` and pods look users and groups up with. */
#ifndef PEA_IMAGE_ACCOUNTS_H
#define PEA_IMAGE_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal id: digits only, at most 2^32-2 ((uid_t)-1 means "no change" to the kernel). */
bool image_accounts_parse_id(const char *text, uint32_t *id);

struct image_passwd_entry {
    uint32_t uid, gid;
    char *name, *home; /* home NULL when the line has no such field */
};
/* The first passwd line (numeric uid and gid) whose name is NAME or, when name is NULL, whose uid is UID. False when
 * there is none or passwd is NULL; on true, the caller frees out->name and out->home. */
bool image_passwd_find(const char *passwd, const char *name, uint32_t uid, struct image_passwd_entry *out);
/* The gid of the first group line named NAME; false when there is none or group is NULL. */
bool image_group_find(const char *group, const char *name, uint32_t *gid);
/* Append to *gids (grown with xrealloc) the gids of the groups that list NAME as a member, each once. */
void image_group_memberships(const char *group, const char *name, uint32_t **gids, size_t *n_gids);

#endif
