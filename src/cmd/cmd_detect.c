/*
 * cmd_detect.c - `tickflow detect`: the anomaly rules (process/rules.h, the
 * same engine and settings as the live processor) over stored trades, so
 * back-dated and imported history gets its anomalies too (the live
 * processor refuses trades far behind its watermark).
 *
 *   tickflow detect --from T1 --to T2 [--tickers A,B] [--store]
 *
 * One streamed query (libpq single-row mode: constant memory here) reads
 * stock_trades in event-time order (ties by id, as the live reorder
 * releases them) from T1 - 90 s (the rules' warm-up, like the processor's
 * state rebuild) to T2; anomalies whose event time is in [T1, T2) are
 * counted and, with --store, inserted into stock_anomalies with the live
 * processor's deterministic ids (ON CONFLICT (id) DO NOTHING), so a re-run,
 * or a range the live processor already scored, writes nothing twice.
 * detected_at is the wall clock of the run.
 *
 * Prints one JSON object on stdout:
 *   {"from","to","trades","tickers","anomalies","by_type":{TYPE:n},
 *    "store":bool,"stored":n,"elapsed_ms"}
 * Exit 0 ok, 2 bad arguments, 1 PostgreSQL failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "process/anomaly_store.h"
#include "process/rules.h"
#include "store/pg.h"
#include "store/schema.h"

#define WARMUP_S 90     /* as the processor's per-ticker state rebuild */
#define BATCH TF_ANOMALY_STORE_ROWS /* anomaly rows per INSERT */

typedef tf_anomaly_msg pend; /* process/anomaly_store.h */

typedef struct det {
    PGconn *rd, *wr;
    int store;
    pend batch[BATCH];
    int nb;
    int64_t stored;
    char err[512];
} det;

static int fail(int code, const char *err)
{
    return tf_cmd_fail("detect", code, code == 2 ? "invalid arguments" : "detect failed", err);
}

/* Inserts the batch with the processor's own statement (anomaly_store.h). */
static int flush_batch(det *d)
{
    if (d->nb == 0) return 0;
    PGresult *r;
    int64_t added = tf_anomaly_store(d->wr, d->batch, (size_t)d->nb, &r);
    if (added >= 0) d->stored += added;
    else snprintf(d->err, sizeof d->err, "INSERT stock_anomalies: %s", PQerrorMessage(d->wr));
    PQclear(r);
    d->nb = 0;
    return added >= 0 ? 0 : -1;
}

static int add_anomaly(det *d, const tf_anomaly *a)
{
    if (!d->store) return 0;
    pend *p = &d->batch[d->nb];
    p->a = *a;
    p->len = tf_anomaly_json(a, p->json, sizeof p->json);
    if (p->len < 0) return 0;
    if (++d->nb == BATCH) return flush_batch(d);
    return 0;
}

/* Parses --from/--to/--tickers/--store out of the command's own flags. */
static int parse_args(int npos, const char **pos, const char **from, const char **to, const char **tickers,
                      int *store, char *err, size_t errlen)
{
    for (int i = 0; i < npos; i++) {
        const char *a = pos[i], *v = NULL;
        size_t len = strcspn(a, "=");
        if (a[len] == '=') v = a + len + 1;
        const char **dst = NULL;
        if (len == 6 && !strncmp(a, "--from", 6)) dst = from;
        else if (len == 4 && !strncmp(a, "--to", 4)) dst = to;
        else if (len == 9 && !strncmp(a, "--tickers", 9)) dst = tickers;
        else if (!strcmp(a, "--store")) {
            *store = 1;
            continue;
        } else {
            snprintf(err, errlen, "unexpected argument '%.100s'", a);
            return -1;
        }
        if (!v) {
            if (i + 1 >= npos) {
                snprintf(err, errlen, "%.20s needs a value", a);
                return -1;
            }
            v = pos[++i];
        }
        *dst = v;
    }
    return 0;
}

