/* A pod's name resolution: spec.dnsPolicy, spec.dnsConfig and spec.hostAliases, validated as Kubernetes does (what
 * they make of /etc/resolv.conf and /etc/hosts is pod_dns.c's and pod.c's). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "manifest_internal.h"
#include "pea/util.h"

int manifest_parse_dns(json_t *spec, struct pea_pod_manifest *m, struct pea_error *err)
{
    static const char *const fields[] = {"nameservers", "searches", "options", NULL};
    static const char *const option_fields[] = {"name", "value", NULL};
    /* There is no cluster DNS on one node: the ClusterFirst policies get what Default gets, the host's
     * resolv.conf (or dnsConfig's); None takes dnsConfig alone, which Kubernetes then requires. */
    static const char *const policies[] = {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None", NULL};
    int policy = 0;
    json_t *dns;
    if (field_get_object(spec, "spec", "dnsConfig", false, &dns, err) < 0 ||
        field_get_enum(spec, "spec", "dnsPolicy", policies, &policy, err) < 0)
        return -1;
    if (policy == 3 && !dns)
        return pea_fail(err, 0, "spec.dnsConfig: must be given when spec.dnsPolicy is None");
    if (policy <= 1 && json_object_get(spec, "dnsPolicy"))
        strv_append(&m->notices, "spec.dnsPolicy: there is no cluster DNS on a single node: the pod gets the "
                                 "host's resolv.conf, or dnsConfig's");
    if (dns && (field_check_known(dns, "spec.dnsConfig", fields, err) < 0 ||
                field_get_strv(dns, "spec.dnsConfig", "nameservers", &m->dns_nameservers, err) < 0 ||
                field_get_strv(dns, "spec.dnsConfig", "searches", &m->dns_searches, err) < 0))
        return -1;
    m->has_dns_config = dns != NULL;
    m->is_dns_policy_none = policy == 3;
    /* Kubernetes' validatePodDNSConfig: None has no base to add to. */
    if (m->is_dns_policy_none && !json_array_size(json_object_get(dns, "nameservers")))
        return pea_fail(err, 0, "spec.dnsConfig.nameservers: must provide at least one DNS nameserver when "
                        "spec.dnsPolicy is None");
    m->dns_options = xcalloc(1, sizeof(char *));
    json_t *options = NULL;
    if (dns && field_get_array(dns, "spec.dnsConfig", "options", &options, err) < 0)
        return -1;
    for (size_t i = 0; options && i < json_array_size(options); i++) {
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "spec.dnsConfig.options[%zu]", i);
        json_t *option = json_array_get(options, i);
        AUTO_FREE char *name = NULL, *value = NULL;
        if (!json_is_object(option))
            return pea_fail(err, 0, "%s: must be an object", item);
        if (field_check_known(option, item, option_fields, err) < 0 ||
            field_get_string(option, item, "name", true, &name, err) < 0 ||
            field_get_string(option, item, "value", false, &value, err) < 0)
            return -1;
        /* One word of resolv.conf's options line: a name, or name:value. */
        if (!name[0] || name[strcspn(name, " \t\n\r:#;")])
            return field_fail(err, item, "name", "must be one word of resolv.conf's options (no space, ':', '#' or "
                              "';'), not \"%s\"", name);
        if (value && value[strcspn(value, " \t\n\r#;")])
            return field_fail(err, item, "value", "must be one word of resolv.conf's options, not \"%s\"", value);
        char *word = value && value[0] ? xasprintf("%s:%s", name, value) : xstrdup(name);
        strv_append(&m->dns_options, word);
        free(word);
    }
    if (!m->dns_nameservers)
        m->dns_nameservers = xcalloc(1, sizeof(char *));
    if (!m->dns_searches)
        m->dns_searches = xcalloc(1, sizeof(char *));
    /* Kubernetes' limits (MaxDNSNameservers, MaxDNSSearchPaths, MaxDNSSearchListChars), from what libc resolvers
     * read: more would be dropped from resolv.conf without a word. */
    if (strv_len(m->dns_nameservers) > 3)
        return pea_fail(err, 0, "spec.dnsConfig.nameservers: %zu entries, more than Kubernetes' 3",
                        strv_len(m->dns_nameservers));
    if (strv_len(m->dns_searches) > 32)
        return pea_fail(err, 0, "spec.dnsConfig.searches: %zu entries, more than Kubernetes' 32",
                        strv_len(m->dns_searches));
    size_t search_chars = 0;
    for (size_t i = 0; m->dns_searches[i]; i++) {
        /* A DNS subdomain, with or without the root's dot; it goes into resolv.conf as one word of one line. */
        AUTO_FREE char *name = xstrdup(m->dns_searches[i]);
        size_t n = strlen(name);
        if (n > 1 && name[n - 1] == '.')
            name[n - 1] = '\0';
        if (!name_is_dns_subdomain(name, 253))
            return pea_fail(err, 0, "spec.dnsConfig.searches[%zu]: must be a DNS subdomain, not \"%s\"", i,
                            m->dns_searches[i]);
        search_chars += (i ? 1 : 0) + n;
    }
    if (search_chars > 2048)
        return pea_fail(err, 0, "spec.dnsConfig.searches: %zu characters with the spaces between, more than "
                        "Kubernetes' 2048", search_chars);
    for (size_t i = 0; m->dns_nameservers[i]; i++) {
        unsigned char address[16];
        if (inet_pton(AF_INET, m->dns_nameservers[i], address) != 1 &&
            inet_pton(AF_INET6, m->dns_nameservers[i], address) != 1)
            return pea_fail(err, 0, "spec.dnsConfig.nameservers[%zu]: must be an IP address, not \"%s\"", i,
                            m->dns_nameservers[i]);
    }
    return 0;
}

