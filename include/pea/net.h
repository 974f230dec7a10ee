/* Pod networking over rtnetlink (libmnl), no `ip` binary: links up, veth pairs, bridges, addresses, routes. Every
 * function takes the network namespace to act in as an fd (-1 = the caller's own) and leaves the caller in its own
 * namespace when it returns, on every path. */
#ifndef PEA_NET_H
#define PEA_NET_H

#include <stdbool.h>

#include "pea/error.h"

/* Bring "lo" up in the namespace. */
int net_loopback_up(int netns_fd, struct pea_error *err);

/* Make sure a bridge named `bridge` exists and is up in the caller's namespace; *created says whether this call made
 * it. When it made it and gateway_cidr is not NULL ("198.18.0.1/24"), that address is put on the bridge. */
int net_bridge_ensure(const char *bridge, const char *gateway_cidr, bool *created, struct pea_error *err);

/* Delete the bridge if it exists and has no ports left. */
int net_bridge_delete_if_unused(const char *bridge, struct pea_error *err);

/* Create a veth pair in the caller's namespace: host_ifname stays here, attached to `bridge` and up; the peer moves
 * into netns_fd and is renamed pod_ifname there ("eth0"), up. On failure nothing is left. */
int net_veth_create(const char *host_ifname, const char *bridge, int netns_fd, const char *pod_ifname,
                    struct pea_error *err);

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
