/* Images a pod's containers name, made present in the store before the pod's supervisor starts them, as
 * imagePullPolicy says: Never (absent: refused, the kubelet's ErrImageNeverPull), IfNotPresent, Always. The pull is
 * `pea-image image pull`, run here in the client, before the shim starts or takes the new manifest: it may take
 * minutes, it shows its progress on the user's terminal, its errors reach the user as one line (ErrImagePull), and
 * the shim's single loop never waits on a registry. The shim only resolves names in the store (and a restart uses
 * the image already resolved, recorded in the pod's state). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pod_client.h"
#include "pea/image_store.h"
#include "pea/pod_image.h"
#include "pea/sys.h"
#include "pea/util.h"

/* Run argv with stdin on /dev/null and stdout on our stderr; stderr too, or (stderr_pipe >= 0) into that pipe. */
static pid_t spawn(char *const *argv, int stderr_pipe)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(2, 1) < 0 || (stderr_pipe >= 0 && dup2(stderr_pipe, 2) < 0))
        _exit(127);
    sys_close_from(3);
    execv(argv[0], argv);
    _exit(127);
}

static int wait_status(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The last line of text, without pea's "pea: " prefix. */
static void last_line(char *text, size_t len, char *out, size_t out_len)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    text[len] = '\0';
    char *line = strrchr(text, '\n');
    line = line ? line + 1 : text;
    if (strncmp(line, "pea: ", 5) == 0)
        line += 5;
    snprintf(out, out_len, "%s", line);
}

static int pull(const struct cli_globals *g, const char *pea_image, const char *who, const char *ref,
                const char *data_root, struct pea_error *err)
{
    char *argv[] = {(char *)pea_image, "image", "pull", (char *)ref, "--data-root", (char *)data_root,
                    g->debug ? "--debug" : NULL, NULL};
    /* On a terminal the user sees its progress and its errors as they come; else its last line goes into ours. */
    bool is_terminal = isatty(2);
    int pipe_fds[2] = {-1, -1};
    if (!is_terminal && pipe2(pipe_fds, O_CLOEXEC) < 0)
        return pea_fail(err, errno, "%s: pull image %s: pipe", who, ref);
    pid_t pid = spawn(argv, pipe_fds[1]);
    if (pipe_fds[1] >= 0)
        close(pipe_fds[1]);
    AUTO_FD int from_child = pipe_fds[0];
    if (pid < 0)
        return pea_fail(err, errno, "%s: pull image %s: fork", who, ref);
    AUTO_FREE char *said = from_child >= 0 ? read_fd_all(from_child, 1 << 20, NULL) : NULL;
    int status = wait_status(pid);
    if (status == 0) {
        if (said && *said)
            fputs(said, stderr);
        return 0;
    }
    char why[400] = "";
    if (said && *said) {
        last_line(said, strlen(said), why, sizeof why);
        /* What it said before its last line is the user's to read (the last line is in ours). */
        char *cut = strrchr(said, '\n');
        if (cut) {
            *cut = '\0';
            fprintf(stderr, "%s\n", said);
        }
    } else {
        snprintf(why, sizeof why, "pea-image exited with status %d%s", status, is_terminal ? " (its error above)" : "");
    }
    return pea_fail(err, 0, "%s: failed to pull image \"%s\" (ErrImagePull): %s", who, ref, why);
}

/* Whether c changes (or comes) with this manifest: only those start, so only their images are wanted now. */
static bool is_started_anew(const struct pea_pod_container *c, const struct pea_pod_manifest *old)
{
    if (!old)
        return true;
    const struct pea_pod_container *lists[] = {old->init_containers, old->containers};
    size_t sizes[] = {old->n_init_containers, old->n_containers};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < sizes[l]; i++)
            if (strcmp(lists[l][i].name, c->name) == 0)
                return !manifest_container_same_but_resources(&lists[l][i], c);
    return true;
}

static bool is_in_store(struct pea_image_store *store, const char *ref)
{
    struct pea_image *image = NULL;
    struct pea_error ignored = {0};
    int r = pea_image_resolve(store, ref, &image, &ignored);
    pea_image_free(image);
    return r == 0;
}

/* One reference (of the container or volume `who`) made present as its policy says; each pulled once a call. */
static int make_present(const struct cli_globals *g, struct pea_image_store *store, const char *who, const char *ref,
                        enum pea_pull_policy policy, const char *data_root, char ***pulled, char **pea_image,
                        struct pea_error *err)
{
    bool is_pulled = false;
    for (char **p = *pulled; p && *p && !is_pulled; p++)
        is_pulled = strcmp(*p, ref) == 0;
    if (is_pulled || (policy != PEA_PULL_ALWAYS && is_in_store(store, ref)))
        return 0;
    if (policy == PEA_PULL_NEVER)
        return pea_fail(err, 0, "%s: image \"%s\" is not present with pull policy of Never (ErrImageNeverPull)", who,
                        ref);
    if (!*pea_image && !(*pea_image = pod_find_helper(g->argv0, "pea-image", "runtime", err)))
        return pea_wrap(err, "%s: pull image \"%s\"", who, ref);
    if (pull(g, *pea_image, who, ref, data_root, err) < 0)
        return -1;
    strv_append(pulled, ref);
    return 0;
}

int pod_pull_images(const struct cli_globals *g, const struct pea_pod_manifest *m, const struct pea_pod_manifest *old,
                    const char *data_root, struct pea_error *err)
{
    struct pea_image_store *store = NULL;
    AUTO_FREE char *pea_image = NULL;
    AUTO_STRV char **pulled = xcalloc(1, sizeof(char *));
    const struct pea_pod_container *lists[] = {m->init_containers, m->containers};
    size_t sizes[] = {m->n_init_containers, m->n_containers};
    int r = 0;
    for (size_t l = 0; l < 2 && r == 0; l++)
        for (size_t i = 0; i < sizes[l] && r == 0; i++) {
            const struct pea_pod_container *c = &lists[l][i];
            if (!c->image_ref || !is_started_anew(c, old))
                continue;
            if (!store && (r = pea_image_store_open(data_root, NULL, &store, err)) < 0)
                break;
            AUTO_FREE char *who = xasprintf("container %s", c->name);
            r = make_present(g, store, who, c->image_ref, c->pull_policy, data_root, &pulled, &pea_image, err);
        }
    /* Image volumes come with a new sandbox only (an apply cannot change spec.volumes). */
    for (size_t i = 0; i < m->n_volumes && r == 0 && !old; i++) {
        const struct pea_pod_volume *v = &m->volumes[i];
        if (v->type != PEA_VOLUME_IMAGE)
            continue;
        if (!store && (r = pea_image_store_open(data_root, NULL, &store, err)) < 0)
            break;
        AUTO_FREE char *who = xasprintf("volume %s", v->name);
        r = make_present(g, store, who, v->image_ref, v->image_pull_policy, data_root, &pulled, &pea_image, err);
    }
    pea_image_store_close(store);
    return r;
}
