/* The manifest parser's parts for where values come from: documents of a file, ConfigMaps and Secrets, env
 * valueFrom and envFrom, and the volumes made of files (configMap, secret, downwardAPI, projected). */
#ifndef PEA_MANIFEST_SOURCES_H
#define PEA_MANIFEST_SOURCES_H

#include <jansson.h>
#include <stdbool.h>

#include "pea/error.h"
#include "pea/pod_manifest.h"

/* A container's env list, read entry by entry as the YAML parser meets it (spec.containers[N].env and
 * spec.initContainers[N].env of a document): a manifest at the size limit is mostly env, and as a parse tree an
 * entry of 37 bytes takes 530. The tree keeps the list's array, holding a null alone, and the container's parse
 * finds the entries by it. */
struct manifest_env_list {
    json_t *placeholder;
    struct pea_pod_env *env;
    size_t n_env, capacity;
    size_t n_read;          /* entries met, good or not */
    bool has_error;
    char **errors;          /* every bad entry's errors, their paths from "env[N]"; entries after the first bad one
                               are dropped */
    size_t n_errors;
};

struct manifest_env_lists {
    struct manifest_env_list **lists;
    size_t n;
};

struct manifest_env_list *manifest_env_lists_add(struct manifest_env_lists *lists, json_t *placeholder);
/* Parse one entry (a new reference, stolen) into l. */
void manifest_env_list_read(struct manifest_env_list *l, json_t *entry);
void manifest_env_lists_free(struct manifest_env_lists *lists);
/* The lists the container parses on this thread take their env from, until called again with NULL. */
void manifest_env_lists_use(const struct manifest_env_lists *lists);

/* Every YAML document of text, as a JSON array (an empty document is null); line_offset counts lines before text.
 * With env_lists, the containers' env lists go there instead of into the tree (see above); NULL keeps them. */
json_t *manifest_yaml_documents(const char *text, size_t len, size_t line_offset, struct manifest_env_lists *env_lists,
                                struct pea_error *err);
/* The documents of a file: JSON values one after another, then YAML documents ("---" between them); env_lists as
 * for manifest_yaml_documents (a JSON document keeps its env in the tree). */
json_t *manifest_documents(const char *text, size_t len, struct manifest_env_lists *env_lists, struct pea_error *err);

/* The Pod document alone (manifest.c), and a file's documents: the Pod and its ConfigMaps and Secrets, with
 * manifest_check_references when asked. */
struct pea_pod_manifest *manifest_from_pod_json(json_t *root, struct pea_error *err);
struct pea_pod_manifest *manifest_from_documents(json_t *docs, bool check_references, struct pea_error *err);
/* manifest_from_documents of text's documents, whose parse tree lives only as long as this call and never holds
 * the containers' env lists (manifest_env_list). */
struct pea_pod_manifest *manifest_from_text(const char *text, size_t len, bool check_references,
                                            struct pea_error *err);
/* A manifest file's text (regular file or stdin, size-limited), and the parse of text that becomes the source. */
char *manifest_read_file(const char *path, size_t *len, struct pea_error *err);
struct pea_pod_manifest *manifest_parse_owned(char *text, size_t len, struct pea_error *err);

/* A ConfigMap or Secret document (its kind already read); where names it in errors ("document 2"). */
int manifest_parse_config(json_t *doc, const char *where, bool is_secret, struct pea_config_object *o,
                          struct pea_error *err);
void manifest_config_free(struct pea_config_object *o);
/* Every ConfigMap, Secret and key the pod names without optional: true exists; containerName of resource
 * references names a container. */
int manifest_check_references(const struct pea_pod_manifest *m, struct pea_error *err);
/* Add a ConfigMap or Secret document to m (refused when m has one of that name); where names it ("document 3"). */
int manifest_add_config(struct pea_pod_manifest *m, json_t *doc, const char *where, bool is_secret,
                        struct pea_error *err);
/* A --configmap or --secret file: each document added to scratch and appended to *lines as one JSON line. */
int manifest_read_config_file(const char *path, bool is_secret, struct pea_pod_manifest *scratch, char **lines,
                              size_t *lines_len, struct pea_error *err);

struct manifest_collector;
/* env (with valueFrom) and envFrom of a container; with a collector (errors, may be NULL) every entry's errors are
 * kept there, each field's on its own, and the parse goes on. */
int manifest_parse_env(json_t *obj, const char *path, struct pea_pod_container *c,
                       struct manifest_collector *errors, struct pea_error *err);
void manifest_env_free(struct pea_pod_container *c);
void manifest_value_ref_free(struct pea_value_ref *r);
/* fieldRef / resourceFieldRef (ref_key is "fieldRef" or "resourceFieldRef") at parent.ref_key; for a volume the
 * fieldPaths a volume may hold, and containerName is required. */
int manifest_parse_field_ref(json_t *obj, const char *parent, bool is_volume, struct pea_value_ref *r,
                             struct pea_error *err);
int manifest_parse_resource_ref(json_t *obj, const char *parent, bool is_volume, struct pea_value_ref *r,
                                struct pea_error *err);

/* A volume whose key (configMap, secret, downwardAPI, projected) is set. */
int manifest_parse_file_volume(json_t *volume, const char *item, const char *key, struct pea_pod_volume *v,
                               struct pea_error *err);
void manifest_file_volume_free(struct pea_pod_volume *v);

#endif
