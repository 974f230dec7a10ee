/* Config.User resolved against an image's own /etc/passwd and /etc/group (their texts: the caller reads them inside
 * the image's root), never the host's: the image's names are what its files were made with. */
#include <stdlib.h>
#include <string.h>

#include "pea/image_accounts.h"
#include "pea/image_bundle.h"
#include "pea/util.h"

int pea_image_user_resolve(const char *user, const char *passwd, const char *group, struct pea_image_user *out,
                           struct pea_error *err)
{
    *out = (struct pea_image_user){0};
    AUTO_FREE char *copy = xstrdup(user);
    char *group_part = strchr(copy, ':');
    if (group_part)
        *group_part++ = '\0';
    const char *user_part = *copy ? copy : "0";
    if (group_part && !*group_part)
        return pea_fail(err, 0, "user \"%s\": the group after ':' is empty", user);

    struct image_passwd_entry pw;
    bool is_numeric_user = image_accounts_parse_id(user_part, &out->uid);
    bool is_found = image_passwd_find(passwd, is_numeric_user ? NULL : user_part, out->uid, &pw);
    if (!is_numeric_user) {
        if (!is_found)
            return pea_fail(err, 0, "user %s not found in the image's /etc/passwd%s", user_part,
                            passwd ? "" : " (it has none)");
        out->uid = pw.uid;
    }
    out->gid = is_found ? pw.gid : 0;
    out->home = pw.home;
    if (group_part) {
        if (!image_accounts_parse_id(group_part, &out->gid) && !image_group_find(group, group_part, &out->gid)) {
            free(pw.name);
            pea_image_user_clear(out);
            return pea_fail(err, 0, "group %s not found in the image's /etc/group%s", group_part,
                            group ? "" : " (it has none)");
        }
    } else if (!is_numeric_user) {
        image_group_memberships(group, pw.name, &out->additional_gids, &out->n_additional_gids);
    }
    free(pw.name);
    return 0;
}

void pea_image_user_clear(struct pea_image_user *u)
{
    free(u->additional_gids);
    free(u->home);
    *u = (struct pea_image_user){0};
}
