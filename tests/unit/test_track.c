/*
 * test_track.c - process/track.c by hand: returns, MFE/MAE for long and
 * short signals, the horizon window with gaps, pending/final, horizons
 * parsing, the Wilson interval and profit factor against worked numbers.
 */
#include <math.h>

#include "process/track.h"
#include "tf_test.h"

#define NEAR(a, b) TF_CHECK(fabs((a) - (b)) < 1e-9)

static void test_compute(void)
{
    const int64_t M = 60000; /* 1m bars */
    /* signal bar starts at 0, close (entry) 100 */
    tf_track_bar b[] = {
        {1 * M, 103, 99, 102},  /* +2 */
        {2 * M, 104, 97, 98},   /* -2 */
        {4 * M, 101, 95, 100},  /* gap at 3m */
        {5 * M, 110, 100, 108}, /* after a 4m horizon */
    };
    tf_track_result r;
    /* long, 5m: window (0, 5m] = all 4 bars; exit 108 -> +8%; best high 110
     * -> MFE 10; worst low 95 -> MAE 5; as of 6m = 0 + 5m + 1m: final */
    tf_track_compute(+1, 100, 0, M, 5 * M, b, 4, 6 * M, &r);
    TF_EQ_INT(r.nbars, 4);
    NEAR(r.return_pct, 8);
    NEAR(r.mfe_pct, 10);
    NEAR(r.mae_pct, 5);
    TF_EQ_INT(r.status, TF_TRACK_FINAL);
    /* one ms earlier it is still pending */
    tf_track_compute(+1, 100, 0, M, 5 * M, b, 4, 6 * M - 1, &r);
    TF_EQ_INT(r.status, TF_TRACK_PENDING);
    /* short, 4m: window ends at bar 4m (exit 100) -> 0%; MFE from the low
     * 95 -> 5; MAE from the high 104 -> 4 */
    tf_track_compute(-1, 100, 0, M, 4 * M, b, 4, 100 * M, &r);
    TF_EQ_INT(r.nbars, 3);
    NEAR(r.return_pct, 0);
    NEAR(r.mfe_pct, 5);
    NEAR(r.mae_pct, 4);
    /* short, 2m: exit 98 -> +2% for a short; MFE (100-97) = 3; MAE 104 -> 4 */
    tf_track_compute(-1, 100, 0, M, 2 * M, b, 4, 100 * M, &r);
    NEAR(r.return_pct, 2);
    NEAR(r.mfe_pct, 3);
    NEAR(r.mae_pct, 4);
    /* long 1m: exit 102 -> 2; MFE 3; MAE 1 */
    tf_track_compute(+1, 100, 0, M, M, b, 4, 100 * M, &r);
    NEAR(r.return_pct, 2);
    NEAR(r.mfe_pct, 3);
    NEAR(r.mae_pct, 1);
    /* no bar in the window (the gap): exit = entry, nothing moved */
    tf_track_compute(+1, 100, 2 * M, M, M, b, 4, 100 * M, &r);
    TF_EQ_INT(r.nbars, 0);
    NEAR(r.return_pct, 0);
    NEAR(r.mfe_pct, 0);
    NEAR(r.mae_pct, 0);
    /* bars never moving in favour: MFE floors at 0 (the entry itself) */
    tf_track_bar down[] = {{M, 99, 90, 91}};
    tf_track_compute(+1, 100, 0, M, M, down, 1, 100 * M, &r);
    NEAR(r.mfe_pct, 0);
    NEAR(r.mae_pct, 10);
    NEAR(r.return_pct, -9);
    tf_track_compute(-1, 100, 0, M, M, down, 1, 100 * M, &r);
    NEAR(r.return_pct, 9);
    NEAR(r.mfe_pct, 10);
    NEAR(r.mae_pct, 0);
}

static void test_horizons(void)
{
    int64_t ms[TF_TRACK_MAX_HORIZONS];
    char names[TF_TRACK_MAX_HORIZONS][8];
    char err[128];
    TF_EQ_INT(tf_track_parse_horizons("1m,5m, 15m,1h,1d", ms, names, TF_TRACK_MAX_HORIZONS, err, sizeof err), 5);
    TF_EQ_INT(ms[0], 60000);
    TF_EQ_INT(ms[2], 900000);
    TF_EQ_INT(ms[4], 86400000);
    TF_EQ_STR(names[3], "1h");
    TF_EQ_INT(tf_track_parse_horizons("1m,5x", ms, names, TF_TRACK_MAX_HORIZONS, err, sizeof err), -1);
    TF_EQ_INT(tf_track_parse_horizons("30s", ms, names, TF_TRACK_MAX_HORIZONS, err, sizeof err), -1);
    TF_EQ_INT(tf_track_parse_horizons("1m,2m,3m", ms, names, 2, err, sizeof err), -1);
}

static void test_wilson(void)
{
    double lo, hi;
    /* 8 of 10, z = 1.96: p = .8, z^2/n = .38415, denom 1.38415,
     * centre (.8 + .192073) / 1.38415 = .716741,
     * half 1.959964 sqrt(.016 + .0096037) / 1.38415 = .226617
     * -> [.490162, .943318] */
    tf_track_wilson(8, 10, &lo, &hi);
    TF_CHECK(fabs(lo - 0.4901625) < 1e-6);
    TF_CHECK(fabs(hi - 0.9433178) < 1e-6);
    /* 0 of 5: [0, z^2/(n + z^2)] = [0, 3.84146 / 8.84146] = [0, .434482] */
    tf_track_wilson(0, 5, &lo, &hi);
    TF_CHECK(fabs(lo) < 1e-12);
    TF_CHECK(fabs(hi - 0.4344825) < 1e-6);
    tf_track_wilson(0, 0, &lo, &hi);
    TF_CHECK(isnan(lo) && isnan(hi));
}

static void test_summary(void)
{
    double ret[] = {2, -1, 3, -0.5, 0, 1.5};
    double mfe[] = {3, 0.5, 4, 1, 0.2, 2};
    double mae[] = {0.5, 1.5, 0, 1, 0.3, 0.2};
    tf_track_summary s;
    TF_EQ_INT(tf_track_summarize(ret, mfe, mae, 6, &s), 0);
    TF_EQ_INT(s.count, 6);
    TF_EQ_INT(s.hits, 3); /* 0 is not a hit */
    NEAR(s.hit_rate, 0.5);
    NEAR(s.mean_return, 5.0 / 6);
    NEAR(s.median_return, (0 + 1.5) / 2); /* sorted -1 -.5 0 1.5 2 3 */
    NEAR(s.profit_factor, 6.5 / 1.5);
    NEAR(s.mean_mfe, 10.7 / 6);
    NEAR(s.mean_mae, 3.5 / 6);
    double lo, hi;
    tf_track_wilson(3, 6, &lo, &hi);
    NEAR(s.wilson_lo, lo);
    NEAR(s.wilson_hi, hi);
    /* odd count median; no losses -> infinite profit factor */
    double r2[] = {1, 5, 2};
    TF_EQ_INT(tf_track_summarize(r2, r2, r2, 3, &s), 0);
    NEAR(s.median_return, 2);
    TF_CHECK(isinf(s.profit_factor));
    TF_EQ_INT(tf_track_summarize(r2, r2, r2, 0, &s), 0);
    TF_CHECK(isnan(s.hit_rate) && isnan(s.profit_factor));
}

int main(void)
{
    test_compute();
    test_horizons();
    test_wilson();
    test_summary();
    TF_TEST_MAIN_END();
}
