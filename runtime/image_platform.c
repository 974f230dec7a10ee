/* Picking an image for a platform from an index (manifest list), with containerd's matching rules: same OS, same
 * architecture after normalisation, and a variant the host can run — arm64 "" and "v8" are one; an armv7 host
 * runs v7, v6 and v5 images (preferring the highest); amd64 "" and "v1" are one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "image_internal.h"
#include "pea/util.h"

/* uname's machine names in GOARCH spelling, with the variant they imply. */
static void normalise(char *arch, size_t arch_len, char *variant, size_t variant_len)
{
    static const struct {
        const char *from, *arch, *variant;
    } names[] = {
        {"x86_64", "amd64", ""}, {"x86-64", "amd64", ""}, {"i386", "386", ""}, {"i686", "386", ""},
        {"aarch64", "arm64", ""}, {"armhf", "arm", "v7"}, {"armel", "arm", "v6"}, {"armv7l", "arm", "v7"},
        {"armv6l", "arm", "v6"}, {"armv5tel", "arm", "v5"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(arch, names[i].from) != 0)
            continue;
        snprintf(arch, arch_len, "%s", names[i].arch);
        if (!variant[0])
            snprintf(variant, variant_len, "%s", names[i].variant);
        break;
    }
    if (strcmp(arch, "arm64") == 0 && strcmp(variant, "v8") == 0)
        variant[0] = '\0';
    if (strcmp(arch, "amd64") == 0 && strcmp(variant, "v1") == 0)
        variant[0] = '\0';
    if (strcmp(arch, "arm") == 0 && !variant[0])
        snprintf(variant, variant_len, "v7");
}

int image_platform_parse(const char *text, struct image_platform *p, struct pea_error *err)
{
    memset(p, 0, sizeof *p);
    if (!text) {
        struct utsname u;
        uname(&u);
        snprintf(p->os, sizeof p->os, "linux");
        snprintf(p->architecture, sizeof p->architecture, "%.31s", u.machine);
    } else {
        char os[64] = "", arch[64] = "", variant[64] = "", extra[2] = "";
        int n = sscanf(text, "%63[^/]/%63[^/]/%63[^/]/%1s", os, arch, variant, extra);
        if (n < 2 || n > 3 || strlen(os) >= sizeof p->os || strlen(arch) >= sizeof p->architecture ||
            strlen(variant) >= sizeof p->variant)
            return pea_fail(err, 0, "platform \"%s\": not os/arch[/variant]", text);
        memcpy(p->os, os, strlen(os) + 1);
        memcpy(p->architecture, arch, strlen(arch) + 1);
        memcpy(p->variant, variant, strlen(variant) + 1);
    }
    normalise(p->architecture, sizeof p->architecture, p->variant, sizeof p->variant);
    return 0;
}

/* How well an entry fits: 0 not at all, higher is better. */
static int score(json_t *platform, const struct image_platform *host)
{
    const char *os = json_string_value(json_object_get(platform, "os"));
    const char *arch_text = json_string_value(json_object_get(platform, "architecture"));
    const char *variant_text = json_string_value(json_object_get(platform, "variant"));
    if (!os || !arch_text || strcmp(os, host->os) != 0)
        return 0;
    char arch[32], variant[16];
    snprintf(arch, sizeof arch, "%.31s", arch_text);
    snprintf(variant, sizeof variant, "%.15s", variant_text ? variant_text : "");
    normalise(arch, sizeof arch, variant, sizeof variant);
    if (strcmp(arch, host->architecture) != 0)
        return 0;
    if (strcmp(variant, host->variant) == 0)
        return 100;
    /* An arm host runs the older variants: v7 runs v6 and v5. */
    if (strcmp(arch, "arm") == 0 && variant[0] == 'v' && host->variant[0] == 'v' && variant[1] && !variant[2] &&
        !host->variant[2] && variant[1] < host->variant[1])
        return 50 + variant[1] - '0';
    return 0;
}

int image_platform_pick(json_t *manifests, const struct image_platform *p, struct pea_error *err)
{
    int best = -1, best_score = 0;
    size_t i;
    json_t *m;
    json_array_foreach(manifests, i, m) {
        int sc = score(json_object_get(m, "platform"), p);
        if (sc > best_score) {
            best = (int)i;
            best_score = sc;
        }
    }
    if (best >= 0)
        return best;
    char seen[512] = "";
    size_t n = 0;
    json_array_foreach(manifests, i, m) {
        json_t *pl = json_object_get(m, "platform");
        const char *os = json_string_value(json_object_get(pl, "os"));
        const char *arch = json_string_value(json_object_get(pl, "architecture"));
        const char *variant = json_string_value(json_object_get(pl, "variant"));
        if (!os || !arch || n >= sizeof seen - 1)
            continue;
        int w = snprintf(seen + n, sizeof seen - n, "%s%s/%s%s%s", n ? ", " : "", os, arch, variant ? "/" : "",
                         variant ? variant : "");
        n = w < 0 ? n : n + (size_t)w;
    }
    return store_fail(err, ENOENT, "no image for %s/%s%s%s in the index (it has: %s)", p->os, p->architecture,
                    p->variant[0] ? "/" : "", p->variant, n ? seen : "nothing with a platform");
}
