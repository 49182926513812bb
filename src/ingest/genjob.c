/*
 * genjob.c - the generator job thread (see genjob.h): fill a batch from the
 * market generator, write it with the COPY writer (labels in the same
 * transaction), pace, repeat. Stop requests and status reads come from other
 * threads through a mutex + condition variable; the thread sleeps on the
 * condition so stop is immediate.
 */
#include "ingest/genjob.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "ingest/gen.h"
#include "ingest/jobsync.h"
#include "store/copy.h"
#include "store/pg.h"
#include "store/schema.h"

#define TICK_US 50000 /* paced mode flush period */
#define MAX_TICKERS 256

struct tf_genjob {
    tf_genjob_opts o;        /* string fields point at our copies below */
    char *url;
    char *tickers_buf;
    const char *tickers[MAX_TICKERS];
    int ntickers;
    tf_gen *gen;
    tf_copy *copy;
    tf_trade *rows;
    tf_gen_label *labels;
    size_t maxlabels;
    char *sql;               /* label INSERT under construction */
    size_t sqlcap;
    pthread_t thread;
    int thread_started;
    int joined;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                /* under mu */
    tf_genjob_status st;     /* under mu */
    int64_t t0_mono;
};

tf_genjob_opts tf_genjob_opts_from_config(const tf_config *cfg)
{
    tf_genjob_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = cfg->pg_url;
    o.count = cfg->gen_count;
    o.rate = cfg->gen_rate;
    o.duration_s = cfg->gen_duration_s;
    o.tickers = cfg->gen_tickers;
    o.seed = (uint64_t)cfg->gen_seed;
    o.anomalies = cfg->gen_anomalies;
    o.model = tf_gen_model_from_name(cfg->gen_model) == TF_GEN_GBM ? TF_GEN_GBM : TF_GEN_REALISTIC;
    o.batch_size = cfg->storage_batch_size;
    o.partitions_ahead = cfg->storage_partitions_ahead;
    o.retention_days = cfg->storage_retention_days;
    tf_genjob_parse_start(cfg->gen_start, &o.start_us, NULL, 0);
    return o;
}

int tf_genjob_parse_start(const char *iso, int64_t *start_us, char *errbuf, size_t errlen)
{
    *start_us = 0;
    if (!iso || !*iso)
        return 0;
    int64_t us;
    if (tf_parse_iso_us(iso, strlen(iso), &us) != 0) {
        if (errbuf)
            snprintf(errbuf, errlen,
                     "start: '%.60s' is not an ISO-8601 time (e.g. 2026-11-23T09:30:00Z)", iso);
        return -1;
    }
    if (us == 0)
        us = 1; /* 0 means "wall clock"; 1 us later is the same history */
    *start_us = us;
    return 0;
}


/* Splits the comma list into j->tickers (pointers into j->tickers_buf). */
static int parse_tickers(tf_genjob *j, const char *list, int *code, char *errbuf, size_t errlen)
{
    j->ntickers = 0;
    if (!list || !*list)
        return 0;
    j->tickers_buf = strdup(list);
    if (!j->tickers_buf)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "out of memory");
    char *save = NULL;
    for (char *t = strtok_r(j->tickers_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t len = strlen(t);
        while (len > 0 && t[len - 1] == ' ')
            t[--len] = '\0';
        char up[TF_TICKER_MAX]; /* any case in, upper-case stored (tf_ticker_norm) */
        if (tf_ticker_norm(t, len, up) != 0)
            return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen,
                                  "tickers: bad ticker '%.40s' (" TF_TICKER_RULE ")", t);
        memcpy(t, up, len); /* same length */
        if (j->ntickers == MAX_TICKERS)
            return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "tickers: more than %d given",
                                  MAX_TICKERS);
        j->tickers[j->ntickers++] = t;
    }
    if (j->ntickers == 0)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "tickers: empty list");
    return 0;
}

static int validate(const tf_genjob_opts *o, int *code, char *errbuf, size_t errlen)
{
    if (o->count < 0 || o->count > TF_GENJOB_MAX_COUNT)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "count must be 1..%lld (got %lld)",
                              (long long)TF_GENJOB_MAX_COUNT, (long long)o->count);
    if (!(o->rate >= 0 && o->rate <= TF_GENJOB_MAX_RATE)) /* also rejects NaN */
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "rate must be 0..%.0f trades/s",
                              TF_GENJOB_MAX_RATE);
    if (o->count == 0 && o->rate <= 0)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen,
                              "count must be >= 1, or give a rate > 0 for paced mode");
    if (!(o->duration_s >= 0 && o->duration_s <= 1e9))
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "duration_s must be 0..1e9");
    if (o->count == 0 && o->duration_s > 0 && o->rate * o->duration_s > (double)TF_GENJOB_MAX_COUNT)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen,
                              "rate * duration_s must be at most %lld trades",
                              (long long)TF_GENJOB_MAX_COUNT);
    if (o->count == 0 && o->duration_s > 0 && llround(o->rate * o->duration_s) < 1)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen,
                              "rate * duration_s is less than one trade");
    {
        /* every day touched gets a partition: keep the history to ten years */
        double rate = o->rate > 0 ? o->rate : 1000.0;
        double n = o->count > 0 ? (double)o->count : rate * o->duration_s;
        if (n / rate > 3650.0 * 86400.0)
            return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen,
                                  "rate: %lld trades at %g/s span more than 3650 days of event time",
                                  (long long)n, rate);
    }
    if (!(o->anomalies >= 0 && o->anomalies <= 0.1))
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "anomalies must be 0..0.1");
    if (o->batch_size < 1 || o->batch_size > 1000000)
        return tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "batch_size must be 1..1000000");
    return 0;
}

