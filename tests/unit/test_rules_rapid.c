/*
 * test_rules_rapid.c - the rapid-move scan (rules.c: spans_push, rapid_z,
 * rule_rapid) against the plain scan it replaced, written here from the
 * definition in rule_rapid's comment over the bucket ring: at every trade
 * the scan reaches, the best span, its z (the statistic the calibrator is
 * fed), its move and its scale must be bit-identical; and a whole run with
 * the plain scan's result put in place of the fast one must give the same
 * anomaly list, field by field. Flows: the generator's two models (every
 * anomaly type injected, many tickers), random walks with drifts, jumps,
 * pauses longer than the window, trades packed into one bucket or spread
 * one per several buckets, tick-bound prices (many equal sums: ties), and
 * trades out of event order.
 *
 * rules.c is included (not linked) so the check sees its per-ticker state;
 * the TF_RULES_RAPID_CHECK hook is compiled only here.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ingest/gen.h"
#include "process/rules.h"
#include "tf_test.h"

struct tf_rules;
struct tstate;
static void rapid_check(const struct tf_rules *r, const struct tstate *s, const tf_trade *t, double *bz,
                        double *bmv, double *sc, int *best);
#define TF_RULES_RAPID_CHECK rapid_check
#include "process/rules.c"

#define SEC 1000000LL
#define T0 (1763890200LL * SEC)

static int g_use_ref;              /* 1: the plain scan's result replaces the fast one */
static long g_calls, g_found, g_diff; /* scans, scans with a best span, mismatches */

