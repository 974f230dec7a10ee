/* An image configuration converted to a runtime configuration, as the OCI image spec's conversion document says:
 * WorkingDir, Env, Entrypoint and Cmd verbatim; os, architecture, variant, os.version, os.features, author,
 * created, StopSignal and ExposedPorts as org.opencontainers.image.* annotations, Config.Labels over them;
 * Config.User resolved by the caller inside the image's root. */
#include <string.h>

#include "pea/image_bundle.h"
#include "pea/util.h"

#define ANNOTATION_PREFIX "org.opencontainers.image."

/* A list of strings from the image config, or NULL when absent or null; -1 when it is something else. */
static int string_list(json_t *config, const char *key, json_t **out, struct pea_error *err)
{
    json_t *v = json_object_get(config, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return pea_fail(err, 0, "image config: config.%s must be a list of strings", key);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) if (!json_is_string(item))
        return pea_fail(err, 0, "image config: config.%s[%zu] must be a string", key, i);
    *out = v;
    return 0;
}

static bool env_has(json_t *env, const char *name)
{
    size_t len = strlen(name), i;
    json_t *item;
    json_array_foreach(env, i, item)
    {
        const char *text = json_string_value(item);
        if (strncmp(text, name, len) == 0 && text[len] == '=')
            return true;
    }
    return false;
}

static int set_args(json_t *process, json_t *config, char ***notices, struct pea_error *err)
{
    json_t *entrypoint, *cmd;
    if (string_list(config, "Entrypoint", &entrypoint, err) < 0 || string_list(config, "Cmd", &cmd, err) < 0)
        return -1;
    json_t *args = json_array();
    if (entrypoint)
        json_array_extend(args, entrypoint);
    if (cmd)
        json_array_extend(args, cmd);
    if (json_array_size(args) == 0) {
        json_decref(args);
        strv_append(notices, "the image has neither Entrypoint nor Cmd: process.args is the default [\"sh\"]");
        return 0;
    }
    json_object_set_new(process, "args", args);
    return 0;
}

/* The image's Env, then what a process needs that the image leaves out: the conversion document lets a converter
 * add variables, never change one the image sets. */
