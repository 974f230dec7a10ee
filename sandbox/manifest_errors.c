/* The manifest's error collector: messages kept as the parsers find them, given back in document order. The order
 * comes from the document itself: each message starts with its field's path, which is walked through the document
 * to the position of every key (jansson keeps an object's keys in the order read). */
#include <stdlib.h>
#include <string.h>

#include "manifest_errors.h"
#include "manifest_internal.h"
#include "pea/util.h"

struct manifest_collected {
    char *text;
    size_t doc_index;
    size_t *order; /* positions along the path: key indices in objects, element indices in arrays */
    size_t n_order;
    size_t seq;
};

/* The position of the longest key of obj that path starts with (followed by '.', '[' or its end), and its length;
 * the object's size (after every key) and 0 when none is. */
static size_t key_position(json_t *obj, const char *path, size_t *key_len)
{
    const char *key;
    json_t *value;
    size_t i = 0, best = json_object_size(obj);
    *key_len = 0;
    json_object_foreach(obj, key, value) {
        size_t n = strlen(key);
        if (n > *key_len && strncmp(path, key, n) == 0 && (path[n] == '\0' || path[n] == '.' || path[n] == '['))
            best = i, *key_len = n;
        i++;
    }
    return best;
}

/* Walk path (up to its first ": " or " (") through doc, recording positions. */
static void path_order(json_t *doc, const char *message, size_t **order, size_t *n_order)
{
    size_t end = strlen(message);
    const char *stop = strstr(message, ": ");
    if (stop)
        end = (size_t)(stop - message);
    stop = strstr(message, " (");
    if (stop && (size_t)(stop - message) < end)
        end = (size_t)(stop - message);
    AUTO_FREE char *path = xmalloc(end + 1);
    memcpy(path, message, end);
    path[end] = '\0';
    json_t *node = doc;
    const char *p = path;
    while (*p && node) {
        size_t pos, len = 0;
        if (*p == '[') {
            char *after;
            unsigned long long index = strtoull(p + 1, &after, 10);
            if (*after != ']' || !json_is_array(node))
                break;
            pos = (size_t)index;
            node = json_array_get(node, pos);
            p = after + 1;
        } else if (json_is_object(node)) {
            pos = key_position(node, p, &len);
            AUTO_FREE char *key = xmalloc(len + 1);
            memcpy(key, p, len);
            key[len] = '\0';
            node = len ? json_object_get(node, key) : NULL;
            p += len;
        } else {
            break;
        }
        *order = xrealloc(*order, (*n_order + 1) * sizeof **order);
        (*order)[(*n_order)++] = pos;
        if (*p == '.')
            p++;
    }
}

static void keep(struct manifest_collector *c, char *text, const char *path)
{
    c->items = xrealloc(c->items, (c->n + 1) * sizeof *c->items);
    struct manifest_collected *item = &c->items[c->n];
    *item = (struct manifest_collected){.text = text, .doc_index = c->doc_index, .seq = c->n};
    if (path && c->doc)
        path_order(c->doc, path, &item->order, &item->n_order);
    c->n++;
}

int manifest_collect(struct manifest_collector *c, struct pea_error *err)
{
    if (!c)
        return -1;
    char *text = xasprintf("%s%s%s", c->label, c->prefix, err->msg);
    keep(c, text, text + strlen(c->label));
    *err = (struct pea_error){0};
    return 0;
}

void manifest_collect_text(struct manifest_collector *c, const char *text)
{
    keep(c, xstrdup(text), NULL);
}

static int compare_collected(const void *pa, const void *pb)
{
    const struct manifest_collected *a = pa, *b = pb;
    if (a->doc_index != b->doc_index)
        return a->doc_index < b->doc_index ? -1 : 1;
    for (size_t i = 0; i < a->n_order && i < b->n_order; i++)
        if (a->order[i] != b->order[i])
            return a->order[i] < b->order[i] ? -1 : 1;
    if (a->n_order != b->n_order)
        return a->n_order < b->n_order ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void manifest_collector_finish(struct manifest_collector *c, struct pea_manifest_errors *out)
{
    if (c->n)
        qsort(c->items, c->n, sizeof *c->items, compare_collected);
    out->lines = xcalloc(c->n + 1, sizeof *out->lines);
    out->n = c->n;
    for (size_t i = 0; i < c->n; i++) {
        out->lines[i] = take_ptr(&c->items[i].text);
        free(c->items[i].order);
    }
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

void manifest_collector_free(struct manifest_collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].text);
        free(c->items[i].order);
    }
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

void manifest_errors_free(struct pea_manifest_errors *e)
{
    strv_free(e->lines);
    e->lines = NULL;
    e->n = 0;
}

int manifest_check_known_each(json_t *obj, const char *path, const char *const *known, struct manifest_collector *c,
                              struct pea_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        const char *const *k = known;
        while (*k && strcmp(*k, key) != 0)
            k++;
        if (!*k && manifest_keep_error(field_fail(err, path, key, "unknown field"), c, err) < 0)
            return -1;
    }
    return 0;
}
