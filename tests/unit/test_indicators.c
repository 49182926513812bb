/*
 * test_indicators.c - process/indicators.c without the TA-Lib venv: values
 * worked out by hand on tiny series (SMA, EMA seeding, RSI Wilder, ATR,
 * OBV, Stochastic, CCI, MACD's lookback), NaN exactly up to each lookback,
 * Bollinger sigma against a long-double two-pass reference on series made
 * to break running sums (a jump then a quiet stretch, flat windows, prices
 * near 1e5), reset, batch == streaming, parameter checks.
 * The full comparison with TA-Lib is tests/integration/test_indicators_talib.py.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "process/indicators.h"
#include "tf_test.h"

#define NEAR(a, b, tol) TF_CHECK(fabs((a) - (double)(b)) <= (tol) * fmax(1.0, fabs((double)(b))))

static tf_ind_params small(void)
{
    tf_ind_params p;
    tf_ind_params_default(&p);
    p.nsma = 1, p.sma_n[0] = 3;
    p.nema = 1, p.ema_n[0] = 3;
    p.rsi_n = 2, p.bb_n = 3, p.atr_n = 2, p.cci_n = 3, p.vol_n = 2;
    p.macd_fast = 2, p.macd_slow = 3, p.macd_signal = 2;
    p.stoch_k = 3, p.stoch_slowk = 1, p.stoch_slowd = 1;
    return p;
}

static void test_by_hand(void)
{
    tf_ind_params p = small();
    /* closes 10 11 12 11 13; high = close + 1, low = close - 1 */
    double c[] = {10, 11, 12, 11, 13};
    tf_ind_bar b[5];
    for (int i = 0; i < 5; i++) b[i] = (tf_ind_bar){c[i], c[i] + 1, c[i] - 1, c[i], 100.0 * (i + 1)};
    tf_ind_values v[5];
    char err[128];
    TF_EQ_INT(tf_ind_series(&p, b, 5, v, err, sizeof err), 0);
    /* SMA3: NaN NaN 11 11.333 12 */
    TF_CHECK(isnan(v[0].sma[0]) && isnan(v[1].sma[0]));
    NEAR(v[2].sma[0], 11, 1e-15);
    NEAR(v[3].sma[0], 34.0 / 3, 1e-15);
    NEAR(v[4].sma[0], 12, 1e-15);
    /* EMA3 (k .5): seed SMA 11 at bar 2, then (11 - 11) .5 + 11 = 11, then 12 */
    TF_CHECK(isnan(v[1].ema[0]));
    NEAR(v[2].ema[0], 11, 1e-15);
    NEAR(v[3].ema[0], 11, 1e-15);
    NEAR(v[4].ema[0], 12, 1e-15);
    /* RSI2: changes +1 +1 -1 +2. Bar 2: gain 1, loss 0 -> 100.
     * Bar 3: gain .5, loss .5 -> 50. Bar 4: gain (.5 + 2)/2 = 1.25, loss .25 -> 83.33 */
    TF_CHECK(isnan(v[1].rsi));
    NEAR(v[2].rsi, 100, 1e-13);
    NEAR(v[3].rsi, 50, 1e-13);
    NEAR(v[4].rsi, 100 * 1.25 / 1.5, 1e-13);
    /* ATR2: TR from bar 1 = max(h-l=2, |pc-h|, |pc-l|): bar1 max(2, 2, 0) = 2,
     * bar2 2, bar3 max(2, 0, 2) = 2, bar4 max(2, 3, 1) = 3. First ATR (bar 2) =
     * (2+2)/2 = 2; bar 3 (2 + 2)/2 = 2; bar 4 (2 + 3)/2 = 2.5 */
    TF_CHECK(isnan(v[1].atr));
    NEAR(v[2].atr, 2, 1e-15);
    NEAR(v[4].atr, 2.5, 1e-15);
    /* OBV: 100, +200, +300, -400, +500 */
    NEAR(v[0].obv, 100, 0);
    NEAR(v[3].obv, 200, 0);
    NEAR(v[4].obv, 700, 0);
    /* Stoch(3,1,1): bar 2 window lows 9..11, highs 11..13: (12 - 9) / 4 = 75;
     * bar 4: lows 10,11,10 -> 10, highs 14 -> (13 - 10) / 4 = 75 */
    TF_CHECK(isnan(v[1].stoch_k));
    NEAR(v[2].stoch_k, 75, 1e-13);
    NEAR(v[2].stoch_d, 75, 1e-13);
    NEAR(v[4].stoch_k, 75, 1e-13);
    /* CCI3: typical price = close; bar 2: mean 11, mean dev 2/3,
     * (12 - 11) / (.015 * 2/3) = 100 */
    TF_CHECK(isnan(v[1].cci));
    NEAR(v[2].cci, 100, 1e-12);
    /* volume mean of the 2 bars before: bar 2 (100 + 200)/2 */
    TF_CHECK(isnan(v[1].vol_mean));
    NEAR(v[2].vol_mean, 150, 0);
    /* MACD(2,3,2): lookback 3 + 2 - 2 = 3 */
    TF_CHECK(isnan(v[2].macd) && isnan(v[2].macd_signal));
    TF_CHECK(!isnan(v[3].macd) && !isnan(v[3].macd_signal));
    /* Bollinger(3, 2) bar 2: closes 10 11 12, sigma sqrt(2/3) */
    NEAR(v[2].bb_upper, 11 + 2 * sqrt(2.0 / 3), 1e-14);
    NEAR(v[2].bb_pctb, (12 - (11 - 2 * sqrt(2.0 / 3))) / (4 * sqrt(2.0 / 3)), 1e-14);
}

