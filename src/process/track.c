/*
 * track.c - forward returns, excursions and their summary (see track.h).
 */
#include "process/track.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void tf_track_compute(int direction, double entry, int64_t t, int64_t interval_ms, int64_t horizon_ms,
                      const tf_track_bar *bars, size_t n, int64_t as_of_ms, tf_track_result *out)
{
    memset(out, 0, sizeof *out);
    double exit = entry, hi = entry, lo = entry;
    for (size_t i = 0; i < n; i++) {
        if (bars[i].start_ms <= t) continue;
        if (bars[i].start_ms > t + horizon_ms) break;
        out->nbars++;
        exit = bars[i].close;
        if (bars[i].high > hi) hi = bars[i].high;
        if (bars[i].low < lo) lo = bars[i].low;
    }
    out->exit_price = exit;
    if (entry > 0) {
        double up = 100 * (hi - entry) / entry, down = 100 * (entry - lo) / entry;
        out->return_pct = 100 * (exit - entry) / entry * (direction < 0 ? -1 : 1);
        out->mfe_pct = direction < 0 ? down : up;
        out->mae_pct = direction < 0 ? up : down;
    }
    out->status = as_of_ms >= t + horizon_ms + interval_ms ? TF_TRACK_FINAL : TF_TRACK_PENDING;
}

int tf_track_parse_horizons(const char *list, int64_t *ms, char (*names)[8], int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        size_t len = strcspn(p, ", ");
        if (!len) break;
        int64_t us;
        if (n >= max || len >= 8 || tf_parse_duration_us(p, len, &us) || us < 60000000LL) {
            snprintf(err, errlen, "signals.horizons: bad horizon '%.*s' (at most %d, each >= 1m, like 5m, 1h, 1d)",
                     (int)len, p, max);
            return -1;
        }
        ms[n] = us / 1000;
        snprintf(names[n], 8, "%.*s", (int)len, p);
        n++;
        p += len;
    }
    return n;
}

void tf_track_wilson(size_t hits, size_t n, double *lo, double *hi)
{
    if (!n) {
        *lo = *hi = NAN;
        return;
    }
    const double z = 1.959963984540054, z2 = z * z, nn = (double)n;
    double p = (double)hits / nn;
    double denom = 1 + z2 / nn;
    double centre = (p + z2 / (2 * nn)) / denom;
    double half = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
    *lo = centre - half;
    *hi = centre + half;
    if (*lo < 0) *lo = 0;
    if (*hi > 1) *hi = 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int tf_track_summarize(const double *ret, const double *mfe, const double *mae, size_t n, tf_track_summary *o)
{
    memset(o, 0, sizeof *o);
    o->count = n;
    if (!n) {
        o->hit_rate = o->wilson_lo = o->wilson_hi = o->mean_return = o->median_return = NAN;
        o->profit_factor = o->mean_mfe = o->mean_mae = NAN;
        return 0;
    }
    double *sorted = malloc(n * sizeof *sorted);
    if (!sorted) return -1;
    double sum = 0, gain = 0, loss = 0, sfe = 0, sae = 0;
    for (size_t i = 0; i < n; i++) {
        sum += ret[i];
        if (ret[i] > 0) o->hits++, gain += ret[i];
        else if (ret[i] < 0) loss -= ret[i];
        sfe += mfe[i];
        sae += mae[i];
        sorted[i] = ret[i];
    }
    qsort(sorted, n, sizeof *sorted, cmp_double);
    o->median_return = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    free(sorted);
    o->hit_rate = (double)o->hits / (double)n;
    tf_track_wilson(o->hits, n, &o->wilson_lo, &o->wilson_hi);
    o->mean_return = sum / (double)n;
    o->profit_factor = loss > 0 ? gain / loss : gain > 0 ? INFINITY : NAN;
    o->mean_mfe = sfe / (double)n;
    o->mean_mae = sae / (double)n;
    return 0;
}
