/*
 * cmd_signals.c - `tickflow signals backtest`: the signal engine
 * (process/signals.h) and its track record (process/track.h) over stored
 * bars, the same code the live path runs bar by bar.
 *
 *   tickflow signals backtest --from T1 --to T2 [--tickers A,B]
 *                             [--interval 1d|1m] [--store]
 *
 * Bars: the trade rollups (stock_bars_1m / stock_bars_1d, trade_type '*',
 * brought current first by one synchronous rollup refresh), and where a
 * table market_bars exists, imported bars for buckets without trade bars.
 * Each ticker's whole stored history before T2 (plus the longest horizon
 * after it) is fed, so indicators are warmed up exactly as a live state
 * that saw every bar; signals are reported for bars starting in [T1, T2).
 * detected_at is the bar's end (a backtest detects at the close). Horizons
 * are [signals] horizons, those not shorter than the interval; status is
 * final when the horizon has passed by the wall clock.
 *
 * Prints one JSON object: {"from","to","interval","tickers","bars",
 * "signals":[signal + "returns":{h:{status,return_pct,mfe_pct,mae_pct}}],
 * "performance":{h:{"all":summary,"by_rule":{RULE:summary}}}} where a
 * summary counts final outcomes only. --store upserts every signal into
 * stock_signals (by id: running it twice changes nothing) and then fills
 * stock_signal_returns with the live path's own finaliser
 * (tf_signal_finalize, process/signal_stage.h: the signal_performance job),
 * in the same transaction, so stored horizons never depend on which path
 * stored the signal; the printed ones are computed here from the same bars
 * and equal them (test_signals_backtest checks both). That finaliser also
 * completes any other stored signal's due horizons, as the job would.
 * Exit 0 ok, 2 bad arguments, 1 PostgreSQL failed.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "process/signal_stage.h"
#include "process/signals.h"
#include "process/track.h"
#include "store/rollup.h"
#include "store/pg.h"
#include "store/schema.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tickflow signals backtest --from T1 --to T2 [--tickers A,B] [--interval 1d|1m] [--store]\n"
               "  runs the signal rules ([signals] config) over stored bars and prints the signals\n"
               "  with their track record as JSON; --store upserts them into stock_signals.\n");
}

static int fail(int code, const char *err)
{
    tf_error("signals", "backtest failed", TF_STR("error", err)); /* logged once, as JSON */
    return code;
}

typedef struct bt {
    PGconn *conn;
    tf_sig_rules rules;
    int64_t interval_ms, from_ms, to_ms, now_ms;
    int nh;
    int64_t h_ms[TF_TRACK_MAX_HORIZONS];
    char h_name[TF_TRACK_MAX_HORIZONS][8];
    int store;
    tf_sbuf sig;                       /* the "signals" array's contents */
    size_t nsig, nbars, ntickers;
    /* final outcomes per horizon: ret/mfe/mae/rule, grown as needed */
    struct outc {
        double *ret, *mfe, *mae;
        int *rule;
        size_t n, cap;
    } out[TF_TRACK_MAX_HORIZONS];
    int oom;
    char err[1024];
} bt;

/* One ticker's bars, in time order. */
typedef struct series {
    char ticker[32], market[16];
    tf_ind_bar *b;
    tf_track_bar *t;
    int64_t *start;
    size_t n, cap;
} series;

static int push_outcome(struct outc *o, double r, double fe, double ae, int rule)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        double *a = realloc(o->ret, cap * sizeof *a);
        if (a) o->ret = a;
        double *b = realloc(o->mfe, cap * sizeof *b);
        if (b) o->mfe = b;
        double *c = realloc(o->mae, cap * sizeof *c);
        if (c) o->mae = c;
        int *d = realloc(o->rule, cap * sizeof *d);
        if (d) o->rule = d;
        if (!a || !b || !c || !d) return -1;
        o->cap = cap;
    }
    o->ret[o->n] = r, o->mfe[o->n] = fe, o->mae[o->n] = ae, o->rule[o->n] = rule;
    o->n++;
    return 0;
}

static void num(tf_sbuf *s, double v)
{
    if (isfinite(v)) tf_sbuf_fmt(s, "%.10g", v);
    else tf_sbuf_str(s, "null");
}

/* The signal row; its horizons are dropped so that the finaliser, run after
 * every signal is stored, computes them afresh. */
