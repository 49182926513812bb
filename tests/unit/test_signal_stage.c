/*
 * test_signal_stage.c - the live signal stage (process/signal_stage.c)
 * without PostgreSQL or a bus: hand-made 1-minute bars through its on_bar
 * must give exactly the signals (ids, values, JSON) of the engine driven
 * directly as the backtest drives it; without a store, revised and repeated bars are
 * ignored; tickers keep separate states; the hook sets the callback.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "process/signal_stage.h"
#include "tf_test.h"

#define NB 400

typedef struct seen {
    int n;
    char id[256][160];
    char json[256][1024];
} seen;

static void sink(void *ctx, const tf_signal *g, const char *json, size_t len)
{
    seen *s = ctx;
    if (s->n >= 256) return;
    tf_signal_id(g, s->id[s->n], sizeof s->id[0]);
    snprintf(s->json[s->n], sizeof s->json[0], "%.*s", (int)len, json);
    s->n++;
}

/* A wave with a few jumps: every rule has something to fire on. */
static double px(int i, int k) { return 100 + 8 * sin(i / (7.0 + k)) + (i % 53 == 0 ? 6 : 0) + 0.01 * (i % 5); }

static tf_bar mkbar(const char *tk, int i, int k)
{
    tf_bar b;
    memset(&b, 0, sizeof b);
    snprintf(b.ticker, sizeof b.ticker, "%s", tk);
    snprintf(b.market, sizeof b.market, "NASDAQ");
    double o = i ? px(i - 1, k) : px(0, k), c = px(i, k);
    b.c.start_us = (1700000040LL + 60LL * i) * 1000000;
    b.c.interval_ms = 60000;
    b.c.open_e4 = llround(o * 1e4), b.c.close_e4 = llround(c * 1e4);
    b.c.high_e4 = llround(fmax(o, c) * 1e4) + 500, b.c.low_e4 = llround(fmin(o, c) * 1e4) - 500;
    b.c.volume = 1000 + (i % 41 == 0 ? 9000 : 37 * (i % 7));
    b.c.count = 10;
    return b;
}

/* The backtest's way: one state, bars in order, detected at the close. */
static void direct(const tf_config *cfg, const char *tk, int k, seen *out)
{
    tf_sig_rules r;
    char err[256];
    TF_CHECK(tf_sig_rules_from_config(&r, cfg, err, sizeof err) == 0);
    tf_sig_state *st = tf_sig_state_new(&r, tk, "NASDAQ", "1m", err, sizeof err);
    out->n = 0;
    for (int i = 0; i < NB; i++) {
        tf_bar b = mkbar(tk, i, k);
        tf_ind_bar ib = {b.c.open_e4 / 1e4, b.c.high_e4 / 1e4, b.c.low_e4 / 1e4, b.c.close_e4 / 1e4,
                         (double)b.c.volume};
        int64_t t = b.c.start_us / 1000;
        tf_signal o[TF_SIG_NRULES];
        int n = tf_sig_update(st, &ib, t, t + 60000, o, NULL, NULL);
        for (int j = 0; j < n; j++) {
            tf_sbuf js = {0};
            tf_signal_json(&o[j], &r.ind, NULL, 0, &js);
            sink(out, &o[j], js.b, js.len);
            free(js.b);
        }
    }
    tf_sig_state_free(st);
}

static void test_parity(void)
{
    tf_config cfg;
    tf_config_defaults(&cfg);
    cfg.process_store = 0;
    char err[256];
    tf_signal_stage *s = tf_signal_stage_new(&cfg, NULL, err, sizeof err);
    TF_CHECK(s != NULL);
    if (!s) return;
    tf_processor_opts o = {0};
    tf_signal_stage_hook(s, &o);
    TF_CHECK(o.on_bar == tf_signal_stage_on_bar && o.ctx == s);
    seen *live = calloc(2, sizeof *live), *want = calloc(2, sizeof *want);
    tf_signal_stage_set_sink(s, sink, &live[0]);
    /* two tickers interleaved, each with its revision of an earlier bar and a repeat */
    seen mixed = {0};
    (void)mixed;
    for (int i = 0; i < NB; i++) {
        tf_bar a = mkbar("AAA", i, 0), b = mkbar("BBB", i, 3);
        tf_signal_stage_set_sink(s, sink, &live[0]);
        o.on_bar(o.ctx, &a);
        tf_signal_stage_set_sink(s, sink, &live[1]);
        o.on_bar(o.ctx, &b);
        if (i > 5 && i % 17 == 0) {
            tf_bar r = mkbar("AAA", i - 2, 0);
            r.c.revised = 1;
            r.c.close_e4 += 50000; /* would change everything if taken */
            o.on_bar(o.ctx, &r);
            o.on_bar(o.ctx, &b); /* the same bar again */
        }
    }
    direct(&cfg, "AAA", 0, &want[0]);
    direct(&cfg, "BBB", 3, &want[1]);
    for (int k = 0; k < 2; k++) {
        TF_CHECK(want[k].n >= 5); /* the series exercises the rules */
        TF_EQ_INT(live[k].n, want[k].n);
        for (int i = 0; i < live[k].n && i < want[k].n; i++) {
            TF_EQ_STR(live[k].id[i], want[k].id[i]);
            TF_EQ_STR(live[k].json[i], want[k].json[i]);
        }
    }
    tf_signal_stage_stats st;
    tf_signal_stage_get_stats(s, &st);
    TF_EQ_INT(st.bars, 2 * NB + 2 * (int)((NB - 1) / 17));
    TF_EQ_INT(st.revised_ignored, 2 * (int)((NB - 1) / 17));
    TF_EQ_INT(st.revised_rebuilt, 0); /* no table to rebuild from */
    TF_EQ_INT(st.signals, live[0].n + live[1].n);
    TF_EQ_INT(st.stored, 0);
    TF_EQ_INT(st.store_errors, 0);
    free(live), free(want);
    tf_signal_stage_free(s);
    tf_signal_stage_free(NULL);
}

static void test_bad_config(void)
{
    tf_config cfg;
    tf_config_defaults(&cfg);
    snprintf(cfg.signals_rules, sizeof cfg.signals_rules, "NO_SUCH_RULE");
    char err[256] = "";
    TF_CHECK(tf_signal_stage_new(&cfg, NULL, err, sizeof err) == NULL);
    TF_CHECK(err[0] != 0);
}

int main(void)
{
    test_parity();
    test_bad_config();
    TF_TEST_MAIN_END();
}
