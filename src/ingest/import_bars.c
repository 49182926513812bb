/*
 * import_bars.c - `tickflow import bars FILE --ticker T [--market M]
 * [--interval 1d]`: OHLCV CSV as Yahoo Finance, Stooq and brokers export it
 * (Date or Datetime, Open, High, Low, Close, optional Adj Close, Volume; a
 * nameless first column is the date, as in backtesting's GOOG.csv) into
 * market_bars, upserted by (ticker, interval, bucket).
 *
 * Prices are kept as the exact decimals written (numeric without a scale).
 * Daily bars take the calendar date as written (its time and offset, if
 * any, are ignored): bucket = that date 00:00 UTC, the same bucket as the
 * rollup's 1d bars. Intraday bars take the instant (ISO-8601 with offset).
 *
 * Each row is checked: numbers are plain positive decimals, high >=
 * max(open, close), low <= min(open, close), volume >= 0, and no bucket
 * twice in the file. One input is one transaction: rows are staged by text
 * COPY into a temporary table and upserted at the end, so under abort a bad
 * row leaves nothing of the file behind. Re-importing is not refused: an
 * upsert of the same file changes nothing.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "ingest/import_run.h"
#include "ingest/import_src.h"
#include "store/pg.h"
#include "store/schema.h"

enum { B_DATE, B_OPEN, B_HIGH, B_LOW, B_CLOSE, B_ADJ, B_VOL, B_N };
static const char *const bcol[B_N] = {"Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"};

typedef struct bars {
    const tf_import_opts *o;
    tf_import_result *res;
    PGconn *conn;
    tf_imp_rejects *rej;
    const char *name;
    int header_done, ncols;
    int col[B_N];
    int daily;
    int64_t *keys, *klines; /* open addressing: bucket -> line; key INT64_MIN = empty */
    size_t cap, used;
    tf_sbuf out;
    int64_t rows;
} bars;

#define EMPTY INT64_MIN

/* Returns the line a bucket was first seen on, or 0 after adding it; -1 oom. */
static int64_t seen(bars *b, int64_t key, int64_t line)
{
    if (b->used * 2 >= b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        int64_t *nk = malloc(nc * sizeof *nk), *nl = malloc(nc * sizeof *nl);
        if (!nk || !nl) {
            free(nk);
            free(nl);
            return -1;
        }
        for (size_t i = 0; i < nc; i++)
            nk[i] = EMPTY;
        for (size_t i = 0; i < b->cap; i++) {
            if (b->keys[i] == EMPTY)
                continue;
            size_t at = (size_t)(((uint64_t)b->keys[i] * 0x9E3779B97F4A7C15ULL) >> 20) & (nc - 1);
            while (nk[at] != EMPTY)
                at = (at + 1) & (nc - 1);
            nk[at] = b->keys[i];
            nl[at] = b->klines[i];
        }
        free(b->keys);
        free(b->klines);
        b->keys = nk;
        b->klines = nl;
        b->cap = nc;
    }
    size_t at = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 20) & (b->cap - 1);
    while (b->keys[at] != EMPTY) {
        if (b->keys[at] == key)
            return b->klines[at];
        at = (at + 1) & (b->cap - 1);
    }
    b->keys[at] = key;
    b->klines[at] = line;
    b->used++;
    return 0;
}

/* 0 to go on, 1 to stop (abort). */
static int bad_bar(bars *b, int64_t line, const char *column, const char *why, const char *text, size_t tl)
{
    char where[160];
    tf_imp_where(where, sizeof where, b->name, line, column);
    if (!b->o->skip) {
        snprintf(b->res->error, sizeof b->res->error,
                 "%s: %s; aborted (--on-error abort): nothing of %s was written", where, why, b->name);
        b->res->code = 1;
        return 1;
    }
    return tf_imp_skip(b->res, b->rej, 10, b->name, line, column, why, text, tl) ? 1 : 0;
}

