#include <criterion/criterion.h>
#include <string.h>

#include "pea/image_bundle.h"
#include "pea/spec.h"
#include "pea/util.h"

static const char *const PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
                                  "# a comment\n"
                                  "+nis\n"
                                  "broken line\n"
                                  "app:x:1234:1234:app:/home/app:/bin/sh\n"
                                  "short:x:7:8\n"
                                  "www:x:33:33:www:/var/www:/bin/sh";
static const char *const GROUP = "root:x:0:\n"
                                 "app:x:1234:\n"
                                 "extra:x:2000:www,app\n"
                                 "again:x:2000:app\n"
                                 "other:x:2001:www\n"
                                 "nogroup:x:65534:";

static struct pea_image_user resolved(const char *user)
{
    struct pea_image_user u;
    struct pea_error err = {0};
    cr_assert_eq(pea_image_user_resolve(user, PASSWD, GROUP, &u, &err), 0, "%s: %s", user, err.msg);
    return u;
}

static const char *refused(const char *user, const char *passwd, const char *group)
{
    static struct pea_error err;
    struct pea_image_user u;
    err = (struct pea_error){0};
    cr_assert_eq(pea_image_user_resolve(user, passwd, group, &u, &err), -1, "%s resolved", user);
    return err.msg;
}

Test(image_user, a_name_takes_its_ids_home_and_groups)
{
    struct pea_image_user u = resolved("app");
    cr_assert_eq(u.uid, 1234);
    cr_assert_eq(u.gid, 1234);
    cr_assert_str_eq(u.home, "/home/app");
    /* Every group that lists it, each gid once. */
    cr_assert_eq(u.n_additional_gids, 1);
    cr_assert_eq(u.additional_gids[0], 2000);
    pea_image_user_clear(&u);
}

Test(image_user, numbers_are_taken_as_they_are)
{
    struct pea_image_user u = resolved("33");
    cr_assert_eq(u.uid, 33);
    cr_assert_eq(u.gid, 33); /* from its passwd entry */
    cr_assert_str_eq(u.home, "/var/www");
    cr_assert_eq(u.n_additional_gids, 0); /* a numeric user keeps the default groups */
    pea_image_user_clear(&u);
    u = resolved("4000:4001");
    cr_assert_eq(u.uid, 4000);
    cr_assert_eq(u.gid, 4001);
    cr_assert_null(u.home);
    pea_image_user_clear(&u);
    u = resolved("4000");
    cr_assert_eq(u.gid, 0);
    pea_image_user_clear(&u);
}

Test(image_user, a_group_given_replaces_the_memberships)
{
    struct pea_image_user u = resolved("app:other");
    cr_assert_eq(u.uid, 1234);
    cr_assert_eq(u.gid, 2001);
    cr_assert_eq(u.n_additional_gids, 0);
    pea_image_user_clear(&u);
    u = resolved("www:65534");
    cr_assert_eq(u.gid, 65534);
    pea_image_user_clear(&u);
}

Test(image_user, empty_is_root)
{
    struct pea_image_user u = resolved("");
    cr_assert_eq(u.uid, 0);
    cr_assert_eq(u.gid, 0);
    cr_assert_str_eq(u.home, "/root");
    pea_image_user_clear(&u);
    /* A line of four fields is a user without a home. */
    u = resolved("short");
    cr_assert_eq(u.uid, 7);
    cr_assert_null(u.home);
    pea_image_user_clear(&u);
}

Test(image_user, unknown_names_fail)
{
    cr_assert_str_eq(refused("ghost", PASSWD, GROUP), "user ghost not found in the image's /etc/passwd");
    cr_assert_str_eq(refused("app", NULL, GROUP), "user app not found in the image's /etc/passwd (it has none)");
    cr_assert_str_eq(refused("app:ghosts", PASSWD, GROUP), "group ghosts not found in the image's /etc/group");
    cr_assert_str_eq(refused("0:wheel", PASSWD, NULL), "group wheel not found in the image's /etc/group (it has none)");
    cr_assert_str_eq(refused("app:", PASSWD, GROUP), "user \"app:\": the group after ':' is empty");
    /* (uid_t)-1 is no user: it is taken as a name, and there is none. */
    cr_assert_str_eq(refused("4294967295", PASSWD, GROUP), "user 4294967295 not found in the image's /etc/passwd");
    /* A comment or NIS line never names a user. */
    cr_assert_str_eq(refused("+nis", PASSWD, GROUP), "user +nis not found in the image's /etc/passwd");
}

/* The conversion over the default spec: the spec, or NULL with *why. */
static json_t *converted(const char *image_config_text, bool has_terminal, char ***notices, const char **why)
{
    static struct pea_error err;
    err = (struct pea_error){0};
    json_error_t jerr;
    json_t *image = json_loads(image_config_text, 0, &jerr);
    cr_assert_not_null(image, "%s", jerr.text);
    json_t *spec = spec_default_json(false);
    struct pea_image_user u = {.uid = 5, .gid = 6, .home = "/home/five"};
    int r = pea_image_runtime_config(spec, image, &u, has_terminal, notices, &err);
    json_decref(image);
    *why = err.msg;
    if (r < 0) {
        json_decref(spec);
        return NULL;
    }
    return spec;
}

