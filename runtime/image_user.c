/* Config.User resolved against an image's own /etc/passwd and /etc/group (their texts: the caller reads them inside
 * the image's root), never the host's: the image's names are what its files were made with. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pea/image_bundle.h"
#include "pea/util.h"

/* Fields of one line of a colon-separated database, pointing into a copy of the line. */
#define DB_MAX_FIELDS 7

struct db_line {
    char *field[DB_MAX_FIELDS];
    size_t n;
};

/* Split the next line of *text into fields (at most DB_MAX_FIELDS; the last keeps the rest). Returns a line to free,
 * or NULL at the end. Comments and NIS compat lines ("+", "-") come back with n == 0. */
static char *db_next_line(const char **text, struct db_line *out)
{
    if (!*text || !**text)
        return NULL;
    const char *end = strchrnul(*text, '\n');
    char *line = xasprintf("%.*s", (int)(end - *text), *text);
    *text = *end ? end + 1 : end;
    out->n = 0;
    if (line[0] == '#' || line[0] == '+' || line[0] == '-')
        return line;
    char *p = line;
    while (out->n < DB_MAX_FIELDS) {
        out->field[out->n++] = p;
        char *colon = out->n < DB_MAX_FIELDS ? strchr(p, ':') : NULL;
        if (!colon)
            break;
        *colon = '\0';
        p = colon + 1;
    }
    return line;
}

/* A decimal id: digits only, at most 2^32-2 ((uid_t)-1 means "no change" to the kernel). */
static bool parse_id(const char *text, uint32_t *id)
{
    if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 10)
        return false;
    unsigned long long v = strtoull(text, NULL, 10);
    if (v > UINT32_MAX - 1)
        return false;
    *id = (uint32_t)v;
    return true;
}

struct passwd_entry {
    bool is_found;
    uint32_t uid, gid;
    char *name, *home;
};

/* The first passwd line whose name is NAME, or (name NULL) whose uid is UID. */
static void passwd_find(const char *passwd, const char *name, uint32_t uid, struct passwd_entry *out)
{
    *out = (struct passwd_entry){0};
    const char *text = passwd;
    struct db_line l;
    char *line;
    while ((line = db_next_line(&text, &l))) {
        uint32_t line_uid, line_gid;
        bool is_match = l.n >= 4 && parse_id(l.field[2], &line_uid) && parse_id(l.field[3], &line_gid) &&
                        (name ? strcmp(l.field[0], name) == 0 : line_uid == uid);
        if (is_match) {
            *out = (struct passwd_entry){.is_found = true, .uid = line_uid, .gid = line_gid,
                                         .name = xstrdup(l.field[0]), .home = l.n >= 6 ? xstrdup(l.field[5]) : NULL};
            free(line);
            return;
        }
        free(line);
    }
}

static bool group_find(const char *group, const char *name, uint32_t *gid)
{
    const char *text = group;
    struct db_line l;
    char *line;
    bool is_found = false;
    while (!is_found && (line = db_next_line(&text, &l))) {
        is_found = l.n >= 3 && strcmp(l.field[0], name) == 0 && parse_id(l.field[2], gid);
        free(line);
    }
    return is_found;
}

static bool list_has_member(char *members, const char *name)
{
    char *save = NULL;
    for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (strcmp(m, name) == 0)
            return true;
    return false;
}

/* The gids of the groups that list NAME as a member, each once. */
static void group_memberships(const char *group, const char *name, struct pea_image_user *u)
{
    const char *text = group;
    struct db_line l;
    char *line;
    while ((line = db_next_line(&text, &l))) {
        uint32_t gid;
        if (l.n >= 4 && parse_id(l.field[2], &gid) && list_has_member(l.field[3], name)) {
            bool is_seen = false;
            for (size_t i = 0; i < u->n_additional_gids; i++)
                is_seen = is_seen || u->additional_gids[i] == gid;
            if (!is_seen) {
                u->additional_gids = xrealloc(u->additional_gids, (u->n_additional_gids + 1) * sizeof(uint32_t));
                u->additional_gids[u->n_additional_gids++] = gid;
            }
        }
        free(line);
    }
}

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

    struct passwd_entry pw;
    bool is_numeric_user = parse_id(user_part, &out->uid);
    if (is_numeric_user) {
        passwd_find(passwd, NULL, out->uid, &pw);
    } else {
        passwd_find(passwd, user_part, 0, &pw);
        if (!pw.is_found)
            return pea_fail(err, 0, "user %s not found in the image's /etc/passwd%s", user_part,
                            passwd ? "" : " (it has none)");
        out->uid = pw.uid;
    }
    out->gid = pw.is_found ? pw.gid : 0;
    out->home = pw.home;
    if (group_part) {
        if (!parse_id(group_part, &out->gid) && !group_find(group, group_part, &out->gid)) {
            free(pw.name);
            pea_image_user_clear(out);
            return pea_fail(err, 0, "group %s not found in the image's /etc/group%s", group_part,
                            group ? "" : " (it has none)");
        }
    } else if (!is_numeric_user) {
        group_memberships(group, pw.name, out);
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