static int store_signal(bt *x, const tf_signal *g, const char *json_ind)
{
    char id[160], bs[40], da[40], price[48], score[16];
    tf_signal_id(g, id, sizeof id);
    tf_fmt_iso_us(g->bar_start_ms * 1000, bs);
    tf_fmt_iso_us(g->detected_at_ms * 1000, da);
    snprintf(price, sizeof price, "%.4f", g->price);
    snprintf(score, sizeof score, "%d", g->score);
    const char *v[] = {id, tf_sig_rule_name(g->rule), g->direction > 0 ? "long" : "short", g->ticker,
                       g->market_code, g->interval, bs, price, da, score, json_ind};
    PGresult *r = PQexecParams(x->conn,
                               "INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval,"
                               " bar_start, price, detected_at, score, indicators)"
                               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                               " ON CONFLICT (id) DO UPDATE SET rule = EXCLUDED.rule, direction = EXCLUDED.direction,"
                               " market_code = EXCLUDED.market_code, price = EXCLUDED.price,"
                               " detected_at = EXCLUDED.detected_at, score = EXCLUDED.score,"
                               " indicators = EXCLUDED.indicators",
                               11, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(x->err, sizeof x->err, "storing %s: %s", id, PQerrorMessage(x->conn));
    PQclear(r);
    if (ok) {
        const char *w[] = {id};
        r = PQexecParams(x->conn, "DELETE FROM stock_signal_returns WHERE signal_id = $1", 1, NULL, w, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) snprintf(x->err, sizeof x->err, "clearing the horizons of %s: %s", id, PQerrorMessage(x->conn));
        PQclear(r);
    }
    return ok ? 0 : -1;
}

/* Runs the engine over one ticker's series; appends its signals. */
static int run_series(bt *x, series *s)
{
    if (!s->n) return 0;
    x->ntickers++;
    x->nbars += s->n;
    char err[256];
    tf_sig_state *st = tf_sig_state_new(&x->rules, s->ticker, s->market, x->interval_ms == 60000 ? "1m" : "1d",
                                        err, sizeof err);
    if (!st) {
        snprintf(x->err, sizeof x->err, "%s", err);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        tf_signal out[TF_SIG_NRULES];
        int k = tf_sig_update(st, &s->b[i], s->start[i], s->start[i] + x->interval_ms, out, NULL, NULL);
        if (s->start[i] < x->from_ms || s->start[i] >= x->to_ms) continue;
        for (int j = 0; j < k && rc == 0; j++) {
            tf_signal *g = &out[j];
            tf_track_result res[TF_TRACK_MAX_HORIZONS];
            int applies[TF_TRACK_MAX_HORIZONS];
            tf_sbuf one = {0};
            tf_signal_json(g, &x->rules.ind, NULL, 0, &one);
            if (one.oom || !one.len) {
                free(one.b);
                x->oom = 1;
                return -1;
            }
            one.b[--one.len] = 0; /* reopen the object for "returns" */
            tf_sbuf_str(&one, ", \"returns\": {");
            int first = 1;
            for (int h = 0; h < x->nh; h++) {
                applies[h] = x->h_ms[h] >= x->interval_ms;
                if (!applies[h]) continue;
                tf_track_compute(g->direction, g->price, g->bar_start_ms, x->interval_ms, x->h_ms[h], s->t + i + 1,
                                 s->n - i - 1, x->now_ms, &res[h]);
                tf_sbuf_fmt(&one, "%s\"%s\": {\"status\": \"%s\", \"return_pct\": ", first ? "" : ", ", x->h_name[h],
                            res[h].status == TF_TRACK_FINAL ? "final" : "pending");
                num(&one, res[h].return_pct);
                tf_sbuf_str(&one, ", \"mfe_pct\": ");
                num(&one, res[h].mfe_pct);
                tf_sbuf_str(&one, ", \"mae_pct\": ");
                num(&one, res[h].mae_pct);
                tf_sbuf_str(&one, "}");
                first = 0;
                if (res[h].status == TF_TRACK_FINAL &&
                    push_outcome(&x->out[h], res[h].return_pct, res[h].mfe_pct, res[h].mae_pct, g->rule))
                    x->oom = 1;
            }
            tf_sbuf_str(&one, "}}");
            if (x->nsig++) tf_sbuf_str(&x->sig, ",\n  ");
            tf_sbuf_add(&x->sig, one.b, one.len);
            if (x->store) {
                /* the indicators object alone, for the jsonb column */
                const char *p = strstr(one.b, "\"indicators\": ");
                const char *q = p ? strstr(p, "}, \"watchlists\"") : NULL;
                if (p && q) {
                    p += strlen("\"indicators\": ");
                    char *ind = strndup(p, (size_t)(q - p + 1));
                    if (!ind) x->oom = 1;
                    else rc = store_signal(x, g, ind);
                    free(ind);
                }
            }
            free(one.b);
        }
    }
    tf_sig_state_free(st);
    return rc;
}

static void summary_json(tf_sbuf *o, const tf_track_summary *s)
{
    tf_sbuf_fmt(o, "{\"count\": %zu, \"hits\": %zu, \"hit_rate\": ", s->count, s->hits);
    num(o, s->hit_rate);
    tf_sbuf_str(o, ", \"hit_rate_ci95\": [");
    num(o, s->wilson_lo);
    tf_sbuf_str(o, ", ");
    num(o, s->wilson_hi);
    tf_sbuf_str(o, "], \"mean_return_pct\": ");
    num(o, s->mean_return);
    tf_sbuf_str(o, ", \"median_return_pct\": ");
    num(o, s->median_return);
    tf_sbuf_str(o, ", \"profit_factor\": ");
    num(o, s->profit_factor);
    tf_sbuf_str(o, ", \"mean_mfe_pct\": ");
    num(o, s->mean_mfe);
    tf_sbuf_str(o, ", \"mean_mae_pct\": ");
    num(o, s->mean_mae);
    tf_sbuf_str(o, "}");
}

static int performance_json(bt *x, tf_sbuf *o)
{
    tf_sbuf_str(o, "{");
    int first = 1;
    for (int h = 0; h < x->nh; h++) {
        if (x->h_ms[h] < x->interval_ms) continue;
        struct outc *c = &x->out[h];
        tf_track_summary s;
        if (tf_track_summarize(c->ret, c->mfe, c->mae, c->n, &s)) return -1;
        tf_sbuf_fmt(o, "%s\"%s\": {\"all\": ", first ? "" : ", ", x->h_name[h]);
        first = 0;
        summary_json(o, &s);
        tf_sbuf_str(o, ", \"by_rule\": {");
        double *r = malloc((c->n + 1) * sizeof *r), *fe = malloc((c->n + 1) * sizeof *fe),
               *ae = malloc((c->n + 1) * sizeof *ae);
        if (!r || !fe || !ae) {
            free(r), free(fe), free(ae);
            return -1;
        }
        int rf = 1;
        for (int k = 0; k < TF_SIG_NRULES; k++) {
            size_t m = 0;
            for (size_t i = 0; i < c->n; i++)
                if (c->rule[i] == k) r[m] = c->ret[i], fe[m] = c->mfe[i], ae[m] = c->mae[i], m++;
            if (!m) continue;
            if (tf_track_summarize(r, fe, ae, m, &s)) {
                free(r), free(fe), free(ae);
                return -1;
            }
            tf_sbuf_fmt(o, "%s\"%s\": ", rf ? "" : ", ", tf_sig_rule_name(k));
            rf = 0;
            summary_json(o, &s);
        }
        free(r), free(fe), free(ae);
        tf_sbuf_str(o, "}}");
    }
    tf_sbuf_str(o, "}");
    return 0;
}

static int series_push(series *s, int64_t start, const tf_ind_bar *b)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        tf_ind_bar *nb = realloc(s->b, cap * sizeof *nb);
        if (nb) s->b = nb;
        tf_track_bar *nt = realloc(s->t, cap * sizeof *nt);
        if (nt) s->t = nt;
        int64_t *ns = realloc(s->start, cap * sizeof *ns);
        if (ns) s->start = ns;
        if (!nb || !nt || !ns) return -1;
        s->cap = cap;
    }
    s->b[s->n] = *b;
    s->t[s->n] = (tf_track_bar){start, b->high, b->low, b->close};
    s->start[s->n] = start;
    s->n++;
    return 0;
}

