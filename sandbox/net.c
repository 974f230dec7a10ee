/* Pod networking over rtnetlink with libmnl. Each call opens a socket inside the namespace it acts on (a netlink
 * socket stays bound to the namespace it was created in), sends one request at a time and waits for the kernel's
 * acknowledgement, so every failure carries the kernel's errno. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "pea/net.h"
#include "pea/util.h"

enum {
    NL_REQUEST_SIZE = 1024, /* the largest request here, a veth pair, is about 100 bytes */
    NL_REPLY_SIZE = 32768,  /* the kernel never puts more than this in one dump datagram */
};

static void mnl_socket_close_p(struct mnl_socket **sock)
{
    if (*sock)
        mnl_socket_close(*sock);
}
#define AUTO_MNL_SOCKET __attribute__((cleanup(mnl_socket_close_p)))

/* One rtnetlink conversation: the socket, its port id and the last sequence number used. */
struct nl {
    struct mnl_socket *sock;
    unsigned int portid;
    unsigned int seq;
    char *reply;
};

static void nl_close(struct nl *nl)
{
    mnl_socket_close_p(&nl->sock);
    free(nl->reply);
}
#define AUTO_NL __attribute__((cleanup(nl_close)))

/* Requests are built in a buffer aligned for the header. */
#define NL_REQUEST_BUFFER(name) _Alignas(struct nlmsghdr) char name[NL_REQUEST_SIZE]

static struct mnl_socket *socket_open_in(int netns_fd, struct pea_error *err)
{
    AUTO_FD int own_netns = -1;
    if (netns_fd >= 0) {
        own_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (own_netns < 0) {
            pea_fail(err, errno, "open own network namespace");
            return NULL;
        }
        if (setns(netns_fd, CLONE_NEWNET) < 0) {
            pea_fail(err, errno, "enter network namespace (fd %d)", netns_fd);
            return NULL;
        }
    }
    AUTO_MNL_SOCKET struct mnl_socket *sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    int open_errno = errno;
    if (own_netns >= 0 && setns(own_netns, CLONE_NEWNET) < 0) {
        pea_fail(err, errno, "return to own network namespace");
        return NULL;
    }
    if (!sock) {
        pea_fail(err, open_errno, "open rtnetlink socket");
        return NULL;
    }
    return take_ptr(&sock);
}

static int nl_open(struct nl *nl, int netns_fd, struct pea_error *err)
{
    nl->sock = socket_open_in(netns_fd, err);
    if (!nl->sock)
        return -1;
    if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
        return pea_fail(err, errno, "bind rtnetlink socket");
    nl->portid = mnl_socket_get_portid(nl->sock);
    nl->seq = (unsigned int)time(NULL);
    nl->reply = xmalloc(NL_REPLY_SIZE);
    return 0;
}

/* The kernel's rules for a device name (dev_valid_name), checked here so the error names the problem. */
static int ifname_check(const char *name, struct pea_error *err)
{
    if (!name || !*name)
        return pea_fail(err, 0, "interface name is empty");
    if (strlen(name) >= IFNAMSIZ)
        return pea_fail(err, 0, "interface name \"%s\" is longer than %d bytes", name, IFNAMSIZ - 1);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strpbrk(name, "/: \t\n\v\f\r"))
        return pea_fail(err, 0, "interface name \"%s\": \".\", \"..\", '/', ':' and white space are not allowed",
                        name);
    return 0;
}

/* Check the name of the link a call acts on, then open the conversation in its namespace. */
static int nl_open_for(struct nl *nl, int netns_fd, const char *ifname, struct pea_error *err)
{
    if (ifname_check(ifname, err) < 0)
        return -1;
    return nl_open(nl, netns_fd, err);
}

/* Send one request and read until its acknowledgement, its error or the end of its dump, handing each data message
 * to on_reply. 0, or -1 with errno: the kernel's own for an NLMSG_ERROR, ESRCH/EPROTO for a reply that is not ours. */
static int nl_transact(struct nl *nl, struct nlmsghdr *req, mnl_cb_t on_reply, void *data)
{
    req->nlmsg_seq = ++nl->seq;
    if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
        return -1;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl->sock, nl->reply, NL_REPLY_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EPROTO;
            return -1;
        }
        int r = mnl_cb_run(nl->reply, (size_t)n, req->nlmsg_seq, nl->portid, on_reply, data);
        if (r <= MNL_CB_STOP)
            return r == MNL_CB_STOP ? 0 : -1;
    }
}

/* Every request asks for an acknowledgement, so success is confirmed rather than assumed. */
static struct nlmsghdr *request_start(char *buf, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    return nlh;
}

static struct nlmsghdr *link_request(char *buf, uint16_t type, uint16_t flags, int index)
{
    struct nlmsghdr *nlh = request_start(buf, type, flags);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *ifi);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
    return nlh;
}

