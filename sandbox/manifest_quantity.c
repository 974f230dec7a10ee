/* Kubernetes quantities: [+-]<digits>[.<digits>]<suffix>, the suffix one of Ki Mi Gi Ti Pi Ei (powers of 1024),
 * m k M G T P E (powers of 1000), an exponent e<int> / E<int>, or nothing. The result must be a whole number of the
 * unit asked for (millicores, bytes); it is computed exactly, without floating point. */
#include <stdint.h>
#include <string.h>

#include "pea/pod_manifest.h"
#include "pea/util.h"

/* value = mantissa * 10^exponent10 * 1024^binary_power */
struct quantity {
    uint64_t mantissa;
    long exponent10;
    unsigned binary_power;
};

/* Beyond this an exponent cannot give a representable non-zero value anyway. */
#define QUANTITY_MAX_EXPONENT 10000

static int append_digit(struct quantity *q, char digit)
{
    if (__builtin_mul_overflow(q->mantissa, 10, &q->mantissa) ||
        __builtin_add_overflow(q->mantissa, (uint64_t)(digit - '0'), &q->mantissa))
        return -1;
    return 0;
}

/* The suffix after the number; -1 when it is not one. */
static int scan_suffix(const char *s, struct quantity *q, bool allow_milli)
{
    static const char decimal[] = "kMGTPE", binary[] = "KMGTPE";
    if (!*s)
        return 0;
    if (s[1] == 'i' && !s[2] && strchr(binary, s[0])) {
        q->binary_power = (unsigned)(strchr(binary, s[0]) - binary) + 1;
        return 0;
    }
    if (!s[1] && strchr(decimal, s[0])) {
        q->exponent10 += 3 * ((strchr(decimal, s[0]) - decimal) + 1);
        return 0;
    }
    if (!s[1] && s[0] == 'm' && allow_milli) {
        q->exponent10 -= 3;
        return 0;
    }
    if (s[0] != 'e' && s[0] != 'E')
        return -1;
    s++;
    bool is_negative = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (!*s || s[strspn(s, "0123456789")])
        return -1;
    long e = 0;
    for (; *s && e <= QUANTITY_MAX_EXPONENT; s++)
        e = e * 10 + (*s - '0');
    q->exponent10 += is_negative ? -e : e;
    return 0;
}

enum quantity_result { QUANTITY_OK, QUANTITY_INVALID, QUANTITY_NEGATIVE, QUANTITY_RANGE, QUANTITY_FRACTION };

static enum quantity_result quantity_scan(const char *text, bool allow_milli, struct quantity *q)
{
    const char *s = text;
    *q = (struct quantity){0};
    if (*s == '-')
        return QUANTITY_NEGATIVE;
    if (*s == '+')
        s++;
    size_t whole = strspn(s, "0123456789");
    for (size_t i = 0; i < whole; i++)
        if (append_digit(q, s[i]) < 0)
            return QUANTITY_RANGE;
    s += whole;
    size_t fraction = 0;
    if (*s == '.') {
        s++;
        fraction = strspn(s, "0123456789");
        size_t significant = fraction;
        while (significant > 0 && s[significant - 1] == '0')
            significant--;
        for (size_t i = 0; i < significant; i++)
            if (append_digit(q, s[i]) < 0)
                return QUANTITY_RANGE;
        q->exponent10 -= (long)significant;
        s += fraction;
    }
    if (whole + fraction == 0 || scan_suffix(s, q, allow_milli) < 0)
        return QUANTITY_INVALID;
    return QUANTITY_OK;
}

/* mantissa * 10^(exponent10 + unit_exponent10) * 1024^binary_power as a whole uint64. */
static enum quantity_result quantity_value(const struct quantity *q, long unit_exponent10, uint64_t *out)
{
    unsigned __int128 v = q->mantissa;
    if (v == 0) {
        *out = 0;
        return QUANTITY_OK;
    }
    for (unsigned i = 0; i < q->binary_power; i++)
        v *= 1024; /* at most 2^64 * 2^60: fits */
    long e = q->exponent10 + unit_exponent10;
    for (; e > 0; e--) {
        if (v > UINT64_MAX)
            return QUANTITY_RANGE;
        v *= 10;
    }
    for (; e < 0; e++) {
        if (v % 10 != 0)
            return QUANTITY_FRACTION;
        v /= 10;
    }
    if (v > UINT64_MAX)
        return QUANTITY_RANGE;
    *out = (uint64_t)v;
    return QUANTITY_OK;
}

static int quantity_parse(const char *text, bool is_cpu, uint64_t *out, struct pea_error *err)
{
    struct quantity q;
    enum quantity_result r = quantity_scan(text, is_cpu, &q);
    if (r == QUANTITY_OK)
        r = quantity_value(&q, is_cpu ? 3 : 0, out);
    switch (r) {
    case QUANTITY_OK:
        return 0;
    case QUANTITY_NEGATIVE:
        return pea_fail(err, 0, "quantity \"%s\" must not be negative", text);
    case QUANTITY_RANGE:
        return pea_fail(err, 0, "quantity \"%s\" is out of range", text);
    case QUANTITY_FRACTION:
        return pea_fail(err, 0, "quantity \"%s\" is finer than %s", text, is_cpu ? "a millicore" : "a byte");
    case QUANTITY_INVALID:
        break;
    }
    return pea_fail(err, 0, "invalid quantity \"%s\"", text);
}

int manifest_parse_cpu(const char *text, uint64_t *millis, struct pea_error *err)
{
    return quantity_parse(text, true, millis, err);
}

int manifest_parse_bytes(const char *text, uint64_t *bytes, struct pea_error *err)
{
    return quantity_parse(text, false, bytes, err);
}
