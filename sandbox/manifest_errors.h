/* Every error of a manifest file at once: the parsers hand each error to a collector and go on with the next
 * independent part (a document, a container, a volume, a section of the spec), and the collector gives them back in
 * document order, each naming its field's path. Without a collector the first error ends the parse, as before. */
#ifndef PEA_MANIFEST_ERRORS_H
#define PEA_MANIFEST_ERRORS_H

#include <jansson.h>
#include <stddef.h>

#include "pea/error.h"
#include "pea/pod_workload.h"

struct manifest_collected;

struct manifest_collector {
    struct manifest_collected *items;
    size_t n;
    /* What the errors found next belong to: the document (borrowed; its keys' order orders the errors), its
     * number, the label put before each message ("document 2: ", or "" for a file of one document), and the path
     * put before each message's own ("spec.template." in a pod template, "items[3]." in a List). */
    json_t *doc;
    size_t doc_index;
    char label[64];
    char prefix[128];
};

/* Keep err's message (and clear err) when collecting: 0, and the parse goes on. Without a collector: -1. */
int manifest_collect(struct manifest_collector *c, struct pea_error *err);
/* Keep a message as it is (no label or prefix): an error about the file as a whole, or one that names its place. */
void manifest_collect_text(struct manifest_collector *c, const char *text);
/* The errors in document order: a parent's before its children's, then by the position of each field's key in its
 * object (a missing field after the present ones), ties in the order found. The collector is emptied. */
void manifest_collector_finish(struct manifest_collector *c, struct pea_manifest_errors *out);
void manifest_collector_free(struct manifest_collector *c);

/* A part's error (r < 0) kept by the collector c, and the parse goes on with the next part: 0. Without a collector
 * the first error ends the parse: -1. */
static inline int manifest_keep_error(int r, struct manifest_collector *c, struct pea_error *err)
{
    return r < 0 ? manifest_collect(c, err) : 0;
}
/* Every key of obj must be in known (NULL-terminated): "<path>.<key>: unknown field", each unknown key a line of its
 * own when collecting. */
int manifest_check_known_each(json_t *obj, const char *path, const char *const *known, struct manifest_collector *c,
                              struct pea_error *err);

/* The Pod document alone (manifest.c), every error kept by c when given: NULL when it had any. */
struct pea_pod_manifest *manifest_from_pod_json_collecting(json_t *root, struct manifest_collector *c,
                                                           struct pea_error *err);

#endif
