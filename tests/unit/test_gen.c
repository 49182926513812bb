/*
 * test_gen.c - the market generator: determinism, statistics of the normal
 * market (returns ~ normal, sizes heavy-tailed), tick sizes, and that every
 * requested anomaly is labelled and really present in the data.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/gen.h"
#include "tf_test.h"

#define T0 1763890200000000LL /* 2025-11-23T09:30:00Z */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static tf_gen *mk(uint64_t seed, int ntickers, double rate, unsigned mask)
{
    char err[256] = "";
    tf_gen_opts o = {.seed = seed, .ntickers = ntickers, .anomaly_rate = rate, .anomaly_mask = mask};
    tf_gen *g = tf_gen_new(&o, err, sizeof err);
    if (!g) fprintf(stderr, "tf_gen_new: %s\n", err);
    return g;
}

static void test_determinism(void)
{
    size_t n = 20000;
    tf_trade *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b), *c = calloc(n, sizeof *c);
    tf_gen_label la[256], lb[256];
    size_t nla = 0, nlb = 0, nlc = 0;
    tf_gen *g1 = mk(42, 0, 0.002, 0), *g2 = mk(42, 0, 0.002, 0), *g3 = mk(43, 0, 0.002, 0);
    TF_CHECK(g1 && g2 && g3);
    if (!g1 || !g2 || !g3) return;
    for (int rep = 0; rep < 3; rep++) { /* several batches, state carries over */
        int64_t s = T0 + rep * 100 * 1000000LL;
        tf_gen_fill(g1, a, n, s, s + 100000000, la, 256, &nla);
        tf_gen_fill(g2, b, n, s, s + 100000000, lb, 256, &nlb);
        tf_gen_fill(g3, c, n, s, s + 100000000, lb, 0, &nlc);
        TF_CHECK(memcmp(a, b, n * sizeof *a) == 0);
        TF_CHECK(memcmp(a, c, n * sizeof *a) != 0);
    }
    TF_EQ_INT(nla, nlb);
    TF_CHECK(nla > 0);
    TF_CHECK(memcmp(la, lb, nla * sizeof *la) == 0);
    tf_gen_free(g1);
    tf_gen_free(g2);
    tf_gen_free(g3);
    free(a);
    free(b);
    free(c);
}

static void test_universe_and_errors(void)
{
    TF_CHECK(tf_gen_default_count() >= 50);
    int markets[4] = {0};
    for (int i = 0; i < tf_gen_default_count(); i++) {
        const char *m = NULL;
        const char *t = tf_gen_default_ticker(i, &m);
        TF_CHECK(t && tf_ticker_valid(t, strlen(t)) && m && tf_market_valid(m, strlen(m)));
        markets[m[0] == 'K' ? (m[3] == 'P' ? 0 : 1) : (m[1] == 'A' ? 2 : 3)]++;
    }
    for (int k = 0; k < 4; k++) TF_CHECK(markets[k] >= 5);
    TF_CHECK(tf_gen_default_ticker(-1, NULL) == NULL);
    TF_CHECK(tf_gen_default_ticker(tf_gen_default_count(), NULL) == NULL);

    /* KRX ladder and US cents */
    TF_EQ_INT(tf_tick_size_e4("KOSPI", 71000LL * 10000), 100LL * 10000);
    TF_EQ_INT(tf_tick_size_e4("KOSDAQ", 1500LL * 10000), 1LL * 10000);
    TF_EQ_INT(tf_tick_size_e4("KOSPI", 19990LL * 10000), 10LL * 10000);
    TF_EQ_INT(tf_tick_size_e4("KOSPI", 780000LL * 10000), 1000LL * 10000);
    TF_EQ_INT(tf_tick_size_e4("NASDAQ", 1892500), 100);
    TF_EQ_INT(tf_tick_size_e4("NYSE", 5000), 1);

    char err[256];
    tf_gen_opts o = {.seed = 1, .anomaly_rate = 0.5};
    err[0] = 0;
    TF_CHECK(tf_gen_new(&o, err, sizeof err) == NULL && strstr(err, "anomaly rate"));
    o.anomaly_rate = 0.0;
    o.anomaly_mask = 1u << 7;
    TF_CHECK(tf_gen_new(&o, err, sizeof err) == NULL && strstr(err, "mask"));
    o.anomaly_mask = 0;
    const char *bad[] = {"AAPL", "aapl"};
    o.tickers = bad;
    o.ntickers = 2;
    TF_CHECK(tf_gen_new(&o, err, sizeof err) == NULL && strstr(err, "aapl"));
    const char *dup[] = {"AAPL", "AAPL"};
    o.tickers = dup;
    TF_CHECK(tf_gen_new(&o, err, sizeof err) == NULL && strstr(err, "duplicate"));
    const char *custom[] = {"ZZZZ", "123456", "005930"};
    o.tickers = custom;
    o.ntickers = 3;
    tf_gen *g = tf_gen_new(&o, err, sizeof err);
    TF_CHECK(g != NULL);
    if (g) {
        tf_trade tr[300];
        tf_gen_fill(g, tr, 300, T0, T0 + 1000000, NULL, 0, NULL);
        int seen[3] = {0};
        for (int i = 0; i < 300; i++) {
            for (int k = 0; k < 3; k++)
                if (strcmp(tr[i].ticker, custom[k]) == 0) seen[k]++;
            TF_CHECK(tr[i].price_e4 > 0 && tr[i].quantity > 0);
            TF_CHECK(tf_market_valid(tr[i].market, strlen(tr[i].market)));
        }
        TF_CHECK(seen[0] > 50 && seen[1] > 50 && seen[2] > 50);
        tf_gen_free(g);
    }
    tf_gen_free(NULL);
}

