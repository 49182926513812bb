/*
 * tz.c - TZif reader (RFC 8536) and wall-clock <-> UTC lookups.
 *
 * A zone is one sorted array of transitions (UTC instant, offset after),
 * the offset before the first one, and nothing else: the file's own
 * transitions plus those its POSIX TZ footer implies, expanded year by year
 * up to 2100 when the file is read (a few hundred entries); later years
 * apply the rule directly.
 * Leap-second records are skipped (the "right/" zones are not supported;
 * the default zones have none).
 */
#include "jobs/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rule {
    char kind; /* 'J' Julian 1..365 without Feb 29, 'D' zero-based day, 'M' month.week.day */
    int a, b, c;
    int secs;  /* local time of day of the change */
} rule;

typedef struct posix_tz {
    int std_off, dst_off; /* seconds east */
    int has_dst;
    rule start, end;
} posix_tz;

#define EXPAND_TO_YEAR 2100

struct tf_tz {
    char name[64];
    posix_tz rule;  /* the footer, when has_rule: governs after at[n - 1] */
    int has_rule;
    int64_t *at;  /* transition instants, ascending */
    int *off;     /* offset in force from at[i] on */
    size_t n, cap;
    int off0;     /* offset before at[0] (or always, when n == 0) */
};

/* --- civil dates (days since 1970-01-01: tf_days_from_civil, common/util) --- */


void tf_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

int tf_weekday(int64_t days)
{
    int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int tf_days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* --- the transition array --- */

static int push(tf_tz *tz, int64_t at, int off)
{
    if (tz->n == tz->cap) {
        size_t cap = tz->cap ? tz->cap * 2 : 64;
        int64_t *a = realloc(tz->at, cap * sizeof *a);
        if (!a) return -1;
        tz->at = a;
        int *o = realloc(tz->off, cap * sizeof *o);
        if (!o) return -1;
        tz->off = o;
        tz->cap = cap;
    }
    tz->at[tz->n] = at;
    tz->off[tz->n] = off;
    tz->n++;
    return 0;
}

/* --- POSIX TZ strings (the footer): "EST5EDT,M3.2.0,M11.1.0" --- */

static const char *p_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 4 ? q + 1 : NULL;
    }
    const char *q = p;
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')) q++;
    return q - p >= 3 ? q : NULL;
}

static const char *p_num(const char *p, int max, int *out)
{
    if (*p < '0' || *p > '9') return NULL;
    int v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > max) return NULL;
    }
    *out = v;
    return p;
}

/* [+-]hh[:mm[:ss]] as seconds; max_h 24 for offsets, 167 for rule times. */
static const char *p_time(const char *p, int max_h, int *out)
{
    int sign = 1, h, m = 0, s = 0;
    if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
    if (!(p = p_num(p, max_h, &h))) return NULL;
    if (*p == ':') {
        if (!(p = p_num(p + 1, 59, &m))) return NULL;
        if (*p == ':' && !(p = p_num(p + 1, 59, &s))) return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *p_rule(const char *p, rule *r)
{
    if (*p == 'J') {
        r->kind = 'J';
        if (!(p = p_num(p + 1, 365, &r->a)) || r->a < 1) return NULL;
    } else if (*p == 'M') {
        r->kind = 'M';
        if (!(p = p_num(p + 1, 12, &r->a)) || r->a < 1 || *p != '.') return NULL;
        if (!(p = p_num(p + 1, 5, &r->b)) || r->b < 1 || *p != '.') return NULL;
        if (!(p = p_num(p + 1, 6, &r->c))) return NULL;
    } else {
        r->kind = 'D';
        if (!(p = p_num(p, 365, &r->a))) return NULL;
    }
    r->secs = 7200;
    if (*p == '/' && !(p = p_time(p + 1, 167, &r->secs))) return NULL;
    return p;
}

static int parse_posix(const char *s, posix_tz *z)
{
    const char *p = p_name(s);
    int v;
    if (!p || !(p = p_time(p, 24, &v))) return -1;
    z->std_off = -v;
    z->has_dst = 0;
    if (!*p) return 0;
    if (!(p = p_name(p))) return -1;
    z->has_dst = 1;
    z->dst_off = z->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = p_time(p, 24, &v))) return -1;
        z->dst_off = -v;
    }
    if (!*p) { /* POSIX's default rule, the US one */
        z->start = (rule){'M', 3, 2, 0, 7200};
        z->end = (rule){'M', 11, 1, 0, 7200};
        return 0;
    }
    if (*p != ',' || !(p = p_rule(p + 1, &z->start))) return -1;
    if (*p != ',' || !(p = p_rule(p + 1, &z->end))) return -1;
    return *p ? -1 : 0;
}