static char *dumped(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

Test(image_config, entrypoint_then_cmd_env_cwd_user)
{
    AUTO_STRV char **notices = NULL;
    const char *why;
    AUTO_JSON json_t *spec = converted("{\"config\": {\"Entrypoint\": [\"/app\", \"-v\"], \"Cmd\": [\"serve\"], "
                                       "\"Env\": [\"HOME=/data\", \"A=1\"], \"WorkingDir\": \"work\"}}",
                                       true, &notices, &why);
    cr_assert_not_null(spec, "%s", why);
    json_t *process = json_object_get(spec, "process");
    AUTO_FREE char *args = dumped(json_object_get(process, "args"));
    cr_assert_str_eq(args, "[\"/app\",\"-v\",\"serve\"]");
    /* What the image sets stays; PATH and TERM are added, HOME is the image's own. */
    AUTO_FREE char *env = dumped(json_object_get(process, "env"));
    cr_assert_str_eq(env, "[\"HOME=/data\",\"A=1\",\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
                          "/bin\",\"TERM=xterm\"]");
    cr_assert_str_eq(json_string_value(json_object_get(process, "cwd")), "/work");
    cr_assert(json_is_true(json_object_get(process, "terminal")));
    AUTO_FREE char *user = dumped(json_object_get(process, "user"));
    cr_assert_str_eq(user, "{\"uid\":5,\"gid\":6}");
    cr_assert_null(notices);
}

Test(image_config, labels_win_over_implicit_annotations)
{
    AUTO_STRV char **notices = NULL;
    const char *why;
    AUTO_JSON json_t *spec = converted(
        "{\"os\": \"linux\", \"architecture\": \"arm64\", \"variant\": \"v8\", \"os.features\": [\"a\", \"b\"], "
        "\"author\": \"me\", \"config\": {\"Cmd\": [\"x\"], \"StopSignal\": \"SIGINT\", "
        "\"Labels\": {\"org.opencontainers.image.architecture\": \"mine\"}}}",
        false, &notices, &why);
    cr_assert_not_null(spec, "%s", why);
    AUTO_FREE char *annotations = dumped(json_object_get(spec, "annotations"));
    cr_assert_str_eq(annotations, "{\"org.opencontainers.image.os\":\"linux\",\"org.opencontainers.image."
                                  "architecture\":\"mine\",\"org.opencontainers.image.variant\":\"v8\","
                                  "\"org.opencontainers.image.author\":\"me\",\"org.opencontainers.image.os.features\":"
                                  "\"a,b\",\"org.opencontainers.image.stopSignal\":\"SIGINT\"}");
    AUTO_FREE char *env = dumped(json_object_get(json_object_get(spec, "process"), "env"));
    cr_assert_str_eq(env,
                     "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"HOME=/home/five\"]");
}

Test(image_config, nothing_to_run_keeps_the_default_with_a_notice)
{
    AUTO_STRV char **notices = NULL;
    const char *why;
    AUTO_JSON json_t *spec = converted("{\"config\": {\"Volumes\": {\"/a\": {}, \"/b\": {}}}}", false, &notices, &why);
    cr_assert_not_null(spec, "%s", why);
    AUTO_FREE char *args = dumped(json_object_get(json_object_get(spec, "process"), "args"));
    cr_assert_str_eq(args, "[\"sh\"]");
    cr_assert_eq(strv_len(notices), 2);
    cr_assert_str_eq(notices[0], "the image has neither Entrypoint nor Cmd: process.args is the default [\"sh\"]");
    cr_assert_str_eq(notices[1], "the image declares volumes (/a, /b): they stay in the rootfs; add mounts to "
                                 "config.json to keep their data elsewhere");
}

Test(image_config, bad_types_are_refused_with_their_field)
{
    const char *why;
    char **notices = NULL;
    cr_assert_null(converted("{\"config\": {\"Cmd\": \"sh\"}}", false, &notices, &why));
    cr_assert_str_eq(why, "image config: config.Cmd must be a list of strings");
    cr_assert_null(converted("{\"config\": {\"Env\": [\"A=1\", 2]}}", false, &notices, &why));
    cr_assert_str_eq(why, "image config: config.Env[1] must be a string");
    cr_assert_null(converted("{\"config\": {\"Cmd\": [\"x\"], \"Labels\": {\"a\": 1}}}", false, &notices, &why));
    cr_assert_str_eq(why, "image config: config.Labels.a must be a string");
    cr_assert_null(converted("{\"config\": []}", false, &notices, &why));
    cr_assert_str_eq(why, "image config: config must be an object");
    strv_free(notices);
}