/* Normal market: returns roughly normal per ticker, sizes heavy-tailed,
 * prices on the tick grid, time non-decreasing, both sides present. */
static void test_statistics(void)
{
    const int nt = 10;
    const char *tickers[] = {"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "JPM", "KO", "WMT", "005930", "000660"};
    char err[256];
    tf_gen_opts o = {.seed = 7, .tickers = tickers, .ntickers = nt};
    tf_gen *g = tf_gen_new(&o, err, sizeof err);
    TF_CHECK(g != NULL);
    if (!g) return;
    size_t n = 200000;
    tf_trade *tr = calloc(n, sizeof *tr);
    tf_gen_fill(g, tr, n, T0, T0 + 2000LL * 1000000, NULL, 0, NULL);
    int mono = 1, ongrid = 1, buys = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && tr[i].event_us < tr[i - 1].event_us) mono = 0;
        if (tr[i].price_e4 % tf_tick_size_e4(tr[i].market, tr[i].price_e4) != 0) ongrid = 0;
        buys += tr[i].side == 'B';
    }
    TF_CHECK(mono);
    TF_CHECK(ongrid);
    TF_CHECK(buys > (int)(n * 0.4) && buys < (int)(n * 0.6));

    double *r = calloc(n, sizeof *r), *q = calloc(n, sizeof *q);
    for (int k = 0; k < nt; k++) {
        size_t m = 0, nq = 0;
        int64_t prev = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(tr[i].ticker, tickers[k]) != 0) continue;
            if (prev) r[m++] = log((double)tr[i].price_e4 / (double)prev);
            prev = tr[i].price_e4;
            q[nq++] = (double)tr[i].quantity;
        }
        double s1 = 0, s2 = 0, s4 = 0;
        for (size_t i = 0; i < m; i++) s1 += r[i];
        double mean = s1 / (double)m;
        for (size_t i = 0; i < m; i++) {
            double d = r[i] - mean;
            s2 += d * d;
            s4 += d * d * d * d;
        }
        double var = s2 / (double)m, kurt = s4 / (double)m / (var * var);
        double sd = sqrt(var);
        if (!(fabs(mean) < 0.05 * sd && kurt > 2.4 && kurt < 4.0))
            fprintf(stderr, "%s: returns mean %.3g sd %.3g kurtosis %.3f\n", tickers[k], mean, sd, kurt);
        TF_CHECK(fabs(mean) < 0.05 * sd);
        TF_CHECK(kurt > 2.4 && kurt < 4.0);
        /* no outliers beyond 6 sd in a normal market */
        int out = 0;
        for (size_t i = 0; i < m; i++) out += fabs(r[i] - mean) > 6 * sd;
        TF_EQ_INT(out, 0);

        /* sizes: heavy right tail */
        qsort(q, nq, sizeof *q, cmp_dbl);
        double med = q[nq / 2], max = q[nq - 1];
        size_t kk = nq / 100; /* Hill estimator over the top 1% */
        double h = 0;
        for (size_t i = nq - kk; i < nq; i++) h += log(q[i] / q[nq - kk - 1]);
        double alpha = (double)kk / h;
        if (!(max / med > 10 && alpha > 1.5 && alpha < 6))
            fprintf(stderr, "%s: size median %.0f max %.0f tail index %.2f\n", tickers[k], med, max, alpha);
        TF_CHECK(max / med > 10);
        TF_CHECK(alpha > 1.5 && alpha < 6);
    }
    free(r);
    free(q);
    free(tr);
    tf_gen_free(g);
}