/* The plain scan over the ring, newest bucket first (the definition). */
static void ref_scan(const tf_rules *r, const tstate *s, const tf_trade *t, double *bz, double *bmv,
                     double *sc, int *bbest)
{
    int64_t oldest = tf_floor_div(t->event_us, r->rb_us) - (RAPID_NB - 1);
    int last = (s->rb_head + s->rb_n - 1) % RAPID_NB;
    double up = s->rb[last].up, dn = s->rb[last].dn;
    double best_z = 0, best_mv = 0, scale = s->scale;
    int best = -1;
    for (int k = 1; k < s->rb_n; k++) {
        int j = (last - k + RAPID_NB) % RAPID_NB;
        const rbucket *bj = &s->rb[j];
        if (bj->b < oldest || bj->b < s->rapid_from_b) break;
        double du = s->ucum - bj->ucum_end;
        int64_t n = s->cnt - bj->cnt_end;
        if (n >= RAPID_MIN_LAG) {
            double resid = du > 0 ? du - up : -du - dn;
            double z = resid / sqrt((double)n);
            if (z > best_z) {
                best_z = z;
                best_mv = s->cum - bj->cum_end;
                scale = fabs(du) > 0 ? fabs(best_mv) / fabs(du) : s->scale;
                best = j;
            }
        }
        if (bj->up > up) up = bj->up;
        if (bj->dn > dn) dn = bj->dn;
    }
    *bz = best_z;
    *bmv = best_mv;
    *sc = scale;
    *bbest = best;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void rapid_check(const struct tf_rules *r, const struct tstate *s, const tf_trade *t, double *bz,
                        double *bmv, double *sc, int *best)
{
    double rz, rmv, rsc;
    int rb;
    ref_scan(r, s, t, &rz, &rmv, &rsc, &rb);
    g_calls++;
    if (rb >= 0) g_found++;
    if (rb != *best || !same_bits(rz, *bz) || !same_bits(rmv, *bmv) || !same_bits(rsc, *sc)) {
        if (g_diff < 5)
            fprintf(stderr, "scan differs at trade %lld (%s): best %d / %d, z %.17g / %.17g, mv %.17g / %.17g\n",
                    (long long)t->id, t->ticker, *best, rb, *bz, rz, *bmv, rmv);
        g_diff++;
    }
    if (g_use_ref) {
        *bz = rz;
        *bmv = rmv;
        *sc = rsc;
        *best = rb;
    }
}

/* ---- flows -------------------------------------------------------------------- */

typedef struct flow {
    tf_trade *tr;
    size_t n, cap;
} flow;

static void flow_push(flow *f, const char *ticker, const char *market, int64_t us, double price, int64_t qty)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 4096;
        f->tr = realloc(f->tr, f->cap * sizeof *f->tr);
    }
    tf_trade *t = &f->tr[f->n++];
    memset(t, 0, sizeof *t);
    t->id = (int64_t)f->n;
    snprintf(t->ticker, sizeof t->ticker, "%s", ticker);
    snprintf(t->market, sizeof t->market, "%s", market);
    t->event_us = us;
    t->price_e4 = (int64_t)llround(price * 1e4);
    if (t->price_e4 < 1) t->price_e4 = 1;
    t->quantity = qty;
    t->side = 'B';
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static double unif(void)
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(g_rng >> 11) * 0x1.0p-53;
}
static double gauss(void)
{
    double u = unif(), v = unif();
    if (u < 1e-12) u = 1e-12;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* ntk tickers trading at random: each ticker its own volatility, tick size
 * (tick = 1: tick-bound), rate; drifts of 10-60 trades, single jumps,
 * pauses of up to 3 windows, bursts into one bucket. */
static void random_flow(flow *f, int ntk, size_t n, double tick)
{
    double px[16], vol[16], drift[16];
    int left[16];
    int64_t us[16];
    char name[16][16];
    for (int k = 0; k < ntk; k++) {
        px[k] = 20 + 200 * unif();
        vol[k] = 2e-4 * (1 + 9 * unif());
        drift[k] = 0;
        left[k] = 0;
        us[k] = T0;
        snprintf(name[k], sizeof name[k], "T%02d", k);
    }
    for (size_t i = 0; i < n; i++) {
        int k = (int)(unif() * ntk);
        double u = unif();
        /* the gap to this ticker's previous trade: mostly ~0.1 s, sometimes
         * a burst (~0), one per several buckets, or a pause past the window */
        double gap = u < 0.05 ? 0.001 * unif() : u < 0.08 ? 2.0 * unif() : u < 0.0815 ? 90 * unif() : 0.2 * unif();
        us[k] += (int64_t)(gap * SEC);
        if (left[k] == 0 && unif() < 0.01) {
            left[k] = 10 + (int)(50 * unif());
            drift[k] = (unif() < 0.5 ? -1 : 1) * vol[k] * (1 + 3 * unif());
        }
        double ret = vol[k] * gauss() + (left[k] > 0 ? drift[k] : 0);
        if (left[k] > 0) left[k]--;
        if (unif() < 0.003) ret += (unif() < 0.5 ? -1 : 1) * vol[k] * (10 + 20 * unif()); /* a jump */
        px[k] *= exp(ret);
        double p = tick > 0 ? tick * round(px[k] / tick) : px[k];
        if (p < tick) p = tick;
        int64_t q = (int64_t)(100 * exp(0.8 * gauss())) + 1;
        flow_push(f, name[k], "NASDAQ", us[k], p, q);
    }
}

/* Runs a flow through a fresh rules instance; anomalies into *out. */
static size_t run(const flow *f, int use_ref, tf_anomaly **out)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    tf_rules *r = tf_rules_new(&c);
    size_t cap = 256, n = 0;
    tf_anomaly *a = malloc(cap * sizeof *a);
    g_use_ref = use_ref;
    for (size_t i = 0; i < f->n; i++) {
        if (n + 8 > cap) a = realloc(a, (cap *= 2) * sizeof *a);
        n += (size_t)tf_rules_on_trade(r, &f->tr[i], 0, f->tr[i].event_us + 1000, a + n, 8);
    }
    tf_rules_free(r);
    *out = a;
    return n;
}

