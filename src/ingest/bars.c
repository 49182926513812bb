/*
 * bars.c - OHLCV bars replayed as trades (see bars.h). The CSV reader is a
 * plain line scanner: the file is six numeric columns after a time column,
 * nothing a CSV library would add to.
 */
#include "ingest/bars.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

long tf_bars_read_csv(const char *path, tf_ohlcv **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "cannot open %s", path);
        return -1;
    }
    size_t cap = 1024, n = 0;
    tf_ohlcv *b = malloc(cap * sizeof *b);
    char line[512];
    long lineno = 0;
    while (b && fgets(line, sizeof line, f)) {
        if (lineno++ == 0) continue; /* header */
        char *c = strchr(line, ',');
        if (!c) continue;
        tf_ohlcv x = {0};
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        if (sscanf(line, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec) == 6) {
            tm.tm_year -= 1900;
            tm.tm_mon -= 1;
            x.t_us = (int64_t)timegm(&tm) * 1000000;
        }
        if (sscanf(c + 1, "%lf,%lf,%lf,%lf,%lf", &x.open, &x.high, &x.low, &x.close, &x.volume) != 5) {
            snprintf(errbuf, errlen, "%s:%ld: expected time,Open,High,Low,Close,Volume", path, lineno);
            free(b);
            fclose(f);
            return -1;
        }
        if (n == cap) {
            tf_ohlcv *nb = realloc(b, (cap *= 2) * sizeof *b);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        b[n++] = x;
    }
    fclose(f);
    if (!b) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    *out = b;
    return (long)n;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { return ((double)(mix(s) >> 11) + 0.5) * 0x1.0p-53; }

static double gauss(uint64_t *s) { return sqrt(-2.0 * log(unif(s))) * cos(2.0 * M_PI * unif(s)); }

long tf_bars_to_trades(const tf_ohlcv *bars, size_t n, const tf_bars_opts *o, tf_trade **out, char *errbuf,
                       size_t errlen)
{
    *out = NULL;
    size_t cap = n * 32 + 16, m = 0;
    tf_trade *tr = calloc(cap, sizeof *tr);
    if (!tr) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    uint64_t rs = o->seed;
    double px[256], w[256];
    int64_t q[256];
    for (size_t i = 0; i < n; i++) {
        const tf_ohlcv *b = &bars[i];
        if (!(b->low > 0) || b->low > b->high || b->open < b->low || b->open > b->high || b->close < b->low ||
            b->close > b->high || b->volume < 0) {
            snprintf(errbuf, errlen, "bar %zu: inconsistent OHLC", i);
            free(tr);
            return -1;
        }
        int k = (int)llround(b->volume / o->vol_per_trade);
        k = k < 4 ? 4 : k > 256 ? 256 : k;
        /* anchors: open, the first extreme, the second, close */
        int up = b->close >= b->open;
        double e1 = up ? b->low : b->high, e2 = up ? b->high : b->low;
        int i1 = k / 3, i2 = 2 * k / 3;
        double leg = (b->high - b->low) / sqrt((double)k) * 0.25;
        for (int j = 0; j < k; j++) {
            double p;
            if (j <= i1) p = b->open + (e1 - b->open) * (i1 ? (double)j / i1 : 1.0);
            else if (j <= i2) p = e1 + (e2 - e1) * (double)(j - i1) / (i2 - i1);
            else p = e2 + (b->close - e2) * (double)(j - i2) / (k - 1 - i2);
            if (j != 0 && j != i1 && j != i2 && j != k - 1) p += leg * gauss(&rs);
            if (p < b->low) p = b->low;
            if (p > b->high) p = b->high;
            px[j] = p;
            w[j] = exp(0.6 * gauss(&rs));
        }
        double W = 0;
        for (int j = 0; j < k; j++) W += w[j];
        int64_t total = llround(b->volume * o->qty_scale), sum = 0;
        int big = 0;
        for (int j = 0; j < k; j++) {
            q[j] = llround((double)total * w[j] / W);
            if (q[j] < 1) q[j] = 1;
            sum += q[j];
            if (q[j] > q[big]) big = j;
        }
        if (q[big] + (total - sum) >= 1) q[big] += total - sum; /* exact volume */
        if (m + (size_t)k > cap) {
            tf_trade *nt = realloc(tr, (cap = cap * 2 + (size_t)k) * sizeof *tr);
            if (!nt) {
                free(tr);
                snprintf(errbuf, errlen, "out of memory");
                return -1;
            }
            tr = nt;
        }
        int64_t t0 = o->t0_us + (int64_t)i * o->bar_us;
        /* with the bars' own times: gaps (weekends) kept, scaled like the bars */
        if (o->bar_period_us > 0 && b->t_us)
            t0 = o->t0_us + (int64_t)((double)(b->t_us - bars[0].t_us) / (double)o->bar_period_us * (double)o->bar_us);
        for (int j = 0; j < k; j++) {
            tf_trade *t = &tr[m++];
            memset(t, 0, sizeof *t);
            t->id = (int64_t)m;
            snprintf(t->ticker, sizeof t->ticker, "%s", o->ticker);
            snprintf(t->market, sizeof t->market, "%s", o->market);
            t->price_e4 = llround(px[j] * o->price_scale * TF_PRICE_SCALE);
            t->quantity = q[j];
            t->event_us = t0 + o->bar_us * j / k;
            t->side = j && px[j] < px[j - 1] ? 'S' : 'B';
        }
    }
    *out = tr;
    return (long)m;
}