/* Per-ticker sd of returns, trimmed (drops the largest 1% so anomalies do
 * not inflate it; tick rounding makes a median-based estimate useless on
 * KRX prices that mostly move by 0 or 1 tick). */
static double ticker_sd(const tf_trade *tr, size_t n, const char *ticker)
{
    double *r = malloc(n * sizeof *r);
    size_t m = 0;
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tr[i].ticker, ticker) != 0) continue;
        if (prev) r[m++] = fabs(log((double)tr[i].price_e4 / (double)prev));
        prev = tr[i].price_e4;
    }
    qsort(r, m, sizeof *r, cmp_dbl);
    double s2 = 0;
    size_t keep = m - m / 100;
    for (size_t i = 0; i < keep; i++) s2 += r[i] * r[i];
    double sd = keep ? sqrt(s2 / (double)keep) * 1.1 : 0;
    free(r);
    return sd;
}

/* index of the previous / next trade of the same ticker, -1 if none */
static long prev_of(const tf_trade *tr, size_t n, long i)
{
    (void)n;
    for (long j = i - 1; j >= 0; j--)
        if (strcmp(tr[j].ticker, tr[i].ticker) == 0) return j;
    return -1;
}
static long next_of(const tf_trade *tr, size_t n, long i, int skip_same_time)
{
    for (long j = i + 1; j < (long)n; j++)
        if (strcmp(tr[j].ticker, tr[i].ticker) == 0 &&
            !(skip_same_time && tr[j].event_us == tr[i].event_us))
            return j;
    return -1;
}

/* Checks one label against the data; returns 1 when the anomaly is there. */
static int label_present(const tf_trade *tr, size_t n, const tf_gen_label *l)
{
    long i = (long)l->trade_idx[0];
    if (i < 0 || i >= (long)n || strcmp(tr[i].ticker, l->ticker) != 0 || tr[i].event_us != l->event_us)
        return 0;
    for (int k = 0; k < l->ntrades; k++)
        if (strcmp(tr[l->trade_idx[k]].ticker, l->ticker) != 0) return 0;
    double sd = ticker_sd(tr, n, l->ticker);
    long p = prev_of(tr, n, i), nx = next_of(tr, n, i, 0);
    switch (l->type) {
    case TF_ANOM_PRICE_SPIKE: {
        if (p < 0 || nx < 0) return 0;
        double r = log((double)tr[i].price_e4 / (double)tr[p].price_e4);
        double hold = log((double)tr[nx].price_e4 / (double)tr[i].price_e4);
        return fabs(r) > 10 * sd && fabs(hold) < 5 * sd;
    }
    case TF_ANOM_OFF_VWAP: {
        if (p < 0 || nx < 0) return 0;
        double r = log((double)tr[i].price_e4 / (double)tr[p].price_e4);
        double back = log((double)tr[nx].price_e4 / (double)tr[p].price_e4);
        return fabs(r) > 30 * sd && fabs(back) < 6 * sd;
    }
    case TF_ANOM_VOLUME_SPIKE: {
        double med = tr[i].market[0] == 'K' ? 30 : 100;
        return (double)tr[i].quantity > 500 * med;
    }
    case TF_ANOM_TRADE_BURST: {
        int same = 1;
        for (long j = i + 1; j < (long)n && tr[j].event_us == tr[i].event_us; j++)
            same += strcmp(tr[j].ticker, tr[i].ticker) == 0;
        return same >= 32 && l->ntrades >= 32;
    }
    case TF_ANOM_RAPID_MOVE: {
        if (p < 0 || l->ntrades != 24) return 0;
        long last = (long)l->trade_idx[23];
        double mv = log((double)tr[last].price_e4 / (double)tr[p].price_e4);
        int max_step_ok = 1;
        long prev = p;
        for (int k = 0; k < 24; k++) {
            long j = (long)l->trade_idx[k];
            if (fabs(log((double)tr[j].price_e4 / (double)tr[prev].price_e4)) > 8 * sd) max_step_ok = 0;
            prev = j;
        }
        return fabs(mv) > 25 * sd && max_step_ok;
    }
    default:
        return 0;
    }
}

