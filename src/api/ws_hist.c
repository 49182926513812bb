/* ws_hist.c - see ws_hist.h. */
#include "api/ws_hist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

__extension__ typedef unsigned __int128 u128;

typedef struct hq {
    tf_ws_hist_cb cb;
    void *ud;
    int64_t interval_ms;
    size_t max_rows;
} hq;

int tf_ws_hist_parse_e4_128(const char *s, size_t len, uint64_t *lo, uint64_t *hi)
{
    u128 v = 0;
    size_t i = 0;
    int digits = 0, frac = -1;
    for (; i < len; i++) {
        char ch = s[i];
        if (ch == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (ch < '0' || ch > '9') return -1;
        if (frac >= 0 && ++frac > 4) {
            if (ch != '0') return -1; /* more precision than 10^-4: not a sum of our prices */
            continue;
        }
        if (v > ((u128)1 << 120)) return -1;
        v = v * 10 + (u128)(ch - '0');
        digits++;
    }
    if (!digits) return -1;
    for (int f = frac < 0 ? 0 : (frac > 4 ? 4 : frac); f < 4; f++) v *= 10;
    *lo = (uint64_t)v;
    *hi = (uint64_t)(v >> 64);
    return 0;
}

static int64_t geti(const PGresult *res, int r, int c)
{
    int64_t v = 0;
    const char *s = PQgetvalue(res, r, c);
    tf_parse_i64(s, strlen(s), &v);
    return v;
}

static int64_t getp(const PGresult *res, int r, int c)
{
    int64_t v = 0;
    const char *s = PQgetvalue(res, r, c);
    tf_parse_fixed(s, strlen(s), 4, &v);
    return v;
}

static void getstr(const PGresult *res, int r, int c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetvalue(res, r, c));
}

static void on_result(const PGresult *res, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    hq *q = ud;
    if (err) {
        q->cb(q->ud, err, msg, NULL, 0, 0);
        free(q);
        return;
    }
    int n = PQntuples(res);
    if ((size_t)n > q->max_rows) {
        q->cb(q->ud, 0, NULL, NULL, 0, 1);
        free(q);
        return;
    }
    tf_ws_hist_row *rows = calloc(n ? (size_t)n : 1, sizeof *rows);
    if (!rows) {
        q->cb(q->ud, TF_PG_ECONN, "out of memory", NULL, 0, 0);
        free(q);
        return;
    }
    for (int i = 0; i < n; i++) {
        tf_ws_hist_row *w = &rows[i];
        if (q->interval_ms == 0) {
            /* id, ticker, market_code, trade_type, price, quantity, event_us */
            tf_trade *t = &w->t;
            t->id = geti(res, i, 0);
            getstr(res, i, 1, t->ticker, sizeof t->ticker);
            getstr(res, i, 2, t->market, sizeof t->market);
            t->side = PQgetvalue(res, i, 3)[0] == 'B' ? 'B' : 'S';
            t->price_e4 = getp(res, i, 4);
            t->quantity = geti(res, i, 5);
            t->event_us = geti(res, i, 6);
            memcpy(w->ticker, t->ticker, sizeof w->ticker);
        } else {
            /* ticker, bucket_us, open, high, low, close, volume, count, notional, buy, sell */
            tf_candle *c = &w->c;
            getstr(res, i, 0, w->ticker, sizeof w->ticker);
            c->interval_ms = q->interval_ms;
            c->start_us = geti(res, i, 1);
            c->open_e4 = getp(res, i, 2);
            c->high_e4 = getp(res, i, 3);
            c->low_e4 = getp(res, i, 4);
            c->close_e4 = getp(res, i, 5);
            c->volume = geti(res, i, 6);
            c->count = geti(res, i, 7);
            const char *nv = PQgetvalue(res, i, 8);
            tf_ws_hist_parse_e4_128(nv, strlen(nv), &c->pv_lo, &c->pv_hi);
            c->buy_volume = geti(res, i, 9);
            c->sell_volume = geti(res, i, 10);
        }
    }
    q->cb(q->ud, 0, NULL, rows, (size_t)n, 0);
    free(rows);
    free(q);
}

/* "{A,B}": tickers are [A-Z0-9.-], nothing to quote in an array literal. */
static char *array_lit(const char (*t)[TF_TICKER_MAX], size_t n)
{
    char *s = malloc(3 + n * (TF_TICKER_MAX + 1));
    if (!s) return NULL;
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) s[o++] = ',';
        size_t l = strnlen(t[i], TF_TICKER_MAX);
        memcpy(s + o, t[i], l);
        o += l;
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