static void test_macd_seeding(void)
{
    /* TA-Lib's MACD seeds the fast EMA with the SMA of bars s-f..s-1 (not
     * of the first f): for (2,3,1) on 1, 2, 10 the fast seed at bar 2 is
     * (2 + 10)/2 = 6, the slow (1 + 2 + 10)/3 = 13/3; MACD 6 - 13/3 = 5/3,
     * and with signal period 1 the signal equals it */
    tf_ind_params p = small();
    p.macd_fast = 2, p.macd_slow = 3, p.macd_signal = 1;
    double c[] = {1, 2, 10, 4};
    tf_ind_bar b[4];
    for (int i = 0; i < 4; i++) b[i] = (tf_ind_bar){c[i], c[i], c[i], c[i], 1};
    tf_ind_values v[4];
    char err[128];
    TF_EQ_INT(tf_ind_series(&p, b, 4, v, err, sizeof err), 0);
    TF_CHECK(isnan(v[1].macd));
    NEAR(v[2].macd, 6 - 13.0 / 3, 1e-14);
    NEAR(v[2].macd_signal, v[2].macd, 1e-15);
    /* bar 3: fast (4 - 6) 2/3 + 6 = 14/3, slow (4 - 13/3) .5 + 13/3 = 25/6 */
    NEAR(v[3].macd, 14.0 / 3 - 25.0 / 6, 1e-14);
}

/* exact population sigma of the n values ending at i */
static double ref_sigma(const double *x, int i, int n)
{
    long double m = 0, s = 0;
    for (int j = i - n + 1; j <= i; j++) m += x[j];
    m /= n;
    for (int j = i - n + 1; j <= i; j++) s += (x[j] - m) * (x[j] - m);
    return (double)sqrtl(s / n);
}

