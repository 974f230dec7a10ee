/* YAML → JSON for pod manifests, from libyaml's event stream. Plain scalars are typed by YAML 1.2's core schema
 * (so "yes" and "on" stay strings, unlike YAML 1.1), but for integers with a leading 0, octal as Kubernetes reads
 * them; quoted and block scalars stay strings. Anchors and aliases are
 * refused: a manifest has no use for them and aliases are how small documents become huge trees. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "manifest_sources.h"
#include "pea/pod_manifest.h"
#include "pea/util.h"

#define YAML_MAX_DEPTH 64

#define TAG_PREFIX "tag:yaml.org,2002:"

/* Where a node sits, as far as the path spec.containers[N].env (or initContainers) of a document goes: when the
 * builder has env_lists, that list's entries are parsed there one by one (manifest_env_list) and never join the
 * tree. */
enum frame_role {
    ROLE_OTHER,
    ROLE_DOCUMENT,
    ROLE_POD_SPEC,
    ROLE_CONTAINER_LIST,
    ROLE_CONTAINER,
    ROLE_ENV_LIST,
    ROLE_ENV_ENTRY,
};

struct yaml_frame {
    json_t *node; /* borrowed: owned by its parent, or by the builder's root; an ENV_ENTRY's is the frame's own */
    char *key;    /* a mapping's key waiting for its value; NULL when the next scalar is a key */
    enum frame_role role;
    struct manifest_env_list *env_list; /* ENV_LIST */
};

struct yaml_builder {
    json_t *root;
    struct yaml_frame stack[YAML_MAX_DEPTH];
    size_t depth;
    int documents;
    json_t *all;        /* every document's root, when the stream may hold several; else NULL */
    size_t line_offset; /* lines of the text before the one given to libyaml */
    struct manifest_env_lists *env_lists; /* NULL: env lists stay in the tree */
};

static void builder_release(struct yaml_builder *b)
{
    for (size_t i = 0; i < b->depth; i++) {
        free(b->stack[i].key);
        if (b->stack[i].role == ROLE_ENV_ENTRY)
            json_decref(b->stack[i].node);
    }
    json_decref(b->root);
    json_decref(b->all);
}

static size_t line_of(const struct yaml_builder *b, const yaml_event_t *ev)
{
    return b->line_offset + ev->start_mark.line + 1;
}

/* ---- scalar resolution (YAML 1.2 core schema) ---- */

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

static bool all_chars_in(const char *s, const char *set) { return *s && s[strspn(s, set)] == '\0'; }

static bool is_decimal_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    return all_chars_in(s, "0123456789");
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_decimal_float(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    size_t whole = strspn(s, "0123456789");
    s += whole;
    size_t fraction = 0;
    if (*s == '.') {
        s++;
        fraction = strspn(s, "0123456789");
        s += fraction;
    }
    if (whole == 0 && fraction == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        return all_chars_in(s, "0123456789");
    }
    return *s == '\0';
}

enum scalar_kind { SCALAR_STRING, SCALAR_NULL, SCALAR_BOOL, SCALAR_INT, SCALAR_FLOAT };

static enum scalar_kind scalar_kind_of(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
                                           "-.INF", ".nan", ".NaN", ".NAN", NULL};
    if (strlen(s) != len)
        return SCALAR_STRING;
    if (is_one_of(s, nulls))
        return SCALAR_NULL;
    if (is_one_of(s, bools))
        return SCALAR_BOOL;
    if (is_decimal_int(s) || (strncmp(s, "0o", 2) == 0 && all_chars_in(s + 2, "01234567")) ||
        (strncmp(s, "0x", 2) == 0 && all_chars_in(s + 2, "0123456789abcdefABCDEF")))
        return SCALAR_INT;
    if (is_decimal_float(s) || is_one_of(s, specials))
        return SCALAR_FLOAT;
    return SCALAR_STRING;
}