static void link_mark_up(struct ifinfomsg *ifi)
{
    ifi->ifi_flags |= IFF_UP;
    ifi->ifi_change |= IFF_UP;
}

/* What this module needs to know about an existing link. */
struct link {
    int index;
    unsigned int master; /* IFLA_MASTER, 0 when not attached */
    char kind[16];       /* IFLA_INFO_KIND, "" for links without one (lo, physical devices) */
};

static void link_parse(const struct nlmsghdr *nlh, struct link *out)
{
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    *out = (struct link){.index = ifi->ifi_index};
    const struct nlattr *attr, *info;
    mnl_attr_for_each(attr, nlh, sizeof *ifi) {
        if (mnl_attr_get_type(attr) == IFLA_MASTER && mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
            out->master = mnl_attr_get_u32(attr);
        if (mnl_attr_get_type(attr) != IFLA_LINKINFO || mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
            continue;
        mnl_attr_for_each_nested(info, attr) {
            if (mnl_attr_get_type(info) == IFLA_INFO_KIND && mnl_attr_validate(info, MNL_TYPE_NUL_STRING) == 0)
                snprintf(out->kind, sizeof out->kind, "%s", mnl_attr_get_str(info));
        }
    }
}

static int on_link(const struct nlmsghdr *nlh, void *data)
{
    if (nlh->nlmsg_type == RTM_NEWLINK)
        link_parse(nlh, data);
    return MNL_CB_OK;
}

/* 0 and *out, or -1 with errno (ENODEV when there is no such link). */
static int link_get(struct nl *nl, const char *name, struct link *out)
{
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_GETLINK, 0, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    *out = (struct link){0};
    if (nl_transact(nl, nlh, on_link, out) < 0)
        return -1;
    if (out->index <= 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static int link_set_up(struct nl *nl, const char *name, struct pea_error *err)
{
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, 0, 0);
    link_mark_up(mnl_nlmsg_get_payload(nlh));
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (nl_transact(nl, nlh, NULL, NULL) < 0)
        return pea_fail(err, errno, "bring up %s", name);
    return 0;
}

/* 0, or -1 with errno (ENODEV when there is no such link). */
static int link_delete(struct nl *nl, const char *name)
{
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_DELLINK, 0, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    return nl_transact(nl, nlh, NULL, NULL);
}

struct ip_address {
    int family;
    size_t size; /* 4 or 16 bytes */
    unsigned char bytes[16];
};

static int ip_address_parse(const char *text, struct ip_address *out)
{
    *out = (struct ip_address){0};
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = AF_INET;
        out->size = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = AF_INET6;
        out->size = 16;
        return 0;
    }
    return -1;
}

/* "ADDRESS/PREFIX" with a prefix no longer than the address. */
static int cidr_parse(const char *cidr, struct ip_address *address, unsigned int *prefix, struct pea_error *err)
{
    const char *slash = cidr ? strchr(cidr, '/') : NULL;
    if (!slash)
        return pea_fail(err, 0, "address \"%s\": expected ADDRESS/PREFIX", cidr ? cidr : "(null)");
    char text[INET6_ADDRSTRLEN];
    int text_len = (int)(slash - cidr);
    if (snprintf(text, sizeof text, "%.*s", text_len, cidr) >= (int)sizeof text || ip_address_parse(text, address) < 0)
        return pea_fail(err, 0, "address \"%s\": %.*s is not an IPv4 or IPv6 address", cidr, text_len, cidr);
    unsigned long long length;
    unsigned int max = (unsigned int)address->size * 8;
    if (slash[1] < '0' || slash[1] > '9' || parse_uint64(slash + 1, &length) < 0 || length > max)
        return pea_fail(err, 0, "address \"%s\": prefix must be a number from 0 to %u", cidr, max);
    *prefix = (unsigned int)length;
    return 0;
}

static int address_add(struct nl *nl, const char *ifname, const char *cidr, struct pea_error *err)
{
    struct ip_address address;
    unsigned int prefix;
    if (cidr_parse(cidr, &address, &prefix, err) < 0)
        return -1;
    struct link link;
    if (link_get(nl, ifname, &link) < 0)
        return pea_fail(err, errno, "add address %s to %s", cidr, ifname);
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = request_start(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof *ifa);
    ifa->ifa_family = (unsigned char)address.family;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned int)link.index;
    /* For IPv4 IFA_LOCAL is the interface's own address and IFA_ADDRESS the peer (the same on a broadcast link);
     * IPv6 has only IFA_ADDRESS. */
    if (address.family == AF_INET)
        mnl_attr_put(nlh, IFA_LOCAL, address.size, address.bytes);
    mnl_attr_put(nlh, IFA_ADDRESS, address.size, address.bytes);
    if (nl_transact(nl, nlh, NULL, NULL) < 0)
        return pea_fail(err, errno, "add address %s to %s", cidr, ifname);
    return 0;
}

/* 1 and *out when `name` is a bridge, 0 when there is no such link, -1 with *err for a link of another kind. */
static int bridge_find(struct nl *nl, const char *name, struct link *out, struct pea_error *err)
{
    if (link_get(nl, name, out) < 0)
        return errno == ENODEV ? 0 : pea_fail(err, errno, "look up link %s", name);
    if (strcmp(out->kind, "bridge") != 0)
        return pea_fail(err, 0, "link %s exists and is not a bridge", name);
    return 1;
}

/* 1 when this call made the bridge, 0 when a bridge of that name was already there (*existing describes it). */
static int bridge_create(struct nl *nl, const char *name, struct link *existing, struct pea_error *err)
{
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, info);
    if (nl_transact(nl, nlh, NULL, NULL) == 0)
        return 1;
    if (errno != EEXIST)
        return pea_fail(err, errno, "create bridge %s", name);
    int found = bridge_find(nl, name, existing, err);
    if (found == 0) /* deleted again between the two requests */
        return pea_fail(err, EEXIST, "create bridge %s", name);
    return found < 0 ? -1 : 0;
}

