/* pea.network: how the pod's network namespace is made (Kubernetes leaves this to CNI, pea says it here). */
#include <arpa/inet.h>
#include <string.h>

#include "manifest_internal.h"
#include "pea/util.h"

#define NETWORK_PATH "pea.network"

struct ip_address {
    int family;
    unsigned char bytes[16];
};

static int ip_parse(const char *text, struct ip_address *a)
{
    /* Zeroed: an IPv4 address fills 4 of the 16 bytes, and addresses are compared whole. */
    *a = (struct ip_address){0};
    if (inet_pton(AF_INET, text, a->bytes) == 1)
        a->family = AF_INET;
    else if (inet_pton(AF_INET6, text, a->bytes) == 1)
        a->family = AF_INET6;
    else
        return -1;
    return 0;
}

static unsigned ip_bits(const struct ip_address *a) { return a->family == AF_INET ? 32 : 128; }

/* "ADDRESS/PREFIX" with 1 <= PREFIX <= the family's bits. */
static int cidr_parse(const char *text, struct ip_address *a, unsigned *prefix)
{
    const char *slash = strchr(text, '/');
    if (!slash || (size_t)(slash - text) >= INET6_ADDRSTRLEN)
        return -1;
    char address[INET6_ADDRSTRLEN];
    memcpy(address, text, (size_t)(slash - text));
    address[slash - text] = '\0';
    unsigned long long n;
    if (ip_parse(address, a) < 0 || parse_uint64(slash + 1, &n) < 0 || n < 1 || n > ip_bits(a))
        return -1;
    *prefix = (unsigned)n;
    return 0;
}

static bool ip_same_subnet(const struct ip_address *a, const struct ip_address *b, unsigned prefix)
{
    for (unsigned bit = 0; bit < prefix; bit++) {
        unsigned char mask = (unsigned char)(0x80 >> (bit % 8));
        if ((a->bytes[bit / 8] & mask) != (b->bytes[bit / 8] & mask))
            return false;
    }
    return true;
}

/* What `ip link` accepts: at most 15 characters, no '/' or white space; pea keeps to [A-Za-z0-9_.-]. */
static bool is_interface_name(const char *s)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    size_t n = strlen(s);
    return n > 0 && n <= 15 && strspn(s, allowed) == n && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int parse_bridge(json_t *net, struct pea_pod_manifest *m, struct pea_error *err)
{
    if (field_get_string(net, NETWORK_PATH, "bridge", false, &m->bridge, err) < 0 ||
        field_get_string(net, NETWORK_PATH, "address", true, &m->address, err) < 0 ||
        field_get_string(net, NETWORK_PATH, "gateway", false, &m->gateway, err) < 0 ||
        field_get_bool(net, NETWORK_PATH, "adoptBridge", &m->adopt_bridge, err) < 0)
        return -1;
    if (!m->bridge)
        m->bridge = xstrdup("pea0");
    if (!is_interface_name(m->bridge))
        return field_fail(err, NETWORK_PATH, "bridge", "must be 1 to 15 of [A-Za-z0-9_.-], not \"%s\"", m->bridge);
    struct ip_address address, gateway;
    unsigned prefix;
    if (cidr_parse(m->address, &address, &prefix) < 0)
        return field_fail(err, NETWORK_PATH, "address", "must be ADDRESS/PREFIX (IPv4 or IPv6), not \"%s\"",
                          m->address);
    if (!m->gateway)
        return 0;
    if (ip_parse(m->gateway, &gateway) < 0)
        return field_fail(err, NETWORK_PATH, "gateway", "must be an IP address, not \"%s\"", m->gateway);
    if (gateway.family != address.family)
        return field_fail(err, NETWORK_PATH, "gateway", "must be %s like the address",
                          address.family == AF_INET ? "IPv4" : "IPv6");
    if (!ip_same_subnet(&address, &gateway, prefix))
        return field_fail(err, NETWORK_PATH, "gateway", "%s is outside %s", m->gateway, m->address);
    if (memcmp(address.bytes, gateway.bytes, sizeof address.bytes) == 0)
        return field_fail(err, NETWORK_PATH, "gateway", "must differ from the address");
    return 0;
}