/* Appends printf output to j->sql, growing it. Returns 0 or -1 (OOM). */
static int sql_add(tf_genjob *j, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sql_add(tf_genjob *j, size_t *len, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(j->sql + *len, j->sqlcap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < j->sqlcap - *len) {
            *len += (size_t)n;
            return 0;
        }
        size_t nc = (j->sqlcap + (size_t)n + 1) * 2;
        char *ns = realloc(j->sql, nc);
        if (!ns)
            return -1;
        j->sql = ns;
        j->sqlcap = nc;
    }
}

struct label_ctx {
    tf_genjob *j;
    size_t nlabels;
};

/* In-transaction hook: the batch's labels with their real trade ids. All
 * values are ours (enum names, validated tickers, numbers), so plain text. */
static int insert_labels(PGconn *conn, int64_t first_id, void *arg, tf_err *e)
{
    struct label_ctx *lc = arg;
    tf_genjob *j = lc->j;
    if (lc->nlabels == 0)
        return 0;
    size_t len = 0;
    int bad = sql_add(j, &len, "INSERT INTO generator_labels (run_id, seed, type, ticker,"
                               " event_time, trade_ids) VALUES ");
    for (size_t i = 0; i < lc->nlabels && !bad; i++) {
        const tf_gen_label *l = &j->labels[i];
        char ts[40];
        tf_fmt_iso_us(l->event_us, ts);
        bad |= sql_add(j, &len, "%s('%s', %lld, '%s', '%s', '%s', '{", i ? "," : "", j->st.run_id,
                       (long long)j->o.seed, tf_anomaly_name(l->type), l->ticker, ts);
        for (int k = 0; k < l->ntrades && k < TF_GEN_LABEL_MAX_TRADES && !bad; k++)
            bad |= sql_add(j, &len, "%s%lld", k ? "," : "", (long long)(first_id + l->trade_idx[k]));
        bad |= sql_add(j, &len, "}')");
    }
    if (bad)
        return tf_err_setc(e, TF_ERETRY, TF_PG_EOTHER, "out of memory building labels");
    int rc = tf_pg_exec(conn, j->sql, e);
    if (rc)
        tf_err_prefix(e, "inserting generator_labels");
    return rc;
}

/* Sleeps up to us microseconds or until stop; returns 1 if asked to stop. */
static int nap(tf_genjob *j, int64_t us) { return tf_jobsync_nap(&j->mu, &j->cv, &j->stop, us); }
static int stopping(tf_genjob *j) { return tf_jobsync_stopping(&j->mu, &j->stop); }

/*
 * Generates and writes trades k0 .. k0+n-1, event window
 * [base + k0/rate, base + (k0+n)/rate). Retries connection loss when asked.
 * Returns 0 or the TF_PG_E* code it stopped on (error in j->st).
 */