int net_loopback_up(int netns_fd, struct pea_error *err)
{
    AUTO_NL struct nl nl = {0};
    if (nl_open(&nl, netns_fd, err) < 0)
        return -1;
    return link_set_up(&nl, "lo", err);
}

int net_bridge_create(const char *bridge, const char *gateway_cidr, int *index, struct pea_error *err)
{
    struct ip_address gateway;
    unsigned int prefix;
    /* Check everything before the first request, so bad input leaves nothing behind. */
    if (ifname_check(bridge, err) < 0 || (gateway_cidr && cidr_parse(gateway_cidr, &gateway, &prefix, err) < 0))
        return -1;
    AUTO_NL struct nl nl = {0};
    if (nl_open(&nl, -1, err) < 0)
        return -1;
    struct link link;
    int made = bridge_create(&nl, bridge, &link, err);
    if (made <= 0) {
        *index = made == 0 ? link.index : 0;
        return made;
    }
    if (link_get(&nl, bridge, &link) < 0) {
        pea_fail(err, errno, "look up bridge %s", bridge);
        link_delete(&nl, bridge);
        return -1;
    }
    if (link_set_up(&nl, bridge, err) < 0 || (gateway_cidr && address_add(&nl, bridge, gateway_cidr, err) < 0)) {
        /* Do not leave a half-configured bridge of ours; the first error is the one to report. By index: a link
         * that took the name meanwhile is not ours. */
        NL_REQUEST_BUFFER(buf);
        nl_transact(&nl, link_request(buf, RTM_DELLINK, 0, link.index), NULL, NULL);
        return -1;
    }
    *index = link.index;
    return 1;
}

int net_bridge_up(const char *bridge, int index, struct pea_error *err)
{
    AUTO_NL struct nl nl = {0};
    if (nl_open_for(&nl, -1, bridge, err) < 0)
        return -1;
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, 0, index);
    link_mark_up(mnl_nlmsg_get_payload(nlh));
    if (nl_transact(&nl, nlh, NULL, NULL) < 0)
        return pea_fail(err, errno, "bring up bridge %s", bridge);
    return 0;
}

struct port_count {
    int bridge_index;
    int ports;
};

static int on_link_count_port(const struct nlmsghdr *nlh, void *data)
{
    struct port_count *count = data;
    struct link link;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    link_parse(nlh, &link);
    if (link.master != 0 && link.master == (unsigned int)count->bridge_index)
        count->ports++;
    return MNL_CB_OK;
}

int net_bridge_delete_if_unused(const char *bridge, int index, struct pea_error *err)
{
    AUTO_NL struct nl nl = {0};
    if (nl_open_for(&nl, -1, bridge, err) < 0)
        return -1;
    struct link link;
    if (link_get(&nl, bridge, &link) < 0)
        return errno == ENODEV ? 1 : pea_fail(err, errno, "look up link %s", bridge);
    if (link.index != index)
        return 1; /* the name is another link's now: that one is not ours to delete */
    if (strcmp(link.kind, "bridge") != 0)
        return pea_fail(err, 0, "link %s exists and is not a bridge", bridge);
    struct port_count count = {.bridge_index = link.index};
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_GETLINK, NLM_F_DUMP, 0);
    if (nl_transact(&nl, nlh, on_link_count_port, &count) < 0)
        return pea_fail(err, errno, "list ports of bridge %s", bridge);
    if (count.ports > 0)
        return 0;
    /* By index, so a link that took the name meanwhile is not the one deleted. */
    nlh = link_request(buf, RTM_DELLINK, 0, link.index);
    if (nl_transact(&nl, nlh, NULL, NULL) < 0 && errno != ENODEV)
        return pea_fail(err, errno, "delete bridge %s", bridge);
    return 1;
}

