/* Lines of /etc/passwd and /etc/group: colon-separated fields, comments and NIS compat lines ("+", "-") skipped.
 * Pure text in, so the bundle writer and pods (each opening the files inside the image's root its own way) and
 * the fuzz targets share it. */
#include <stdlib.h>
#include <string.h>

#include "pea/image_accounts.h"
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

bool image_accounts_parse_id(const char *text, uint32_t *id)
{
    if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 10)
        return false;
    unsigned long long v = strtoull(text, NULL, 10);
    if (v > UINT32_MAX - 1)
        return false;
    *id = (uint32_t)v;
    return true;
}

bool image_passwd_find(const char *passwd, const char *name, uint32_t uid, struct image_passwd_entry *out)
{
    *out = (struct image_passwd_entry){0};
    const char *text = passwd;
    struct db_line l;
    char *line;
    while ((line = db_next_line(&text, &l))) {
        uint32_t line_uid, line_gid;
        bool is_match = l.n >= 4 && image_accounts_parse_id(l.field[2], &line_uid) && image_accounts_parse_id(l.field[3], &line_gid) &&
                        (name ? strcmp(l.field[0], name) == 0 : line_uid == uid);
        if (is_match) {
            *out = (struct image_passwd_entry){.uid = line_uid, .gid = line_gid, .name = xstrdup(l.field[0]),
                                               .home = l.n >= 6 ? xstrdup(l.field[5]) : NULL};
            free(line);
            return true;
        }
        free(line);
    }
    return false;
}

bool image_group_find(const char *group, const char *name, uint32_t *gid)
{
    const char *text = group;
    struct db_line l;
    char *line;
    bool is_found = false;
    while (!is_found && (line = db_next_line(&text, &l))) {
        is_found = l.n >= 3 && strcmp(l.field[0], name) == 0 && image_accounts_parse_id(l.field[2], gid);
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

void image_group_memberships(const char *group, const char *name, uint32_t **gids, size_t *n_gids)
{
    const char *text = group;
    struct db_line l;
    char *line;
    while ((line = db_next_line(&text, &l))) {
        uint32_t gid;
        if (l.n >= 4 && image_accounts_parse_id(l.field[2], &gid) && list_has_member(l.field[3], name)) {
            bool is_seen = false;
            for (size_t i = 0; i < *n_gids; i++)
                is_seen = is_seen || (*gids)[i] == gid;
            if (!is_seen) {
                *gids = xrealloc(*gids, (*n_gids + 1) * sizeof(uint32_t));
                (*gids)[(*n_gids)++] = gid;
            }
        }
        free(line);
    }
}