/* A field given for a mode that does not use it is a mistake worth reporting. */
static int reject_fields_of_other_modes(json_t *net, const char *mode, struct pea_error *err)
{
    static const struct {
        const char *field, *mode;
    } owners[] = {{"path", "netns"},       {"bridge", "bridge"},      {"address", "bridge"},
                  {"gateway", "bridge"},    {"adoptBridge", "bridge"}};
    for (size_t i = 0; i < ARRAY_SIZE(owners); i++) {
        json_t *v = json_object_get(net, owners[i].field);
        if (v && !json_is_null(v) && strcmp(mode, owners[i].mode) != 0)
            return field_fail(err, NETWORK_PATH, owners[i].field, "only valid with mode %s", owners[i].mode);
    }
    return 0;
}

/* Pod sysctls are written into the pod's network namespace; one pea did not make (host, netns) is not pea's to
 * change, and a net.* sysctl written there would outlive the pod, for every process of that namespace. */
static int check_sysctls_fit_network(const struct pea_pod_manifest *m, struct pea_error *err)
{
    if (manifest_network_namespace_is_pea_made(m))
        return 0;
    for (size_t i = 0; i < m->n_sysctls; i++)
        if (strncmp(m->sysctls[i].name, "net.", 4) == 0)
            return pea_fail(err, 0,
                            "spec.securityContext.sysctls[%zu]: %s: the pod's network namespace is not pea's (%s): pea "
                            "sets no sysctl in it",
                            i, m->sysctls[i].name,
                            m->network_mode == PEA_NETWORK_HOST ? "hostNetwork" : "pea.network.mode netns");
    return 0;
}

static int parse_network_mode(json_t *root, bool is_host_network, struct pea_pod_manifest *m, struct pea_error *err)
{
    static const char *const pea_fields[] = {"network", NULL};
    static const char *const network_fields[] = {"mode", "path", "bridge", "address", "gateway", "adoptBridge", NULL};
    /* In the order of enum pea_network_mode. */
    static const char *const modes[] = {"none", "host", "netns", "bridge", NULL};
    json_t *pea, *net = NULL;
    m->network_mode = is_host_network ? PEA_NETWORK_HOST : PEA_NETWORK_NONE;
    if (field_get_object(root, "", "pea", false, &pea, err) < 0)
        return -1;
    if (pea && (field_check_known(pea, "pea", pea_fields, err) < 0 ||
                field_get_object(pea, "pea", "network", false, &net, err) < 0))
        return -1;
    if (!net)
        return 0;
    int mode = (int)m->network_mode;
    if (field_check_known(net, NETWORK_PATH, network_fields, err) < 0 ||
        field_get_enum(net, NETWORK_PATH, "mode", modes, &mode, err) < 0)
        return -1;
    if (is_host_network && mode != PEA_NETWORK_HOST)
        return pea_fail(err, 0, "spec.hostNetwork: conflicts with pea.network.mode \"%s\"", modes[mode]);
    m->network_mode = (enum pea_network_mode)mode;
    if (reject_fields_of_other_modes(net, modes[mode], err) < 0)
        return -1;
    if (m->network_mode == PEA_NETWORK_NETNS) {
        if (field_get_string(net, NETWORK_PATH, "path", true, &m->netns_path, err) < 0)
            return -1;
        if (m->netns_path[0] != '/')
            return field_fail(err, NETWORK_PATH, "path", "must be an absolute path");
    }
    if (m->network_mode == PEA_NETWORK_BRIDGE)
        return parse_bridge(net, m, err);
    return 0;
}

int manifest_parse_network(json_t *root, bool is_host_network, struct pea_pod_manifest *m, struct pea_error *err)
{
    if (parse_network_mode(root, is_host_network, m, err) < 0)
        return -1;
    return check_sysctls_fit_network(m, err);
}
