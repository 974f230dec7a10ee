/* Pod networking against the kernel. Every scenario runs in a child process that unshares a network namespace of its
 * own (the "host" side) and makes the "pod" namespace from a grandchild; the machine's own namespace is only read,
 * to check that nothing leaked into it. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pea/net.h"
#include "pea/util.h"

#define BRIDGE "peatestbr0"
#define HOST_END "peatestveth0"
#define GATEWAY "198.18.0.1"
#define POD_IP "198.18.0.2"
/* An address of the host side outside the pod's subnet: the pod can answer it only through its default route. */
#define FAR_HOST_IP "198.19.255.1"

/* Shared with the scenario's processes: what failed, and the namespaces made, checked once they are gone. */
struct scenario_report {
    char failure[1024];
    ino_t netns_inode[2]; /* host side, pod */
};
static struct scenario_report *report;

static void __attribute__((noreturn, format(printf, 2, 3))) scenario_fail(int line, const char *fmt, ...)
{
    int n = snprintf(report->failure, sizeof report->failure, "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->failure + n, sizeof report->failure - (size_t)n, fmt, ap);
    va_end(ap);
    _exit(1);
}

/* Assertions for the scenario's processes, which must not report to criterion themselves. */
#define expect(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            scenario_fail(__LINE__, __VA_ARGS__);                                                                      \
    } while (0)
