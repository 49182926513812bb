/*
 * cron.c - cron expression parser and next-fire search.
 *
 * The search has two layers. naive_next finds the next wall-clock minute
 * that matches the fields, ignoring time zones (day by day, then hour, then
 * minute; months that cannot match are skipped whole). tz_calc turns that
 * into an instant: a wall time inside a spring-forward gap moves to the
 * first minute after it; a wall time that happens twice takes its first
 * instant unless that one is not after "now"; and when the offset changed
 * between now and the candidate it also tries the schedule shifted by the
 * offset change and keeps the earlier. That is croniter 7.0.0's algorithm
 * (its _calc and _add_tzinfo), which tests/integration/test_cron_oracle.py
 * holds us to over 500,000 fire times.
 */
#include "jobs/cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

#define ALL_MINUTES ((1ULL << 60) - 1)
#define ALL_HOURS ((1U << 24) - 1)
#define ALL_DOM 0xFFFFFFFEU /* bits 1..31 */
#define ALL_MONTHS 0x1FFEU  /* bits 1..12 */
#define ALL_DOW 0x7FU
#define NONE INT64_MIN

typedef struct field {
    const char *name;
    int lo, hi;            /* accepted values (day-of-week: 0..7) */
    const char *const *names; /* names for lo.., or NULL */
} field;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names},
};

/* One value: a number or (month, day-of-week) a three-letter name. */
static int parse_value(const field *f, const char *s, size_t n, int *out, char *err, size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "%s: empty value", f->name);
        return -1;
    }
    if (s[0] >= '0' && s[0] <= '9') {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9' || v > 1000) {
                snprintf(err, errlen, "%s: bad value '%.*s'", f->name, (int)n, s);
                return -1;
            }
            v = v * 10 + (s[i] - '0');
        }
        if (v < f->lo || v > f->hi) {
            snprintf(err, errlen, "%s: %d out of range %d-%d", f->name, v, f->lo, f->hi);
            return -1;
        }
        *out = v;
        return 0;
    }
    if (f->names && n == 3) {
        for (int i = 0; f->names[i]; i++) {
            if (strncasecmp(s, f->names[i], 3) == 0) {
                *out = f == &fields[3] ? i + 1 : i;
                return 0;
            }
        }
    }
    snprintf(err, errlen, "%s: %s '%.*s'", f->name, f->names ? "unknown value" : "bad value", (int)n, s);
    return -1;
}

/* Parses one field (s, n) into *mask. */
static int parse_field(const field *f, const char *s, size_t n, uint64_t *mask, char *err, size_t errlen)
{
    uint64_t m = 0;
    int items = 1;
    for (size_t i = 0; i < n; i++) items += s[i] == ',';
    const char *p = s, *end = s + n;
    while (p <= end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q) q = end;
        size_t len = (size_t)(q - p);
        const char *slash = memchr(p, '/', len);
        size_t rlen = slash ? (size_t)(slash - p) : len;
        int lo, hi, step = 1;
        if (slash) {
            const char *st = slash + 1;
            size_t sl = (size_t)(q - st);
            step = 0;
            for (size_t k = 0; k < sl && step <= 1000; k++) {
                if (st[k] < '0' || st[k] > '9') {
                    step = -1;
                    break;
                }
                step = step * 10 + (st[k] - '0');
            }
            if (sl == 0 || step < 1 || step > 1000) {
                snprintf(err, errlen, "%s: bad step '%.*s'", f->name, (int)sl, st);
                return -1;
            }
        }
        int qmark = rlen == 1 && p[0] == '?' && (f == &fields[2] || f == &fields[4]);
        if ((rlen == 1 && p[0] == '*') || qmark) {
            if (items > 1 && !slash) {
                snprintf(err, errlen, "%s: '%c' cannot be part of a list", f->name, p[0]);
                return -1;
            }
            if (p[0] == '?' && slash) {
                snprintf(err, errlen, "%s: '?' takes no step", f->name);
                return -1;
            }
            lo = f->lo;
            hi = f == &fields[4] ? 6 : f->hi;
        } else {
            const char *dash = memchr(p, '-', rlen);
            if (dash) {
                if (parse_value(f, p, (size_t)(dash - p), &lo, err, errlen) != 0) return -1;
                if (parse_value(f, dash + 1, (size_t)(p + rlen - dash - 1), &hi, err, errlen) != 0) return -1;
                if (lo > hi) {
                    snprintf(err, errlen, "%s: range %.*s runs backwards", f->name, (int)rlen, p);
                    return -1;
                }
            } else {
                if (parse_value(f, p, rlen, &lo, err, errlen) != 0) return -1;
                hi = slash ? (f == &fields[4] ? 6 : f->hi) : lo;
                if (hi < lo) hi = lo;
            }
        }
        for (int v = lo; v <= hi; v += step) m |= 1ULL << (v == 7 && f == &fields[4] ? 0 : v);
        p = q + 1;
    }
    *mask = m;
    return 0;
}

