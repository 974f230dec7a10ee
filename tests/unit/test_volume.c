/* Volumes opened into the objects a member binds: hostPaths checked on the fd that is bound, subPaths resolved
 * below their volume, made when missing, files kept as files, and every way out of the volume refused with one line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pea/pod.h"
#include "pea/pod_manifest.h"
#include "pea/util.h"
#include "pea/volume.h"

static char volume[PATH_MAX];
static struct pea_pod_manifest *manifest;

static void make_volume(void)
{
    snprintf(volume, sizeof volume, "/tmp/pea-volume-XXXXXX");
    cr_assert_not_null(mkdtemp(volume));
}

static void remove_volume(void)
{
    manifest_free(manifest);
    manifest = NULL;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", volume);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(volume, .init = make_volume, .fini = remove_volume);

/* A pod whose one container mounts the hostPath volume at /m with each subPath given (NULL-terminated). */
static struct pea_pod pod_with_sub_paths(const char *const *sub_paths)
{
    AUTO_FREE char *mounts = xstrdup("");
    for (size_t i = 0; sub_paths[i]; i++) {
        char *next = xasprintf("%s%s{\"name\":\"v\",\"mountPath\":\"/m%zu\",\"subPath\":\"%s\"}", mounts,
                               i ? "," : "", i, sub_paths[i]);
        free(mounts);
        mounts = next;
    }
    AUTO_FREE char *json = xasprintf(
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":"
        "\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"volumeMounts\":[%s]}],\"volumes\":[{\"name\":\"v\","
        "\"hostPath\":{\"path\":\"%s\"}}]}}",
        mounts, volume);
    struct pea_error err = {0};
    manifest = manifest_parse(json, strlen(json), &err);
    cr_assert_not_null(manifest, "%s", err.msg);
    return (struct pea_pod){.name = "web", .data_dir = "/nonexistent", .manifest = manifest, .infra_pidfd = -1};
}

/* Where an fd points, relative to the volume. */
static void assert_names(int fd, const char *suffix)
{
    char link[64], target[PATH_MAX], expected[PATH_MAX * 2];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    cr_assert_gt(n, 0);
    target[n] = '\0';
    snprintf(expected, sizeof expected, "%s%s", volume, suffix);
    cr_assert_str_eq(target, expected);
}

Test(volume, sub_paths_become_the_objects_to_bind)
{
    AUTO_FD int dir = open(volume, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_eq(mkdirat(dir, "conf", 0755), 0);
    AUTO_FD int file = openat(dir, "conf/app.conf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(file, 0);
    cr_assert_eq(symlinkat("conf", dir, "alias"), 0);
    static const char *const sub_paths[] = {"conf/app.conf", "new/dir", "alias", NULL};
    struct pea_pod pod = pod_with_sub_paths(sub_paths);
    struct pea_mount_source *sources = NULL;
    size_t n = 0;
    struct pea_error err = {0};
    cr_assert_eq(volume_open_sources(&pod, &manifest->containers[0], &sources, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    struct stat st;
    cr_assert_str_eq(sources[0].destination, "/m0");
    assert_names(sources[0].fd, "/conf/app.conf");
    cr_assert(fstat(sources[0].fd, &st) == 0 && S_ISREG(st.st_mode), "a file stays a file");
    cr_assert_str_eq(sources[1].destination, "/m1");
    assert_names(sources[1].fd, "/new/dir");
    cr_assert(fstat(sources[1].fd, &st) == 0 && S_ISDIR(st.st_mode), "a missing subPath is made a directory");
    assert_names(sources[2].fd, "/conf");
    volume_close_sources(sources, n);
}

Test(volume, a_way_out_of_the_volume_is_refused)
{
    AUTO_FD int dir = open(volume, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_eq(symlinkat("/", dir, "root"), 0);
    cr_assert_eq(symlinkat("../../../../../../../..", dir, "up"), 0);
    static const char *const ways_out[] = {"root", "root/tmp", "up", "up/made", NULL};
    for (size_t i = 0; ways_out[i]; i++) {
        const char *one[] = {ways_out[i], NULL};
        struct pea_pod pod = pod_with_sub_paths(one);
        struct pea_mount_source *sources = NULL;
        size_t n = 0;
        struct pea_error err = {0};
        cr_assert_eq(volume_open_sources(&pod, &manifest->containers[0], &sources, &n, &err), -1, "%s",
                     ways_out[i]);
        char expected[256];
        snprintf(expected, sizeof expected, "container a: subPath %s in volume v leads out of the volume: refused",
                 ways_out[i]);
        cr_assert_str_eq(err.msg, expected);
        manifest_free(manifest);
        manifest = NULL;
    }
    struct stat st;
    cr_assert_eq(stat("/made", &st), -1, "a directory was made outside the volume");
}

Test(volume, a_file_in_the_way_is_an_error_that_says_so)
{
    AUTO_FD int dir = open(volume, O_PATH | O_DIRECTORY | O_CLOEXEC);
    AUTO_FD int file = openat(dir, "plain", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(file, 0);
    static const char *const sub_paths[] = {"plain/below", NULL};
    struct pea_pod pod = pod_with_sub_paths(sub_paths);
    struct pea_mount_source *sources = NULL;
    size_t n = 0;
    struct pea_error err = {0};
    cr_assert_eq(volume_open_sources(&pod, &manifest->containers[0], &sources, &n, &err), -1);
    cr_assert_str_eq(err.msg, "container a: subPath plain/below in volume v: Not a directory");
}

Test(volume, a_host_path_is_bound_from_the_object_that_passed_its_type_check)
{
    /* Checked when the pod was made, swapped for a file before a container starts: refused at that start, on the
     * very object that would have been bound. */
    AUTO_FREE char *dir = xasprintf("%s/d", volume);
    cr_assert_eq(mkdir(dir, 0755), 0);
    AUTO_FREE char *json = xasprintf(
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":"
        "\"a\",\"image\":\"/img\",\"command\":[\"sh\"],\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/m\"}]}],"
        "\"volumes\":[{\"name\":\"v\",\"hostPath\":{\"path\":\"%s\",\"type\":\"Directory\"}}]}}",
        dir);
    struct pea_error err = {0};
    manifest = manifest_parse(json, strlen(json), &err);
    cr_assert_not_null(manifest, "%s", err.msg);
    struct pea_pod pod = {.name = "web", .data_dir = "/nonexistent", .manifest = manifest, .infra_pidfd = -1};
    struct pea_mount_source *sources = NULL;
    size_t n = 0;
    cr_assert_eq(volume_open_sources(&pod, &manifest->containers[0], &sources, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(sources[0].destination, "/m");
    assert_names(sources[0].fd, "/d");
    volume_close_sources(sources, n);

    cr_assert_eq(rmdir(dir), 0);
    AUTO_FD int file = open(dir, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(file, 0);
    cr_assert_eq(volume_open_sources(&pod, &manifest->containers[0], &sources, &n, &err), -1);
    AUTO_FREE char *expected = xasprintf("container a: volume v: hostPath %s is not of type Directory", dir);
    cr_assert_str_eq(err.msg, expected);
}
