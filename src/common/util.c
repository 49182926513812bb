/*
 * util.c - exact time and decimal conversions, JSON escaping, UTF-8 checks.
 * Pure functions over caller buffers; no locale, no floating point, so the
 * same input always gives the same bytes (prices and times are compared
 * byte for byte against PostgreSQL's text output in the tests).
 */
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t tf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * TF_US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t tf_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TF_US_PER_SEC + ts.tv_nsec / 1000;
}

void tf_mono_timespec(int64_t mono_us, struct timespec *ts)
{
    if (mono_us < 0) mono_us = 0;
    ts->tv_sec = (time_t)(mono_us / TF_US_PER_SEC);
    ts->tv_nsec = (long)(mono_us % TF_US_PER_SEC) * 1000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic, valid
 * for any int year). */
int64_t tf_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

size_t tf_fmt_iso_us(int64_t unix_us, char *buf)
{
    int64_t days = floordiv(unix_us, 86400LL * TF_US_PER_SEC);
    int64_t rem = unix_us - days * 86400LL * TF_US_PER_SEC;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / TF_US_PER_SEC, us = rem % TF_US_PER_SEC;
    int n = snprintf(buf, 40, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ", (long long)y, m, d, (int)(secs / 3600),
                     (int)(secs / 60 % 60), (int)(secs % 60), (long long)us);
    return (size_t)n;
}

