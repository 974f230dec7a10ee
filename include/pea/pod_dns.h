/* A pod's /etc/resolv.conf as the kubelet forms it from spec.dnsPolicy and spec.dnsConfig. */
#ifndef PEA_POD_DNS_H
#define PEA_POD_DNS_H

#include <stddef.h>

#include "pea/pod_manifest.h"

/* The resolv.conf text for the pod (malloc'd). host_resolv is the host's resolv.conf (NULL when unreadable): the
 * base of every policy but None; with no dnsConfig it is used as it is. *dropped_nameservers counts the nameservers
 * past the resolver's three that were left out, as the kubelet leaves them out (with a warning). */
char *pod_dns_resolv_conf(const struct pea_pod_manifest *m, const char *host_resolv, size_t *dropped_nameservers);

#endif