static int write_batch(tf_genjob *j, int64_t k0, size_t n, int64_t base_us, double spacing_us)
{
    int64_t start = base_us + (int64_t)llround((double)k0 * spacing_us);
    int64_t end = base_us + (int64_t)llround((double)(k0 + (int64_t)n) * spacing_us);
    if (end <= start)
        end = start + 1;
    size_t nlabels = 0;
    tf_gen_fill(j->gen, j->rows, n, start, end, j->labels, j->maxlabels, &nlabels);
    struct label_ctx lc = {j, nlabels};
    int64_t backoff = 100000;
    for (;;) {
        tf_err e = {0};
        int64_t first = 0, last = 0;
        int rc = tf_copy_write(j->copy, j->rows, n, insert_labels, &lc, &first, &last, &e);
        if (rc == 0) {
            pthread_mutex_lock(&j->mu);
            if (j->st.first_id == 0)
                j->st.first_id = first;
            j->st.last_id = last;
            j->st.inserted += (int64_t)n;
            j->st.batches++;
            j->st.labels += (int64_t)nlabels;
            pthread_mutex_unlock(&j->mu);
            return 0;
        }
        if (rc == TF_PG_EUNKNOWN && j->o.retry) {
            /* COMMIT went unanswered and could not be checked: rewriting
             * could duplicate the batch, stopping would end `tickflow run`;
             * skip it (it may or may not be stored) and carry on */
            tf_warn("genjob", "batch outcome unknown, skipped", TF_STR("run_id", j->st.run_id),
                    TF_UINT("rows", n));
            return 0;
        }
        /* a lost link or a transient failure (a missing partition the
         * writer recreates, a deadlock) is tried again; fatal ones stop */
        if (e.cls != TF_EFATAL && j->o.retry && !stopping(j)) {
            tf_warn("genjob", "write failed, retrying", TF_STR("run_id", j->st.run_id),
                    TF_STR("error", tf_pg_strerror(rc)), TF_STR("detail", e.msg), TF_STR("class", tf_err_class_name(e.cls)),
                    TF_INT("backoff_ms", (long long)(backoff / 1000)));
            if (nap(j, backoff))
                rc = TF_PG_ECONN; /* stopped while disconnected: report it */
            else {
                backoff = backoff * 2 > 5000000 ? 5000000 : backoff * 2;
                continue;
            }
        }
        pthread_mutex_lock(&j->mu);
        j->st.error_code = rc;
        snprintf(j->st.error, sizeof j->st.error, "%.255s", e.msg);
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
}

static void maintain_if_new_day(tf_genjob *j, int64_t *last_day)
{
    int64_t now = tf_now_us();
    int64_t day = tf_unix_day(now);
    if (day == *last_day)
        return;
    *last_day = day;
    PGconn *conn = tf_copy_conn(j->copy);
    if (!conn)
        return;
    tf_config c;
    memset(&c, 0, sizeof c);
    c.storage_partitions_ahead = j->o.partitions_ahead;
    c.storage_retention_days = j->o.retention_days;
    tf_err e = {0};
    if (tf_partitions_maintain(conn, &c, now, &e) != 0)
        tf_warn("genjob", "partition maintenance failed", TF_STR("run_id", j->st.run_id), TF_ERR_FIELDS(&e));
    tf_copy_forget_partitions(j->copy);
}

/* A live (not back-dated) run continues each ticker from its last stored
 * trade of the last week, so a restart does not jump back to the reference
 * prices (which fired dozens of PRICE_SPIKEs at every restart). One indexed
 * query per ticker ((ticker, event_time) index); failures just keep the
 * reference price. */
static void continue_prices(tf_genjob *j)
{
    PGconn *conn = tf_copy_conn(j->copy);
    if (!conn) return;
    int n = tf_gen_ticker_count(j->gen), found = 0;
    for (int i = 0; i < n; i++) {
        const char *params[1] = {tf_gen_ticker_name(j->gen, i)};
        PGresult *r = PQexecParams(conn,
                                   "SELECT price::float8 FROM stock_trades WHERE ticker = $1 "
                                   "AND event_time > now() - interval '7 days' ORDER BY event_time DESC LIMIT 1",
                                   1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            tf_gen_continue_from(j->gen, i, strtod(PQgetvalue(r, 0, 0), NULL));
            found++;
        }
        PQclear(r);
    }
    if (found) tf_info("genjob", "continuing from the last stored prices", TF_INT("tickers", found));
}

static void *job_main(void *arg)
{
    tf_genjob *j = arg;
    const tf_genjob_opts *o = &j->o;
    double rate = o->rate > 0 ? o->rate : 1000.0;
    double spacing_us = 1e6 / rate;
    int64_t k = 0;
    int rc = 0;
    if (!o->start_us) continue_prices(j); /* on this thread: the caller may be an event loop */
    if (o->count > 0) {
        /* without a start, the trades end now: history at `rate` spacing */
        int64_t base = o->start_us ? o->start_us
                                   : tf_now_us() - (int64_t)llround((double)o->count * spacing_us);
        while (k < o->count && !stopping(j)) {
            size_t n = (size_t)(o->count - k < o->batch_size ? o->count - k : o->batch_size);
            if ((rc = write_batch(j, k, n, base, spacing_us)) != 0)
                break;
            k += (int64_t)n;
        }
    } else {
        int64_t total = o->duration_s > 0 ? llround(rate * o->duration_s) : INT64_MAX;
        int64_t base = o->start_us ? o->start_us : tf_now_us();
        int64_t last_day = tf_unix_day(tf_now_us());
        while (k < total) {
            double el = (double)(tf_mono_us() - j->t0_mono);
            int64_t due = (int64_t)floor(el / spacing_us);
            if (due > total)
                due = total;
            while (k < due && rc == 0) {
                size_t n = (size_t)(due - k < o->batch_size ? due - k : o->batch_size);
                rc = write_batch(j, k, n, base, spacing_us);
                if (rc == 0)
                    k += (int64_t)n;
            }
            if (rc != 0 || k >= total)
                break;
            if (!o->start_us && o->duration_s == 0)
                maintain_if_new_day(j, &last_day);
            if (nap(j, TICK_US))
                break;
        }
    }
    pthread_mutex_lock(&j->mu);
    j->st.running = 0;
    j->st.elapsed_ms = (tf_mono_us() - j->t0_mono) / 1000;
    tf_info("genjob", rc ? "generator job failed" : "generator job finished", TF_STR("run_id", j->st.run_id),
            TF_INT("inserted", (long long)j->st.inserted), TF_INT("first_id", (long long)j->st.first_id),
            TF_INT("last_id", (long long)j->st.last_id), TF_INT("labels", (long long)j->st.labels));
    pthread_cond_broadcast(&j->cv); /* tf_genjob_wait_for */
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

tf_genjob *tf_genjob_start(const tf_genjob_opts *o, int *code, char *errbuf, size_t errlen)
{
    if (code)
        *code = 0;
    if (validate(o, code, errbuf, errlen) != 0)
        return NULL;
    tf_genjob *j = calloc(1, sizeof *j);
    if (!j) {
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "out of memory");
        return NULL;
    }
    tf_jobsync_init(&j->mu, &j->cv);
    j->o = *o;
    j->url = strdup(o->pg_url ? o->pg_url : "");
    j->o.pg_url = j->url;
    if (!j->url) {
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "out of memory");
        goto err;
    }
    if (parse_tickers(j, o->tickers, code, errbuf, errlen) != 0)
        goto err;
    j->o.tickers = NULL;
    tf_gen_opts go;
    memset(&go, 0, sizeof go);
    go.seed = o->seed;
    go.tickers = j->ntickers ? j->tickers : NULL;
    go.ntickers = j->ntickers;
    go.anomaly_rate = o->anomalies;
    go.model = o->model;
    char gerr[256];
    j->gen = tf_gen_new(&go, gerr, sizeof gerr);
    if (!j->gen) {
        tf_jobsync_err(code, TF_PG_EINVAL, errbuf, errlen, "%s", gerr);
        goto err;
    }
    j->rows = calloc((size_t)o->batch_size, sizeof *j->rows);
    j->maxlabels = (size_t)o->batch_size / 5 + 64;
    j->labels = calloc(j->maxlabels, sizeof *j->labels);
    if (!j->rows || !j->labels) {
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "out of memory (batch_size %d)", o->batch_size);
        goto err;
    }
    tf_err ce = {0};
    j->copy = tf_copy_new(j->url, o->metrics, &ce);
    if (!j->copy) {
        tf_jobsync_err(code, TF_PG_ECONN, errbuf, errlen, "%s", ce.msg);
        goto err;
    }
    snprintf(j->st.run_id, sizeof j->st.run_id, "g-%llx-%llu", (unsigned long long)tf_now_us(),
             (unsigned long long)o->seed);
    j->st.running = 1;
    j->t0_mono = tf_mono_us();
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        tf_jobsync_err(code, TF_PG_EOTHER, errbuf, errlen, "cannot start generator thread");
        goto err;
    }
    j->thread_started = 1;
    tf_info("genjob", "generator job started", TF_STR("run_id", j->st.run_id),
            TF_INT("count", (long long)o->count), TF_DBL("rate", o->rate), TF_DBL("duration_s", o->duration_s),
            TF_UINT("seed", (unsigned long long)o->seed));
    return j;