/* Local seconds at which rule r changes the clock in year y. */
static int64_t rule_local(const rule *r, int y)
{
    int64_t day;
    if (r->kind == 'J') {
        day = tf_days_from_civil(y, 1, 1) + r->a - 1 + (is_leap(y) && r->a >= 60);
    } else if (r->kind == 'D') {
        day = tf_days_from_civil(y, 1, 1) + r->a;
    } else {
        int64_t first = tf_days_from_civil(y, r->a, 1);
        int delta = (r->c - tf_weekday(first) + 7) % 7;
        day = first + delta + (r->b - 1) * 7;
        while (day >= first + tf_days_in_month(y, r->a)) day -= 7;
    }
    return day * 86400 + r->secs;
}

/* The two changes of year y in order: (t[0], o[0]) then (t[1], o[1]). */
static void year_changes(const posix_tz *z, int y, int64_t t[2], int o[2])
{
    int64_t s = rule_local(&z->start, y) - z->std_off; /* given in standard time */
    int64_t e = rule_local(&z->end, y) - z->dst_off;   /* given in daylight time */
    if (e < s) t[0] = e, o[0] = z->std_off, t[1] = s, o[1] = z->dst_off;
    else t[0] = s, o[0] = z->dst_off, t[1] = e, o[1] = z->std_off;
}

static int expand_footer(tf_tz *tz, const posix_tz *z)
{
    if (tz->n == 0) tz->off0 = z->std_off;
    if (!z->has_dst) return 0;
    int y0 = 1970;
    if (tz->n) {
        int m, d;
        tf_civil_from_days(tz->at[tz->n - 1] / 86400, &y0, &m, &d);
    }
    for (int y = y0; y <= EXPAND_TO_YEAR; y++) {
        int64_t t[2];
        int o[2];
        year_changes(z, y, t, o);
        for (int k = 0; k < 2; k++)
            if ((!tz->n || t[k] > tz->at[tz->n - 1]) && push(tz, t[k], o[k]) != 0) return -1;
    }
    tz->rule = *z;
    tz->has_rule = tz->n > 0;
    return 0;
}

/* --- TZif --- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p) { return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)); }

typedef struct hdr {
    int version;
    uint32_t isut, isstd, leap, time, type, chars;
} hdr;

static int read_hdr(const unsigned char *b, size_t len, hdr *h)
{
    if (len < 44 || memcmp(b, "TZif", 4) != 0) return -1;
    h->version = b[4] ? b[4] - '0' : 1;
    h->isut = be32(b + 20), h->isstd = be32(b + 24), h->leap = be32(b + 28);
    h->time = be32(b + 32), h->type = be32(b + 36), h->chars = be32(b + 40);
    if (h->type < 1 || h->type > 256 || h->chars < 1 || h->time > 100000 || h->leap > 10000) return -1;
    if ((h->isut && h->isut != h->type) || (h->isstd && h->isstd != h->type)) return -1;
    return 0;
}

static size_t block_len(const hdr *h, size_t tsize)
{
    return h->time * tsize + h->time + h->type * 6 + h->chars + h->leap * (tsize + 4) + h->isstd + h->isut;
}

tf_tz *tf_tz_parse(const unsigned char *buf, size_t len, const char *name, char *errbuf, size_t errlen)
{
    tf_tz *tz = calloc(1, sizeof *tz);
    if (!tz) {
        snprintf(errbuf, errlen, "time zone %s: out of memory", name);
        return NULL;
    }
    snprintf(tz->name, sizeof tz->name, "%s", name);
    hdr h;
    const char *why = "not a TZif file";
    if (read_hdr(buf, len, &h) != 0) goto err;
    size_t tsize = 4, pos = 44;
    why = "truncated";
    if (h.version >= 2) { /* skip the 32-bit block; use the 64-bit one */
        size_t skip = block_len(&h, 4);
        if (len - pos < skip) goto err;
        pos += skip;
        why = "bad second header";
        if (read_hdr(buf + pos, len - pos, &h) != 0) goto err;
        pos += 44;
        tsize = 8;
        why = "truncated";
    }
    if (len - pos < block_len(&h, tsize)) goto err;
    const unsigned char *times = buf + pos, *idx = times + h.time * tsize, *types = idx + h.time;
    why = "bad transition";
    for (uint32_t i = 0; i < h.time; i++) {
        int64_t t = tsize == 8 ? be64(times + i * 8) : (int32_t)be32(times + i * 4);
        if (idx[i] >= h.type || (tz->n && t <= tz->at[tz->n - 1])) goto err;
        int off = (int32_t)be32(types + idx[i] * 6);
        if (push(tz, t, off) != 0) goto oom;
    }
    tz->off0 = (int32_t)be32(types); /* RFC 8536: type 0 before the first transition */
    pos += block_len(&h, tsize);
    if (h.version >= 2) {
        why = "bad footer";
        if (pos >= len || buf[pos] != '\n') goto err;
        const unsigned char *nl = memchr(buf + pos + 1, '\n', len - pos - 1);
        if (!nl) goto err;
        char foot[128];
        size_t fl = (size_t)(nl - buf - pos - 1);
        if (fl >= sizeof foot) goto err;
        memcpy(foot, buf + pos + 1, fl);
        foot[fl] = 0;
        if (fl) {
            posix_tz z;
            why = "bad TZ string in footer";
            if (parse_posix(foot, &z) != 0) goto err;
            if (expand_footer(tz, &z) != 0) goto oom;
        }
    }
    return tz;