static void test_anomalies(void)
{
    size_t n = 400000;
    tf_trade *tr = calloc(n, sizeof *tr);
    tf_gen_label *labels = calloc(4096, sizeof *labels);
    size_t nl = 0;
    tf_gen *g = mk(2026, 50, 0.002, 0);
    TF_CHECK(g != NULL);
    if (!g) return;
    /* two batches: 1000 trades/s over 50 tickers */
    tf_gen_fill(g, tr, n / 2, T0, T0 + 200LL * 1000000, labels, 4096, &nl);
    size_t nl1 = nl;
    tf_gen_fill(g, tr + n / 2, n / 2, T0 + 200LL * 1000000, T0 + 400LL * 1000000, labels, 4096, &nl);
    for (size_t k = nl1; k < nl; k++) /* make indices absolute */
        for (int j = 0; j < labels[k].ntrades; j++) labels[k].trade_idx[j] += (int64_t)(n / 2);
    int bytype[TF_ANOM_NTYPES] = {0}, bad = 0;
    for (size_t k = 0; k < nl; k++) {
        bytype[labels[k].type]++;
        if (!label_present(tr, n, &labels[k])) {
            bad++;
            fprintf(stderr, "label %zu %s %s idx %lld not found in data\n", k,
                    tf_anomaly_name(labels[k].type), labels[k].ticker, (long long)labels[k].trade_idx[0]);
        }
    }
    TF_EQ_INT(bad, 0);
    /* realised rate close to the requested one */
    TF_CHECK(nl > 0.8 * 0.002 * (double)n && nl < 1.2 * 0.002 * (double)n);
    for (int k = 0; k < TF_ANOM_NTYPES; k++) {
        TF_CHECK(bytype[k] > 60);
        TF_EQ_STR(tf_anomaly_name((tf_anomaly_type)k), tf_anomaly_name((tf_anomaly_type)tf_anomaly_from_name(tf_anomaly_name((tf_anomaly_type)k))));
    }
    TF_EQ_INT(tf_anomaly_from_name("NOPE"), -1);
    int mono = 1;
    for (size_t i = 1; i < n; i++)
        if (tr[i].event_us < tr[i - 1].event_us) mono = 0;
    TF_CHECK(mono);
    tf_gen_free(g);

    /* only the requested types */
    g = mk(5, 20, 0.005, 1u << TF_ANOM_VOLUME_SPIKE);
    nl = 0;
    tf_gen_fill(g, tr, 100000, T0, T0 + 1000LL * 1000000, labels, 4096, &nl);
    int other = 0;
    for (size_t k = 0; k < nl; k++) other += labels[k].type != TF_ANOM_VOLUME_SPIKE;
    TF_CHECK(nl > 100);
    TF_EQ_INT(other, 0);
    tf_gen_free(g);

    /* paced mode: many small batches; bursts may spill into the next batch
     * and labels stay valid for the batch they were produced with */
    g = mk(9, 10, 0.01, 1u << TF_ANOM_TRADE_BURST);
    size_t off = 0, total = 0;
    int lbad = 0;
    for (int b = 0; b < 15000; b++) {
        size_t nlb = 0;
        int64_t s = T0 + (int64_t)b * 10000;
        tf_gen_fill(g, tr + off, 20, s, s + 10000, labels, 16, &nlb);
        for (size_t k = 0; k < nlb; k++) {
            tf_gen_label *l = &labels[k];
            for (int j = 0; j < l->ntrades; j++)
                if (l->trade_idx[j] >= 20 || strcmp(tr[off + l->trade_idx[j]].ticker, l->ticker)) lbad++;
        }
        total += nlb;
        off += 20;
    }
    TF_EQ_INT(lbad, 0);
    TF_CHECK(total > 50);
    mono = 1;
    for (size_t i = 1; i < off; i++)
        if (tr[i].event_us < tr[i - 1].event_us) mono = 0;
    TF_CHECK(mono);
    tf_gen_free(g);
    free(labels);
    free(tr);
}

