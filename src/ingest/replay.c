/*
 * replay.c - the replay job thread (see replay.h): read the next source
 * trades, give them their new event times, write what is due with the COPY
 * writer, pace, repeat. The source is either one server-side cursor over
 * stock_trades (a REPEATABLE READ snapshot on its own connection, fetched
 * in binary: exact times and prices, batch_size rows at a time) or a CSV
 * trade file parsed with import's pure parsers (ingest/import.h) over the
 * import source reader (gzip by magic bytes). Memory is constant: one
 * fetch, one parse window, one batch.
 *
 * Stop requests and status reads come from other threads through a mutex
 * and a condition variable; the thread naps on the condition, so a stop is
 * immediate.
 */
#include "ingest/replay.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "event/trade.h"
#include "ingest/import.h"
#include "ingest/import_src.h"
#include "ingest/jobsync.h"
#include "store/copy.h"
#include "store/pg.h"

#define TICK_US 50000 /* paced mode flush period */
#define MAX_TICKERS 256
#define FBUF (TF_CSV_RECORD_MAX + 256 * 1024)

struct tf_replay {
    tf_replay_opts o;        /* string fields point at our copies below */
    char *url, *tickers, *file, *market, *unit;
    int time_unit;
    /* stored source */
    PGconn *rd;
    PGresult *res;
    int pos;
    int64_t last_us;         /* the source's last event time (max mode) */
    /* file source */
    tf_imp_src *src;
    char *buf, *scratch;
    size_t have, off;
    int eof, header_done, ncols;
    int64_t line;
    int col[TF_CSV_FIELDS_MAX];
    char colname[TF_COL_N][64];
    tf_csv_field f[TF_CSV_FIELDS_MAX];
    tf_imp_defaults d;
    tf_trade pending;        /* the first trade, read at start (header and first row checked there) */
    int npending;
    /* writer */
    tf_copy *copy;
    tf_trade *rows;
    pthread_t thread;
    int thread_started, joined;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                /* under mu */
    tf_replay_status st;     /* under mu */
    int64_t t0_mono;
};


/* ---- stored source ------------------------------------------------------- */

/* "'A','B'" from the validated comma list (tickers are [A-Z0-9.-], so they
 * need no escaping) into out; 0 or -1 naming the bad one. */
static int ticker_list(const char *list, char *out, size_t cap, char *errbuf, size_t errlen)
{
    size_t o = 0;
    int n = 0;
    out[0] = '\0';
    const char *p = list;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        char t[TF_TICKER_MAX];
        if (len == 0 || len >= sizeof t) return tf_jobsync_err(NULL, 0, errbuf, errlen, "tickers: bad ticker '%.*s'", (int)(len > 40 ? 40 : len), p);
        for (size_t i = 0; i < len; i++) t[i] = (char)(p[i] >= 'a' && p[i] <= 'z' ? p[i] - 32 : p[i]);
        t[len] = '\0';
        if (!tf_ticker_valid(t, len))
            return tf_jobsync_err(NULL, 0, errbuf, errlen, "tickers: bad ticker '%s' (1-15 characters of A-Z 0-9 . -)", t);
        if (++n > MAX_TICKERS) return tf_jobsync_err(NULL, 0, errbuf, errlen, "tickers: more than %d given", MAX_TICKERS);
        int w = snprintf(out + o, cap - o, "%s'%s'", o ? "," : "", t);
        if (w < 0 || (size_t)w >= cap - o) return tf_jobsync_err(NULL, 0, errbuf, errlen, "tickers: list too long");
        o += (size_t)w;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | (unsigned char)p[i];
    return (int64_t)v;
}

/* Opens the snapshot and the cursor; counts the trades (and finds the last
 * time) in the same snapshot. 0 or a TF_PG_E* code with errbuf. */