oom:
    why = "out of memory";
err:
    snprintf(errbuf, errlen, "time zone %s: %s", name, why);
    tf_tz_free(tz);
    return NULL;
}

tf_tz *tf_tz_load(const char *name, char *errbuf, size_t errlen)
{
    size_t n = strlen(name);
    int ok = n > 0 && n < 64 && name[0] != '/' && !strstr(name, "..");
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             c == '+' || c == '/';
    }
    if (!ok) {
        snprintf(errbuf, errlen, "invalid time zone name '%s'", name);
        return NULL;
    }
    char path[128];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "unknown time zone '%s' (no %s)", name, path);
        return NULL;
    }
    enum { MAX = 1 << 20 };
    unsigned char *buf = malloc(MAX);
    if (!buf) {
        fclose(f);
        snprintf(errbuf, errlen, "time zone %s: out of memory", name);
        return NULL;
    }
    size_t len = fread(buf, 1, MAX, f);
    fclose(f);
    tf_tz *tz = tf_tz_parse(buf, len, name, errbuf, errlen);
    free(buf);
    return tz;
}

void tf_tz_free(tf_tz *tz)
{
    if (!tz) return;
    free(tz->at);
    free(tz->off);
    free(tz);
}

const char *tf_tz_name(const tf_tz *tz) { return tz->name; }

/* Past the expanded array: the rule's changes of the years around year y,
 * as a small array like the main one (at/off, before = off0). */
typedef struct window {
    int64_t at[6];
    int off[6];
    int off0;
} window;

static void rule_window(const tf_tz *tz, int y, window *w)
{
    int64_t t[2];
    int o[2];
    year_changes(&tz->rule, y - 2, t, o);
    w->off0 = o[1];
    for (int k = 0; k < 3; k++) {
        year_changes(&tz->rule, y - 1 + k, t, o);
        w->at[2 * k] = t[0], w->off[2 * k] = o[0];
        w->at[2 * k + 1] = t[1], w->off[2 * k + 1] = o[1];
    }
}

static int year_of(int64_t s)
{
    int y, m, d;
    tf_civil_from_days(s / 86400, &y, &m, &d);
    return y;
}

int tf_tz_offset_utc(const tf_tz *tz, int64_t u)
{
    if (tz->has_rule && u > tz->at[tz->n - 1]) {
        window w;
        rule_window(tz, year_of(u), &w);
        int off = w.off0;
        for (int i = 0; i < 6; i++)
            if (w.at[i] <= u) off = w.off[i];
        return off;
    }
    size_t lo = 0, hi = tz->n; /* first index with at > u */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tz->at[mid] <= u) lo = mid + 1;
        else hi = mid;
    }
    return lo ? tz->off[lo - 1] : tz->off0;
}

/* Wall-clock time at which transition i takes effect for this fold: fold 0
 * counts a repeated or skipped stretch as still before it, fold 1 as after. */
static int64_t wall_at(const tf_tz *tz, size_t i, int fold)
{
    int before = i ? tz->off[i - 1] : tz->off0, after = tz->off[i];
    int hi = before > after ? before : after, lo = before > after ? after : before;
    return tz->at[i] + (fold ? lo : hi);
}

int tf_tz_offset_local(const tf_tz *tz, int64_t local_s, int fold)
{
    if (tz->has_rule && local_s - 2 * 86400 > tz->at[tz->n - 1]) {
        window w;
        rule_window(tz, year_of(local_s), &w);
        int off = w.off0;
        for (int i = 0; i < 6; i++) {
            int before = i ? w.off[i - 1] : w.off0, after = w.off[i];
            int hi = before > after ? before : after, lo = before > after ? after : before;
            if (w.at[i] + (fold ? lo : hi) <= local_s) off = w.off[i];
        }
        return off;
    }
    size_t lo = 0, hi = tz->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (wall_at(tz, mid, fold) <= local_s) lo = mid + 1;
        else hi = mid;
    }
    return lo ? tz->off[lo - 1] : tz->off0;
}

int tf_tz_local_exists(const tf_tz *tz, int64_t local_s)
{
    int64_t u = local_s - tf_tz_offset_local(tz, local_s, 0);
    return u + tf_tz_offset_utc(tz, u) == local_s;
}