static int set_env(json_t *process, json_t *config, const struct pea_image_user *user, bool has_terminal,
                   struct pea_error *err)
{
    json_t *image_env;
    if (string_list(config, "Env", &image_env, err) < 0)
        return -1;
    json_t *env = image_env ? json_deep_copy(image_env) : json_array();
    if (!env_has(env, "PATH"))
        json_array_append_new(env, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (has_terminal && !env_has(env, "TERM"))
        json_array_append_new(env, json_string("TERM=xterm"));
    /* runc sets HOME when the environment lacks it, pea does not: say it here so that both run the same. */
    if (!env_has(env, "HOME")) {
        AUTO_FREE char *home = xasprintf("HOME=%s", user->home && *user->home ? user->home : "/");
        json_array_append_new(env, json_string(home));
    }
    json_object_set_new(process, "env", env);
    return 0;
}

static void set_user(json_t *process, const struct pea_image_user *user)
{
    json_t *u = json_pack("{s:I, s:I}", "uid", (json_int_t)user->uid, "gid", (json_int_t)user->gid);
    if (user->n_additional_gids) {
        json_t *gids = json_array();
        for (size_t i = 0; i < user->n_additional_gids; i++)
            json_array_append_new(gids, json_integer(user->additional_gids[i]));
        json_object_set_new(u, "additionalGids", gids);
    }
    json_object_set_new(process, "user", u);
}

static void annotate_string(json_t *annotations, const char *key, json_t *value)
{
    if (json_is_string(value) && *json_string_value(value))
        json_object_set(annotations, key, value);
}

/* A list of strings (os.features) or an object's keys (ExposedPorts), comma-separated. */
static void annotate_joined(json_t *annotations, const char *key, json_t *value)
{
    AUTO_FREE char *text = NULL;
    const char *name;
    json_t *item;
    size_t i;
    if (json_is_array(value)) {
        json_array_foreach(value, i, item) if (json_is_string(item))
        {
            char *next = text ? xasprintf("%s,%s", text, json_string_value(item)) : xstrdup(json_string_value(item));
            free(text);
            text = next;
        }
    } else if (json_is_object(value)) {
        json_object_foreach(value, name, item)
        {
            char *next = text ? xasprintf("%s,%s", text, name) : xstrdup(name);
            free(text);
            text = next;
        }
    }
    if (text)
        json_object_set_new(annotations, key, json_string(text));
}

static int set_annotations(json_t *spec, json_t *image_config, json_t *config, struct pea_error *err)
{
    json_t *annotations = json_object();
    static const char *const verbatim[] = {"os", "architecture", "variant", "os.version", "author", "created"};
    for (size_t i = 0; i < ARRAY_SIZE(verbatim); i++) {
        AUTO_FREE char *key = xasprintf(ANNOTATION_PREFIX "%s", verbatim[i]);
        annotate_string(annotations, key, json_object_get(image_config, verbatim[i]));
    }
    annotate_joined(annotations, ANNOTATION_PREFIX "os.features", json_object_get(image_config, "os.features"));
    annotate_string(annotations, ANNOTATION_PREFIX "stopSignal", json_object_get(config, "StopSignal"));
    annotate_joined(annotations, ANNOTATION_PREFIX "exposedPorts", json_object_get(config, "ExposedPorts"));
    /* Labels win over every implicit annotation. */
    json_t *labels = json_object_get(config, "Labels");
    if (labels && !json_is_null(labels)) {
        if (!json_is_object(labels)) {
            json_decref(annotations);
            return pea_fail(err, 0, "image config: config.Labels must be an object of strings");
        }
        const char *key;
        json_t *value;
        json_object_foreach(labels, key, value)
        {
            if (!json_is_string(value)) {
                json_decref(annotations);
                return pea_fail(err, 0, "image config: config.Labels.%s must be a string", key);
            }
            json_object_set(annotations, key, value);
        }
    }
    json_object_set_new(spec, "annotations", annotations);
    return 0;
}

static void note_volumes(json_t *config, char ***notices)
{
    json_t *volumes = json_object_get(config, "Volumes");
    if (!json_is_object(volumes) || json_object_size(volumes) == 0)
        return;
    AUTO_FREE char *list = NULL;
    const char *path;
    json_t *ignored;
    json_object_foreach(volumes, path, ignored)
    {
        char *next = list ? xasprintf("%s, %s", list, path) : xstrdup(path);
        free(list);
        list = next;
    }
    AUTO_FREE char *text = xasprintf("the image declares volumes (%s): they stay in the rootfs; add mounts to "
                                     "config.json to keep their data elsewhere",
                                     list);
    strv_append(notices, text);
}

int pea_image_runtime_config(json_t *spec, json_t *image_config, const struct pea_image_user *user,
                             bool has_terminal, char ***notices, struct pea_error *err)
{
    json_t *config = json_object_get(image_config, "config");
    if (config && !json_is_null(config) && !json_is_object(config))
        return pea_fail(err, 0, "image config: config must be an object");
    if (!json_is_object(config))
        config = NULL; /* json_object_get(NULL, ...) is NULL: every field absent */
    json_t *process = json_object_get(spec, "process");
    if (set_args(process, config, notices, err) < 0 || set_env(process, config, user, has_terminal, err) < 0)
        return -1;
    json_t *workdir = json_object_get(config, "WorkingDir");
    const char *cwd = json_is_string(workdir) && *json_string_value(workdir) ? json_string_value(workdir) : "/";
    /* The runtime spec wants an absolute cwd; docker takes a relative WorkingDir from the root. */
    AUTO_FREE char *absolute = xasprintf("%s%s", cwd[0] == '/' ? "" : "/", cwd);
    json_object_set_new(process, "cwd", json_string(absolute));
    json_object_set_new(process, "terminal", json_boolean(has_terminal));
    set_user(process, user);
    if (set_annotations(spec, image_config, config, err) < 0)
        return -1;
    note_volumes(config, notices);
    return 0;
}
