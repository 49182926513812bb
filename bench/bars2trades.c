/*
 * bars2trades.c - replays an OHLCV CSV (e.g. backtesting's hourly
 * EURUSD.csv) as trades respecting each bar's open, high, low, close and
 * volume (src/ingest/bars.c), printed as CSV
 * "id,ticker,market,event_us,price,quantity,side", and checks the replay
 * against the bars (exit 1 if a bar is not respected).
 *
 * Usage: bars2trades FILE.csv [--ticker EURUSD] [--bar-seconds 10]
 *                    [--price-scale 1000] [--vol-per-trade 50] [--check-only]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/bars.h"

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bars2trades FILE.csv [--ticker T] [--bar-seconds S] [--price-scale X] "
                        "[--vol-per-trade V] [--check-only]\n");
        return argc < 2 ? 2 : 0;
    }
    tf_bars_opts o = {.ticker = "EURUSD", .market = "FX", .t0_us = 1763890200000000LL, .bar_us = 10000000,
                      .price_scale = 1000, .vol_per_trade = 50, .qty_scale = 100, .seed = 1};
    int check_only = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--check-only")) check_only = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--ticker")) o.ticker = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--bar-seconds")) o.bar_us = (int64_t)(atof(argv[++i]) * 1e6);
        else if (i + 1 < argc && !strcmp(argv[i], "--price-scale")) o.price_scale = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--vol-per-trade")) o.vol_per_trade = atof(argv[++i]);
        else {
            fprintf(stderr, "bars2trades: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    char err[256];
    tf_ohlcv *b;
    long nb = tf_bars_read_csv(argv[1], &b, err, sizeof err);
    if (nb < 0) {
        fprintf(stderr, "bars2trades: %s\n", err);
        return 1;
    }
    tf_trade *t;
    long nt = tf_bars_to_trades(b, (size_t)nb, &o, &t, err, sizeof err);
    if (nt < 0) {
        fprintf(stderr, "bars2trades: %s\n", err);
        free(b);
        return 1;
    }
    /* check: per bar, open / high / low / close / volume */
    long bad = 0, j = 0;
    for (long i = 0; i < nb; i++) {
        int64_t t0 = o.t0_us + i * o.bar_us, hi = INT64_MIN, lo = INT64_MAX, vol = 0;
        long first = j;
        while (j < nt && t[j].event_us < t0 + o.bar_us) {
            if (t[j].price_e4 > hi) hi = t[j].price_e4;
            if (t[j].price_e4 < lo) lo = t[j].price_e4;
            vol += t[j].quantity;
            j++;
        }
#define E4(x) llround((x) * o.price_scale * 10000.0)
        if (j == first || t[first].price_e4 != E4(b[i].open) || t[j - 1].price_e4 != E4(b[i].close) ||
            hi != E4(b[i].high) || lo != E4(b[i].low) || vol != llround(b[i].volume * o.qty_scale))
            bad++;
    }
    fprintf(stderr, "bars2trades: %ld bars -> %ld trades, %ld bars not respected\n", nb, nt, bad);
    if (!check_only)
        for (long i = 0; i < nt; i++)
            printf("%lld,%s,%s,%lld,%.4f,%lld,%c\n", (long long)t[i].id, t[i].ticker, t[i].market,
                   (long long)t[i].event_us, (double)t[i].price_e4 / 10000.0, (long long)t[i].quantity, t[i].side);
    free(t);
    free(b);
    return bad ? 1 : 0;
}