static json_t *int_from_text(const char *s, size_t line, struct pea_error *err)
{
    bool has_prefix = s[0] == '0' && (s[1] == 'o' || s[1] == 'x');
    int base = has_prefix ? (s[1] == 'o' ? 8 : 16) : 10;
    /* A leading 0 is octal, as Kubernetes reads YAML (YAML 1.1's integers): `defaultMode: 0400` is r-------- there,
     * and a decimal 400 would give another mode without a word. */
    if (s[0] == '0' && all_chars_in(s + 1, "01234567"))
        base = 8;
    errno = 0;
    long long v = strtoll(has_prefix ? s + 2 : s, NULL, base);
    if (errno == ERANGE) {
        pea_fail(err, 0, "line %zu: integer %s is out of range", line, s);
        return NULL;
    }
    return json_integer(v);
}

static json_t *float_from_text(const char *s, size_t line, struct pea_error *err)
{
    /* jansson holds finite numbers only, and no manifest field wants infinity. strtod does not read YAML's .inf and
     * .nan (both spelled with an n); overflow gives an infinity. */
    double v = strtod(s, NULL);
    if (strpbrk(s, "nN") || !isfinite(v)) {
        pea_fail(err, 0, "line %zu: number %s is not finite", line, s);
        return NULL;
    }
    return json_real(v);
}

static json_t *scalar_as(enum scalar_kind kind, const char *s, size_t len, size_t line, struct pea_error *err)
{
    switch (kind) {
    case SCALAR_NULL:
        return json_null();
    case SCALAR_BOOL:
        return json_boolean(s[0] == 't' || s[0] == 'T');
    case SCALAR_INT:
        return int_from_text(s, line, err);
    case SCALAR_FLOAT:
        return float_from_text(s, line, err);
    case SCALAR_STRING:
        break;
    }
    json_t *j = json_stringn(s, len);
    if (!j)
        pea_fail(err, 0, "line %zu: string is not valid UTF-8", line);
    return j;
}

/* The kind an explicit core tag asks for; -1 for a tag pea does not know. "!" is the non-specific tag of a quoted
 * or block scalar: a string. */
static int scalar_kind_of_tag(const char *tag)
{
    static const struct {
        const char *name;
        enum scalar_kind kind;
    } tags[] = {{TAG_PREFIX "str", SCALAR_STRING}, {TAG_PREFIX "null", SCALAR_NULL}, {TAG_PREFIX "bool", SCALAR_BOOL},
                {TAG_PREFIX "int", SCALAR_INT},    {TAG_PREFIX "float", SCALAR_FLOAT}, {"!", SCALAR_STRING}};
    for (size_t i = 0; i < ARRAY_SIZE(tags); i++)
        if (strcmp(tag, tags[i].name) == 0)
            return (int)tags[i].kind;
    return -1;
}

static json_t *scalar_to_json(const yaml_event_t *ev, size_t line, struct pea_error *err)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag) {
        int wanted = scalar_kind_of_tag(tag);
        if (wanted < 0) {
            pea_fail(err, 0, "line %zu: YAML tag %s is not supported", line, tag);
            return NULL;
        }
        enum scalar_kind found = scalar_kind_of(text, len);
        /* An int is also a valid !!float; anything is a valid !!str. */
        if (wanted != SCALAR_STRING && (int)found != wanted && !(wanted == SCALAR_FLOAT && found == SCALAR_INT)) {
            pea_fail(err, 0, "line %zu: \"%s\" does not match its tag %s", line, text, tag);
            return NULL;
        }
        return scalar_as((enum scalar_kind)wanted, text, len, line, err);
    }
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return scalar_as(SCALAR_STRING, text, len, line, err);
    return scalar_as(scalar_kind_of(text, len), text, len, line, err);
}

/* ---- tree building ---- */

/* Put value (a new reference, stolen) where the stack says: the document's root, the next array element (or the
 * env list's parse), or the value of the pending key. */