static int header(bars *b, const tf_csv_field *f, int nf, int64_t line)
{
    for (int k = 0; k < B_N; k++)
        b->col[k] = -1;
    b->ncols = nf;
    for (int i = 0; i < nf; i++) {
        char nm[32];
        size_t k = 0;
        const char *p = f[i].p;
        size_t l = f[i].len;
        tf_imp_trim(&p, &l);
        for (size_t j = 0; j < l && k + 1 < sizeof nm; j++)
            if (p[j] != ' ' && p[j] != '_')
                nm[k++] = (char)(p[j] >= 'A' && p[j] <= 'Z' ? p[j] + 32 : p[j]);
        nm[k] = '\0';
        int role = -1;
        if ((i == 0 && l == 0) || !strcmp(nm, "date") || !strcmp(nm, "datetime") || !strcmp(nm, "timestamp") ||
            !strcmp(nm, "time"))
            role = B_DATE;
        else if (!strcmp(nm, "open"))
            role = B_OPEN;
        else if (!strcmp(nm, "high"))
            role = B_HIGH;
        else if (!strcmp(nm, "low"))
            role = B_LOW;
        else if (!strcmp(nm, "close"))
            role = B_CLOSE;
        else if (!strcmp(nm, "adjclose"))
            role = B_ADJ;
        else if (!strcmp(nm, "volume") || !strcmp(nm, "vol"))
            role = B_VOL;
        if (role < 0)
            continue;
        if (b->col[role] >= 0) {
            snprintf(b->res->error, sizeof b->res->error, "%s:%lld: two %s columns", b->name,
                     (long long)line, bcol[role]);
            b->res->code = 2;
            return 1;
        }
        b->col[role] = i;
    }
    for (int k = 0; k <= B_CLOSE; k++)
        if (b->col[k] < 0) {
            snprintf(b->res->error, sizeof b->res->error,
                     "%s:%lld: no %s column (want Date or Datetime, Open, High, Low, Close,"
                     " [Adj Close], [Volume])",
                     b->name, (long long)line, bcol[k]);
            b->res->code = 2;
            return 1;
        }
    b->header_done = 1;
    return 0;
}

