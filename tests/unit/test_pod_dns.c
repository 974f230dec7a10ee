/* A pod's resolv.conf: dnsConfig added to the host's file as the kubelet adds it. */
#include <criterion/criterion.h>

#include "pea/pod_dns.h"
#include "pea/pod_manifest.h"
#include "pea/util.h"

struct dns_case {
    bool has_config, is_none;
    char *nameservers[5], *searches[4], *options[4];
};

static char *resolv(const struct dns_case *c, const char *host, size_t *dropped)
{
    struct pea_pod_manifest m = {.has_dns_config = c->has_config, .is_dns_policy_none = c->is_none};
    m.dns_nameservers = (char **)c->nameservers;
    m.dns_searches = (char **)c->searches;
    m.dns_options = (char **)c->options;
    return pod_dns_resolv_conf(&m, host, dropped);
}

static const char *const HOST = "# made by hand\n"
                                "nameserver 198.18.0.1 ; a comment\n"
                                "search old.example\n"
                                "domain first.example\n"
                                "search a.example b.example a.example\n"
                                "options ndots:1 rotate\n"
                                "nameserver 198.18.0.2\n"
                                "options timeout:2\n";

Test(pod_dns, without_dns_config_the_hosts_file_is_used_as_it_is)
{
    struct dns_case c = {0};
    size_t dropped = 1;
    AUTO_FREE char *text = resolv(&c, HOST, &dropped);
    cr_assert_str_eq(text, HOST);
    cr_assert_eq(dropped, 0);
    AUTO_FREE char *none = resolv(&c, NULL, &dropped);
    cr_assert_str_eq(none, "");
}

Test(pod_dns, policy_none_takes_dns_config_alone)
{
    struct dns_case c = {.has_config = true, .is_none = true, .nameservers = {"198.18.0.53"},
                         .searches = {"x.example"}, .options = {"ndots:2", "edns0"}};
    size_t dropped = 1;
    AUTO_FREE char *text = resolv(&c, HOST, &dropped);
    cr_assert_str_eq(text, "nameserver 198.18.0.53\nsearch x.example\noptions ndots:2 edns0\n");
    cr_assert_eq(dropped, 0);
}

Test(pod_dns, dns_config_is_appended_without_duplicates_and_its_options_win)
{
    /* The host's last search line counts (domain is one too); options lines add up; nameservers past three go. */
    struct dns_case c = {.has_config = true, .nameservers = {"198.18.0.2", "198.18.0.53", "198.18.0.54"},
                         .searches = {"b.example", "c.example"}, .options = {"ndots:5", "edns0"}};
    size_t dropped = 0;
    AUTO_FREE char *text = resolv(&c, HOST, &dropped);
    cr_assert_str_eq(text, "nameserver 198.18.0.1\nnameserver 198.18.0.2\nnameserver 198.18.0.53\n"
                           "search a.example b.example c.example\n"
                           "options ndots:5 rotate timeout:2 edns0\n");
    cr_assert_eq(dropped, 1);
}
