/* The pod sandbox's lifecycle: build it (directories, volumes, cgroup, infra, pinned namespaces, network, /etc
 * files), make its member containers, and tear all of it down again from its state alone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pea/cgroup.h"
#include "pea/container.h"
#include "pea/log.h"
#include "pea/net.h"
#include "pea/pod.h"
#include "pea/pod_dns.h"
#include "pea/pod_image.h"
#include "pea/state.h"
#include "pea/sys.h"
#include "pea/util.h"
#include "pea/volume.h"
#include "pod_internal.h"
#include "pod_security.h"
#include "pod_userns.h"

#define POD_MANIFEST_FILE "manifest"

/* The namespaces the infra owns and members join, by the name of their /proc/PID/ns file. */
static const char *const pinned_namespaces[] = {"net", "ipc", "uts", "pid", "user"};

static bool is_pinned(const struct pea_pod_manifest *m, const char *ns)
{
    if (strcmp(ns, "user") == 0)
        return m->has_own_users;
    bool is_host = m->network_mode == PEA_NETWORK_HOST;
    return !(is_host && (strcmp(ns, "net") == 0 || strcmp(ns, "uts") == 0));
}

static char *pods_dir(const char *root) { return xasprintf("%s/pods", root); }

void pod_free(struct pea_pod *pod)
{
    if (!pod)
        return;
    free(pod->name);
    free(pod->root);
    free(pod->dir);
    free(pod->oci_root);
    free(pod->data_dir);
    free(pod->cgroup);
    manifest_free(pod->manifest);
    if (pod->infra_pidfd >= 0)
        close(pod->infra_pidfd);
    json_decref(pod->state);
    free(pod);
}

int pod_save(struct pea_pod *pod, struct pea_error *err)
{
    AUTO_FREE char *text = json_dumps(pod->state, JSON_INDENT(1) | JSON_SORT_KEYS);
    AUTO_FD int dir = open(pod->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!text || dir < 0 || write_file_atomic_at(dir, POD_STATE_FILE, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "save pod state %s/%s", pod->dir, POD_STATE_FILE);
    return 0;
}

int pod_save_manifest(struct pea_pod *pod, struct pea_error *err)
{
    struct pea_pod_manifest *m = pod->manifest;
    AUTO_FD int dir = open(pod->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!m->source || dir < 0 || write_file_atomic_at(dir, POD_MANIFEST_FILE, m->source, m->source_len, 0600) < 0)
        return pea_fail(err, m->source ? errno : 0, "save the manifest %s/%s", pod->dir, POD_MANIFEST_FILE);
    manifest_release_source(m);
    /* A pod of state version 1 kept its manifest in pod.json: from now on the file holds it. */
    if (json_object_get(pod->state, "manifest")) {
        json_object_del(pod->state, "manifest");
        json_object_set_new(pod->state, "version", json_integer(PEA_POD_STATE_VERSION));
    }
    return 0;
}

void pod_read_boot_id(char *out, size_t len)
{
    AUTO_FREE char *text = read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", 64, NULL);
    snprintf(out, len, "%s", text ? text : "");
    out[strcspn(out, "\n")] = '\0';
}

static struct pea_pod *pod_alloc(const char *root, const char *name, const char *data_dir)
{
    struct pea_pod *pod = xcalloc(1, sizeof *pod);
    pod->infra_pidfd = -1;
    pod->name = xstrdup(name);
    pod->root = xstrdup(root);
    pod->dir = xasprintf("%s/pods/%s", root, name);
    pod->oci_root = xasprintf("%s/oci", pod->dir);
    pod->data_dir = data_dir ? xstrdup(data_dir) : NULL;
    pod->cgroup = xasprintf("/pea/pod-%s", name);
    return pod;
}

bool pod_state_is_from_an_earlier_boot(const json_t *state)
{
    const char *recorded = json_string_value(json_object_get(state, "bootId"));
    char now[64];
    pod_read_boot_id(now, sizeof now);
    return recorded && now[0] && strcmp(recorded, now) != 0;
}

bool pod_recorded_process_alive(const struct pea_pod *pod, const char *key)
{
    /* A PID recorded before a reboot names whatever process has it now, start time or not. */
    if (pod_state_is_from_an_earlier_boot(pod->state))
        return false;
    json_t *record = json_object_get(pod->state, key);
    pid_t pid = (pid_t)json_integer_value(json_object_get(record, "pid"));
    unsigned long long start = (unsigned long long)json_integer_value(json_object_get(record, "startTime"));
    bool is_zombie = false;
    return pid > 0 && sys_process_start_time(pid, &is_zombie) == start && !is_zombie;
}

bool pod_infra_alive(const struct pea_pod *pod) { return pod_recorded_process_alive(pod, "infra"); }

char *pod_data_root_of(const char *data_dir)
{
    char *root = xstrdup(data_dir);
    for (int i = 0; i < 2; i++) {
        char *slash = strrchr(root, '/');
        if (slash)
            *slash = '\0';
    }
    if (!root[0]) {
        free(root);
        return xstrdup("/");
    }
    return root;
}

/* ---- building the sandbox ---- */

static int write_pod_file(const struct pea_pod *pod, const char *name, const char *text, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/etc", pod->dir);
    AUTO_FD int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || write_file_atomic_at(fd, name, text, strlen(text), 0644) < 0)
        return pea_fail(err, errno, "write %s/%s", dir, name);
    return 0;
}