static int on_record(void *arg, const tf_csv_field *f, int nf, int64_t line, const char *text, size_t tl,
                     const char *bad)
{
    bars *b = arg;
    if (bad) {
        if (!b->header_done) {
            snprintf(b->res->error, sizeof b->res->error, "%s:%lld: bad header: %s", b->name,
                     (long long)line, bad);
            b->res->code = 2;
            return 1;
        }
        b->res->read++;
        return bad_bar(b, line, NULL, bad, text, tl);
    }
    if (!b->header_done)
        return header(b, f, nf, line);
    b->res->read++;
    char why[256];
    if (nf != b->ncols) {
        snprintf(why, sizeof why, "%d fields where the header has %d", nf, b->ncols);
        return bad_bar(b, line, NULL, why, text, tl);
    }
    const char *v[B_N];
    size_t vl[B_N];
    for (int k = 0; k < B_N; k++) {
        v[k] = NULL;
        vl[k] = 0;
        if (b->col[k] >= 0) {
            v[k] = f[b->col[k]].p;
            vl[k] = f[b->col[k]].len;
            tf_imp_trim(&v[k], &vl[k]);
        }
    }
    int64_t bucket;
    if (b->daily) {
        if (vl[B_DATE] < 10 || tf_parse_iso_us(v[B_DATE], 10, &bucket) != 0) {
            snprintf(why, sizeof why, "'%.*s' is not a date (YYYY-MM-DD)", vl[B_DATE] > 40 ? 40 : (int)vl[B_DATE],
                     v[B_DATE]);
            return bad_bar(b, line, bcol[B_DATE], why, text, tl);
        }
    } else if (tf_parse_iso_us(v[B_DATE], vl[B_DATE], &bucket) != 0) {
        snprintf(why, sizeof why, "'%.*s' is not an ISO-8601 time", vl[B_DATE] > 40 ? 40 : (int)vl[B_DATE],
                 v[B_DATE]);
        return bad_bar(b, line, bcol[B_DATE], why, text, tl);
    }
    for (int k = B_OPEN; k <= B_ADJ; k++) {
        if (k == B_ADJ && (!v[k] || vl[k] == 0))
            continue;
        int zero = 1;
        for (size_t j = 0; j < vl[k]; j++)
            zero &= v[k][j] == '0' || v[k][j] == '.';
        if (!tf_imp_num_valid(v[k], vl[k]) || zero) {
            snprintf(why, sizeof why, "'%.*s' is not a price (a positive decimal)", vl[k] > 40 ? 40 : (int)vl[k], v[k]);
            return bad_bar(b, line, bcol[k], why, text, tl);
        }
    }
    int64_t vol = 0;
    if (v[B_VOL] && vl[B_VOL]) {
        if (v[B_VOL][0] == '-') {
            snprintf(why, sizeof why, "volume must be >= 0");
            return bad_bar(b, line, bcol[B_VOL], why, text, tl);
        }
        if (tf_imp_decimal(v[B_VOL], vl[B_VOL], 0, &vol) != 0) {
            snprintf(why, sizeof why, "'%.*s' is not a volume (a whole number >= 0)",
                     vl[B_VOL] > 40 ? 40 : (int)vl[B_VOL], v[B_VOL]);
            return bad_bar(b, line, bcol[B_VOL], why, text, tl);
        }
    }
#define CMP(x, y) tf_imp_num_cmp(v[x], vl[x], v[y], vl[y])
    if (CMP(B_HIGH, B_OPEN) < 0 || CMP(B_HIGH, B_CLOSE) < 0) {
        snprintf(why, sizeof why, "high %.*s is below max(open %.*s, close %.*s)", (int)vl[B_HIGH], v[B_HIGH],
                 (int)vl[B_OPEN], v[B_OPEN], (int)vl[B_CLOSE], v[B_CLOSE]);
        return bad_bar(b, line, bcol[B_HIGH], why, text, tl);
    }
    if (CMP(B_LOW, B_OPEN) > 0 || CMP(B_LOW, B_CLOSE) > 0) {
        snprintf(why, sizeof why, "low %.*s is above min(open %.*s, close %.*s)", (int)vl[B_LOW], v[B_LOW],
                 (int)vl[B_OPEN], v[B_OPEN], (int)vl[B_CLOSE], v[B_CLOSE]);
        return bad_bar(b, line, bcol[B_LOW], why, text, tl);
    }
#undef CMP
    int64_t first = seen(b, bucket, line);
    if (first < 0) {
        snprintf(b->res->error, sizeof b->res->error, "out of memory");
        b->res->code = 1;
        return 1;
    }
    if (first > 0) {
        char iso[40];
        tf_fmt_iso_us(bucket, iso);
        snprintf(why, sizeof why, "duplicate %s %s (first on line %lld)", b->daily ? "date" : "bar",
                 b->daily ? (iso[10] = '\0', iso) : iso, (long long)first);
        return bad_bar(b, line, bcol[B_DATE], why, text, tl);
    }
    char iso[40];
    tf_fmt_iso_us(bucket, iso);
    tf_sbuf_str(&b->out, iso);
    for (int k = B_OPEN; k <= B_ADJ; k++) {
        tf_sbuf_add(&b->out, "\t", 1);
        if (v[k] && vl[k])
            tf_sbuf_add(&b->out, v[k], vl[k]);
        else
            tf_sbuf_str(&b->out, "\\N");
    }
    tf_sbuf_fmt(&b->out, "\t%lld\n", (long long)vol);
    b->rows++;
    char err[512];
    int rc = tf_imp_copy_put(b->conn, &b->out, 0, err, sizeof err);
    if (rc) {
        snprintf(b->res->error, sizeof b->res->error, "%s", err);
        b->res->code = 1;
        return 1;
    }
    return 0;
}

/* The ticker's market from symbols when --market is not given. */
static int market_of(bars *b, const char *ticker, char *out, size_t cap)
{
    const char *p[1] = {ticker};
    PGresult *r = PQexecParams(b->conn, "SELECT market FROM symbols WHERE symbol = $1 ORDER BY market", 1,
                               NULL, p, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
        rc = 0;
    } else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        snprintf(b->res->error, sizeof b->res->error,
                 "%s is %s in symbols: say which market with --market", ticker,
                 PQntuples(r) ? "listed on several markets" : "not");
        b->res->code = 2;
    } else {
        tf_err pe = {0};
        tf_pg_error(b->conn, r, "looking up the ticker's market", &pe);
        tf_err_copy(&pe, b->res->error, sizeof b->res->error);
        b->res->code = 1;
    }
    PQclear(r);
    return rc;
}