static void test_bollinger_hard(void)
{
    /* prices near 1e5 with a 20% jump then a nearly flat stretch (sigma
     * 1e-6 relative), exact flat runs, and a random walk */
    enum { N = 3000 };
    static double x[N];
    static tf_ind_bar b[N];
    static tf_ind_values v[N];
    uint64_t r = 88172645463325252ULL;
    double p = 1e5;
    for (int i = 0; i < N; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        double u = (double)(r >> 11) / 9007199254740992.0 - 0.5;
        if (i == 500) p *= 1.2;
        if (i >= 500 && i < 800) p += u * 0.1;        /* quiet after the jump */
        else if (i >= 1000 && i < 1100) ;             /* flat */
        else p *= 1 + 0.01 * u;
        x[i] = p;
        b[i] = (tf_ind_bar){p, p, p, p, 1};
    }
    int ns[] = {2, 3, 20, 50};
    for (size_t q = 0; q < sizeof ns / sizeof *ns; q++) {
        tf_ind_params pm;
        tf_ind_params_default(&pm);
        pm.bb_n = ns[q];
        pm.bb_k = 1;
        char err[128];
        TF_EQ_INT(tf_ind_series(&pm, b, N, v, err, sizeof err), 0);
        double worst = 0;
        int flat_ok = 1;
        for (int i = ns[q] - 1; i < N; i++) {
            double want = ref_sigma(x, i, ns[q]);
            double got = v[i].bb_upper - v[i].bb_mid;
            if (want == 0) flat_ok &= got == 0 && isnan(v[i].bb_pctb);
            else worst = fmax(worst, (fabs(got - want) - 4 * DBL_EPSILON * v[i].bb_mid) / want);
        }
        TF_CHECK(flat_ok);
        /* upper - mid is sigma only to an ulp of mid (allowed for above) */
        TF_CHECK(worst < 1e-9);
        if (worst >= 1e-9) fprintf(stderr, "bb n=%d worst relative sigma error %g\n", ns[q], worst);
    }
}

static void test_reset_and_streaming(void)
{
    tf_ind_params p;
    tf_ind_params_default(&p);
    enum { N = 400 };
    static tf_ind_bar b[N];
    static tf_ind_values batch[N];
    for (int i = 0; i < N; i++) {
        double c = 100 + 10 * sin(i / 7.0) + i * 0.01;
        b[i] = (tf_ind_bar){c - 0.3, c + 1, c - 1, c, 1000 + i};
    }
    char err[128];
    TF_EQ_INT(tf_ind_series(&p, b, N, batch, err, sizeof err), 0);
    tf_ind_state *s = tf_ind_new(&p, err, sizeof err);
    TF_CHECK(s != NULL);
    if (!s) return;
    tf_ind_values v;
    for (int i = 0; i < 123; i++) tf_ind_update(s, &b[(i * 7) % N], &v); /* junk first */
    tf_ind_reset(s);
    TF_EQ_INT(tf_ind_count(s), 0);
    int same = 1;
    for (int i = 0; i < N; i++) {
        tf_ind_update(s, &b[i], &v);
        same &= memcmp(&v, &batch[i], sizeof v) == 0;
    }
    TF_CHECK(same); /* bit for bit: one code path */
    TF_EQ_INT(tf_ind_count(s), N);
    tf_ind_free(s);
    tf_ind_free(NULL);
}

static void test_params(void)
{
    tf_ind_params p;
    char err[128];
    tf_ind_params_default(&p);
    TF_EQ_INT(tf_ind_params_check(&p, err, sizeof err), 0);
    p.macd_fast = 26;
    TF_EQ_INT(tf_ind_params_check(&p, err, sizeof err), -1);
    TF_CHECK(strstr(err, "macd_fast") != NULL);
    tf_ind_params_default(&p);
    p.rsi_n = 1;
    TF_EQ_INT(tf_ind_params_check(&p, err, sizeof err), -1);
    TF_CHECK(strstr(err, "rsi") != NULL);
    tf_ind_params_default(&p);
    p.sma_n[1] = TF_IND_MAX_PERIOD + 1;
    TF_CHECK(tf_ind_new(&p, err, sizeof err) == NULL);
}

int main(void)
{
    test_by_hand();
    test_macd_seeding();
    test_bollinger_hard();
    test_reset_and_streaming();
    test_params();
    TF_TEST_MAIN_END();
}