static int stored_open(tf_replay *j, char *errbuf, size_t errlen)
{
    char from[40], to[40], tl[MAX_TICKERS * 20 + 8], where[sizeof tl + 200], sql[sizeof where + 400];
    tf_fmt_iso_us(j->o.from_us, from);
    tf_fmt_iso_us(j->o.to_us, to);
    if (ticker_list(j->tickers, tl, sizeof tl, errbuf, errlen) != 0) return TF_PG_EINVAL;
    snprintf(where, sizeof where, "FROM stock_trades WHERE event_time >= '%s' AND event_time < '%s'%s%s%s", from, to,
             tl[0] ? " AND ticker IN (" : "", tl, tl[0] ? ")" : "");
    tf_err pe = {0};
    int rc = tf_pg_exec(j->rd, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &pe);
    if (rc) return tf_err_copy(&pe, errbuf, errlen);
    snprintf(sql, sizeof sql, "SELECT count(*)::int8, max(event_time) %s", where);
    PGresult *r = PQexecParams(j->rd, sql, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        tf_pg_error(j->rd, r, "counting the trades to replay", &pe);
        rc = tf_err_copy(&pe, errbuf, errlen);
        PQclear(r);
        return rc ? rc : TF_PG_EOTHER;
    }
    j->st.total = be64(PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 1)) j->last_us = be64(PQgetvalue(r, 0, 1)) + TF_PG_EPOCH_OFFSET_US;
    PQclear(r);
    /* binary results: event_time as int8 microseconds since 2000, price
     * scaled to an exact int8 */
    snprintf(sql, sizeof sql,
             "DECLARE tf_replay NO SCROLL CURSOR FOR SELECT ticker, market_code, trade_type,"
             " (price * 10000)::int8, quantity::int8, event_time %s ORDER BY event_time, id", where);
    if ((rc = tf_pg_exec(j->rd, sql, &pe)) != 0) tf_err_copy(&pe, errbuf, errlen);
    return rc;
}

/* 1 with *t, 0 at the end, -1 with the error in j->st. */
static int stored_next(tf_replay *j, tf_trade *t)
{
    if (!j->res || j->pos >= PQntuples(j->res)) {
        PQclear(j->res);
        char sql[64];
        snprintf(sql, sizeof sql, "FETCH %d FROM tf_replay", j->o.batch_size > 10000 ? 10000 : j->o.batch_size);
        j->res = PQexecParams(j->rd, sql, 0, NULL, NULL, NULL, NULL, 1);
        j->pos = 0;
        if (PQresultStatus(j->res) != PGRES_TUPLES_OK || PQnfields(j->res) != 6) {
            tf_err pe = {0};
            int rc = tf_pg_error(j->rd, j->res, "reading the trades to replay", &pe);
            pthread_mutex_lock(&j->mu);
            j->st.error_code = rc ? rc : TF_PG_EOTHER;
            snprintf(j->st.error, sizeof j->st.error, "%.255s", pe.msg);
            pthread_mutex_unlock(&j->mu);
            return -1;
        }
        if (PQntuples(j->res) == 0) return 0;
    }
    PGresult *r = j->res;
    int i = j->pos++;
    memset(t, 0, sizeof *t);
    snprintf(t->ticker, sizeof t->ticker, "%.*s", PQgetlength(r, i, 0), PQgetvalue(r, i, 0));
    snprintf(t->market, sizeof t->market, "%.*s", PQgetlength(r, i, 1), PQgetvalue(r, i, 1));
    t->side = PQgetvalue(r, i, 2)[0] == 'S' ? 'S' : 'B';
    t->price_e4 = be64(PQgetvalue(r, i, 3));
    t->quantity = be64(PQgetvalue(r, i, 4));
    t->event_us = be64(PQgetvalue(r, i, 5)) + TF_PG_EPOCH_OFFSET_US;
    return 1;
}

/* ---- file source ----------------------------------------------------------- */