int tf_import_bars(const tf_import_opts *o, tf_import_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t t0 = tf_mono_us();
    bars b;
    memset(&b, 0, sizeof b);
    b.o = o;
    b.res = res;
    char err[1024], market[32] = "";
    tf_imp_src *src = NULL;
    b.daily = strcmp(o->interval, "1d") == 0;
    if (!o->defaults.ticker[0]) {
        snprintf(res->error, sizeof res->error, "bars need --ticker T (the file's rows carry no ticker)");
        res->code = 2;
        goto out;
    }
    tf_err pe = {0};
    b.conn = tf_pg_connect(o->pg_url, &pe);
    if (!b.conn || tf_schema_migrate(b.conn, o->cfg, NULL, &pe) != 0) {
        snprintf(res->error, sizeof res->error, "%s", pe.msg);
        res->code = 1;
        goto out;
    }
    if (o->defaults.market[0])
        snprintf(market, sizeof market, "%s", o->defaults.market);
    else if (market_of(&b, o->defaults.ticker, market, sizeof market) != 0)
        goto out;
    b.rej = tf_imp_rejects_open(o->rejects, err, sizeof err);
    if (!b.rej) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 2;
        goto out;
    }
    for (int i = 0; i < o->nfiles && !res->code; i++) {
        src = tf_imp_src_open(o->files[i], 0, err, sizeof err);
        if (!src) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 2;
            break;
        }
        b.name = tf_imp_src_name(src);
        b.header_done = 0;
        b.used = 0;
        for (size_t k = 0; k < b.cap; k++)
            b.keys[k] = EMPTY;
        b.rows = 0;
        b.out.len = 0;
        int64_t rej0 = res->rejected;
        int64_t id = tf_imp_ledger_begin(b.conn, "bars", b.name, "", err, sizeof err);
        int rc = id < 0 ? TF_PG_EOTHER : tf_pg_exec(b.conn, "BEGIN", &pe);
        if (rc && id >= 0) tf_err_copy(&pe, err, sizeof err);
        if (rc == 0)
            rc = tf_imp_copy_begin(b.conn,
                                   "CREATE TEMP TABLE tf_bars_in (bucket timestamptz, open numeric,"
                                   " high numeric, low numeric, close numeric, adj_close numeric,"
                                   " volume bigint) ON COMMIT DROP;"
                                   " COPY tf_bars_in FROM STDIN",
                                   err, sizeof err);
        if (rc) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
            tf_imp_src_free(src);
            src = NULL;
            break;
        }
        int r = tf_imp_read_csv(src, ',', on_record, &b, err, sizeof err);
        if (r < 0) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
        } else if (r == 0 && !b.header_done) {
            snprintf(res->error, sizeof res->error, "%s: empty input (no header)", b.name);
            res->code = 2;
        }
        char src_name[300];
        const char *base = strrchr(b.name, '/');
        snprintf(src_name, sizeof src_name, "file:%s", base ? base + 1 : b.name);
        const char *p[4] = {o->defaults.ticker, market, o->interval, src_name};
        tf_imp_stage_finish(b.conn, &b.out,
                            "INSERT INTO market_bars (ticker, market_code, interval, bucket, open, high, low, close,"
                            " adj_close, volume, source) SELECT $1, $2, $3, bucket, open, high, low, close, adj_close,"
                            " volume, $4 FROM tf_bars_in"
                            " ON CONFLICT (ticker, interval, bucket) DO UPDATE SET market_code = EXCLUDED.market_code,"
                            " open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,"
                            " adj_close = EXCLUDED.adj_close, volume = EXCLUDED.volume, source = EXCLUDED.source,"
                            " imported_at = now()",
                            4, p, "upserting market_bars", res);
        if (!res->code) res->inserted += b.rows;
        /* the hash is complete now (read once, as a stream) */
        char ib[24];
        snprintf(ib, sizeof ib, "%lld", (long long)id);
        const char *hp[2] = {tf_imp_src_sha256(src), ib};
        PGresult *q = PQexecParams(b.conn, "UPDATE tickflow_imports SET sha256 = $1 WHERE id = $2::bigint", 2,
                                   NULL, hp, NULL, NULL, 0);
        PQclear(q);
        tf_imp_ledger_end(b.conn, id, res->code ? "failed" : "done", res->code ? 0 : b.rows,
                          res->rejected - rej0, res->code ? res->error : NULL, err, sizeof err);
        tf_info("import", res->code ? "bars import failed" : "bars import done", TF_INT("import_id", id),
                TF_INT("rows", b.rows), TF_STR("ticker", o->defaults.ticker), TF_STR("interval", o->interval));
        tf_imp_src_free(src);
        src = NULL;
    }
out:
    if (b.rej && tf_imp_rejects_close(b.rej, err, sizeof err) != 0 && !res->code) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 1;
    }
    tf_imp_src_free(src);
    if (b.conn)
        PQfinish(b.conn);
    free(b.keys);
    free(b.klines);
    free(b.out.b);
    res->elapsed_ms = (tf_mono_us() - t0) / 1000;
    return res->code ? -1 : 0;
}