static int builder_add(struct yaml_builder *b, json_t *value, size_t line, struct pea_error *err)
{
    if (b->depth == 0) {
        b->root = value;
        return 0;
    }
    struct yaml_frame *top = &b->stack[b->depth - 1];
    if (top->role == ROLE_ENV_LIST) {
        manifest_env_list_read(top->env_list, value);
        return 0;
    }
    if (json_is_array(top->node))
        return json_array_append_new(top->node, value) == 0 ? 0 : pea_fail(err, 0, "line %zu: out of memory", line);
    AUTO_FREE char *key = take_ptr(&top->key);
    if (json_object_set_new(top->node, key, value) < 0)
        return pea_fail(err, 0, "line %zu: cannot store key \"%s\"", line, key);
    return 0;
}

static bool builder_wants_key(const struct yaml_builder *b)
{
    const struct yaml_frame *top = b->depth ? &b->stack[b->depth - 1] : NULL;
    return top && json_is_object(top->node) && !top->key;
}

static int builder_take_key(struct yaml_builder *b, const yaml_event_t *ev, struct pea_error *err)
{
    size_t line = line_of(b, ev);
    const char *text = (const char *)ev->data.scalar.value;
    bool is_plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag;
    const char *tag = (const char *)ev->data.scalar.tag;
    if ((is_plain && scalar_kind_of(text, ev->data.scalar.length) != SCALAR_STRING) ||
        (tag && scalar_kind_of_tag(tag) != SCALAR_STRING))
        return pea_fail(err, 0, "line %zu: mapping key %s is not a string", line, text);
    if (strlen(text) != ev->data.scalar.length)
        return pea_fail(err, 0, "line %zu: mapping key contains NUL", line);
    struct yaml_frame *top = &b->stack[b->depth - 1];
    if (json_object_get(top->node, text))
        return pea_fail(err, 0, "line %zu: duplicate key \"%s\"", line, text);
    top->key = xstrdup(text);
    return 0;
}

/* The role of a mapping or sequence about to open under the top of the stack (whose pending key is its key). */
static enum frame_role role_of(const struct yaml_builder *b, bool is_mapping)
{
    if (!b->env_lists)
        return ROLE_OTHER;
    if (b->depth == 0)
        return is_mapping ? ROLE_DOCUMENT : ROLE_OTHER;
    const struct yaml_frame *top = &b->stack[b->depth - 1];
    switch (top->role) {
    case ROLE_DOCUMENT:
        return is_mapping && strcmp(top->key, "spec") == 0 ? ROLE_POD_SPEC : ROLE_OTHER;
    case ROLE_POD_SPEC:
        return !is_mapping && (strcmp(top->key, "containers") == 0 || strcmp(top->key, "initContainers") == 0)
                   ? ROLE_CONTAINER_LIST
                   : ROLE_OTHER;
    case ROLE_CONTAINER_LIST:
        return is_mapping ? ROLE_CONTAINER : ROLE_OTHER;
    case ROLE_CONTAINER:
        return !is_mapping && strcmp(top->key, "env") == 0 ? ROLE_ENV_LIST : ROLE_OTHER;
    case ROLE_ENV_LIST:
        return ROLE_ENV_ENTRY;
    default:
        return ROLE_OTHER;
    }
}