static int digits(const char *s, size_t len, size_t at, int n, int *out)
{
    if (at + (size_t)n > len) return -1;
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[at + (size_t)i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

int tf_parse_iso_us(const char *s, size_t len, int64_t *out_us)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    int64_t frac = 0;
    size_t p = 0;
    if (digits(s, len, 0, 4, &y) || len < 10 || s[4] != '-' || digits(s, len, 5, 2, &mo) || s[7] != '-' ||
        digits(s, len, 8, 2, &d))
        return -1;
    p = 10;
    if (mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) return -1;
    if (p < len && (s[p] == 'T' || s[p] == 't' || s[p] == ' ')) {
        p++;
        if (digits(s, len, p, 2, &h) || p + 2 >= len || s[p + 2] != ':' || digits(s, len, p + 3, 2, &mi)) return -1;
        p += 5;
        if (p < len && s[p] == ':') {
            if (digits(s, len, p + 1, 2, &se)) return -1;
            p += 3;
            if (p < len && (s[p] == '.' || s[p] == ',')) {
                p++;
                int nd = 0;
                while (p < len && s[p] >= '0' && s[p] <= '9') {
                    if (nd < 6) frac = frac * 10 + (s[p] - '0');
                    else if (nd >= 9) return -1; /* nanoseconds at most */
                    nd++;
                    p++;
                }
                if (nd == 0) return -1;
                for (int i = nd; i < 6; i++) frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || se > 59) return -1;
    }
    int64_t off = 0;
    if (p < len) {
        if ((s[p] == 'Z' || s[p] == 'z') && p + 1 == len) {
            p++;
        } else if (s[p] == '+' || s[p] == '-') {
            int oh, om = 0;
            int sign = s[p] == '-' ? -1 : 1;
            if (digits(s, len, p + 1, 2, &oh)) return -1;
            p += 3;
            if (p < len && s[p] == ':' && ++p == len) return -1; /* "+09:" names no minutes */
            if (p < len) {
                if (digits(s, len, p, 2, &om)) return -1;
                p += 2;
            }
            if (oh > 23 || om > 59) return -1;
            off = sign * ((int64_t)oh * 3600 + om * 60);
        } else {
            return -1;
        }
    }
    if (p != len) return -1;
    int64_t days = tf_days_from_civil(y, mo, d);
    *out_us = ((days * 86400 + h * 3600 + mi * 60 + se) - off) * TF_US_PER_SEC + frac;
    return 0;
}

size_t tf_fmt_fixed(int64_t v, int scale, char *buf)
{
    char tmp[32];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u || n <= scale);
    size_t o = 0;
    if (v < 0) buf[o++] = '-';
    while (n > scale) buf[o++] = tmp[--n];
    if (scale > 0) {
        buf[o++] = '.';
        while (n > 0) buf[o++] = tmp[--n];
    }
    buf[o] = 0;
    return o;
}

int tf_parse_fixed(const char *s, size_t len, int scale, int64_t *out)
{
    size_t p = 0;
    int neg = 0;
    if (p < len && (s[p] == '-' || s[p] == '+')) neg = s[p++] == '-';
    uint64_t v = 0;
    int nint = 0, nfrac = 0;
    const uint64_t lim = (uint64_t)INT64_MAX;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        if (v > (lim - (uint64_t)(s[p] - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(s[p++] - '0');
        nint++;
    }
    if (p < len && s[p] == '.') {
        p++;
        while (p < len && s[p] >= '0' && s[p] <= '9') {
            if (nfrac == scale) {
                if (s[p] != '0') return -1; /* more precision than we keep */
                p++;
                continue;
            }
            if (v > (lim - (uint64_t)(s[p] - '0')) / 10) return -1;
            v = v * 10 + (uint64_t)(s[p++] - '0');
            nfrac++;
        }
    }
    if (p != len || (nint == 0 && nfrac == 0)) return -1;
    for (; nfrac < scale; nfrac++) {
        if (v > lim / 10) return -1;
        v *= 10;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int tf_parse_i64(const char *s, size_t len, int64_t *out)
{
    int64_t v;
    if (len == 0 || len > 20) return -1;
    if (tf_parse_fixed(s, len, 0, &v) != 0) return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '.') return -1;
    *out = v;
    return 0;
}

int tf_parse_duration_us(const char *s, size_t len, int64_t *out_us)
{
    size_t p = 0;
    int64_t n = 0;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        if (n > 1000000000LL) return -1;
        n = n * 10 + (s[p++] - '0');
    }
    if (p == 0 || n <= 0) return -1;
    const char *u = s + p;
    size_t ul = len - p;
    int64_t mult;
    if (ul == 2 && memcmp(u, "ms", 2) == 0) mult = 1000;
    else if (ul == 1 && *u == 's') mult = TF_US_PER_SEC;
    else if (ul == 1 && *u == 'm') mult = 60 * TF_US_PER_SEC;
    else if (ul == 1 && *u == 'h') mult = 3600 * TF_US_PER_SEC;
    else if (ul == 1 && *u == 'd') mult = 86400 * TF_US_PER_SEC;
    else if (ul == 1 && *u == 'w') mult = 7 * 86400 * TF_US_PER_SEC;
    else return -1;
    if (n > INT64_MAX / mult) return -1;
    *out_us = n * mult;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min;
    if ((c & 0xE0) == 0xC0) n = 2, min = 0x80, c &= 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 3, min = 0x800, c &= 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 4, min = 0x10000, c &= 0x07;
    else return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    return n;
}

int tf_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

int tf_json_escape(const char *s, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(u + i, len - i);
            if (n) {
                if (o + n > cap) return -1;
                memcpy(buf + o, u + i, n);
                o += n;
                i += n;
            } else {
                if (o + 3 > cap) return -1;
                memcpy(buf + o, "\xEF\xBF\xBD", 3);
                o += 3;
                i++;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            if (o + 2 > cap) return -1;
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            if (o + 6 > cap) return -1;
            const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (esc) {
                buf[o++] = esc[0];
                buf[o++] = esc[1];
            } else {
                memcpy(buf + o, "\\u00", 4);
                buf[o + 4] = hex[c >> 4];
                buf[o + 5] = hex[c & 15];
                o += 6;
            }
        } else {
            if (o + 1 > cap) return -1;
            buf[o++] = (char)c;
        }
        i++;
    }
    return (int)o;
}

int tf_sbuf_reserve(tf_sbuf *s, size_t n)
{
    if (s->oom)
        return -1;
    if (s->len + n + 1 <= s->cap)
        return 0;
    size_t nc = s->cap ? s->cap : 4096;
    while (nc < s->len + n + 1)
        nc *= 2;
    char *nb = realloc(s->b, nc);
    if (!nb) {
        s->oom = 1;
        return -1;
    }
    s->b = nb;
    s->cap = nc;
    return 0;
}

void tf_sbuf_add(tf_sbuf *s, const void *p, size_t n)
{
    if (tf_sbuf_reserve(s, n) != 0)
        return;
    memcpy(s->b + s->len, p, n);
    s->len += n;
    s->b[s->len] = '\0';
}

void tf_sbuf_str(tf_sbuf *s, const char *str) { tf_sbuf_add(s, str, strlen(str)); }

void tf_sbuf_json_str(tf_sbuf *o, const char *s)
{
    size_t len = strlen(s);
    char tmp[512];
    tf_sbuf_add(o, "\"", 1);
    while (len) {
        /* 80 bytes escape to at most 480 (a control byte is \u00XX), so a
         * chunk always fits tmp; 120 could need 720 and was then dropped */
        size_t n = len > 80 ? 80 : len;
        while (n < len && n > 1 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
        int w = tf_json_escape(s, n, tmp, sizeof tmp);
        if (w > 0) tf_sbuf_add(o, tmp, (size_t)w);
        s += n;
        len -= n;
    }
    tf_sbuf_add(o, "\"", 1);
}

void tf_sbuf_fmt(tf_sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || tf_sbuf_reserve(s, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(s->b + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}