static int same_anomaly(const tf_anomaly *x, const tf_anomaly *y)
{
    if (strcmp(x->id, y->id) || x->type != y->type || strcmp(x->ticker, y->ticker) || strcmp(x->market, y->market))
        return 0;
    if (x->event_us != y->event_us || x->detected_us != y->detected_us || strcmp(x->severity, y->severity) ||
        strcmp(x->metric, y->metric))
        return 0;
    if (!same_bits(x->value, y->value) || !same_bits(x->threshold, y->threshold) ||
        !same_bits(x->window_s, y->window_s) || !same_bits(x->base_mean, y->base_mean) ||
        !same_bits(x->base_sd, y->base_sd) || x->base_n != y->base_n || x->ntrades != y->ntrades)
        return 0;
    for (int i = 0; i < x->ntrades; i++)
        if (x->trade_ids[i] != y->trade_ids[i]) return 0;
    return 1;
}

/* The flow with the fast scan (checked against the plain one at every
 * scan), then with the plain scan's results: identical anomalies. Returns
 * the RAPID_MOVEs found, so a flow that has none is noticed. */
static int check_flow(const char *name, const flow *f)
{
    g_calls = g_found = g_diff = 0;
    tf_anomaly *fast, *plain;
    size_t nf = run(f, 0, &fast);
    long calls = g_calls, found = g_found, diff = g_diff;
    size_t np = run(f, 1, &plain);
    int same = nf == np, moves = 0;
    for (size_t i = 0; same && i < nf; i++) same = same_anomaly(&fast[i], &plain[i]);
    for (size_t i = 0; i < nf; i++) moves += fast[i].type == TF_ANOM_RAPID_MOVE;
    printf("%-12s %zu trades: %ld scans (%ld with a best span), %ld differ; %zu / %zu anomalies (%d moves)%s\n",
           name, f->n, calls, found, diff, nf, np, moves, same ? "" : ", LISTS DIFFER");
    TF_EQ_INT(diff, 0);
    TF_CHECK(same);
    TF_CHECK(found > calls / 4); /* the comparison is not vacuous */
    free(fast);
    free(plain);
    return moves;
}

static void test_generated(int model, const char *name, uint64_t seed)
{
    char err[256];
    tf_gen_opts o = {.seed = seed, .ntickers = 20, .anomaly_rate = 0.002, .model = model};
    flow f = {0};
    tf_gen_label *labels;
    size_t nl;
    f.n = 200000;
    TF_CHECK(tf_gen_run(&o, f.n, 10000, T0, (double)f.n / 500.0, &f.tr, &labels, &nl, err, sizeof err) == 0);
    TF_CHECK(check_flow(name, &f) > 0);
    free(f.tr);
    free(labels);
}

/* out of event order: adjacent trades swapped now and then (a trade into
 * an older bucket, the window measured from its own time) */
static void shuffle_some(flow *f)
{
    for (size_t i = 1; i < f->n; i++)
        if (unif() < 0.02) {
            tf_trade t = f->tr[i];
            f->tr[i] = f->tr[i - 1];
            f->tr[i - 1] = t;
        }
}

int main(void)
{
    tf_log_set_level(TF_LOG_WARN);
    test_generated(TF_GEN_GBM, "gen gbm", 7);
    test_generated(TF_GEN_REALISTIC, "gen real", 8);
    flow f = {0};
    random_flow(&f, 8, 300000, 0);
    TF_CHECK(check_flow("random", &f) > 0);
    f.n = 0;
    random_flow(&f, 3, 200000, 0.01);
    check_flow("tick-bound", &f);
    f.n = 0;
    random_flow(&f, 1, 100000, 0.05);
    check_flow("coarse tick", &f);
    f.n = 0;
    random_flow(&f, 5, 200000, 0);
    shuffle_some(&f);
    check_flow("out of order", &f);
    free(f.tr);
    TF_TEST_MAIN_END();
}