/* /etc/hostname, /etc/hosts and /etc/resolv.conf for every member, as the kubelet writes them. */
static int write_etc_files(const struct pea_pod *pod, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    const char *hostname = m->hostname ? m->hostname : m->name;
    AUTO_FREE char *hostname_text = xasprintf("%s\n", hostname);
    AUTO_FREE char *hosts = NULL;
    /* The kubelet's two layouts: the host's file under its own header for a host-network pod, else its own
     * boilerplate and the pod's address; then spec.hostAliases, a line per entry, under their comment. */
    if (m->network_mode == PEA_NETWORK_HOST) {
        AUTO_FREE char *node = read_file_at(AT_FDCWD, "/etc/hosts", 1 << 20, NULL);
        hosts = xasprintf("# Kubernetes-managed hosts file (host network).\n%s", node ? node : "");
    } else {
        char address[64] = "127.0.1.1";
        if (m->address)
            snprintf(address, sizeof address, "%.*s", (int)strcspn(m->address, "/"), m->address);
        hosts = xasprintf("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                          "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                          "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n%s\t%s\n",
                          address, hostname);
    }
    for (size_t i = 0; i < m->n_host_aliases; i++) {
        const struct pea_host_alias *a = &m->host_aliases[i];
        char *next = xasprintf("%s%s%s\t", hosts, i == 0 ? "\n# Entries added by HostAliases.\n" : "", a->ip);
        free(hosts);
        hosts = next;
        for (size_t k = 0; a->hostnames[k]; k++) {
            next = xasprintf("%s%s%s", hosts, k ? "\t" : "", a->hostnames[k]);
            free(hosts);
            hosts = next;
        }
        next = xasprintf("%s\n", hosts);
        free(hosts);
        hosts = next;
    }
    AUTO_FREE char *host_resolv = read_file_at(AT_FDCWD, "/etc/resolv.conf", 1 << 20, NULL);
    size_t dropped = 0;
    AUTO_FREE char *resolv = pod_dns_resolv_conf(m, host_resolv, &dropped);
    if (dropped)
        log_warn("pod %s: %zu nameservers past the resolver's 3 left out of /etc/resolv.conf, as the kubelet does",
                 m->name, dropped);
    if (write_pod_file(pod, "hostname", hostname_text, err) < 0 ||
        write_pod_file(pod, "hosts", hosts, err) < 0 ||
        write_pod_file(pod, "resolv.conf", resolv, err) < 0)
        return -1;
    return 0;
}

/* The infra's root holds one file: a copy of pea-pause (a copy, not a bind mount, so nothing is mounted on the
 * host for it). */
static int make_infra_root(const struct pea_pod *pod, const char *pause_path, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/infra", pod->dir);
    AUTO_FREE char *target = xasprintf("%s/pea-pause", dir);
    AUTO_FD int in = open(pause_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0)
        return pea_fail(err, errno, "open pea-pause %s", pause_path);
    AUTO_FD int out = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    if (out < 0)
        return pea_fail(err, errno, "create %s", target);
    for (off_t done = 0; done < st.st_size;) {
        ssize_t n = sendfile(out, in, NULL, (size_t)(st.st_size - done));
        if (n <= 0)
            return pea_fail(err, n < 0 ? errno : EIO, "copy pea-pause to %s", target);
        done += n;
    }
    return 0;
}

