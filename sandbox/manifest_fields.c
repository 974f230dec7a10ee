/* Typed, strict field access for the manifest parser: each getter knows the field's path and says what is wrong. */
#include <float.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_internal.h"
#include "pea/util.h"

void field_path(char *buf, size_t len, const char *parent, const char *key)
{
    snprintf(buf, len, "%s%s%s", parent, *parent ? "." : "", key);
}

int field_fail(struct pea_error *err, const char *parent, const char *key, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pea_fail(err, 0, "%s%s%s: %s", parent, *parent ? "." : "", key, what);
}

int field_check_known(json_t *obj, const char *path, const char *const *known, struct pea_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        const char *const *k = known;
        while (*k && strcmp(*k, key) != 0)
            k++;
        if (!*k)
            return field_fail(err, path, key, "unknown field");
    }
    return 0;
}

/* The member at key, or NULL when absent or null. */
static json_t *field_value(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A string without NUL: C code downstream sees all of it. */
static bool is_plain_string(json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

int field_get_string(json_t *obj, const char *parent, const char *key, bool required, char **out,
                     struct pea_error *err)
{
    json_t *v = field_value(obj, key);
    if (!v)
        return required ? field_fail(err, parent, key, "missing") : 0;
    if (!json_is_string(v))
        return field_fail(err, parent, key, "must be a string");
    if (!is_plain_string(v))
        return field_fail(err, parent, key, "must not contain NUL");
    if (out)
        *out = xstrdup(json_string_value(v));
    return 0;
}

int field_get_bool(json_t *obj, const char *parent, const char *key, bool *out, struct pea_error *err)
{
    json_t *v = field_value(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return field_fail(err, parent, key, "must be a boolean");
    *out = json_is_true(v);
    return 0;
}

int field_get_int(json_t *obj, const char *parent, const char *key, long long min, long long max, bool *present,
                  long long *out, struct pea_error *err)
{
    json_t *v = field_value(obj, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return field_fail(err, parent, key, "must be an integer");
    long long n = json_integer_value(v);
    if (n < min || n > max)
        return field_fail(err, parent, key, "must be between %lld and %lld", min, max);
    *out = n;
    return 0;
}

int field_get_id(json_t *obj, const char *parent, const char *key, bool *present, uint32_t *out,
                 struct pea_error *err)
{
    long long v = 0;
    if (field_get_int(obj, parent, key, 0, UINT32_MAX - 1, present, &v, err) < 0)
        return -1;
    if (*present)
        *out = (uint32_t)v;
    return 0;
}

int field_get_object(json_t *obj, const char *parent, const char *key, bool required, json_t **out,
                     struct pea_error *err)
{
    json_t *v = field_value(obj, key);
    *out = NULL;
    if (!v)
        return required ? field_fail(err, parent, key, "missing") : 0;
    if (!json_is_object(v))
        return field_fail(err, parent, key, "must be an object");
    *out = v;
    return 0;
}

int field_get_array(json_t *obj, const char *parent, const char *key, json_t **out, struct pea_error *err)
{
    json_t *v = field_value(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_array(v))
        return field_fail(err, parent, key, "must be a list");
    *out = v;
    return 0;
}

int field_get_strv(json_t *obj, const char *parent, const char *key, char ***out, struct pea_error *err)
{
    json_t *list;
    if (field_get_array(obj, parent, key, &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    size_t n = json_array_size(list);
    AUTO_STRV char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(list, i);
        if (!is_plain_string(s)) {
            char path[FIELD_PATH_MAX];
            field_path(path, sizeof path, parent, key);
            return pea_fail(err, 0, "%s[%zu]: must be a string", path, i);
        }
        v[i] = xstrdup(json_string_value(s));
    }
    *out = take_ptr(&v);
    return 0;
}

int field_get_string_map(json_t *obj, const char *parent, const char *key, json_t **out, struct pea_error *err)
{
    json_t *map;
    if (field_get_object(obj, parent, key, false, &map, err) < 0)
        return -1;
    if (!map) {
        *out = json_object();
        return 0;
    }
    char path[FIELD_PATH_MAX];
    field_path(path, sizeof path, parent, key);
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) if (!is_plain_string(v)) return field_fail(err, path, k, "must be a string");
    *out = json_incref(map);
    return 0;
}

int field_get_enum(json_t *obj, const char *parent, const char *key, const char *const *names, int *out,
                   struct pea_error *err)
{
    AUTO_FREE char *s = NULL;
    if (field_get_string(obj, parent, key, false, &s, err) < 0)
        return -1;
    if (!s)
        return 0;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    char allowed[256] = "";
    for (int i = 0; names[i]; i++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s\"%s\"", i ? ", " : "", names[i]);
    return field_fail(err, parent, key, "must be one of %s, not \"%s\"", allowed, s);
}

/* The shortest decimal text that reads back as v: 0.1 is "0.1", not 0.10000000000000001. */
static void real_to_text(double v, char *buf, size_t len)
{
    for (int digits = 1; digits <= DBL_DECIMAL_DIG; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

int field_get_quantity(json_t *obj, const char *parent, const char *key, bool is_cpu, bool *present, uint64_t *out,
                       struct pea_error *err)
{
    json_t *v = field_value(obj, key);
    *present = v != NULL;
    if (!v)
        return 0;
    char text[64];
    if (json_is_integer(v))
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        real_to_text(json_real_value(v), text, sizeof text);
    else if (is_plain_string(v))
        snprintf(text, sizeof text, "%s", json_string_value(v));
    else
        return field_fail(err, parent, key, "must be a quantity (a string or a number)");
    if (json_is_string(v) && json_string_length(v) >= sizeof text)
        return field_fail(err, parent, key, "invalid quantity (too long)");
    int r = is_cpu ? manifest_parse_cpu(text, out, err) : manifest_parse_bytes(text, out, err);
    if (r < 0) {
        char path[FIELD_PATH_MAX];
        field_path(path, sizeof path, parent, key);
        return pea_wrap(err, "%s", path);
    }
    return 0;
}

/* ---- names and paths ---- */

bool name_is_dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

bool name_is_dns_subdomain(const char *s, size_t max)
{
    if (strlen(s) > max)
        return false;
    char label[64];
    for (const char *p = s;;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof label)
            return false;
        memcpy(label, p, n);
        label[n] = '\0';
        if (!name_is_dns_label(label))
            return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], of n characters: a label value's or a qualified name's name part. */
static bool is_label_word(const char *s, size_t n)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (n == 0 || !strchr(alnum, s[0]) || !strchr(alnum, s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr(alnum, s[i]) && !strchr("-_.", s[i]))
            return false;
    return true;
}

bool name_is_qualified(const char *s)
{
    const char *slash = strchr(s, '/');
    const char *name = slash ? slash + 1 : s;
    if (slash) {
        size_t n = (size_t)(slash - s);
        char prefix[254];
        if (n == 0 || n >= sizeof prefix)
            return false;
        memcpy(prefix, s, n);
        prefix[n] = '\0';
        if (!name_is_dns_subdomain(prefix, 253))
            return false;
    }
    size_t n = strlen(name);
    return n <= 63 && !strchr(name, '/') && is_label_word(name, n);
}

bool label_value_is_valid(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || (n <= 63 && is_label_word(s, n));
}

bool path_is_confined(const char *s)
{
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n;
        p += strspn(p, "/");
    }
    return true;
}

char *path_normalize(const char *s)
{
    char *r = xmalloc(strlen(s) + 1), *o = r;
    for (const char *p = s; *p; p++)
        if (*p != '/' || o == r || o[-1] != '/')
            *o++ = *p;
    while (o > r + 1 && o[-1] == '/')
        o--;
    *o = '\0';
    return r;
}