#define expect_ok(call, err) expect((call) == 0, "%s: %s", #call, (err).msg)
#define expect_error(call, err, message)                                                                               \
    do {                                                                                                               \
        (err) = (struct pea_error){0};                                                                                 \
        expect((call) == -1, "%s succeeded", #call);                                                                   \
        expect(strcmp((err).msg, (message)) == 0, "%s: got \"%s\"", #call, (err).msg);                                 \
    } while (0)
#define expect_link(netns_fd, name, exists)                                                                            \
    do {                                                                                                               \
        struct pea_error link_err_ = {0};                                                                              \
        int found_ = net_link_exists((netns_fd), (name), &link_err_);                                                  \
        expect(found_ == (exists), "link %s in %s: expected %d, got %d %s", (name), #netns_fd, (exists), found_,     \
               link_err_.msg);                                                                                         \
    } while (0)

static ino_t inode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void wait_exit_ok(pid_t pid, const char *what)
{
    int status;
    expect(waitpid(pid, &status, 0) == pid, "wait for %s: %s", what, strerror(errno));
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed (status 0x%x)", what, status);
}

/* Fork a helper process that dies with its parent. *ready_fd is a pipe between the two: the write end in the
 * helper, the read end in the parent. */
static pid_t fork_helper(int *ready_fd)
{
    int ready[2];
    expect(pipe2(ready, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    expect(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(ready[pid == 0 ? 0 : 1]);
    *ready_fd = ready[pid == 0 ? 1 : 0];
    return pid;
}

/* A fresh network namespace held only by the returned fd: a child unshares it, we open it through /proc, the child
 * is killed. */
static int pod_netns_open(void)
{
    int ready;
    pid_t pid = fork_helper(&ready);
    if (pid == 0) {
        char ok = unshare(CLONE_NEWNET) == 0;
        (void)!write(ready, &ok, 1);
        for (;;)
            pause();
    }
    char ok = 0;
    (void)!read(ready, &ok, 1);
    close(ready);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    int fd = ok ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    int open_errno = errno;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    expect(fd >= 0, "make pod namespace: %s", ok ? strerror(open_errno) : "unshare failed");
    struct stat st;
    expect(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
    report->netns_inode[1] = st.st_ino;
    return fd;
}

/* The bridge with its gateway on the host side, and a pod namespace with eth0 on it, addressed and routed. */
static int pod_on_bridge(void)
{
    struct pea_error err = {0};
    int index = 0;
    expect(net_bridge_create(BRIDGE, GATEWAY "/24", &index, &err) == 1, "create the bridge: %s", err.msg);
    expect(index > 0 && (unsigned)index == if_nametoindex(BRIDGE), "index %d is not the bridge's", index);
    int pod = pod_netns_open();
    expect_ok(net_veth_create(HOST_END, BRIDGE, index, pod, "eth0", &err), err);
    expect_ok(net_address_add(pod, "eth0", POD_IP "/24", &err), err);
    expect_ok(net_route_add_default(pod, "eth0", GATEWAY, &err), err);
    expect_ok(net_loopback_up(pod, &err), err);
    return pod;
}

struct link_state {
    unsigned int flags;
    unsigned int master;
};

static int link_state_attr(const struct nlattr *attr, void *data)
{
    if (mnl_attr_get_type(attr) == IFLA_MASTER)
        ((struct link_state *)data)->master = mnl_attr_get_u32(attr);
    return MNL_CB_OK;
}

static int link_state_reply(const struct nlmsghdr *nlh, void *data)
{
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    ((struct link_state *)data)->flags = ifi->ifi_flags;
    return mnl_attr_parse(nlh, sizeof *ifi, link_state_attr, data);
}

/* Flags and master of a link in the current namespace, read back by index independently of the code under test. */
static struct link_state link_state_of(const char *name)
{
    unsigned int index = if_nametoindex(name);
    expect(index > 0, "if_nametoindex %s: %s", name, strerror(errno));
    struct mnl_socket *sock = mnl_socket_open(NETLINK_ROUTE);
    expect(sock && mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) == 0, "rtnetlink socket: %s", strerror(errno));
    _Alignas(struct nlmsghdr) char buf[32768];
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *ifi);
    ifi->ifi_index = (int)index;
    struct link_state state = {0};
    expect(mnl_socket_sendto(sock, nlh, nlh->nlmsg_len) > 0, "send RTM_GETLINK: %s", strerror(errno));
    ssize_t n = mnl_socket_recvfrom(sock, buf, sizeof buf);
    expect(n > 0 && mnl_cb_run(buf, (size_t)n, 0, 0, link_state_reply, &state) >= 0, "read %s: %s", name,
           strerror(errno));
    mnl_socket_close(sock);
    return state;
}

static struct sockaddr_in udp_address(const char *ip, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    expect(inet_pton(AF_INET, ip, &sa.sin_addr) == 1, "bad test address %s", ip);
    return sa;
}

static int udp_socket_bound(const char *ip, int port)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    expect(s >= 0, "socket: %s", strerror(errno));
    struct timeval timeout = {.tv_sec = 5};
    expect(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0, "SO_RCVTIMEO: %s", strerror(errno));
    struct sockaddr_in sa = udp_address(ip, port);
    expect(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s:%d: %s", ip, port, strerror(errno));
    return s;
}

static bool is_up_here(int s, const char *name)
{
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    expect(ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS %s: %s", name, strerror(errno));
    return ifr.ifr_flags & IFF_UP;
}

/* Pod side of the exchange, in a child: enter the pod, check its links, echo one datagram to its sender. */
static void pod_echo_once(int pod, int ready_fd)
{
    expect(setns(pod, CLONE_NEWNET) == 0, "enter pod: %s", strerror(errno));
    int s = udp_socket_bound(POD_IP, 9);
    expect(is_up_here(s, "lo") && is_up_here(s, "eth0"), "lo or eth0 is down in the pod");
    expect(write(ready_fd, "r", 1) == 1, "signal ready: %s", strerror(errno));
    char buf[16];
    struct sockaddr_in from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
    expect(n == 4 && memcmp(buf, "ping", 4) == 0, "pod received %zd bytes: %s", n, n < 0 ? strerror(errno) : "");
    expect(sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, from_len) == n, "echo: %s", strerror(errno));
}

/* A datagram from the host side to the pod and its echo back to an address off the pod's subnet, which only the
 * pod's default route through the bridge can carry. */
static void expect_udp_echo(int pod)
{
    struct pea_error err = {0};
    expect_ok(net_loopback_up(-1, &err), err);
    expect_ok(net_address_add(-1, "lo", FAR_HOST_IP "/32", &err), err);
    int ready;
    pid_t pid = fork_helper(&ready);
    if (pid == 0) {
        pod_echo_once(pod, ready);
        _exit(0);
    }
    char c;
    if (read(ready, &c, 1) != 1)
        wait_exit_ok(pid, "pod side of the UDP exchange");
    close(ready);
    int s = udp_socket_bound(FAR_HOST_IP, 0);
    struct sockaddr_in to = udp_address(POD_IP, 9);
    expect(sendto(s, "ping", 4, 0, (struct sockaddr *)&to, sizeof to) == 4, "send: %s", strerror(errno));
    char buf[16];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    expect(n == 4 && memcmp(buf, "ping", 4) == 0, "host side received %zd bytes: %s", n,
           n < 0 ? strerror(errno) : "");
    close(s);
    wait_exit_ok(pid, "pod side of the UDP exchange");
}

/* Whether any task lives in, or any process holds an fd of, the network namespace with this inode. */
static bool netns_is_referenced(ino_t inode)
{
    char wanted[64];
    snprintf(wanted, sizeof wanted, "net:[%llu]", (unsigned long long)inode);
    DIR *proc = opendir("/proc");
    cr_assert_not_null(proc);
    bool found = false;
    struct dirent *pid;
    while (!found && (pid = readdir(proc))) {
        if (pid->d_name[0] < '0' || pid->d_name[0] > '9')
            continue;
        const char *dirs[] = {"task", "fd"};
        for (size_t i = 0; i < ARRAY_SIZE(dirs) && !found; i++) {
            char path[300];
            snprintf(path, sizeof path, "/proc/%s/%s", pid->d_name, dirs[i]);
            DIR *d = opendir(path);
            struct dirent *e;
            while (d && !found && (e = readdir(d))) {
                char link_path[600], target[64];
                snprintf(link_path, sizeof link_path, "%s/%s%s", path, e->d_name, i == 0 ? "/ns/net" : "");
                ssize_t n = readlink(link_path, target, sizeof target - 1);
                found = n > 0 && (target[n] = '\0', strcmp(target, wanted) == 0);
            }
            if (d)
                closedir(d);
        }
    }
    closedir(proc);
    return found;
}

/* Run a scenario in a fresh "host side" network namespace, then check it left nothing alive. */
static void run_scenario(void (*scenario)(void))
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    report = mmap(NULL, sizeof *report, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(report, MAP_FAILED);
    ino_t own_netns = inode_of("/proc/self/ns/net");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        expect(unshare(CLONE_NEWNET) == 0, "unshare network namespace: %s", strerror(errno));
        report->netns_inode[0] = inode_of("/proc/self/ns/net");
        expect(report->netns_inode[0] != 0 && report->netns_inode[0] != own_netns, "not in a namespace of our own");
        scenario();
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
              report->failure[0] ? report->failure : "the scenario crashed");
    for (size_t i = 0; i < ARRAY_SIZE(report->netns_inode); i++)
        cr_assert(report->netns_inode[i] == 0 || !netns_is_referenced(report->netns_inode[i]),
                  "network namespace %zu outlived its test", i);
    struct pea_error err = {0};
    cr_assert_eq(net_link_exists(-1, BRIDGE, &err), 0, "%s", err.msg);
    cr_assert_eq(net_link_exists(-1, HOST_END, &err), 0, "%s", err.msg);
    munmap(report, sizeof *report);
}

static void pod_is_reachable(void)
{
    int pod = pod_on_bridge();
    expect_link(pod, "eth0", 1);
    expect_link(-1, "eth0", 0);
    expect_link(-1, HOST_END, 1);
    expect_link(pod, HOST_END, 0);
    struct link_state host_end = link_state_of(HOST_END);
    expect(host_end.master == if_nametoindex(BRIDGE), "host end's master is %u", host_end.master);
    expect(host_end.flags & IFF_UP, "host end is down");
    expect(link_state_of(BRIDGE).flags & IFF_UP, "bridge is down");
    expect_udp_echo(pod);
    close(pod);
}

Test(net, pod_is_reachable_through_the_bridge) { run_scenario(pod_is_reachable); }

static void deletion(void)
{
    int pod = pod_on_bridge();
    int index = (int)if_nametoindex(BRIDGE);
    struct pea_error err = {0};
    expect(net_bridge_delete_if_unused(BRIDGE, index, &err) == 0, "kept for its port? %s", err.msg);
    expect_link(-1, BRIDGE, 1);
    expect_ok(net_link_delete(-1, HOST_END, &err), err);
    expect_link(-1, HOST_END, 0);
    expect_link(pod, "eth0", 0);
    expect_ok(net_link_delete(-1, HOST_END, &err), err);
    expect(net_bridge_delete_if_unused(BRIDGE, index, &err) == 1, "deleted? %s", err.msg);
    expect_link(-1, BRIDGE, 0);
    expect(net_bridge_delete_if_unused(BRIDGE, index, &err) == 1, "gone? %s", err.msg);
    /* A bridge that took the name since is another: not deleted in place of the one recorded. */
    int other = 0;
    expect(net_bridge_create(BRIDGE, NULL, &other, &err) == 1, "create again: %s", err.msg);
    expect(other != index, "the new bridge has the old index %d", index);
    expect(net_bridge_delete_if_unused(BRIDGE, index, &err) == 1, "not ours? %s", err.msg);
    expect_link(-1, BRIDGE, 1);
    expect(net_bridge_delete_if_unused(BRIDGE, other, &err) == 1, "deleted? %s", err.msg);
    expect_link(-1, BRIDGE, 0);
    close(pod);
}

Test(net, deleting_the_host_end_removes_both_then_the_empty_bridge) { run_scenario(deletion); }

static void set_link_down(const char *name)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    expect(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS %s: %s", name, strerror(errno));
    ifr.ifr_flags &= ~IFF_UP;
    expect(ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "SIOCSIFFLAGS %s: %s", name, strerror(errno));
    close(s);
}

static void bridge_create_twice(void)
{
    struct pea_error err = {0};
    int index = 0, again = 0;
    expect(net_bridge_create(BRIDGE, GATEWAY "/24", &index, &err) == 1, "first call did not create: %s", err.msg);
    expect(link_state_of(BRIDGE).flags & IFF_UP, "bridge is down");
    set_link_down(BRIDGE);
    expect(net_bridge_create(BRIDGE, GATEWAY "/24", &again, &err) == 0, "second call: %s", err.msg);
    expect(again == index, "second call found index %d, not %d", again, index);
    expect(!(link_state_of(BRIDGE).flags & IFF_UP), "an existing bridge was changed (brought up)");
    expect_ok(net_bridge_up(BRIDGE, index, &err), err);
    expect(link_state_of(BRIDGE).flags & IFF_UP, "bridge is down");
    expect_error(net_bridge_create("lo", NULL, &again, &err), err, "link lo exists and is not a bridge");
    int lo = (int)if_nametoindex("lo");
    expect_error(net_bridge_delete_if_unused("lo", lo, &err), err, "link lo exists and is not a bridge");
    expect_link(-1, "lo", 1);
}

Test(net, bridge_create_leaves_an_existing_bridge_as_it_is_and_rejects_other_links)
{
    run_scenario(bridge_create_twice);
}

static void malformed_input(void)
{
    static const struct {
        const char *cidr, *message;
    } bad_addresses[] = {
        {"198.18.0.300/24", "address \"198.18.0.300/24\": 198.18.0.300 is not an IPv4 or IPv6 address"},
        {"198.18.0.2", "address \"198.18.0.2\": expected ADDRESS/PREFIX"},
        {"198.18.0.2/33", "address \"198.18.0.2/33\": prefix must be a number from 0 to 32"},
        {"198.18.0.2/", "address \"198.18.0.2/\": prefix must be a number from 0 to 32"},
        {"198.18.0.2/ 8", "address \"198.18.0.2/ 8\": prefix must be a number from 0 to 32"},
        {"198.18.0.2/24x", "address \"198.18.0.2/24x\": prefix must be a number from 0 to 32"},
        {"::1/129", "address \"::1/129\": prefix must be a number from 0 to 128"},
    };
    struct pea_error err = {0};
    for (size_t i = 0; i < ARRAY_SIZE(bad_addresses); i++)
        expect_error(net_address_add(-1, "lo", bad_addresses[i].cidr, &err), err, bad_addresses[i].message);
    int index;
    expect_error(net_bridge_create(BRIDGE, "198.18.0.1/33", &index, &err), err,
                 "address \"198.18.0.1/33\": prefix must be a number from 0 to 32");
    expect_link(-1, BRIDGE, 0);
    expect_error(net_route_add_default(-1, "lo", "198.18.0.256", &err), err,
                 "gateway \"198.18.0.256\": not an IPv4 or IPv6 address");
    expect_error(net_bridge_create("peatest-toolong0", NULL, &index, &err), err,
                 "interface name \"peatest-toolong0\" is longer than 15 bytes");
    expect_error(net_link_delete(-1, "a/b", &err), err,
                 "interface name \"a/b\": \".\", \"..\", '/', ':' and white space are not allowed");
    expect_error(net_link_exists(-1, "", &err), err, "interface name is empty");
}

Test(net, rejects_malformed_input_before_sending) { run_scenario(malformed_input); }

static void kernel_errors(void)
{
    struct pea_error err = {0};
    ino_t own_netns = inode_of("/proc/thread-self/ns/net");
    int not_netns = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char expected[128];
    snprintf(expected, sizeof expected, "enter network namespace (fd %d): Invalid argument", not_netns);
    expect_error(net_loopback_up(not_netns, &err), err, expected);
    expect(inode_of("/proc/thread-self/ns/net") == own_netns, "left in another namespace");

    expect_error(net_address_add(-1, "nosuch0", "198.18.0.5/24", &err), err,
                 "add address 198.18.0.5/24 to nosuch0: No such device");
    expect_error(net_veth_create(HOST_END, "nosuchbr0", 1, -1, "eth0", &err), err,
                 "find bridge nosuchbr0: No such device");

    int index = 0;
    expect(net_bridge_create(BRIDGE, NULL, &index, &err) == 1, "create the bridge: %s", err.msg);
    char moved[128];
    snprintf(moved, sizeof moved, "bridge " BRIDGE " is not the one pea checked (index %d, not %d)", index,
             index + 100);
    expect_error(net_veth_create(HOST_END, BRIDGE, index + 100, -1, "eth0", &err), err, moved);
    expect_link(-1, HOST_END, 0);
    expect_error(net_veth_create(HOST_END, BRIDGE, index, not_netns, "eth0", &err), err,
                 "create veth " HOST_END " with peer eth0: Invalid argument");
    expect_link(-1, HOST_END, 0);
    int pod = pod_netns_open();
    expect_error(net_veth_create(HOST_END, BRIDGE, index, pod, "lo", &err), err,
                 "create veth " HOST_END " with peer lo: File exists");
    expect_link(-1, HOST_END, 0);
    expect_link(-1, "lo", 1);
    expect_ok(net_veth_create(HOST_END, BRIDGE, index, pod, "eth0", &err), err);
    expect_error(net_veth_create(HOST_END, BRIDGE, index, pod, "eth1", &err), err,
                 "create veth " HOST_END " with peer eth1: File exists");
    expect_link(pod, "eth1", 0);
    expect_ok(net_address_add(pod, "eth0", POD_IP "/24", &err), err);
    expect_error(net_address_add(pod, "eth0", POD_IP "/24", &err), err,
                 "add address " POD_IP "/24 to eth0: File exists");
    close(pod);
    close(not_netns);
}

Test(net, reports_kernel_errors_and_leaves_nothing_behind) { run_scenario(kernel_errors); }