err:
    tf_genjob_free(j);
    return NULL;
}

void tf_genjob_status_get(tf_genjob *j, tf_genjob_status *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    if (out->running)
        out->elapsed_ms = (tf_mono_us() - j->t0_mono) / 1000;
    pthread_mutex_unlock(&j->mu);
}

void tf_genjob_stop(tf_genjob *j)
{
    pthread_mutex_lock(&j->mu);
    if (j->st.running) j->st.cancelled = 1;
    j->stop = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int tf_genjob_wait_for(tf_genjob *j, int timeout_ms)
{
    return tf_jobsync_wait_for(&j->mu, &j->cv, &j->st.running, timeout_ms);
}

void tf_genjob_wait(tf_genjob *j, tf_genjob_status *out)
{
    if (j->thread_started && !j->joined) {
        pthread_join(j->thread, NULL);
        j->joined = 1;
    }
    if (out)
        tf_genjob_status_get(j, out);
}

void tf_genjob_free(tf_genjob *j)
{
    if (!j)
        return;
    tf_genjob_stop(j);
    tf_genjob_wait(j, NULL);
    tf_copy_free(j->copy);
    tf_gen_free(j->gen);
    free(j->rows);
    free(j->labels);
    free(j->sql);
    free(j->tickers_buf);
    free(j->url);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}
