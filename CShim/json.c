#include "json.h"

#include "apr_strings.h"

#include <string.h>

/* The length of the valid UTF-8 sequence at `s`, or 0 (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s)
{
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        unsigned char low = s[0] == 0xE0 ? 0xA0 : 0x80, high = s[0] == 0xED ? 0x9F : 0xBF;
        return s[1] >= low && s[1] <= high && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        unsigned char low = s[0] == 0xF0 ? 0x90 : 0x80, high = s[0] == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= low && s[1] <= high && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

const char *swiftws_json_string(apr_pool_t *p, const char *text)
{
    const unsigned char *in = (const unsigned char *)text;
    char *out, *escaped;
    if (!text) {
        return "null";
    }
    /* At most 6 bytes (\u00XX) for each byte, and the quotes. */
    escaped = out = apr_palloc(p, strlen(text) * 6 + 3);
    *out++ = '"';
    while (*in) {
        size_t sequence = *in >= 0x80 ? utf8_sequence(in) : 0;
        if (sequence) {
            memcpy(out, in, sequence);
            out += sequence;
            in += sequence;
            continue;
        }
        if (*in == '"' || *in == '\\') {
            *out++ = '\\';
            *out++ = (char)*in;
        }
        else if (*in < 0x20 || *in >= 0x7F) {
            out += apr_snprintf(out, 7, "\\u%04x", *in);
        }
        else {
            *out++ = (char)*in;
        }
        in++;
    }
    *out++ = '"';
    *out = '\0';
    return escaped;
}
