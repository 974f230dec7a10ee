/* spec.dnsConfig is added to the base the policy gives (the host's resolv.conf, nothing for None): nameservers and
 * searches appended without duplicates, options merged by name with the pod's value winning — what the kubelet
 * does before it hands the lists to the runtime. */
#include "pea/pod_dns.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pea/util.h"

/* The resolver reads three nameservers (MAXNS); Kubernetes keeps no more. */
#define MAX_NAMESERVERS 3

struct dns_lists {
    char **nameservers, **searches, **options;
};

static void lists_free(struct dns_lists *l)
{
    strv_free(l->nameservers);
    strv_free(l->searches);
    strv_free(l->options);
}

static bool strv_has(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static void append_new(char ***v, const char *s)
{
    if (!strv_has(*v, s))
        strv_append(v, s);
}

static size_t option_name_len(const char *option)
{
    return strcspn(option, ":");
}

/* An option replaces the one of the same name (ndots:5 then ndots:2 leaves ndots:2, where the first stood). */
static void merge_option(char ***v, const char *option)
{
    size_t n = option_name_len(option);
    for (size_t i = 0; *v && (*v)[i]; i++) {
        if (option_name_len((*v)[i]) == n && strncmp((*v)[i], option, n) == 0) {
            free((*v)[i]);
            (*v)[i] = xstrdup(option);
            return;
        }
    }
    strv_append(v, option);
}

/* The words resolv.conf(5) gives meaning to: every nameserver line, the last search (or domain) line, every
 * options line. */
static void parse_resolv_conf(const char *text, struct dns_lists *l)
{
    AUTO_FREE char *copy = xstrdup(text ? text : "");
    char *save_line = NULL;
    for (char *line = strtok_r(copy, "\n", &save_line); line; line = strtok_r(NULL, "\n", &save_line)) {
        line[strcspn(line, "#;")] = '\0';
        char *save_word = NULL;
        char *key = strtok_r(line, " \t\r", &save_word);
        if (!key)
            continue;
        bool is_search = strcmp(key, "search") == 0 || strcmp(key, "domain") == 0;
        if (is_search) {
            strv_free(l->searches);
            l->searches = NULL;
        }
        for (char *word = strtok_r(NULL, " \t\r", &save_word); word; word = strtok_r(NULL, " \t\r", &save_word)) {
            if (strcmp(key, "nameserver") == 0) {
                append_new(&l->nameservers, word);
                break;
            }
            if (is_search)
                append_new(&l->searches, word);
            else if (strcmp(key, "options") == 0)
                merge_option(&l->options, word);
        }
    }
}

static void append_line(char **text, const char *key, char *const *words)
{
    if (!words || !words[0])
        return;
    char *line = xasprintf("%s%s", *text, key);
    for (size_t i = 0; words[i]; i++) {
        char *next = xasprintf("%s %s", line, words[i]);
        free(line);
        line = next;
    }
    free(*text);
    *text = xasprintf("%s\n", line);
    free(line);
}

char *pod_dns_resolv_conf(const struct pea_pod_manifest *m, const char *host_resolv, size_t *dropped_nameservers)
{
    *dropped_nameservers = 0;
    if (!m->has_dns_config && !m->is_dns_policy_none)
        return xstrdup(host_resolv ? host_resolv : "");
    struct dns_lists l = {0};
    if (!m->is_dns_policy_none)
        parse_resolv_conf(host_resolv, &l);
    for (size_t i = 0; m->dns_nameservers[i]; i++)
        append_new(&l.nameservers, m->dns_nameservers[i]);
    for (size_t i = 0; m->dns_searches[i]; i++)
        append_new(&l.searches, m->dns_searches[i]);
    for (size_t i = 0; m->dns_options[i]; i++)
        merge_option(&l.options, m->dns_options[i]);
    size_t n = strv_len(l.nameservers);
    if (n > MAX_NAMESERVERS) {
        *dropped_nameservers = n - MAX_NAMESERVERS;
        for (size_t i = MAX_NAMESERVERS; i < n; i++) {
            free(l.nameservers[i]);
            l.nameservers[i] = NULL;
        }
    }
    char *text = xstrdup("");
    for (size_t i = 0; l.nameservers && l.nameservers[i]; i++) {
        char *next = xasprintf("%snameserver %s\n", text, l.nameservers[i]);
        free(text);
        text = next;
    }
    append_line(&text, "search", l.searches);
    append_line(&text, "options", l.options);
    lists_free(&l);
    return text;
}