static int backtest(tf_config *cfg)
{
    tf_err e = {0};
    bt x;
    memset(&x, 0, sizeof x);
    int64_t us;
    if (!cfg->backtest_from[0] || tf_parse_iso_us(cfg->backtest_from, strlen(cfg->backtest_from), &us))
        return fail(2, "--from T1 (ISO-8601) is required");
    x.from_ms = tf_floor_div(us, 1000);
    if (!cfg->backtest_to[0] || tf_parse_iso_us(cfg->backtest_to, strlen(cfg->backtest_to), &us))
        return fail(2, "--to T2 (ISO-8601) is required");
    x.to_ms = tf_floor_div(us, 1000);
    if (x.to_ms <= x.from_ms) return fail(2, "--to must be after --from");
    x.interval_ms = strcmp(cfg->backtest_interval, "1m") == 0 ? 60000 : 86400000;
    x.store = cfg->backtest_store;
    x.now_ms = tf_now_us() / 1000;
    if (tf_sig_rules_from_config(&x.rules, cfg, x.err, sizeof x.err)) return fail(2, x.err);
    x.nh = tf_track_parse_horizons(cfg->signals_horizons, x.h_ms, x.h_name, TF_TRACK_MAX_HORIZONS, x.err,
                                   sizeof x.err);
    if (x.nh < 0) return fail(2, x.err);
    int64_t maxh = 0;
    for (int h = 0; h < x.nh; h++)
        if (x.h_ms[h] > maxh) maxh = x.h_ms[h];

    x.conn = tf_pg_connect(cfg->pg_url, &e);
    if (!x.conn) return fail(1, e.msg);
    int code = 1;
    tf_sbuf q = {0}, o = {0};
    PGresult *r = NULL;
    if (tf_schema_migrate(x.conn, cfg, NULL, &e)) {
        snprintf(x.err, sizeof x.err, "%s", e.msg);
        goto out;
    }
    /* materialize what the triggers marked, so the rollups are complete */
    for (;;) {
        long n = tf_rollup_refresh(x.conn, 100000, &e);
        if (n < 0) {
            snprintf(x.err, sizeof x.err, "%s", e.msg);
            goto out;
        }
        if (n == 0) break;
    }
    r = PQexec(x.conn, "SELECT to_regclass('market_bars') IS NOT NULL");
    int have_imported = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    const char *tab = x.interval_ms == 60000 ? "stock_bars_1m" : "stock_bars_1d";
    const char *ivl = x.interval_ms == 60000 ? "1m" : "1d";
    /* $1 end (exclusive), $2 tickers ('' = all) */
    tf_sbuf_fmt(&q,
                "WITH t AS (SELECT ticker, market_code, bucket, open, high, low, close, volume FROM %s"
                " WHERE trade_type = '*' AND bucket < $1 AND ($2 = '' OR ticker = ANY (string_to_array($2, ','))))"
                " SELECT ticker, max(market_code), (extract(epoch FROM bucket) * 1000)::bigint, open::float8,"
                " high::float8, low::float8, close::float8, volume::float8 FROM (SELECT * FROM t",
                tab);
    if (have_imported)
        tf_sbuf_fmt(&q,
                    " UNION ALL SELECT m.ticker, m.market_code, m.bucket, m.open, m.high, m.low, m.close, m.volume"
                    " FROM market_bars m WHERE m.\"interval\" = '%s' AND m.bucket < $1"
                    " AND ($2 = '' OR m.ticker = ANY (string_to_array($2, ',')))"
                    " AND NOT EXISTS (SELECT 1 FROM t WHERE t.ticker = m.ticker AND t.bucket = m.bucket)",
                    ivl);
    /* one row per (ticker, bucket) even if two markets share a ticker */
    tf_sbuf_str(&q, ") b GROUP BY ticker, bucket, open, high, low, close, volume ORDER BY ticker, bucket");
    if (q.oom) {
        snprintf(x.err, sizeof x.err, "out of memory");
        goto out;
    }
    char end[40];
    tf_fmt_iso_us((x.to_ms + maxh + x.interval_ms) * 1000, end);
    const char *pv[] = {end, cfg->gen_tickers};
    if (!PQsendQueryParams(x.conn, q.b, 2, NULL, pv, NULL, NULL, 0) || !PQsetSingleRowMode(x.conn)) {
        snprintf(x.err, sizeof x.err, "bars query: %s", PQerrorMessage(x.conn));
        goto out;
    }
    int rc = 0;
    /* Rows stream in (single-row mode) grouped by ticker; the engine runs
     * after the query is drained because --store writes on the same
     * connection. */
    series *all = NULL;
    size_t nall = 0, capall = 0;
    while ((r = PQgetResult(x.conn))) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE) {
            const char *tk = PQgetvalue(r, 0, 0);
            if (!nall || strcmp(all[nall - 1].ticker, tk) != 0) {
                if (nall == capall) {
                    size_t cap = capall ? capall * 2 : 64;
                    series *na = realloc(all, cap * sizeof *na);
                    if (!na) {
                        rc = -1;
                        x.oom = 1;
                        PQclear(r);
                        continue;
                    }
                    all = na, capall = cap;
                }
                memset(&all[nall], 0, sizeof all[nall]);
                snprintf(all[nall].ticker, sizeof all[nall].ticker, "%s", tk);
                snprintf(all[nall].market, sizeof all[nall].market, "%s", PQgetvalue(r, 0, 1));
                nall++;
            }
            tf_ind_bar b = {atof(PQgetvalue(r, 0, 3)), atof(PQgetvalue(r, 0, 4)), atof(PQgetvalue(r, 0, 5)),
                            atof(PQgetvalue(r, 0, 6)), atof(PQgetvalue(r, 0, 7))};
            if (rc == 0 && series_push(&all[nall - 1], atoll(PQgetvalue(r, 0, 2)), &b)) rc = -1, x.oom = 1;
        } else if (st != PGRES_TUPLES_OK) {
            snprintf(x.err, sizeof x.err, "bars query: %s", PQresultErrorMessage(r));
            rc = -1;
        }
        PQclear(r);
    }
    r = NULL;
    if (rc == 0 && x.store) {
        r = PQexec(x.conn, "BEGIN");
        PQclear(r);
        r = NULL;
    }
    for (size_t i = 0; i < nall; i++) {
        if (rc == 0) rc = run_series(&x, &all[i]);
        free(all[i].b), free(all[i].t), free(all[i].start);
    }
    free(all);
    if (x.store && rc == 0) {
        if (tf_signal_finalize(x.conn, cfg, x.now_ms, LONG_MAX, &e) < 0) {
            snprintf(x.err, sizeof x.err, "track record: %s", e.msg);
            rc = -1;
        }
    }
    if (x.store) {
        r = PQexec(x.conn, rc == 0 ? "COMMIT" : "ROLLBACK");
        if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(x.err, sizeof x.err, "commit: %s", PQerrorMessage(x.conn));
            rc = -1;
        }
        PQclear(r);
        r = NULL;
    }
    if (rc) {
        if (x.oom) snprintf(x.err, sizeof x.err, "out of memory");
        goto out;
    }
    tf_sbuf_fmt(&o, "{\"from\": \"%s\", \"to\": \"%s\", \"interval\": \"%s\", \"tickers\": %zu, \"bars\": %zu,"
                    " \"stored\": %s, \"signals\": [\n  ",
                cfg->backtest_from, cfg->backtest_to, ivl, x.ntickers, x.nbars, x.store ? "true" : "false");
    if (x.sig.len) tf_sbuf_add(&o, x.sig.b, x.sig.len);
    tf_sbuf_str(&o, "],\n \"performance\": ");
    if (performance_json(&x, &o)) x.oom = 1;
    tf_sbuf_str(&o, "}\n");
    if (o.oom || x.sig.oom || x.oom) {
        snprintf(x.err, sizeof x.err, "out of memory");
        goto out;
    }
    fwrite(o.b, 1, o.len, stdout);
    code = 0;
out:
    if (code) fail(code, x.err);
    PQfinish(x.conn);
    free(q.b);
    free(o.b);
    free(x.sig.b);
    for (int h = 0; h < TF_TRACK_MAX_HORIZONS; h++)
        free(x.out[h].ret), free(x.out[h].mfe), free(x.out[h].mae), free(x.out[h].rule);
    return code;
}

int tf_cmd_signals(tf_config *cfg, int npos, const char **pos)
{
    if (npos == 0 || !strcmp(pos[0], "help")) {
        usage(npos ? stdout : stderr);
        return npos ? 0 : 2;
    }
    if (strcmp(pos[0], "backtest") != 0 || npos > 1) {
        fprintf(stderr, "tickflow signals: unknown subcommand '%s'\n", pos[npos > 1 ? 1 : 0]);
        usage(stderr);
        return 2;
    }
    return backtest(cfg);
}