static int builder_open(struct yaml_builder *b, const yaml_event_t *ev, struct pea_error *err)
{
    size_t line = line_of(b, ev);
    bool is_mapping = ev->type == YAML_MAPPING_START_EVENT;
    const char *tag = (const char *)(is_mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (builder_wants_key(b))
        return pea_fail(err, 0, "line %zu: mapping keys must be strings", line);
    if (tag && strcmp(tag, "!") != 0 && strcmp(tag, is_mapping ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0)
        return pea_fail(err, 0, "line %zu: YAML tag %s is not supported", line, tag);
    if (b->depth == YAML_MAX_DEPTH)
        return pea_fail(err, 0, "line %zu: nested deeper than %d levels", line, YAML_MAX_DEPTH);
    json_t *node = is_mapping ? json_object() : json_array();
    enum frame_role role = role_of(b, is_mapping);
    /* An env entry joins its list's parse once complete, not the tree now. */
    if (role != ROLE_ENV_ENTRY && builder_add(b, node, line, err) < 0)
        return -1;
    b->stack[b->depth++] = (struct yaml_frame){
        .node = node,
        .role = role,
        .env_list = role == ROLE_ENV_LIST ? manifest_env_lists_add(b->env_lists, node) : NULL,
    };
    /* The list's array holds a null in the tree: read without its lists (say, dumped and parsed again), the tree
     * fails with "env[0]: must be an object" instead of giving the container no env at all. */
    if (role == ROLE_ENV_LIST)
        json_array_append_new(node, json_null());
    return 0;
}

static void builder_close(struct yaml_builder *b)
{
    struct yaml_frame *closed = &b->stack[--b->depth];
    if (closed->role == ROLE_ENV_ENTRY)
        manifest_env_list_read(b->stack[b->depth - 1].env_list, closed->node);
}

static int builder_handle(struct yaml_builder *b, const yaml_event_t *ev, struct pea_error *err)
{
    size_t line = line_of(b, ev);
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1 && !b->all)
            return pea_fail(err, 0, "line %zu: more than one YAML document", line);
        return 0;
    case YAML_DOCUMENT_END_EVENT:
        /* A document without content is null, as YAML says. */
        if (b->all)
            json_array_append_new(b->all, b->root ? take_ptr(&b->root) : json_null());
        return 0;
    case YAML_ALIAS_EVENT:
        return pea_fail(err, 0, "line %zu: YAML aliases are not supported", line);
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor)
            return pea_fail(err, 0, "line %zu: YAML anchors are not supported", line);
        if (builder_wants_key(b))
            return builder_take_key(b, ev, err);
        json_t *value = scalar_to_json(ev, line, err);
        if (!value)
            return -1;
        return builder_add(b, value, line, err);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor != NULL
                                                  : ev->data.mapping_start.anchor != NULL)
            return pea_fail(err, 0, "line %zu: YAML anchors are not supported", line);
        return builder_open(b, ev, err);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        builder_close(b);
        return 0;
    default:
        return 0;
    }
}

static void yaml_parser_delete_p(yaml_parser_t *p) { yaml_parser_delete(p); }

/* Build one document (all NULL) or every document into all; line_offset counts the lines before text. */
static json_t *yaml_build(const char *text, size_t len, json_t *all, size_t line_offset,
                          struct manifest_env_lists *env_lists, struct pea_error *err)
{
    if (len > PEA_MANIFEST_MAX_SIZE) {
        pea_fail(err, 0, "YAML larger than %d bytes (" PEA_MANIFEST_LIMIT_TEXT ")", PEA_MANIFEST_MAX_SIZE);
        return NULL;
    }
    __attribute__((cleanup(yaml_parser_delete_p))) yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        pea_fail(err, ENOMEM, "initialize the YAML parser");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    struct yaml_builder b = {.all = all, .line_offset = line_offset, .env_lists = env_lists};
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            pea_fail(err, 0, "line %zu: %s", line_offset + parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "invalid YAML");
            builder_release(&b);
            return NULL;
        }
        bool is_end = ev.type == YAML_STREAM_END_EVENT;
        int r = builder_handle(&b, &ev, err);
        yaml_event_delete(&ev);
        if (r < 0) {
            builder_release(&b);
            return NULL;
        }
        if (is_end)
            break;
    }
    if (all)
        return all;
    /* An empty stream is an empty document: null, as YAML says. */
    return b.root ? b.root : json_null();
}

json_t *manifest_yaml_to_json(const char *text, size_t len, struct pea_error *err)
{
    return yaml_build(text, len, NULL, 0, NULL, err);
}

json_t *manifest_yaml_documents(const char *text, size_t len, size_t line_offset, struct manifest_env_lists *env_lists,
                                struct pea_error *err)
{
    return yaml_build(text, len, json_array(), line_offset, env_lists, err);
}
