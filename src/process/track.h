/*
 * track.h - the track record of signals (DESIGN §7), as pure functions over
 * bars: per signal and horizon the direction-adjusted close-to-close return,
 * the maximum favourable / adverse excursion, pending or final; and the
 * summary of many such outcomes (count, hit rate with its Wilson 95%
 * interval, mean / median return, profit factor, mean MFE / MAE).
 *
 * Definitions (a signal on the bar starting at t, interval I, entry price =
 * that bar's close, horizon H):
 *   window  the bars starting in (t, t + H]; exit = the last of them (a gap
 *           in the bars just means fewer bars; none -> exit = entry)
 *   return  100 (exit - entry) / entry, negated for a short signal
 *   MFE     100 x the best move in the signal's favour over the window, from
 *           bar highs (long) or lows (short); >= 0 (the entry is on the path)
 *   MAE     100 x the worst move against it, from lows (long) or highs
 *           (short), as a magnitude >= 0
 *   status  final once as_of >= t + H + I (the bar starting at t + H has
 *           closed), else pending (values so far)
 * Horizons shorter than the interval do not apply (1m after a 1d bar).
 */
#ifndef TF_TRACK_H
#define TF_TRACK_H

#include <stddef.h>
#include <stdint.h>

#define TF_TRACK_MAX_HORIZONS 16

typedef struct tf_track_bar {
    int64_t start_ms;
    double high, low, close;
} tf_track_bar;

enum { TF_TRACK_PENDING = 0, TF_TRACK_FINAL = 1 };

typedef struct tf_track_result {
    int status;          /* TF_TRACK_PENDING | TF_TRACK_FINAL */
    int nbars;           /* bars in the window */
    double exit_price;
    double return_pct, mfe_pct, mae_pct;
} tf_track_result;

/* bars: those after the signal bar, in time order (borrowed; bars starting
 * after t + H are ignored, so a caller may pass the whole rest). */
void tf_track_compute(int direction, double entry, int64_t signal_start_ms, int64_t interval_ms,
                      int64_t horizon_ms, const tf_track_bar *bars, size_t n, int64_t as_of_ms,
                      tf_track_result *out);

/* Parses "1m,5m,15m,1h,1d" into ms[] and the names as written (names[i] <
 * 8 bytes). Returns the count, or -1 with errbuf (bad duration, too many). */
int tf_track_parse_horizons(const char *list, int64_t *ms, char (*names)[8], int max, char *errbuf,
                            size_t errlen);

typedef struct tf_track_summary {
    size_t count, hits;          /* hit: return > 0 */
    double hit_rate, wilson_lo, wilson_hi; /* NaN when count is 0 */
    double mean_return, median_return;
    double profit_factor;        /* sum of gains / sum of losses; +inf without losses, NaN without either */
    double mean_mfe, mean_mae;
} tf_track_summary;

/* Wilson score interval for hits of n at 95% (z = 1.959963984540054). */
void tf_track_wilson(size_t hits, size_t n, double *lo, double *hi);

/* Summary of n outcomes (arrays borrowed). Returns 0, -1 out of memory
 * (the median needs a sorted copy). */
int tf_track_summarize(const double *ret, const double *mfe, const double *mae, size_t n,
                       tf_track_summary *out);

#endif