/* spec.hostAliases as Kubernetes validates it (ValidateHostAliases): an IP address and DNS subdomains, which go into
 * /etc/hosts as written (nothing else could break its lines). */
int manifest_parse_host_aliases(json_t *spec, struct pea_pod_manifest *m, struct pea_error *err)
{
    static const char *const fields[] = {"ip", "hostnames", NULL};
    json_t *list;
    if (field_get_array(spec, "spec", "hostAliases", &list, err) < 0)
        return -1;
    if (!list)
        return 0;
    m->host_aliases = xcalloc(json_array_size(list) ? json_array_size(list) : 1, sizeof *m->host_aliases);
    for (size_t i = 0; i < json_array_size(list); i++) {
        struct pea_host_alias *a = &m->host_aliases[m->n_host_aliases++];
        char item[FIELD_PATH_MAX];
        snprintf(item, sizeof item, "spec.hostAliases[%zu]", i);
        json_t *j = json_array_get(list, i);
        if (!json_is_object(j))
            return pea_fail(err, 0, "%s: must be an object", item);
        if (field_check_known(j, item, fields, err) < 0 || field_get_string(j, item, "ip", true, &a->ip, err) < 0 ||
            field_get_strv(j, item, "hostnames", &a->hostnames, err) < 0)
            return -1;
        if (!a->hostnames)
            a->hostnames = xcalloc(1, sizeof(char *));
        unsigned char address[16];
        if (inet_pton(AF_INET, a->ip, address) != 1 && inet_pton(AF_INET6, a->ip, address) != 1)
            return field_fail(err, item, "ip", "must be a valid IP address, not \"%s\"", a->ip);
        for (size_t k = 0; a->hostnames[k]; k++)
            if (!name_is_dns_subdomain(a->hostnames[k], 253))
                return pea_fail(err, 0, "%s.hostnames[%zu]: must be a DNS subdomain, not \"%s\"", item, k,
                                a->hostnames[k]);
    }
    return 0;
}