static const struct {
    const char *name, *expr;
} aliases[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

int tf_cron_parse(tf_cron *out, const char *expr, char *err, size_t errlen)
{
    while (*expr == ' ' || *expr == '\t') expr++;
    if (expr[0] == '@') {
        size_t n = strcspn(expr, " \t");
        const char *rest = expr + n + strspn(expr + n, " \t");
        for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
            if (strlen(aliases[i].name) == n && strncasecmp(expr, aliases[i].name, n) == 0 && !*rest)
                return tf_cron_parse(out, aliases[i].expr, err, errlen);
        snprintf(err, errlen, "unknown cron alias '%.*s' (@yearly @annually @monthly @weekly @daily @midnight @hourly)",
                 (int)n, expr);
        return -1;
    }
    const char *start[6];
    size_t len[6];
    int nf = 0;
    const char *p = expr;
    while (*p) {
        size_t n = strcspn(p, " \t");
        if (nf < 6) start[nf] = p, len[nf] = n;
        nf++;
        p += n;
        p += strspn(p, " \t");
    }
    if (nf != 5) {
        snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month day-of-week), got %d", nf);
        return -1;
    }
    uint64_t m[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(&fields[i], start[i], len[i], &m[i], err, errlen) != 0) return -1;
    memset(out, 0, sizeof *out);
    out->minute = m[0];
    out->hour = (uint32_t)m[1];
    out->dom = (uint32_t)m[2];
    out->month = (uint32_t)m[3];
    out->dow = (uint32_t)m[4];
    /* Which day field counts as unrestricted for the OR rule follows
     * croniter: a literal '*' (or '?'), or a field naming every day while
     * the other field's text contains a '*'. So "*\/1" in day-of-month with
     * "MON" in day-of-week is two restricted fields (every day OR Mondays),
     * where Vixie cron would say Mondays. */
    int dom_lit = len[2] == 1 && (start[2][0] == '*' || start[2][0] == '?');
    int dow_lit = len[4] == 1 && (start[4][0] == '*' || start[4][0] == '?');
    out->dom_star = dom_lit || (out->dom == ALL_DOM && memchr(start[4], '*', len[4]));
    out->dow_star = dow_lit || (out->dow == ALL_DOW && memchr(start[2], '*', len[2]));
    return 0;
}

/* 1 if some month in the set has one of the days in dom. */
static int dom_possible(const tf_cron *c, uint32_t dom)
{
    for (int mo = 1; mo <= 12; mo++) {
        if (!(c->month >> mo & 1)) continue;
        int dim = mo == 2 ? 29 : tf_days_in_month(2001, mo);
        if (dom & (uint32_t)((2ULL << dim) - 2)) return 1;
    }
    return 0;
}

/* The first matching wall-clock minute strictly after the minute holding
 * local second L, in local seconds; NONE if none within 60 years. */