int net_veth_create(const char *host_ifname, const char *bridge, int bridge_index, int netns_fd,
                    const char *pod_ifname, struct pea_error *err)
{
    if (ifname_check(host_ifname, err) < 0 || ifname_check(bridge, err) < 0 || ifname_check(pod_ifname, err) < 0)
        return -1;
    AUTO_NL struct nl nl = {0};
    if (nl_open(&nl, -1, err) < 0)
        return -1;
    struct link br;
    int found = bridge_find(&nl, bridge, &br, err);
    if (found == 0)
        return pea_fail(err, ENODEV, "find bridge %s", bridge);
    if (found < 0)
        return -1;
    /* The bridge the caller checked (pea's, or adopted), not one that took its name since. */
    if (br.index != bridge_index)
        return pea_fail(err, 0, "bridge %s is not the one pea checked (index %d, not %d)", bridge, br.index,
                        bridge_index);
    /* One request makes the pair, places and names the peer, attaches the host end and brings it up; the kernel
     * unregisters both ends when any part of it fails. */
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    link_mark_up(mnl_nlmsg_get_payload(nlh));
    mnl_attr_put_strz(nlh, IFLA_IFNAME, host_ifname);
    mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)br.index);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    /* VETH_INFO_PEER holds an ifinfomsg of its own followed by the peer's attributes. */
    struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
    mnl_attr_put_strz(nlh, IFLA_IFNAME, pod_ifname);
    if (netns_fd >= 0)
        mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    mnl_attr_nest_end(nlh, peer);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    if (nl_transact(&nl, nlh, NULL, NULL) < 0)
        return pea_fail(err, errno, "create veth %s with peer %s", host_ifname, pod_ifname);
    /* The kernel configures the peer before the two ends know each other, and a veth without its other end refuses
     * to open (ENOTCONN), so the peer is brought up from its namespace now; failing that, deleting the host end
     * deletes both. */
    AUTO_NL struct nl pod = {0};
    if (nl_open(&pod, netns_fd, err) < 0 || link_set_up(&pod, pod_ifname, err) < 0) {
        link_delete(&nl, host_ifname);
        return -1;
    }
    return 0;
}

int net_address_add(int netns_fd, const char *ifname, const char *cidr, struct pea_error *err)
{
    struct ip_address address;
    unsigned int prefix;
    if (cidr_parse(cidr, &address, &prefix, err) < 0)
        return -1;
    AUTO_NL struct nl nl = {0};
    if (nl_open_for(&nl, netns_fd, ifname, err) < 0)
        return -1;
    return address_add(&nl, ifname, cidr, err);
}

int net_route_add_default(int netns_fd, const char *ifname, const char *gateway, struct pea_error *err)
{
    struct ip_address via;
    if (!gateway || ip_address_parse(gateway, &via) < 0)
        return pea_fail(err, 0, "gateway \"%s\": not an IPv4 or IPv6 address", gateway ? gateway : "(null)");
    AUTO_NL struct nl nl = {0};
    if (nl_open_for(&nl, netns_fd, ifname, err) < 0)
        return -1;
    struct link link;
    if (link_get(&nl, ifname, &link) < 0)
        return pea_fail(err, errno, "add default route via %s dev %s", gateway, ifname);
    NL_REQUEST_BUFFER(buf);
    struct nlmsghdr *nlh = request_start(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof *rtm);
    rtm->rtm_family = (unsigned char)via.family;
    rtm->rtm_dst_len = 0; /* default: matches every destination */
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    mnl_attr_put(nlh, RTA_GATEWAY, via.size, via.bytes);
    mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)link.index);
    if (nl_transact(&nl, nlh, NULL, NULL) < 0)
        return pea_fail(err, errno, "add default route via %s dev %s", gateway, ifname);
    return 0;
}

int net_link_delete(int netns_fd, const char *ifname, struct pea_error *err)
{
    AUTO_NL struct nl nl = {0};
    if (nl_open_for(&nl, netns_fd, ifname, err) < 0)
        return -1;
    if (link_delete(&nl, ifname) < 0 && errno != ENODEV)
        return pea_fail(err, errno, "delete link %s", ifname);
    return 0;
}

int net_link_exists(int netns_fd, const char *ifname, struct pea_error *err)
{
    AUTO_NL struct nl nl = {0};
    if (nl_open_for(&nl, netns_fd, ifname, err) < 0)
        return -1;
    struct link link;
    if (link_get(&nl, ifname, &link) == 0)
        return 1;
    return errno == ENODEV ? 0 : pea_fail(err, errno, "look up link %s", ifname);
}