/* generator.model = realistic: fat tails (excess kurtosis of the per-ticker
 * returns far above the gbm model's), volatility clusters (|return| is
 * autocorrelated), busy and slow tickers, every label still present; the
 * model name parses; the same seed gives the same trades. */
static double kurt_and_acf(const tf_trade *tr, size_t n, const char *tk, double *acf)
{
    double *r = malloc(n * sizeof *r);
    size_t m = 0;
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tr[i].ticker, tk) != 0) continue;
        if (prev) r[m++] = log((double)tr[i].price_e4 / (double)prev);
        prev = tr[i].price_e4;
    }
    double s2 = 0, s4 = 0, ma = 0;
    for (size_t i = 0; i < m; i++) {
        s2 += r[i] * r[i];
        s4 += r[i] * r[i] * r[i] * r[i];
        ma += fabs(r[i]);
    }
    s2 /= (double)m;
    s4 /= (double)m;
    ma /= (double)m;
    double c0 = 0, c1 = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        double a = fabs(r[i]) - ma, b = fabs(r[i + 1]) - ma;
        c0 += a * a;
        c1 += a * b;
    }
    *acf = c1 / c0;
    free(r);
    return s4 / (s2 * s2) - 3.0;
}

static void test_realistic(void)
{
    TF_EQ_INT(tf_gen_model_from_name("gbm"), TF_GEN_GBM);
    TF_EQ_INT(tf_gen_model_from_name("realistic"), TF_GEN_REALISTIC);
    TF_EQ_INT(tf_gen_model_from_name("brownian"), -1);
    char err[256];
    tf_gen_opts bad = {.seed = 1, .model = 7};
    TF_CHECK(tf_gen_new(&bad, err, sizeof err) == NULL);
    size_t n = 400000;
    tf_trade *tr[2];
    tf_gen_label *lb[2];
    size_t nl[2];
    for (int m = 0; m < 2; m++) {
        /* AVGO: a high-priced ticker, so tick rounding does not dominate */
        tf_gen_opts o = {.seed = 5, .ntickers = 0, .anomaly_rate = 0, .model = m};
        TF_EQ_INT(tf_gen_run(&o, n, 10000, T0, 1000, &tr[m], &lb[m], &nl[m], err, sizeof err), 0);
    }
    double acf_g, acf_r;
    double kg = kurt_and_acf(tr[0], n, "AVGO", &acf_g), kr = kurt_and_acf(tr[1], n, "AVGO", &acf_r);
    fprintf(stderr, "AVGO excess kurtosis gbm %.2f realistic %.2f; acf(|r|) gbm %.3f realistic %.3f\n", kg, kr,
            acf_g, acf_r);
    TF_CHECK(kr > 3.0 && kr > kg + 2.0);
    TF_CHECK(acf_r > 0.05 && acf_r > acf_g + 0.04);
    /* busy and slow tickers */
    int cnt[64] = {0}, nd = tf_gen_default_count();
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < nd && k < 64; k++)
            if (strcmp(tr[1][i].ticker, tf_gen_default_ticker(k, NULL)) == 0) cnt[k]++;
    int lo = cnt[0], hi = cnt[0];
    for (int k = 1; k < nd && k < 64; k++) {
        if (cnt[k] < lo) lo = cnt[k];
        if (cnt[k] > hi) hi = cnt[k];
    }
    TF_CHECK(hi > 4 * lo);
    for (int m = 0; m < 2; m++) {
        free(tr[m]);
        free(lb[m]);
    }
    /* labels are present in the data, as for gbm */
    tf_gen_opts o = {.seed = 9, .ntickers = 20, .anomaly_rate = 0.002, .model = TF_GEN_REALISTIC};
    tf_trade *t;
    tf_gen_label *l;
    size_t k;
    TF_EQ_INT(tf_gen_run(&o, 200000, 10000, T0, 400, &t, &l, &k, err, sizeof err), 0);
    int types[TF_ANOM_NTYPES] = {0};
    for (size_t i = 0; i < k; i++) types[l[i].type]++;
    TF_CHECK(k > 200);
    for (int ty = 0; ty < TF_ANOM_NTYPES; ty++) TF_CHECK(types[ty] > 20);
    free(t);
    free(l);
}

int main(void)
{
    test_realistic();
    test_determinism();
    test_universe_and_errors();
    test_statistics();
    test_anomalies();
    TF_TEST_MAIN_END();
}