static int64_t naive_next(const tf_cron *c, uint32_t dom, uint32_t dow, int64_t L)
{
    if (dom != ALL_DOM && !dom_possible(c, dom)) return NONE;
    int64_t m = tf_floor_div(L, 60) + 1;
    int64_t day = tf_floor_div(m, 1440);
    int mod = (int)(m - day * 1440), hh = mod / 60, mi = mod % 60;
    int64_t end = day + 366 * 60;
    while (day <= end) {
        int y, mo, d;
        tf_civil_from_days(day, &y, &mo, &d);
        if (!(c->month >> mo & 1)) {
            day += tf_days_in_month(y, mo) - d + 1;
            hh = mi = 0;
            continue;
        }
        if (!(dom >> d & 1) || !(dow >> tf_weekday(day) & 1)) {
            day++;
            hh = mi = 0;
            continue;
        }
        int h = hh;
        while (h < 24 && !(c->hour >> h & 1)) h++;
        if (h == 24) {
            day++;
            hh = mi = 0;
            continue;
        }
        if (h != hh) mi = 0;
        int mm = mi;
        while (mm < 60 && !(c->minute >> mm & 1)) mm++;
        if (mm == 60) {
            hh = h + 1, mi = 0;
            if (hh == 24) day++, hh = 0;
            continue;
        }
        return (day * 1440 + h * 60 + mm) * 60;
    }
    return NONE;
}

typedef struct hit {
    int64_t u;    /* instant */
    int64_t wall; /* its wall clock, local seconds */
} hit;

/* Gives wall time L an instant (croniter's _add_tzinfo): in a gap, the first
 * existing minute after it (returns 0); in a repeated stretch, the earlier
 * instant unless that is not after prev_u. Returns 1 when L exists. */
static int place(const tf_tz *tz, int64_t L, int64_t prev_u, hit *h)
{
    if (!tf_tz_local_exists(tz, L)) {
        int guard = 0;
        while (!tf_tz_local_exists(tz, L) && guard++ < 3 * 1440) L += 60;
        h->wall = L;
        h->u = L - tf_tz_offset_local(tz, L, 0);
        return 0;
    }
    int o0 = tf_tz_offset_local(tz, L, 0), o1 = tf_tz_offset_local(tz, L, 1);
    h->wall = L;
    h->u = L - o0;
    if (o0 != o1 && !(h->u > prev_u)) h->u = L - o1;
    return 1;
}

static int tz_calc(const tf_cron *c, uint32_t dom, uint32_t dow, const tf_tz *tz, int64_t now_u, hit *out)
{
    int now_off = tf_tz_offset_utc(tz, now_u);
    int64_t now_l = now_u + now_off;
    int64_t L = naive_next(c, dom, dow, now_l);
    if (L == NONE) return -1;
    hit a;
    int exists = place(tz, L, now_u, &a);
    /* A gap-shifted time is kept only when it is after now and the hour is
     * restricted; otherwise look for the next listed time that exists. */
    if (!exists && (!(a.u > now_u) || c->hour == ALL_HOURS)) {
        while (!exists) {
            if ((L = naive_next(c, dom, dow, L)) == NONE) return -1;
            exists = place(tz, L, now_u, &a);
        }
    }
    int delta = (int)(a.wall - a.u) - now_off;
    if (delta) {
        /* The offset changed: the same schedule on the other side of the
         * change may come first (the second 01:30 of a fall-back night). */
        int64_t alt = naive_next(c, dom, dow, now_l + delta);
        hit b;
        if (alt != NONE && place(tz, alt, now_u, &b) && b.u > now_u && a.u > b.u) a = b;
    }
    *out = a;
    return 0;
}

int64_t tf_cron_next(const tf_cron *c, const tf_tz *tz, int64_t after_s)
{
    hit h;
    if (!c->dom_star && !c->dow_star) {
        hit h1, h2;
        int r1 = tz_calc(c, c->dom, ALL_DOW, tz, after_s, &h1);
        int r2 = tz_calc(c, ALL_DOM, c->dow, tz, after_s, &h2);
        if (r1 && r2) return -1;
        if (r1) return h2.u;
        if (r2) return h1.u;
        return h1.wall < h2.wall ? h1.u : h2.u; /* croniter compares wall clocks here */
    }
    return tz_calc(c, c->dom, c->dow, tz, after_s, &h) ? -1 : h.u;
}