int tf_cmd_detect(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    const char *from_s = NULL, *to_s = NULL, *tickers = NULL;
    det d;
    memset(&d, 0, sizeof d);
    if (parse_args(npos, pos, &from_s, &to_s, &tickers, &d.store, d.err, sizeof d.err)) return fail(2, d.err);
    int64_t from_us, to_us;
    if (!from_s || tf_parse_iso_us(from_s, strlen(from_s), &from_us) < 0)
        return fail(2, "--from T1 (ISO-8601) is required");
    if (!to_s || tf_parse_iso_us(to_s, strlen(to_s), &to_us) < 0) return fail(2, "--to T2 (ISO-8601) is required");
    if (to_us <= from_us) return fail(2, "--to must be after --from");
    tf_rules_cfg rc;
    tf_rules_cfg_from_config(&rc, cfg);
    int64_t t0 = tf_mono_us();

    d.rd = tf_pg_connect(cfg->pg_url, &e);
    if (!d.rd) return fail(1, e.msg);
    int code = 1;
    tf_rules *rules = NULL;
    if (tf_schema_migrate(d.rd, cfg, NULL, &e) || (d.store && !(d.wr = tf_pg_connect(cfg->pg_url, &e)))) {
        snprintf(d.err, sizeof d.err, "%s", e.msg);
        goto out;
    }
    rules = tf_rules_new(&rc);
    if (!rules) {
        snprintf(d.err, sizeof d.err, "out of memory");
        goto out;
    }
    char fw[40], ts[40], ws[16];
    tf_fmt_iso_us(from_us, fw);
    tf_fmt_iso_us(to_us, ts);
    snprintf(ws, sizeof ws, "%d", WARMUP_S);
    /* "{A,B}" as a text[] literal; tickers never contain quotes or braces */
    char arr[4096] = "";
    if (tickers && *tickers) snprintf(arr, sizeof arr, "{%s}", tickers);
    const char *vals[4] = {fw, ts, ws, arr[0] ? arr : NULL};
    if (!PQsendQueryParams(d.rd,
                           "SELECT id, ticker, market_code, trade_type, price::text, quantity,"
                           " (extract(epoch from event_time) * 1000000)::bigint FROM stock_trades"
                           " WHERE event_time >= $1::timestamptz - $3::int * interval '1 s'"
                           " AND event_time < $2::timestamptz AND ($4::text[] IS NULL OR ticker = ANY($4::text[]))"
                           " ORDER BY event_time, id",
                           4, NULL, vals, NULL, NULL, 0) ||
        !PQsetSingleRowMode(d.rd)) {
        snprintf(d.err, sizeof d.err, "query stock_trades: %s", PQerrorMessage(d.rd));
        goto out;
    }
    int64_t trades = 0, anomalies = 0, by_type[TF_ANOM_NTYPES] = {0};
    int failed = 0;
    PGresult *r;
    while ((r = PQgetResult(d.rd)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && !failed) {
            tf_trade x;
            memset(&x, 0, sizeof x);
            const char *tk = PQgetvalue(r, 0, 1), *mk = PQgetvalue(r, 0, 2), *px = PQgetvalue(r, 0, 4);
            if (tf_parse_i64(PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)), &x.id) == 0 &&
                strlen(tk) < sizeof x.ticker && tf_market_valid(mk, strlen(mk)) &&
                tf_parse_fixed(px, strlen(px), 4, &x.price_e4) == 0 &&
                tf_parse_i64(PQgetvalue(r, 0, 5), strlen(PQgetvalue(r, 0, 5)), &x.quantity) == 0 &&
                tf_parse_i64(PQgetvalue(r, 0, 6), strlen(PQgetvalue(r, 0, 6)), &x.event_us) == 0) {
                snprintf(x.ticker, sizeof x.ticker, "%s", tk);
                snprintf(x.market, sizeof x.market, "%s", mk);
                x.side = PQgetvalue(r, 0, 3)[0] == 'B' ? 'B' : 'S';
                tf_anomaly out[8];
                int n = tf_rules_on_trade(rules, &x, 0, tf_now_us(), out, 8);
                if (x.event_us >= from_us) trades++;
                for (int i = 0; i < n; i++) {
                    if (out[i].event_us < from_us) continue; /* the warm-up's: not in the range */
                    anomalies++;
                    by_type[out[i].type]++;
                    if (add_anomaly(&d, &out[i])) failed = 1;
                }
            }
        } else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && !failed) {
            snprintf(d.err, sizeof d.err, "query stock_trades: %s", PQresultErrorMessage(r));
            failed = 1;
        }
        PQclear(r);
    }
    if (failed || (d.store && flush_batch(&d))) goto out;
    tf_rules_stats rs;
    tf_rules_get_stats(rules, &rs);
    printf("{\"from\":\"%s\",\"to\":\"%s\",\"trades\":%lld,\"tickers\":%lld,\"anomalies\":%lld,\"by_type\":{",
           fw, ts, (long long)trades, (long long)rs.tickers, (long long)anomalies);
    for (int k = 0; k < TF_ANOM_NTYPES; k++)
        printf("%s\"%s\":%lld", k ? "," : "", tf_anomaly_name((tf_anomaly_type)k), (long long)by_type[k]);
    printf("},\"store\":%s,\"stored\":%lld,\"elapsed_ms\":%lld}\n", d.store ? "true" : "false",
           (long long)d.stored, (long long)((tf_mono_us() - t0) / 1000));
    fflush(stdout);
    code = 0;
out:
    tf_rules_free(rules);
    if (d.wr) PQfinish(d.wr);
    PQfinish(d.rd);
    return code ? fail(code, d.err) : 0;
}