int tf_ws_hist_fetch(tf_pga *db, const tf_ws_hist_req *r, tf_ws_hist_cb cb, void *ud)
{
    if (!db) return TF_PG_ECONN;
    char from[40], before[40], ivs[32], lim[32], nstr[32];
    tf_fmt_iso_us(r->from_us == INT64_MIN ? -62135596800LL * TF_US_PER_SEC : r->from_us, from);
    tf_fmt_iso_us(r->before_us == INT64_MAX ? 253402300799LL * TF_US_PER_SEC : r->before_us, before);
    snprintf(ivs, sizeof ivs, "%" PRId64 " milliseconds", r->interval_ms);
    snprintf(lim, sizeof lim, "%zu", r->max_rows + 1); /* one more: "too many" */
    snprintf(nstr, sizeof nstr, "%" PRId64, r->last_n);
    char *arr = array_lit(r->tickers, r->wildcard ? 0 : r->ntickers);
    if (!arr) return TF_PG_ECONN;
    const char *sql;
    /* $1 tickers, $2 all?, $3 from, $4 before, $5 interval, $6 limit, $7 n */
    const char *vals[7] = {arr, r->wildcard ? "t" : "f", from, before, ivs, lim, nstr};
    static const char raw_since[] =
        "SELECT t.id, t.ticker, t.market_code, t.trade_type, t.price::text, t.quantity,"
        " (extract(epoch from t.event_time) * 1000000)::int8"
        " FROM stock_trades t WHERE t.event_time >= $3::timestamptz"
        " AND ($2::bool OR t.ticker = ANY($1::text[]))"
        " AND $4::text IS NOT NULL AND $5::text IS NOT NULL AND $7::text IS NOT NULL"
        " ORDER BY t.event_time, t.id LIMIT $6::int8";
    static const char raw_last_list[] =
        "SELECT x.* FROM unnest($1::text[]) tk(ticker), LATERAL ("
        " SELECT t.id, t.ticker, t.market_code, t.trade_type, t.price::text, t.quantity,"
        " (extract(epoch from t.event_time) * 1000000)::int8 AS us"
        " FROM stock_trades t WHERE t.ticker = tk.ticker ORDER BY t.event_time DESC, t.id DESC LIMIT $7::int8) x"
        " WHERE NOT $2::bool AND $3::text IS NOT NULL AND $4::text IS NOT NULL AND $5::text IS NOT NULL"
        " ORDER BY x.us, x.id LIMIT $6::int8";
    static const char raw_last_all[] =
        "SELECT * FROM (SELECT t.id, t.ticker, t.market_code, t.trade_type, t.price::text, t.quantity,"
        " (extract(epoch from t.event_time) * 1000000)::int8 AS us"
        " FROM stock_trades t WHERE $2::bool AND $1::text IS NOT NULL AND $3::text IS NOT NULL"
        " AND $4::text IS NOT NULL AND $5::text IS NOT NULL"
        " ORDER BY t.event_time DESC, t.id DESC LIMIT $7::int8) x ORDER BY x.us, x.id LIMIT $6::int8";
    /* open/close: the trades with the smallest/largest (event_time, id), as
     * event/candle.h defines them */
    static const char candles[] =
        "SELECT t.ticker, (extract(epoch from date_bin($5::interval, t.event_time, timestamptz 'epoch'))"
        " * 1000000)::int8 AS b,"
        " (array_agg(t.price ORDER BY t.event_time, t.id))[1]::text, max(t.price)::text, min(t.price)::text,"
        " (array_agg(t.price ORDER BY t.event_time DESC, t.id DESC))[1]::text,"
        " sum(t.quantity)::int8, count(*), sum(t.price * t.quantity)::text,"
        " coalesce(sum(t.quantity) FILTER (WHERE t.trade_type = 'BUY'), 0)::int8,"
        " coalesce(sum(t.quantity) FILTER (WHERE t.trade_type = 'SELL'), 0)::int8"
        " FROM stock_trades t WHERE t.event_time >= $3::timestamptz AND t.event_time < $4::timestamptz"
        " AND ($2::bool OR t.ticker = ANY($1::text[])) AND $7::text IS NOT NULL"
        " GROUP BY 1, 2 ORDER BY 2, 1 LIMIT $6::int8";
    if (r->interval_ms > 0) sql = candles;
    else if (r->last_n > 0) sql = r->wildcard ? raw_last_all : raw_last_list;
    else sql = raw_since;
    hq *q = calloc(1, sizeof *q);
    if (!q) {
        free(arr);
        return TF_PG_ECONN;
    }
    q->cb = cb;
    q->ud = ud;
    q->interval_ms = r->interval_ms;
    q->max_rows = r->max_rows;
    int rc = tf_pga_query(db, sql, 7, vals, 0, on_result, q);
    free(arr);
    if (rc != 0) free(q);
    return rc;
}