static int write_bundle(const struct pea_pod *pod, const char *id, json_t *config, char **bundle_out,
                        struct pea_error *err)
{
    AUTO_FREE char *bundle = xasprintf("%s/bundles/%s", pod->dir, id);
    if (mkdir(bundle, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create bundle %s", bundle);
    AUTO_FD int fd = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    AUTO_FREE char *text = json_dumps(config, JSON_INDENT(1));
    if (fd < 0 || !text || write_file_atomic_at(fd, "config.json", text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "write %s/config.json", bundle);
    *bundle_out = take_ptr(&bundle);
    return 0;
}

/* Begin creating a container of the pod with stdio (or /dev/null) and the bind sources already resolved; start
 * nothing yet. */
static int begin_member(struct pea_pod *pod, const char *id, json_t *config, const int stdio[3],
                        const struct pea_mount_source *sources, size_t n_sources, struct pea_create_job **job,
                        struct pea_error *err)
{
    AUTO_FREE char *bundle = NULL;
    if (write_bundle(pod, id, config, &bundle, err) < 0)
        return -1;
    AUTO_FD int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        return pea_fail(err, errno, "open /dev/null");
    struct pea_create_options o = {
        .root = pod->oci_root, .id = id, .bundle = bundle, .has_stdio_fds = true,
        /* A terminal's master comes back to the caller (container_create_finish_console), who stays. */
        .is_detached = !json_is_true(json_object_get(json_object_get(config, "process"), "terminal")),
        .mount_sources = sources, .n_mount_sources = n_sources};
    for (int i = 0; i < 3; i++)
        o.stdio_fds[i] = stdio && stdio[i] >= 0 ? stdio[i] : null_fd;
    return container_create_begin(&o, job, err);
}

/* Create a container of the pod with stdio (or /dev/null) and start nothing yet. */
static int create_member(struct pea_pod *pod, const char *id, json_t *config, const int stdio[3], pid_t *pid,
                         int *pidfd, struct pea_error *err)
{
    struct pea_create_job *job = NULL;
    if (begin_member(pod, id, config, stdio, NULL, 0, &job, err) < 0)
        return -1;
    return container_create_finish(job, pid, pidfd, err);
}

/* Pin each namespace of the infra with a bind mount of its nsfs file, so members join by a file that names the
 * namespace itself: the infra's PID could be reused, the pinned file cannot change meaning. The ns fd is opened
 * while the pidfd shows the infra alive, and checked again after, so it cannot belong to a successor. */
static int pin_namespaces(struct pea_pod *pod, struct pea_error *err)
{
    for (size_t i = 0; i < ARRAY_SIZE(pinned_namespaces); i++) {
        const char *ns = pinned_namespaces[i];
        if (!is_pinned(pod->manifest, ns))
            continue;
        char source[64];
        snprintf(source, sizeof source, "/proc/%d/ns/%s", (int)pod->infra_pid, ns);
        AUTO_FD int ns_fd = open(source, O_RDONLY | O_CLOEXEC);
        if (ns_fd < 0 || sys_pidfd_send_signal(pod->infra_pidfd, 0, NULL, 0) < 0)
            return pea_fail(err, errno, "pin the infra's %s namespace: open %s", ns, source);
        AUTO_FREE char *pin = xasprintf("%s/ns/%s", pod->dir, ns);
        AUTO_FD int file = open(pin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (file < 0)
            return pea_fail(err, errno, "create %s", pin);
        char fd_path[64];
        snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", ns_fd);
        if (mount(fd_path, pin, NULL, MS_BIND, NULL) < 0)
            return pea_fail(err, errno, "pin the infra's %s namespace on %s", ns, pin);
    }
    return 0;
}

int pod_unpin_namespaces(const char *dir, struct pea_error *err)
{
    int r = 0;
    for (size_t i = 0; i < ARRAY_SIZE(pinned_namespaces); i++) {
        AUTO_FREE char *pin = xasprintf("%s/ns/%s", dir, pinned_namespaces[i]);
        /* Detached: a member being set up may still hold it open. Repeated until nothing is stacked there. */
        while (umount2(pin, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
            ;
        if (errno != EINVAL && errno != ENOENT)
            r = pea_fail(err, errno, "unpin %s", pin);
    }
    return r;
}

/* A bridge pea made is marked under the state root with its ifindex: only such a bridge is used without the
 * manifest's adoptBridge (never docker0 or cni0 by mistake), and whichever pod leaves it without ports removes it;
 * a bridge the caller made is never deleted. The index tells a bridge pea made from one that took its name since.
 * Pods of one state root take turns at the marks (a lock on the directory), so that one cannot delete a bridge
 * another is about to attach to. */
static int lock_bridges(const char *root, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/bridges", root);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s", dir);
    AUTO_FD int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open %s", dir);
    return state_lock(dir_fd, err);
}

/* The ifindex a mark records, 0 when there is no mark (or one of an older pea, without an index). */
static int bridge_marked_index(int lock_fd, const char *bridge)
{
    AUTO_FREE char *text = read_file_at(lock_fd, bridge, 32, NULL);
    long long index;
    if (!text)
        return 0;
    text[strcspn(text, "\n")] = '\0';
    return parse_int64(text, &index) == 0 && index > 0 && index <= INT_MAX ? (int)index : 0;
}

static int mark_bridge(int lock_fd, const char *bridge, int index, struct pea_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%d\n", index);
    if (write_file_atomic_at(lock_fd, bridge, text, strlen(text), 0600) < 0)
        return pea_fail(err, errno, "mark bridge %s as pea's", bridge);
    return 0;
}

int pod_release_bridge(const char *root, const char *bridge, struct pea_error *err)
{
    AUTO_FD int lock_fd = lock_bridges(root, err);
    if (lock_fd < 0)
        return -1;
    int index = bridge_marked_index(lock_fd, bridge);
    if (index == 0)
        return 0; /* not made by pea: the caller's to keep */
    int r = net_bridge_delete_if_unused(bridge, index, err);
    if (r < 0)
        return -1;
    if (r == 1 && unlinkat(lock_fd, bridge, 0) < 0 && errno != ENOENT)
        return pea_fail(err, errno, "remove the mark of bridge %s", bridge);
    return 0;
}

/* The bridge the pod's veth goes on: made (and marked) when missing; an existing one only when pea made it or the
 * manifest adopts it. Returns its ifindex, or -1. lock_fd holds the marks' lock. */
static int attach_bridge(const struct pea_pod *pod, int lock_fd, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    AUTO_FREE char *gateway_cidr = NULL;
    if (m->gateway)
        gateway_cidr = xasprintf("%s%s", m->gateway, strchr(m->address, '/'));
    int index = 0;
    int made = net_bridge_create(m->bridge, gateway_cidr, &index, err);
    if (made < 0)
        return -1;
    if (made) {
        if (mark_bridge(lock_fd, m->bridge, index, err) < 0) {
            struct pea_error ignored = {0};
            net_bridge_delete_if_unused(m->bridge, index, &ignored);
            return -1;
        }
        return index;
    }
    if (bridge_marked_index(lock_fd, m->bridge) != index && !m->adopt_bridge)
        return pea_fail(err, 0, "bridge %s exists and was not created by pea; set pea.network.adoptBridge: true to "
                        "adopt it", m->bridge);
    if (net_bridge_up(m->bridge, index, err) < 0)
        return -1;
    return index;
}

static int setup_network(struct pea_pod *pod, struct pea_error *err)
{
    const struct pea_pod_manifest *m = pod->manifest;
    if (!manifest_network_namespace_is_pea_made(m))
        return 0; /* not pea's to change: not even its lo */
    AUTO_FREE char *pin = xasprintf("%s/ns/net", pod->dir);
    AUTO_FD int netns = open(pin, O_RDONLY | O_CLOEXEC);
    if (netns < 0)
        return pea_fail(err, errno, "open %s", pin);
    if (net_loopback_up(netns, err) < 0)
        return -1;
    if (m->network_mode != PEA_NETWORK_BRIDGE)
        return 0;
    /* Named after the pod's uid: unique on the machine whatever --root the pod lives under. */
    char host_if[16];
    snprintf(host_if, sizeof host_if, "pv%.12s", json_string_value(json_object_get(pod->state, "uid")));
    /* Recorded before anything exists, so that a teardown after any later failure removes what was made (and a
     * bridge only when it carries pea's mark). */
    json_object_set_new(pod->state, "network",
                        json_pack("{s:s, s:s}", "hostInterface", host_if, "bridge", m->bridge));
    if (pod_save(pod, err) < 0)
        return -1;
    AUTO_FD int lock_fd = lock_bridges(pod->root, err);
    int bridge_index = lock_fd < 0 ? -1 : attach_bridge(pod, lock_fd, err);
    if (bridge_index < 0 || net_veth_create(host_if, m->bridge, bridge_index, netns, "eth0", err) < 0 ||
        net_address_add(netns, "eth0", m->address, err) < 0 ||
        (m->gateway && net_route_add_default(netns, "eth0", m->gateway, err) < 0))
        return -1;
    return 0;
}

static int make_pod_dirs(const struct pea_pod *pod, struct pea_error *err)
{
    static const char *const state_subdirs[] = {"oci", "bundles", "ns", "etc", "io", "infra"};
    for (size_t i = 0; i < ARRAY_SIZE(state_subdirs); i++) {
        AUTO_FREE char *dir = xasprintf("%s/%s", pod->dir, state_subdirs[i]);
        /* The infra's root must be searchable by its unprivileged user. */
        if (mkdir(dir, strcmp(state_subdirs[i], "infra") == 0 ? 0755 : 0700) < 0)
            return pea_fail(err, errno, "create %s", dir);
    }
    /* The data root's pods/ was made private by pod_create; the pod's own data stays so too. */
    if (mkdir(pod->data_dir, 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s", pod->data_dir);
    /* One that was there already is used only if no symlink leads to it: what is made in it goes through this fd. */
    AUTO_FD int data = sys_open_no_symlinks(AT_FDCWD, pod->data_dir, O_PATH | O_DIRECTORY);
    if (data < 0)
        return pea_fail(err, errno, "open the pod's data directory %s", pod->data_dir);
    if (mkdirat(data, "containers", 0700) < 0 && errno != EEXIST)
        return pea_fail(err, errno, "create %s/containers", pod->data_dir);
    return 0;
}

static int start_infra(struct pea_pod *pod, struct pea_error *err)
{
    AUTO_JSON json_t *config = pod_config_infra(pod, err);
    if (!config || create_member(pod, PEA_POD_INFRA_ID, config, NULL, &pod->infra_pid, &pod->infra_pidfd, err) < 0)
        return pea_wrap(err, "infra");
    json_object_set_new(pod->state, "infra",
                        json_pack("{s:i, s:I}", "pid", (int)pod->infra_pid, "startTime",
                                  (json_int_t)sys_process_start_time(pod->infra_pid, NULL)));
    if (pod_save(pod, err) < 0 || container_start(pod->oci_root, PEA_POD_INFRA_ID, err) < 0)
        return pea_wrap(err, "infra");
    return 0;
}

/* The new pod's directory, locked (pod_remove takes the same lock before it reads the pod's records, so it never
 * removes the directory under us before teardown.json is in it) and checked, once locked, to be still the one at
 * its path. */
static int lock_new_pod_dir(const struct pea_pod *pod, struct pea_error *err)
{
    AUTO_FD int dir_fd = open(pod->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open %s", pod->dir);
    AUTO_FD int lock = state_lock(dir_fd, err);
    struct stat locked, now;
    if (lock < 0)
        return -1;
    if (fstat(lock, &locked) < 0 || stat(pod->dir, &now) < 0 || locked.st_ino != now.st_ino ||
        locked.st_dev != now.st_dev)
        return pea_fail(err, 0, "it was removed while it was being made");
    return take_fd(&lock);
}

/* hostUsers: false: the pod's ids, recorded in pod.json before the infra's config is made from it. */
static int allocate_users(struct pea_pod *pod, struct pea_error *err)
{
    if (!pod->manifest->has_own_users)
        return 0;
    struct pod_userns u;
    if (pod_userns_allocate(json_string_value(json_object_get(pod->state, "uid")), &u, err) < 0)
        return -1;
    pod_userns_record(pod->state, &u);
    return pod_save(pod, err);
}

int pod_create(const struct pea_pod_options *o, struct pea_pod_manifest *manifest, struct pea_pod **out,
               struct pea_error *err)
{
    AUTO_MANIFEST struct pea_pod_manifest *m = manifest;
    if (pod_security_check(m, err) < 0)
        return pea_wrap(err, "pod %s", m->name);
    AUTO_FREE char *pods = pods_dir(o->root);
    /* Absolute from here on: the paths end up in config.json files, read from other working directories. */
    char root[PATH_MAX], data_root[PATH_MAX];
    /* Every directory above the pod's state and data is private to the user running pea: what the containers write
     * there, and the emptyDirs they share (0777 inside, as in Kubernetes), are out of any other local user's reach.
     * The containers reach theirs through their mounts, not through these paths. */
    AUTO_FD int root_fd = state_root_open(o->root, true, err);
    if (root_fd < 0)
        return pea_wrap(err, "pod %s", m->name);
    AUTO_FD int data_root_fd = -1, data_pods_fd = -1;
    if ((mkdirat(root_fd, "pods", 0700) < 0 && errno != EEXIST) || !realpath(o->root, root))
        return pea_fail(err, errno, "create %s", pods);
    if ((data_root_fd = state_private_dir_open(o->data_root, "data root", err)) < 0 ||
        !realpath(o->data_root, data_root))
        return data_root_fd < 0 ? pea_wrap(err, "pod %s", m->name)
                                : pea_fail(err, errno, "resolve data root %s", o->data_root);
    AUTO_FREE char *data_pods = xasprintf("%s/pods", data_root);
    if ((data_pods_fd = state_private_dir_open(data_pods, "pod data directory", err)) < 0)
        return pea_wrap(err, "pod %s", m->name);
    AUTO_FREE char *data_dir = xasprintf("%s/pods/%s", data_root, m->name);
    /* Two pods of one name under different state roots must not share a cgroup or a veth name. */
    unsigned char random[8];
    char uid[17];
    if (getrandom(random, sizeof random, 0) != (ssize_t)sizeof random)
        return pea_fail(err, errno, "getrandom");
    for (size_t i = 0; i < sizeof random; i++)
        snprintf(uid + 2 * i, 3, "%02x", random[i]);
    AUTO_POD struct pea_pod *pod = pod_alloc(root, m->name, data_dir);
    if (mkdir(pod->dir, 0700) < 0)
        return errno == EEXIST ? pea_fail(err, 0, "pod %s already exists", m->name)
                               : pea_fail(err, errno, "create %s", pod->dir);
    AUTO_FD int birth_lock = lock_new_pod_dir(pod, err);
    if (birth_lock < 0)
        return pea_wrap(err, "pod %s", pod->name);
    pod->manifest = take_ptr(&m);
    char created[64], boot_id[64];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    format_rfc3339_nano(&now, created, sizeof created);
    pod_read_boot_id(boot_id, sizeof boot_id);
    free(pod->cgroup);
    pod->cgroup = xasprintf("/pea/pod-%s-%.8s", pod->name, uid);
    pod->state = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:{}}", "version",
                           PEA_POD_STATE_VERSION, "name", pod->name, "uid", uid, "created", created, "bootId", boot_id,
                           "dataDir", pod->data_dir, "cgroup", pod->cgroup, "status", "creating", "owner",
                           (int)geteuid(), "containers");
    AUTO_JSON json_t *limits = pod_config_limits(pod->manifest);
    AUTO_FD int cgroup_fd = -1;
    AUTO_FREE char *pause_path = xstrdup(o->pause_path);
    /* The teardown record first: whatever is made from here on, a teardown finds it even when pod.json is lost.
     * The lock goes once it is written (pod_remove, which takes it, would otherwise wait for us). */
    int saved = pod_save_teardown_record(pod, err) < 0 || pod_save_manifest(pod, err) < 0 || pod_save(pod, err) < 0
                    ? -1
                    : 0;
    close(take_fd(&birth_lock));
    /* Images first: a pod whose image is missing fails before anything is made for it. */
    if (saved < 0 || pod_images_attach(pod, pod->manifest, NULL, err) < 0 || pod_save(pod, err) < 0 ||
        allocate_users(pod, err) < 0 ||
        make_pod_dirs(pod, err) < 0 || volume_prepare_all(pod, err) < 0 ||
        write_etc_files(pod, err) < 0 || make_infra_root(pod, pause_path, err) < 0 ||
        (cgroup_fd = cgroup_create(pod->cgroup, limits, err)) < 0 || start_infra(pod, err) < 0 ||
        pin_namespaces(pod, err) < 0 || setup_network(pod, err) < 0)
        goto fail;
    json_object_set_new(pod->state, "status", json_string("running"));
    if (pod_save(pod, err) < 0)
        goto fail;
    *out = take_ptr(&pod);
    return 0;
fail:;
    struct pea_error ignored = {0};
    if (pod_remove(root, pod->name, 0, &ignored) < 0)
        log_warn("pod %s: cleanup after a failed create: %s", pod->name, ignored.msg);
    return pea_wrap(err, "pod %s", pod->name);
}

int pod_open(const char *root, const char *name, struct pea_pod **out, struct pea_error *err)
{
    AUTO_POD struct pea_pod *pod = pod_alloc(root, name, NULL);
    AUTO_FREE char *path = xasprintf("%s/%s", pod->dir, POD_STATE_FILE);
    json_error_t jerr;
    pod->state = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!pod->state) {
        if (access(pod->dir, F_OK) < 0)
            return pea_fail(err, 0, "pod %s does not exist", name);
        return pea_fail(err, 0, "pod %s: state %s: %s", name, path, jerr.text);
    }
    json_int_t version = json_integer_value(json_object_get(pod->state, "version"));
    if (version > PEA_POD_STATE_VERSION)
        return pea_fail(err, 0, "pod %s was made by a newer pea (state version %lld; this pea reads %d)", name,
                        (long long)version, PEA_POD_STATE_VERSION);
    /* Version 1 kept the manifest in pod.json; version 2 in its own file, so that the state written at every
     * change of a container stays small whatever the manifest's size. */
    if (version != 1 && version != PEA_POD_STATE_VERSION)
        return pea_fail(err, 0, "pod %s: state %s: version %lld is not 1 or %d", name, path, (long long)version,
                        PEA_POD_STATE_VERSION);
    const char *data_dir = json_string_value(json_object_get(pod->state, "dataDir"));
    pod->data_dir = xstrdup(data_dir ? data_dir : "");
    const char *cgroup = json_string_value(json_object_get(pod->state, "cgroup"));
    if (cgroup) {
        free(pod->cgroup);
        pod->cgroup = xstrdup(cgroup);
    }
    if (version == 1) {
        AUTO_FREE char *text = json_dumps(json_object_get(pod->state, "manifest"), JSON_COMPACT);
        pod->manifest = text ? manifest_parse(text, strlen(text), err) : NULL;
    } else {
        AUTO_FREE char *manifest_path = xasprintf("%s/%s", pod->dir, POD_MANIFEST_FILE);
        pod->manifest = manifest_load(manifest_path, err);
    }
    if (!pod->manifest)
        return pea_wrap(err, "pod %s: saved manifest", name);
    /* Stored already: the text is not kept for the pod's life. */
    manifest_release_source(pod->manifest);
    json_t *infra = json_object_get(pod->state, "infra");
    pod->infra_pid = (pid_t)json_integer_value(json_object_get(infra, "pid"));
    /* Opened first, then checked against the recorded start time: checked first, the PID could go to another
     * process before the open, and the pod would signal and wait on that one. */
    pod->infra_pidfd = pod->infra_pid > 0 ? sys_pidfd_open(pod->infra_pid, 0) : -1;
    if (pod->infra_pidfd >= 0 && !pod_infra_alive(pod)) {
        close(pod->infra_pidfd);
        pod->infra_pidfd = -1;
    }
    *out = take_ptr(&pod);
    return 0;
}

/* ---- members ---- */

/* containers/NAME emptied and made again, with its upper, work and mount point, all through the pod's containers
 * directory reached without a symlink and the directory made in it: what is emptied and what is made are the
 * objects the walk found, never a path looked up again. */
static int open_containers_dir(const struct pea_pod *pod, struct pea_error *err)
{
    AUTO_FREE char *path = xasprintf("%s/containers", pod->data_dir);
    int fd = sys_open_no_symlinks(AT_FDCWD, path, O_PATH | O_DIRECTORY);
    return fd < 0 ? pea_fail(err, errno, "open %s", path) : fd;
}

static int make_container_dirs(const struct pea_pod *pod, const char *name, struct pea_error *err)
{
    AUTO_FREE char *dir = xasprintf("%s/containers/%s", pod->data_dir, name);
    AUTO_FD int containers = open_containers_dir(pod, err);
    if (containers < 0 || remove_tree_at(containers, name, dir, err) < 0)
        return -1;
    if (mkdirat(containers, name, 0700) < 0)
        return pea_fail(err, errno, "create %s", dir);
    AUTO_FD int dir_fd = openat(containers, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0)
        return pea_fail(err, errno, "open %s", dir);
    static const char *const parts[] = {"upper", "work", "rootfs"};
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
        /* upper gives the overlay's root its mode, which the container's users search; the rest is pea's alone
         * (the kernel reaches work and the layers with the mounter's credentials). */
        if (mkdirat(dir_fd, parts[i], strcmp(parts[i], "upper") == 0 ? 0755 : 0700) < 0)
            return pea_fail(err, errno, "create %s/%s", dir, parts[i]);
    return pod_userns_give_upper(pod, dir_fd, "upper", err);
}

int pod_container_create_begin(struct pea_pod *pod, const struct pea_pod_container *c, const int stdio[3],
                               struct pea_create_job **job, struct pea_error *err)
{
    if (!pod_infra_alive(pod))
        return pea_fail(err, 0, "pod %s: the infra process is gone", pod->name);
    if (container_delete(pod->oci_root, c->name, true, err) < 0)
        return -1;
    /* Every container (and every restart of one) starts from the layers as they are: a fresh upper. */
    if ((c->n_image_layers > 1 || c->image_ref) && make_container_dirs(pod, c->name, err) < 0)
        return -1;
    AUTO_JSON json_t *config = pod_config_member(pod, c, err);
    if (!config)
        return -1;
    /* Resolved now, for this instance alone: every restart looks again, below the volume, and the child mounts the
     * objects found here, whatever the path leads to by then. */
    struct pea_mount_source *sources = NULL;
    size_t n_sources = 0;
    if (volume_open_sources(pod, c, &sources, &n_sources, err) < 0)
        return -1;
    int r = begin_member(pod, c->name, config, stdio, sources, n_sources, job, err);
    volume_close_sources(sources, n_sources);
    return r;
}

int pod_container_start(struct pea_pod *pod, const char *name, struct pea_error *err)
{
    return container_start(pod->oci_root, name, err);
}

/* Wait until every pidfd is readable (its process gone) or the deadline passes. */
static void wait_exited(const int *pidfds, size_t n, long long timeout_ms)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (size_t i = 0; i < n; i++) {
        if (pidfds[i] < 0)
            continue;
        for (;;) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000);
            struct pollfd p = {.fd = pidfds[i], .events = POLLIN};
            int r = poll(&p, 1, left > 0 ? (int)(left > INT_MAX ? INT_MAX : left) : 0);
            if (r >= 0 || errno != EINTR)
                break;
        }
    }
}

static bool container_is_stopped(const char *oci_root, const char *id, pid_t pid)
{
    struct pea_error ignored = {0};
    AUTO_JSON json_t *st = container_state(oci_root, id, &ignored);
    const char *status = json_string_value(json_object_get(st, "status"));
    return !status || strcmp(status, "stopped") == 0 || json_integer_value(json_object_get(st, "pid")) != pid;
}

/* The state says "stopped" unless the pid still has the recorded start time; asked again after pidfd_open, so that
 * the pidfd cannot be of a process that took the pid over in between. */
int pod_open_member_pidfd(const char *oci_root, const char *id, pid_t *pid_out)
{
    struct pea_error ignored = {0};
    AUTO_JSON json_t *st = container_state(oci_root, id, &ignored);
    pid_t pid = st ? (pid_t)json_integer_value(json_object_get(st, "pid")) : 0;
    AUTO_FD int pidfd = pid > 0 ? sys_pidfd_open(pid, 0) : -1;
    if (pidfd < 0 || container_is_stopped(oci_root, id, pid))
        return -1;
    if (pid_out)
        *pid_out = pid;
    return take_fd(&pidfd);
}

/* SIGTERM to each init, the grace period, SIGKILL to whatever is left in their cgroups, then delete. */
int pod_stop_containers(const char *oci_root, char *const *ids, size_t n, const int *known_pidfds,
                           long long grace_seconds, struct pea_error *err)
{
    int *pidfds = xcalloc(n ? n : 1, sizeof *pidfds);
    for (size_t i = 0; i < n; i++) {
        pidfds[i] = known_pidfds && known_pidfds[i] >= 0 ? dup(known_pidfds[i])
                                                          : pod_open_member_pidfd(oci_root, ids[i], NULL);
        struct pea_error ignored = {0};
        if (pidfds[i] >= 0)
            container_kill(oci_root, ids[i], SIGTERM, false, &ignored);
    }
    if (grace_seconds > 0)
        wait_exited(pidfds, n, grace_seconds * 1000);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        struct pea_error one = {0};
        /* delete --force kills every process left in the container's cgroup and waits for the init. */
        if (container_delete(oci_root, ids[i], true, &one) < 0 && r == 0) {
            *err = one;
            r = -1;
        }
        if (pidfds[i] >= 0)
            close(pidfds[i]);
    }
    free(pidfds);
    return r;
}

int pod_container_stop(struct pea_pod *pod, const char *name, int pidfd, long long grace_seconds,
                       struct pea_error *err)
{
    char *ids[] = {(char *)name, NULL};
    if (pod_stop_containers(pod->oci_root, ids, 1, &pidfd, grace_seconds, err) < 0)
        return -1;
    AUTO_FREE char *layer = xasprintf("%s/containers/%s", pod->data_dir, name);
    AUTO_FREE char *bundle = xasprintf("%s/bundles/%s", pod->dir, name);
    /* The upper is reached as at the container's start, through containers/ opened without a symlink (none there:
     * nothing to remove). */
    AUTO_FD int containers = open_containers_dir(pod, err);
    if (containers < 0 && err->errnum != ENOENT)
        return -1;
    if ((containers >= 0 && remove_tree_at(containers, name, layer, err) < 0) || remove_tree(bundle, err) < 0)
        return -1;
    return 0;
}

/* ---- teardown and listing ---- */

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **pod_dir_names(const char *path, struct pea_error *err)
{
    DIR *dir = opendir(path);
    if (!dir) {
        if (errno == ENOENT)
            return xcalloc(1, sizeof(char *));
        pea_fail(err, errno, "list %s", path);
        return NULL;
    }
    size_t n = 0;
    char **names = xcalloc(1, sizeof *names);
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        names = xrealloc(names, (n + 2) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
        names[n] = NULL;
    }
    closedir(dir);
    qsort(names, n, sizeof *names, compare_names);
    return names;
}

char **pod_list_names(const char *root, struct pea_error *err)
{
    AUTO_FREE char *pods = pods_dir(root);
    return pod_dir_names(pods, err);
}
