/* Pod networking over rtnetlink (libmnl), no `ip` binary: links up, veth pairs, bridges, addresses, routes. Every
 * function takes the network namespace to act in as an fd (-1 = the caller's own) and leaves the caller in its own
 * namespace when it returns, on every path. */
#ifndef PEA_NET_H
#define PEA_NET_H

#include <stdbool.h>

#include "pea/error.h"

/* Bring "lo" up in the namespace. */
int net_loopback_up(int netns_fd, struct pea_error *err);

/* Create a bridge named `bridge` in the caller's namespace, up, with gateway_cidr ("198.18.0.1/24") on it when not
 * NULL: 1 and its ifindex in *index. When a bridge of that name exists already: 0 and its ifindex, and nothing about
 * it is changed (whether to use it is the caller's decision). -1 with *err otherwise (also for a link of that name
 * that is not a bridge); a bridge this call made is deleted again on failure. */
int net_bridge_create(const char *bridge, const char *gateway_cidr, int *index, struct pea_error *err);

/* Bring up the bridge with this ifindex (named `bridge`, for messages). */
int net_bridge_up(const char *bridge, int index, struct pea_error *err);

/* Delete the bridge named `bridge` if it is still the link with this ifindex and has no ports left. 1 when no such
 * bridge remains (deleted now, gone, or the name is another link's), 0 when it is kept for its ports, -1 with *err. */
int net_bridge_delete_if_unused(const char *bridge, int index, struct pea_error *err);

/* Create a veth pair in the caller's namespace: host_ifname stays here, attached to `bridge` (which must still be the
 * link with bridge_index) and up; the peer moves into netns_fd and is renamed pod_ifname there ("eth0"), up. On
 * failure nothing is left. */
int net_veth_create(const char *host_ifname, const char *bridge, int bridge_index, int netns_fd,
                    const char *pod_ifname, struct pea_error *err);

/* Add "ADDRESS/PREFIX" (IPv4 or IPv6) to ifname in the namespace. */
int net_address_add(int netns_fd, const char *ifname, const char *cidr, struct pea_error *err);

/* Default route via gateway (IPv4 or IPv6) out of ifname in the namespace. */
int net_route_add_default(int netns_fd, const char *ifname, const char *gateway, struct pea_error *err);

/* Delete a link by name in the namespace; a missing link is not an error. Deleting one end of a veth pair deletes
 * both. */
int net_link_delete(int netns_fd, const char *ifname, struct pea_error *err);

/* Whether the link exists in the namespace (for tests and teardown checks). -1 with *err on failure. */
int net_link_exists(int netns_fd, const char *ifname, struct pea_error *err);

#endif