static int file_fail(tf_replay *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int file_fail(tf_replay *j, const char *fmt, ...)
{
    pthread_mutex_lock(&j->mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->st.error, sizeof j->st.error, fmt, ap);
    va_end(ap);
    j->st.error_code = TF_PG_EINVAL;
    pthread_mutex_unlock(&j->mu);
    return -1;
}

static int file_open(tf_replay *j, char *errbuf, size_t errlen)
{
    tf_imp_src_free(j->src);
    j->src = tf_imp_src_open(j->file, 0, errbuf, errlen);
    j->have = j->off = 0;
    j->eof = j->header_done = 0;
    j->line = 1;
    return j->src ? 0 : -1;
}

static int file_header(tf_replay *j, int nf)
{
    int seen[TF_COL_N];
    for (int k = 0; k < TF_COL_N; k++) seen[k] = -1;
    j->ncols = nf;
    for (int i = 0; i < nf; i++) {
        int role = tf_imp_trade_role(j->f[i].p, j->f[i].len);
        j->col[i] = role;
        if (role < 0) continue;
        if (seen[role] >= 0)
            return file_fail(j, "%s:1: two columns give %s: keep one", tf_imp_src_name(j->src), tf_imp_role_name(role));
        seen[role] = i;
        const char *nm = j->f[i].p;
        size_t nl = j->f[i].len;
        tf_imp_trim(&nm, &nl);
        snprintf(j->colname[role], sizeof j->colname[role], "%.*s", (int)(nl > 60 ? 60 : nl), nm);
    }
    for (int k = 0; k < TF_COL_N; k++)
        if (seen[k] < 0 && !(k == TF_COL_MARKET && j->d.market[0]))
            return file_fail(j, "%s:1: no %s column in the header", tf_imp_src_name(j->src), tf_imp_role_name(k));
    return 0;
}

/* 1 with *t, 0 at the end, -1 with the error in j->st (a bad row stops the
 * replay: its message names the line and the column). */
static int file_next(tf_replay *j, tf_trade *t)
{
    for (;;) {
        if (j->off < j->have || j->eof) {
            tf_csv_rec rec;
            int rc = tf_csv_next(j->buf + j->off, j->have - j->off, j->eof, ',', j->f, TF_CSV_FIELDS_MAX, j->scratch, &rec);
            if (rc == TF_CSV_MORE && j->eof) return 0;
            if (rc != TF_CSV_MORE) {
                int64_t at = j->line;
                j->line += rec.lines;
                j->off += rec.consumed;
                if (rc == TF_CSV_BLANK) continue;
                if (rc == TF_CSV_BAD) return file_fail(j, "%s:%lld: %s", tf_imp_src_name(j->src), (long long)at, rec.err);
                if (!j->header_done) {
                    /* a UTF-8 byte order mark before the first name */
                    if (j->f[0].len >= 3 && memcmp(j->f[0].p, "\xef\xbb\xbf", 3) == 0) {
                        j->f[0].p += 3;
                        j->f[0].len -= 3;
                    }
                    if (file_header(j, rec.nf) != 0) return -1;
                    j->header_done = 1;
                    continue;
                }
                if (rec.nf != j->ncols)
                    return file_fail(j, "%s:%lld: %d fields where the header has %d", tf_imp_src_name(j->src), (long long)at,
                                     rec.nf, j->ncols);
                tf_imp_vals v;
                memset(&v, 0, sizeof v);
                for (int i = 0; i < rec.nf; i++)
                    if (j->col[i] >= 0) {
                        v.p[j->col[i]] = j->f[i].p;
                        v.len[j->col[i]] = j->f[i].len;
                    }
                int bad = -1;
                char why[200];
                if (tf_imp_trade(&v, &j->d, t, &bad, why, sizeof why) != 0)
                    return file_fail(j, "%s:%lld: column '%s': %s", tf_imp_src_name(j->src), (long long)at,
                                     bad >= 0 && j->colname[bad][0] ? j->colname[bad] : tf_imp_role_name(bad), why);
                return 1;
            }
        }
        /* need more input: keep the partial record, read after it */
        if (j->off > 0) {
            memmove(j->buf, j->buf + j->off, j->have - j->off);
            j->have -= j->off;
            j->off = 0;
        }
        if (j->have == FBUF)
            return file_fail(j, "%s:%lld: record longer than %d bytes", tf_imp_src_name(j->src), (long long)j->line,
                             TF_CSV_RECORD_MAX);
        char err[256];
        ssize_t n = tf_imp_src_read(j->src, j->buf + j->have, FBUF - j->have, err, sizeof err);
        if (n < 0) return file_fail(j, "%s", err);
        if (n == 0) j->eof = 1;
        j->have += (size_t)n;
    }
}

static int next_trade(tf_replay *j, tf_trade *t)
{
    if (j->npending) {
        j->npending = 0;
        *t = j->pending;
        return 1;
    }
    return j->file ? file_next(j, t) : stored_next(j, t);
}

/* Reads the file's first trade now, so a bad header or first row is the
 * start's error (400 / exit 2), not the job's. 0 or -1 with errbuf. */
static int file_prime(tf_replay *j, char *errbuf, size_t errlen)
{
    int r = file_next(j, &j->pending);
    if (r < 0) {
        snprintf(errbuf, errlen, "%s", j->st.error);
        j->st.error[0] = '\0';
        j->st.error_code = 0;
        return -1;
    }
    j->npending = r == 1;
    return 0;
}

/* ---- the thread -------------------------------------------------------------- */

/* Sleeps up to us microseconds or until stop; returns 1 if asked to stop. */
static int nap(tf_replay *j, int64_t us) { return tf_jobsync_nap(&j->mu, &j->cv, &j->stop, us); }
static int stopping(tf_replay *j) { return tf_jobsync_stopping(&j->mu, &j->stop); }

static int write_rows(tf_replay *j, size_t n)
{
    tf_err e = {0};
    int64_t first = 0, last = 0;
    int rc = tf_copy_write(j->copy, j->rows, n, NULL, NULL, &first, &last, &e);
    pthread_mutex_lock(&j->mu);
    if (rc == 0) {
        if (!j->st.first_id) j->st.first_id = first;
        j->st.last_id = last;
        j->st.inserted += (int64_t)n;
        j->st.batches++;
    } else {
        j->st.error_code = rc;
        snprintf(j->st.error, sizeof j->st.error, "%.255s", e.msg);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void *job_main(void *arg)
{
    tf_replay *j = arg;
    const double speed = j->o.speed;
    const int64_t base = j->st.base_us;
    tf_trade nx;
    int have = next_trade(j, &nx), rc = 0;
    const int64_t first = have == 1 ? nx.event_us : 0;
    /* max: the last source trade lands at base */
    const int64_t shift = base - j->last_us;
    while (have == 1 && !stopping(j)) {
        size_t n = 0;
        int64_t el = tf_mono_us() - j->t0_mono, wait_us = 0;
        while (have == 1 && n < (size_t)j->o.batch_size) {
            int64_t rel = nx.event_us - first, at;
            if (speed > 0) {
                at = rel <= 0 ? 0 : (int64_t)llround((double)rel / speed);
                if (at > el) { /* not due yet */
                    wait_us = at - el;
                    break;
                }
                nx.event_us = base + (rel < 0 ? -(int64_t)llround((double)-rel / speed) : at);
            } else {
                nx.event_us += shift;
            }
            j->rows[n++] = nx;
            pthread_mutex_lock(&j->mu);
            j->st.read++;
            pthread_mutex_unlock(&j->mu);
            have = next_trade(j, &nx);
        }
        if (n > 0 && (rc = write_rows(j, n)) != 0) break;
        if (have == 1 && wait_us > 0 && nap(j, wait_us < TICK_US ? wait_us : TICK_US)) break;
    }
    if (have < 0 && !rc) rc = -1;
    if (j->rd) { /* the snapshot's transaction ends with the job */
        PQclear(j->res);
        j->res = NULL;
        tf_pg_exec(j->rd, "ROLLBACK", NULL);
    }
    pthread_mutex_lock(&j->mu);
    j->st.running = 0;
    j->st.elapsed_ms = (tf_mono_us() - j->t0_mono) / 1000;
    if (have == 1 && !rc) j->st.cancelled = 1;
    tf_info("replay", rc ? "replay job failed" : j->st.cancelled ? "replay job stopped" : "replay job finished",
            TF_STR("run_id", j->st.run_id), TF_INT("read", (long long)j->st.read),
            TF_INT("inserted", (long long)j->st.inserted), TF_INT("first_id", (long long)j->st.first_id),
            TF_INT("last_id", (long long)j->st.last_id));
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Max mode over a file: one pass for the count and the last event time. */
static int file_prepass(tf_replay *j, char *errbuf, size_t errlen)
{
    tf_trade t;
    int r;
    int64_t n = 0, last = INT64_MIN;
    while ((r = file_next(j, &t)) == 1) {
        n++;
        if (t.event_us > last) last = t.event_us;
    }
    if (r < 0) {
        snprintf(errbuf, errlen, "%s", j->st.error);
        j->st.error[0] = '\0';
        j->st.error_code = 0;
        return -1;
    }
    j->st.total = n;
    j->last_us = n ? last : 0;
    return file_open(j, errbuf, errlen);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

tf_replay *tf_replay_start(const tf_replay_opts *o, int *code, char *errbuf, size_t errlen)
{
    if (code) *code = 0;
    if (!(o->speed == 0 || (o->speed > 0 && o->speed <= TF_REPLAY_MAX_SPEED))) {
        tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "speed must be > 0 and <= %.0f, or max", TF_REPLAY_MAX_SPEED);
        return NULL;
    }
    if (o->batch_size < 1 || o->batch_size > 1000000) {
        tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "batch_size must be 1..1000000");
        return NULL;
    }
    tf_replay *j = calloc(1, sizeof *j);
    if (!j) {
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "out of memory");
        return NULL;
    }
    tf_jobsync_init(&j->mu, &j->cv);
    j->o = *o;
    j->url = dup_or_empty(o->pg_url);
    j->tickers = dup_or_empty(o->tickers);
    j->market = dup_or_empty(o->market);
    j->unit = dup_or_empty(o->time_unit);
    j->file = o->file ? strdup(o->file) : NULL;
    j->rows = calloc((size_t)o->batch_size, sizeof *j->rows);
    if (!j->url || !j->tickers || !j->market || !j->unit || (o->file && !j->file) || !j->rows) {
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "out of memory");
        goto err;
    }
    j->o.pg_url = j->url;
    j->o.tickers = j->tickers;
    j->o.file = j->file;
    j->o.market = j->market;
    j->o.time_unit = j->unit;
    const int64_t now = tf_now_us();
    j->st.total = -1;
    if (j->file) {
        if (j->tickers[0]) {
            tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "tickers: a file is replayed whole (give tickers for stored trades only)");
            goto err;
        }
        j->time_unit = tf_imp_time_unit(j->unit);
        if (j->time_unit < 0) {
            tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "time_unit must be s, ms, us or ns");
            goto err;
        }
        if (j->market[0] && !tf_market_valid(j->market, strlen(j->market))) {
            tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "market must be one of KOSPI, KOSDAQ, NASDAQ, NYSE");
            goto err;
        }
        if (o->speed == 0 && strcmp(j->file, "-") == 0) {
            tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen,
                           "speed max reads the file twice (its last time first): give a file, not stdin");
            goto err;
        }
        snprintf(j->d.market, sizeof j->d.market, "%s", j->market);
        j->d.time_unit = j->time_unit;
        j->d.max_event_us = INT64_MAX;
        j->buf = malloc(FBUF);
        j->scratch = malloc(FBUF);
        if (!j->buf || !j->scratch) {
            tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "out of memory");
            goto err;
        }
        if (file_open(j, errbuf, errlen) != 0 || (o->speed == 0 && file_prepass(j, errbuf, errlen) != 0) ||
            file_prime(j, errbuf, errlen) != 0) {
            if (code) *code = TF_PG_EINVAL;
            goto err;
        }
    } else {
        if (j->o.to_us == 0) j->o.to_us = now;
        if (j->o.from_us >= j->o.to_us) {
            tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "from must be before to");
            goto err;
        }
        if (j->o.to_us > now) {
            /* trades dated after now would be replayed into the window
             * being read; and a replay is of what happened */
            tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "to must not be in the future");
            goto err;
        }
        char tl[MAX_TICKERS * 20 + 8];
        if (ticker_list(j->tickers, tl, sizeof tl, errbuf, errlen) != 0) {
            if (code) *code = TF_PG_EINVAL;
            goto err;
        }
        tf_err ce = {0};
        j->rd = tf_pg_connect(j->url, &ce);
        if (!j->rd) {
            tf_jobsync_err(code, TF_PG_ECONN, errbuf, errlen, "%s", ce.msg);
            goto err;
        }
        int rc = stored_open(j, errbuf, errlen);
        if (rc) {
            if (code) *code = rc;
            goto err;
        }
    }
    tf_err ce = {0};
    j->copy = tf_copy_new(j->url, o->metrics, &ce);
    if (!j->copy) {
        tf_jobsync_err(code, TF_PG_ECONN, errbuf, errlen, "%s", ce.msg);
        goto err;
    }
    /* base and the pacing clock start together, after the source is open
     * (counting a long range takes time): the first trade lands now */
    j->st.base_us = tf_now_us();
    j->t0_mono = tf_mono_us();
    snprintf(j->st.run_id, sizeof j->st.run_id, "r-%llx", (unsigned long long)j->st.base_us);
    j->st.running = 1;
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        j->st.running = 0;
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "cannot start the replay thread");
        goto err;
    }
    j->thread_started = 1;
    tf_info("replay", "replay job started", TF_STR("run_id", j->st.run_id), TF_STR("source", j->file ? "file" : "stored"),
            TF_DBL("speed", o->speed), TF_INT("total", (long long)j->st.total));
    return j;
err:
    tf_replay_free(j);
    return NULL;
}

void tf_replay_status_get(tf_replay *j, tf_replay_status *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    if (out->running) out->elapsed_ms = (tf_mono_us() - j->t0_mono) / 1000;
    pthread_mutex_unlock(&j->mu);
}

void tf_replay_stop(tf_replay *j)
{
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int tf_replay_wait_for(tf_replay *j, int timeout_ms)
{
    return tf_jobsync_wait_for(&j->mu, &j->cv, &j->st.running, timeout_ms);
}

void tf_replay_wait(tf_replay *j, tf_replay_status *out)
{
    if (j->thread_started && !j->joined) {
        pthread_join(j->thread, NULL);
        j->joined = 1;
    }
    if (out) tf_replay_status_get(j, out);
}

void tf_replay_free(tf_replay *j)
{
    if (!j) return;
    tf_replay_stop(j);
    tf_replay_wait(j, NULL);
    tf_copy_free(j->copy);
    PQclear(j->res);
    if (j->rd) PQfinish(j->rd);
    tf_imp_src_free(j->src);
    free(j->buf);
    free(j->scratch);
    free(j->rows);
    free(j->url);
    free(j->tickers);
    free(j->file);
    free(j->market);
    free(j->unit);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}
