/*
 * history.c - GET /api/v1/stock (see history.h).
 *
 * Raw rows are read in (event_time, id) order and paged by keyset on that
 * pair; bars in (bucket, ticker, market_code) order, keyset on that triple.
 * Both keysets only ever move forward in a total order, so pages neither skip
 * nor repeat rows that existed when the walk started, while new trades keep
 * arriving (they appear in later pages if they sort after the cursor).
 *
 * Bars stitch materialized rollup bars (rollup.h) with raw aggregation of
 * the buckets that contain a dirty (not yet refreshed) minute, in one
 * statement, so one snapshot gives an answer equal to aggregating raw trades.
 * A page of bars queries a bounded time window ((limit + 1) buckets, walking
 * on when the window was sparse) so a 10,000-bar page never aggregates the
 * whole range.
 *
 * Everything runs on the loop thread, on the server's asynchronous
 * PostgreSQL pool (store/pgasync.h). Results come back in binary format
 * (int8, timestamptz as int8 microseconds since 2000, numerics cast to text)
 * and are formatted as they arrive. JSON pages (at most history.max_limit
 * rows) are built in memory; CSV/NDJSON streams go to the socket in 64 KiB
 * chunks, and when more than HIGH_WATER bytes are queued for the client the
 * query is paused (libpq stops reading its socket, PostgreSQL blocks in
 * ClientWrite) until the queue drains to TF_HTTP_LOW_WATER: a slow reader
 * holds one dedicated connection and bounded memory, never a thread.
 *
 * Raw rows run in one REPEATABLE READ transaction opened after LOCK TABLE
 * ONLY stock_trades (api/history_seg.h says why): when no day of the range
 * is compressed, one statement (a JSON page with LIMIT, a stream as COPY
 * binary); else the merge walk of rows and compressed segments in
 * history_seg.c, which hands rows to the same formatting. Bars walk several
 * windows inside one REPEATABLE READ transaction so the windows see one
 * snapshot. The response is finished before the COMMIT round trip.
 */
#include "api/history.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "api/history_seg.h"
#include "common/util.h"
#include "store/pgasync.h"
#include "store/schema.h"

#define CHUNK (64 * 1024)
#define HIGH_WATER (1024 * 1024)
#define FETCH_ROWS 10000

#define US_MIN (60 * TF_US_PER_SEC)
#define US_HOUR (3600 * TF_US_PER_SEC)
#define US_DAY TF_US_PER_DAY

/* Rounds t down (up) to a multiple of w from the epoch. */
static int64_t floor_to(int64_t t, int64_t w) { return tf_floor_div(t, w) * w; }
static int64_t ceil_to(int64_t t, int64_t w) { return -tf_floor_div(-t, w) * w; }

/* tf_json_escape + NUL terminator ("" on overflow). Returns length or -1. */
static int jesc(const char *s, size_t len, char *buf, size_t cap)
{
    int n = tf_json_escape(s, len, buf, cap - 1);
    buf[n < 0 ? 0 : n] = '\0';
    return n;
}

/* ---- validation -------------------------------------------------------- */

/* q of one media range's parameters ("q=0.5"); 1 when absent, -1 bad. */
static int accept_q(const char *p, const char *end)
{
    int q = 1000;
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t')) p++;
        const char *e = p;
        while (e < end && *e != ';') e++;
        if (e - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
            const char *d = p + 2;
            while (e > d && (e[-1] == ' ' || e[-1] == '\t')) e--;
            if (d >= e || (*d != '0' && *d != '1')) return -1;
            q = (*d - '0') * 1000;
            d++;
            if (d < e) {
                if (*d != '.') return -1;
                d++;
                int scale = 100;
                for (; d < e; d++, scale /= 10) {
                    if (*d < '0' || *d > '9' || scale == 0) return -1;
                    q += (*d - '0') * scale;
                }
            }
            if (q > 1000) return -1;
            return q;
        }
        p = e;
    }
    return q;
}

int tf_hist_accept(const char *accept)
{
    static const char *const types[3] = {"application/json", "text/csv", "application/x-ndjson"};
    int q[3] = {-1, -1, -1}, spec[3] = {-1, -1, -1}; /* -1: no range matched */
    if (!accept) return TF_HIST_JSON;
    for (const char *p = accept; *p;) {
        while (*p == ',' || *p == ' ' || *p == '\t') p++;
        if (!*p) break;
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *te = semi ? semi : e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t')) te--;
        size_t tl = (size_t)(te - p);
        int rq = accept_q(semi ? semi : e, e);
        if (rq >= 0) {
            for (int k = 0; k < 3; k++) {
                const char *slash = strchr(types[k], '/');
                size_t mainl = (size_t)(slash - types[k]);
                int s = -1;
                if (tl == strlen(types[k]) && strncasecmp(p, types[k], tl) == 0) s = 2;
                else if (tl == mainl + 2 && strncasecmp(p, types[k], mainl + 1) == 0 && p[mainl + 1] == '*')
                    s = 1;
                else if (tl == 3 && strncmp(p, "*/*", 3) == 0) s = 0;
                if (s > spec[k]) { /* the most specific range decides */
                    spec[k] = s;
                    q[k] = rq;
                }
            }
        }
        p = e;
    }
    int best = -1;
    for (int k = 0; k < 3; k++) {
        if (q[k] <= 0) continue;
        if (best < 0 || q[k] > q[best] || (q[k] == q[best] && spec[k] > spec[best])) best = k;
    }
    if (best >= 0) return best; /* TF_HIST_* in types[] order */
    /* nothing positively acceptable: refuse only when JSON was excluded */
    return q[0] == 0 ? -1 : TF_HIST_JSON;
}

static const char *const known[] = {"ticker", "market_code", "trade_type", "start", "end",
                                    "duration", "interval", "limit", "cursor"};

int tf_hist_parse(const tf_config *cfg, const tf_hist_param *ps, int np, const char *accept,
                  int64_t now_us, tf_hist_query *q, const char **bad, char *msg, size_t msglen)
{
    const tf_hist_param *v[9] = {0};
    memset(q, 0, sizeof *q);
    for (int i = 0; i < np; i++) {
        int k = -1;
        for (int j = 0; j < 9; j++)
            if (strcmp(ps[i].name, known[j]) == 0) k = j;
        if (k < 0) {
            /* the caller names the parameter (it owns the name's storage) */
            *bad = NULL;
            snprintf(msg, msglen, "unknown parameter");
            return -2 - i;
        }
        if (v[k]) {
            *bad = known[k];
            snprintf(msg, msglen, "parameter %s given more than once", known[k]);
            return -1;
        }
        if (strlen(ps[i].value) != ps[i].vlen ||
            !tf_utf8_valid((const unsigned char *)ps[i].value, ps[i].vlen)) {
            *bad = known[k];
            snprintf(msg, msglen, "%s is not valid UTF-8 text", known[k]);
            return -1;
        }
        v[k] = &ps[i];
    }
    /* interval */
    snprintf(q->interval, sizeof q->interval, "raw");
    if (v[6]) {
        const char *s = v[6]->value;
        if (strcmp(s, "raw") == 0) q->width_us = 0;
        else if (strcmp(s, "1m") == 0) q->width_us = 60 * TF_US_PER_SEC;
        else if (strcmp(s, "1h") == 0) q->width_us = 3600 * TF_US_PER_SEC;
        else if (strcmp(s, "1d") == 0) q->width_us = 86400 * TF_US_PER_SEC;
        else {
            *bad = "interval";
            snprintf(msg, msglen, "interval must be one of raw, 1m, 1h, 1d");
            return -1;
        }
        snprintf(q->interval, sizeof q->interval, "%s", s);
    }
    if (v[0]) {
        /* any case on input, stored upper-case (tf_ticker_norm) */
        if (tf_ticker_norm(v[0]->value, v[0]->vlen, q->ticker) != 0) {
            *bad = "ticker";
            snprintf(msg, msglen, "ticker must be " TF_TICKER_RULE);
            return -1;
        }
    }
    if (v[1]) {
        if (!tf_market_valid(v[1]->value, v[1]->vlen)) {
            *bad = "market_code";
            snprintf(msg, msglen, "market_code must be one of KOSPI, KOSDAQ, NASDAQ, NYSE");
            return -1;
        }
        snprintf(q->market, sizeof q->market, "%s", v[1]->value);
    }
    if (v[2]) {
        if (strcasecmp(v[2]->value, "BUY") == 0) snprintf(q->side, sizeof q->side, "BUY");
        else if (strcasecmp(v[2]->value, "SELL") == 0) snprintf(q->side, sizeof q->side, "SELL");
        else {
            *bad = "trade_type";
            snprintf(msg, msglen, "trade_type must be BUY or SELL");
            return -1;
        }
    }
    int64_t start = 0, end = 0, dur = 0;
    if (v[3] && tf_parse_iso_us(v[3]->value, v[3]->vlen, &start) < 0) {
        *bad = "start";
        snprintf(msg, msglen, "start is not an ISO-8601 time (e.g. 2026-11-23T09:30:00Z)");
        return -1;
    }
    if (v[4] && tf_parse_iso_us(v[4]->value, v[4]->vlen, &end) < 0) {
        *bad = "end";
        snprintf(msg, msglen, "end is not an ISO-8601 time (e.g. 2026-11-23T10:30:00Z)");
        return -1;
    }
    if (v[5]) {
        if (tf_parse_duration_us(v[5]->value, v[5]->vlen, &dur) < 0 || dur <= 0) {
            *bad = "duration";
            snprintf(msg, msglen, "duration must be a positive duration such as 15m, 6h, 30d");
            return -1;
        }
        if (v[3] && v[4]) {
            *bad = "duration";
            snprintf(msg, msglen, "give at most two of start, end and duration");
            return -1;
        }
    }
    int64_t maxr = (int64_t)cfg->history_max_range_days * 86400 * TF_US_PER_SEC;
    if (v[5] && dur > maxr) {
        *bad = "duration";
        snprintf(msg, msglen, "duration is over the maximum range of %d days",
                 cfg->history_max_range_days);
        return -1;
    }
    if (!v[4]) end = v[3] && v[5] ? start + dur : now_us;
    if (!v[3]) start = end - (v[5] ? dur : 86400 * TF_US_PER_SEC);
    if (start >= end) {
        *bad = "start";
        snprintf(msg, msglen, "start must be before end");
        return -1;
    }
    if (end - start > maxr) {
        *bad = v[3] ? "start" : "end";
        snprintf(msg, msglen, "range is over the maximum of %d days", cfg->history_max_range_days);
        return -1;
    }
    /* year 1..9999 only: keeps every later computation in range */
    const int64_t lo = -62135596800LL * TF_US_PER_SEC, hi = 253402300799LL * TF_US_PER_SEC;
    if (start < lo || end > hi) {
        *bad = start < lo ? "start" : "end";
        snprintf(msg, msglen, "%s is out of the supported range (years 1-9999)", *bad);
        return -1;
    }
    if (q->width_us) {
        start = tf_floor_div(start, q->width_us) * q->width_us;
        end = tf_floor_div(end + q->width_us - 1, q->width_us) * q->width_us;
    }
    q->start_us = start;
    q->end_us = end;
    /* format */
    q->format = tf_hist_accept(accept);
    if (q->format < 0) {
        *bad = "Accept";
        snprintf(msg, msglen, "Accept excludes every format: application/json, text/csv, application/x-ndjson");
        return -1;
    }
    q->limit = q->format == TF_HIST_JSON ? cfg->history_default_limit : 0;
    if (v[7]) {
        int64_t l;
        int64_t maxl = q->format == TF_HIST_JSON ? cfg->history_max_limit : INT64_MAX / 2;
        if (tf_parse_i64(v[7]->value, v[7]->vlen, &l) < 0 || l < 1 || l > maxl) {
            *bad = "limit";
            if (q->format == TF_HIST_JSON)
                snprintf(msg, msglen, "limit must be an integer from 1 to %d", cfg->history_max_limit);
            else
                snprintf(msg, msglen, "limit must be a positive integer");
            return -1;
        }
        q->limit = l;
    }
    if (v[8]) {
        if (tf_hist_cursor_decode(q, v[8]->value, v[8]->vlen) < 0) {
            *bad = "cursor";
            snprintf(msg, msglen, "cursor is not valid for this interval (use next_cursor as given)");
            return -1;
        }
    }
    return 0;
}

/* ---- cursors: base64url of a short text ---------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_enc(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = b64[v & 63];
    }
    out[o] = '\0';
    return o;
}

static long b64_dec(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = in[i] ? strchr(b64, in[i]) : NULL;
        if (!p) return -1;
        v = (v << 6) | (unsigned)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)((v >> bits) & 0xff);
        }
    }
    return (long)o;
}

size_t tf_hist_cursor_encode(const tf_hist_query *q, int64_t t, int64_t id, const char *ticker,
                             const char *market, char *out, size_t cap)
{
    char raw[96];
    int n;
    if (q->width_us == 0)
        n = snprintf(raw, sizeof raw, "r1|%lld|%lld", (long long)t, (long long)id);
    else
        n = snprintf(raw, sizeof raw, "b1|%lld|%lld|%s|%s", (long long)q->width_us, (long long)t,
                     ticker, market);
    if (n < 0 || (size_t)n >= sizeof raw || cap < 4 * ((size_t)n + 2) / 3 + 2) {
        if (cap) out[0] = '\0';
        return 0;
    }
    return b64_enc((const unsigned char *)raw, (size_t)n, out);
}

int tf_hist_cursor_decode(tf_hist_query *q, const char *s, size_t len)
{
    unsigned char raw[128];
    if (len == 0 || len > 160) return -1;
    long n = b64_dec(s, len, raw, sizeof raw - 1);
    if (n < 4) return -1;
    raw[n] = '\0';
    char *f[6];
    int nf = 0;
    char *p = (char *)raw;
    f[nf++] = p;
    for (; *p; p++) {
        if (*p == '|') {
            *p = '\0';
            if (nf == 6) return -1;
            f[nf++] = p + 1;
        }
    }
    if (strlen((char *)raw) != 2) return -1;
    int64_t a, b;
    if (q->width_us == 0) {
        if (strcmp(f[0], "r1") != 0 || nf != 3) return -1;
        if (tf_parse_i64(f[1], strlen(f[1]), &a) < 0 || tf_parse_i64(f[2], strlen(f[2]), &b) < 0)
            return -1;
        q->cur_time_us = a;
        q->cur_id = b;
    } else {
        if (strcmp(f[0], "b1") != 0 || nf != 5) return -1;
        if (tf_parse_i64(f[1], strlen(f[1]), &a) < 0 || a != q->width_us) return -1;
        /* not necessarily aligned: imported intraday bars need not be
         * (history reads from the aligned bucket at or before it) */
        if (tf_parse_i64(f[2], strlen(f[2]), &b) < 0) return -1;
        size_t tl = strlen(f[3]), ml = strlen(f[4]);
        /* "~" sorts after every ticker: "resume after this bucket" */
        if ((tl && strcmp(f[3], "~") != 0 && !tf_ticker_valid(f[3], tl)) ||
            (ml && !tf_market_valid(f[4], ml)))
            return -1;
        q->cur_time_us = b;
        snprintf(q->cur_ticker, sizeof q->cur_ticker, "%s", f[3]);
        snprintf(q->cur_market, sizeof q->cur_market, "%s", f[4]);
    }
    if (q->cur_time_us < -62135596800LL * TF_US_PER_SEC ||
        q->cur_time_us > 253402300799LL * TF_US_PER_SEC)
        return -1;
    q->has_cursor = 1;
    return 0;
}

/* ---- output buffers ------------------------------------------------------ */


/* ---- the job ------------------------------------------------------------- */

/* What the request's probe (send_hints) found in its snapshot over
 * [start, end + width): whether a dirty minute exists and its first/last
 * bucket, and whether an imported bar of the interval exists. Planning the
 * stock_trades joins (every daily partition of the range, twice) was ~95%
 * of a bar statement's cost (EXPLAIN: 2-3.5 ms planning vs 0.1-0.5 ms
 * execution for a 30-day 1d/1h query): with the hints a statement leaves out
 * the branches that can match nothing and bounds the rest by constants the
 * planner prunes partitions with. Read inside the request's REPEATABLE READ
 * transaction, so the statements that use them see the same rows. */
typedef struct bhints {
    int known;          /* 0: no probe, every branch in (the safe shape) */
    int dirty;          /* a dirty minute in range */
    int64_t dmin, dmax; /* first and last dirty minute (bucket start) */
    int imported;       /* an imported bar of the interval in range */
} bhints;

typedef struct hjob {
    tf_http_req *req;
    tf_server *srv;
    tf_hist_query q;
    const tf_config *cfg;
    /* result */
    int status;             /* 0 ok; else HTTP error status */
    char errmsg[256];
    tf_sbuf out;               /* JSON page, or the current stream chunk */
    int started;            /* stream begun (headers sent) */
    int failed_midway;
    /* on the loop */
    tf_pga *db;
    tf_pga_conn *c;         /* held from acquire until release */
    int phase;              /* PH_* */
    int gone;               /* the client went away */
    int paused;             /* query paused for the client's queue */
    int wait_writable;      /* bars stream: next window when the queue drains */
    int in_tx;
    int more;               /* JSON: 1 / 2 = there is a next page */
    int64_t want, got, ws, we; /* bars window walk */
    bhints hn;              /* the probe's findings (send_hints) */
    int hints_sent;         /* raw aggregate: the probe ran */
    tf_hseg_dirty rdirty;   /* raw: tf_hseg_probe's dirty minutes */
    int had_cursor;         /* bars: the request came with a cursor */
    /* raw rows over compressed days (history_seg.h): the merge walk */
    int segs;               /* the range has a compressed day */
    tf_hseg *seg;
    /* whole-range aggregate (JSON pages): by_ticker JSON and totals */
    int agg_done;
    tf_sbuf by_ticker;
    int64_t r_tickers, r_buckets, r_trades, r_volume;
    char r_one[400]; /* the open..vwap fields when the range has one ticker */
    /* aggregate over the page */
    int64_t n, trades, volume;
    int64_t open_e4, high_e4, low_e4, close_e4;
    __int128 notional_e4;
    int64_t last_time, last_id;
    char last_ticker[TF_TICKER_MAX], last_market[TF_MARKET_MAX];
    /* put_ts cache */
    int ts_valid;
    int64_t ts_sec;
    char ts_pre[20];
} hjob;

static int64_t rd_i64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | (unsigned char)p[i];
    return (int64_t)v;
}

static int64_t rd_ts(const char *p)
{
    return rd_i64(p) + TF_PG_EPOCH_OFFSET_US;
}

/* Parses a non-negative numeric text with up to 4 decimals as x10^4. */
static __int128 parse_e4_128(const char *s, int len)
{
    __int128 v = 0;
    int frac = -1, neg = 0, i = 0;
    if (len > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    for (; i < len; i++) {
        if (s[i] == '.') {
            frac = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9') break;
        if (frac >= 4) break;
        v = v * 10 + (s[i] - '0');
        if (frac >= 0) frac++;
    }
    if (frac < 0) frac = 0;
    while (frac++ < 4) v *= 10;
    return neg ? -v : v;
}

/* Formats v (x10^4) as a decimal with 4 fraction digits. */
static void fmt_e4_128(__int128 v, char *out)
{
    char tmp[64];
    int n = 0, neg = v < 0;
    if (neg) v = -v;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v > 0 || n < 5);
    int o = 0;
    if (neg) out[o++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[o++] = tmp[i];
        if (i == 4) out[o++] = '.';
    }
    out[o] = '\0';
}

/* a + b, saturating at INT64_MAX: volumes are sums of any positive bigint
 * quantities (the rollup saturates the same way, store/rollup.c). */
static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

static void agg_row(hjob *j, int64_t open, int64_t high, int64_t low, int64_t close, int64_t vol,
                    int64_t trades, __int128 notional)
{
    if (j->n == 0) {
        j->open_e4 = open;
        j->high_e4 = high;
        j->low_e4 = low;
    }
    if (high > j->high_e4) j->high_e4 = high;
    if (low < j->low_e4) j->low_e4 = low;
    j->close_e4 = close;
    j->volume = sat_add(j->volume, vol);
    j->trades += trades;
    j->notional_e4 += notional;
    j->n++;
}

static const char *ctype_of(int fmt)
{
    return fmt == TF_HIST_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson";
}

static int flush_chunk(hjob *j, int force);

/* ---- row formatting ------------------------------------------------------ */

static void put_json_str(tf_sbuf *o, const char *s, int len)
{
    char esc[128];
    tf_sbuf_add(o, "\"", 1);
    if (jesc(s, (size_t)len, esc, sizeof esc - 1) >= 0) tf_sbuf_str(o, esc);
    tf_sbuf_add(o, "\"", 1);
}

/* Fast formatting for the raw-row hot path (a 30-day CSV is 1.3M rows):
 * no printf; the "YYYY-MM-DDTHH:MM:SS" part of the time is cached per
 * second. */
static char *put_i64(char *o, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0) *o++ = '-';
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n) *o++ = tmp[--n];
    return o;
}

static char *put_mem(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

#define PUT_LIT(o, lit) put_mem((o), (lit), sizeof(lit) - 1)

static char *put_ts(hjob *j, char *o, int64_t us)
{
    int64_t sec = tf_floor_div(us, TF_US_PER_SEC);
    int64_t frac = us - sec * TF_US_PER_SEC;
    if (!j->ts_valid || sec != j->ts_sec) {
        char iso[40];
        tf_fmt_iso_us(sec * TF_US_PER_SEC, iso);
        memcpy(j->ts_pre, iso, 19);
        j->ts_sec = sec;
        j->ts_valid = 1;
    }
    o = put_mem(o, j->ts_pre, 19);
    *o++ = '.';
    for (int d = 5; d >= 0; d--) {
        o[d] = (char)('0' + frac % 10);
        frac /= 10;
    }
    o += 6;
    *o++ = 'Z';
    return o;
}

/* One raw row (borrowed strings; ticker/market/side/price are short:
 * bounded by the table's CHECK constraints, and clamped here). */
static void emit_raw_fields(hjob *j, int64_t id, const char *tk, int tkl, const char *mk, int mkl,
                            const char *sd, int sdl, const char *px, int pxl, int64_t qty, int64_t ts)
{
    tf_sbuf *o = &j->out;
    if (tkl > 32) tkl = 32;
    if (mkl > 16) mkl = 16;
    if (sdl > 8) sdl = 8;
    if (pxl > 40) pxl = 40;
    if (tf_sbuf_reserve(o, 320) != 0) return; /* room for one row */
    char *w = o->b + o->len;
    if (j->q.format == TF_HIST_CSV) {
        w = put_i64(w, id);
        *w++ = ',';
        w = put_mem(w, tk, (size_t)tkl);
        *w++ = ',';
        w = put_mem(w, mk, (size_t)mkl);
        *w++ = ',';
        w = put_mem(w, sd, (size_t)sdl);
        *w++ = ',';
        w = put_mem(w, px, (size_t)pxl);
        *w++ = ',';
        w = put_i64(w, qty);
        *w++ = ',';
        w = put_ts(j, w, ts);
        *w++ = '\n';
    } else {
        if (j->q.format == TF_HIST_JSON && j->n > 0) *w++ = ',';
        w = PUT_LIT(w, "{\"id\":");
        w = put_i64(w, id);
        w = PUT_LIT(w, ",\"ticker\":\"");
        w = put_mem(w, tk, (size_t)tkl);
        w = PUT_LIT(w, "\",\"market_code\":\"");
        w = put_mem(w, mk, (size_t)mkl);
        w = PUT_LIT(w, "\",\"trade_type\":\"");
        w = put_mem(w, sd, (size_t)sdl);
        w = PUT_LIT(w, "\",\"price\":\"");
        w = put_mem(w, px, (size_t)pxl);
        w = PUT_LIT(w, "\",\"quantity\":");
        w = put_i64(w, qty);
        w = PUT_LIT(w, ",\"event_time\":\"");
        w = put_ts(j, w, ts);
        w = PUT_LIT(w, "\"}");
        if (j->q.format == TF_HIST_NDJSON) *w++ = '\n';
    }
    o->len = (size_t)(w - o->b);
    o->b[o->len] = '\0';
    if (j->q.format == TF_HIST_JSON) {
        int64_t p = (int64_t)parse_e4_128(px, pxl);
        agg_row(j, p, p, p, p, qty, 1, (__int128)p * qty);
    } else {
        j->n++;
    }
    j->last_time = ts;
    j->last_id = id;
}

/* Raw row columns: id, ticker, market_code, trade_type, price::text, quantity, event_time */
static void emit_raw(hjob *j, const PGresult *res, int i)
{
    emit_raw_fields(j, rd_i64(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1), PQgetlength(res, i, 1),
                    PQgetvalue(res, i, 2), PQgetlength(res, i, 2), PQgetvalue(res, i, 3),
                    PQgetlength(res, i, 3), PQgetvalue(res, i, 4), PQgetlength(res, i, 4),
                    rd_i64(PQgetvalue(res, i, 5)), rd_ts(PQgetvalue(res, i, 6)));
}

/* One tuple of COPY ... (FORMAT binary) with the raw row columns. The first
 * message also carries the 19-byte file header. Returns 1 for a row, 0 for
 * the trailer, -1 if malformed (every length is checked before use). */
static int copy_tuple(hjob *j, const char *p, int len)
{
    static const char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
    if (len >= 19 && memcmp(p, sig, 11) == 0) {
        int32_t ext = (int32_t)(((uint32_t)(unsigned char)p[15] << 24) | ((uint32_t)(unsigned char)p[16] << 16) |
                                ((uint32_t)(unsigned char)p[17] << 8) | (unsigned char)p[18]);
        if (ext < 0 || 19 + ext > len) return -1;
        p += 19 + ext;
        len -= 19 + ext;
    }
    if (len < 2) return -1;
    int nf = (int16_t)(((unsigned char)p[0] << 8) | (unsigned char)p[1]);
    if (nf == -1) return 0;
    if (nf != 7) return -1;
    const char *f[7];
    int fl[7];
    int off = 2;
    for (int k = 0; k < 7; k++) {
        if (off + 4 > len) return -1;
        int32_t l = (int32_t)(((uint32_t)(unsigned char)p[off] << 24) | ((uint32_t)(unsigned char)p[off + 1] << 16) |
                              ((uint32_t)(unsigned char)p[off + 2] << 8) | (unsigned char)p[off + 3]);
        off += 4;
        if (l < 0 || off + l > len) return -1;
        f[k] = p + off;
        fl[k] = l;
        off += l;
    }
    if (fl[0] != 8 || fl[5] != 8 || fl[6] != 8) return -1;
    emit_raw_fields(j, rd_i64(f[0]), f[1], fl[1], f[2], fl[2], f[3], fl[3], f[4], fl[4], rd_i64(f[5]),
                    rd_ts(f[6]));
    return 1;
}

/* Bar columns: bucket, ticker, market_code, open, high, low, close, volume,
 * trades, vwap, buy_volume, sell_volume, notional, source. An imported bar
 * has no notional: its vwap is null (JSON) / empty (CSV). */
static void emit_bar(hjob *j, const PGresult *res, int i)
{
    tf_sbuf *o = &j->out;
    int64_t b = rd_ts(PQgetvalue(res, i, 0));
    const char *tk = PQgetvalue(res, i, 1), *mk = PQgetvalue(res, i, 2);
    int tkl = PQgetlength(res, i, 1), mkl = PQgetlength(res, i, 2);
    const char *f[4];
    int fl[4];
    for (int k = 0; k < 4; k++) {
        f[k] = PQgetvalue(res, i, 3 + k);
        fl[k] = PQgetlength(res, i, 3 + k);
    }
    int64_t vol = rd_i64(PQgetvalue(res, i, 7)), trades = rd_i64(PQgetvalue(res, i, 8));
    const char *vw = PQgetvalue(res, i, 9);
    int vwl = PQgetlength(res, i, 9);
    int vnull = PQgetisnull(res, i, 9);
    const char *src = PQgetvalue(res, i, 13);
    int srcl = PQgetlength(res, i, 13);
    int64_t buy = rd_i64(PQgetvalue(res, i, 10)), sell = rd_i64(PQgetvalue(res, i, 11));
    char s1[40], s2[40];
    tf_fmt_iso_us(b, s1);
    tf_fmt_iso_us(b + j->q.width_us, s2);
    char line[512];
    int n;
    if (j->q.format == TF_HIST_CSV) {
        n = snprintf(line, sizeof line, "%.*s,%.*s,%s,%s,%.*s,%.*s,%.*s,%.*s,%lld,%lld,%.*s,%lld,%lld,%.*s\n",
                     tkl, tk, mkl, mk, s1, s2, fl[0], f[0], fl[1], f[1], fl[2], f[2], fl[3], f[3],
                     (long long)vol, (long long)trades, vwl, vw, (long long)buy, (long long)sell, srcl, src);
    } else {
        n = snprintf(line, sizeof line,
                     "%s{\"ticker\":\"%.*s\",\"market_code\":\"%.*s\",\"start\":\"%s\",\"end\":\"%s\","
                     "\"open\":\"%.*s\",\"high\":\"%.*s\",\"low\":\"%.*s\",\"close\":\"%.*s\","
                     "\"volume\":%lld,\"count\":%lld,\"vwap\":%s%.*s%s,\"buy_volume\":%lld,"
                     "\"sell_volume\":%lld,\"source\":\"%.*s\"}%s",
                     j->q.format == TF_HIST_JSON && j->n > 0 ? "," : "", tkl, tk, mkl, mk, s1, s2,
                     fl[0], f[0], fl[1], f[1], fl[2], f[2], fl[3], f[3], (long long)vol,
                     (long long)trades, vnull ? "null" : "\"", vnull ? 0 : vwl, vw, vnull ? "" : "\"",
                     (long long)buy, (long long)sell, srcl, src,
                     j->q.format == TF_HIST_NDJSON ? "\n" : "");
    }
    if (n > 0 && (size_t)n < sizeof line) tf_sbuf_add(o, line, (size_t)n);
    if (j->q.format == TF_HIST_JSON) {
        agg_row(j, (int64_t)parse_e4_128(f[0], fl[0]), (int64_t)parse_e4_128(f[1], fl[1]),
                (int64_t)parse_e4_128(f[2], fl[2]), (int64_t)parse_e4_128(f[3], fl[3]), vol, trades,
                parse_e4_128(PQgetvalue(res, i, 12), PQgetlength(res, i, 12)));
    } else {
        j->n++;
    }
    j->last_time = b;
    snprintf(j->last_ticker, sizeof j->last_ticker, "%.*s", tkl, tk);
    snprintf(j->last_market, sizeof j->last_market, "%.*s", mkl, mk);
}

/* ---- SQL ----------------------------------------------------------------- */

typedef struct sqlp {
    char sql[12288];
    size_t len;
    const char *vals[24];
    char store[24][48];
    int n;
} sqlp;

static void sp_cat(sqlp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sp_cat(sqlp *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->sql + s->len, sizeof s->sql - s->len, fmt, ap);
    va_end(ap);
    if (n > 0) s->len += (size_t)n;
    if (s->len >= sizeof s->sql) s->len = sizeof s->sql - 1;
}

/* Adds a text parameter; returns its $number. */
static int sp_param(sqlp *s, const char *v)
{
    if (s->n >= (int)(sizeof s->vals / sizeof s->vals[0])) abort(); /* a statement's shape, not input */
    snprintf(s->store[s->n], sizeof s->store[s->n], "%s", v);
    s->vals[s->n] = s->store[s->n];
    return ++s->n;
}

static int sp_time(sqlp *s, int64_t us)
{
    char iso[40];
    tf_fmt_iso_us(us, iso);
    return sp_param(s, iso);
}

static void filters(sqlp *s, const tf_hist_query *q, const char *alias, int ticker)
{
    if (ticker && q->ticker[0]) sp_cat(s, " AND %s.ticker = $%d", alias, sp_param(s, q->ticker));
    if (q->market[0]) sp_cat(s, " AND %s.market_code = $%d", alias, sp_param(s, q->market));
    if (q->side[0]) sp_cat(s, " AND %s.trade_type = $%d", alias, sp_param(s, q->side));
}

static void build_raw(sqlp *s, const tf_hist_query *q, int64_t limit)
{
    memset(s, 0, sizeof *s);
    int ps = sp_time(s, q->start_us), pe = sp_time(s, q->end_us);
    sp_cat(s,
           "SELECT t.id, t.ticker, t.market_code, t.trade_type, t.price::text, t.quantity, t.event_time"
           " FROM stock_trades t WHERE t.event_time >= $%d AND t.event_time < $%d", ps, pe);
    filters(s, q, "t", 1);
    if (q->has_cursor) {
        int pt = sp_time(s, q->cur_time_us);
        char idb[32];
        snprintf(idb, sizeof idb, "%lld", (long long)q->cur_id);
        int pi = sp_param(s, idb);
        sp_cat(s, " AND t.event_time >= $%d AND (t.event_time, t.id) > ($%d, $%d::bigint)", pt, pt, pi);
    }
    sp_cat(s, " ORDER BY t.event_time, t.id");
    if (limit > 0) sp_cat(s, " LIMIT %lld", (long long)limit);
}

static const char *width_sql(int64_t w)
{
    return w == 60 * TF_US_PER_SEC ? "1 minute" : w == 3600 * TF_US_PER_SEC ? "1 hour" : "1 day";
}

static const char *table_of(int64_t w)
{
    return w == 60 * TF_US_PER_SEC ? "stock_bars_1m" : w == 3600 * TF_US_PER_SEC ? "stock_bars_1h"
                                                                               : "stock_bars_1d";
}

/* Bars for buckets in [ws, we) (aligned), after the cursor if any: the
 * materialized row of each clean bucket (trade_type '*' = both sides, or the
 * requested side) plus raw aggregation of buckets with a dirty minute, plus
 * (DESIGN.md section 6) the imported market_bars of this interval that no
 * trade covers. An imported bar is covered when its ticker (in the requested
 * market, if any) has a trade bar overlapping [bucket, bucket + width): a
 * materialized one, or a dirty minute that still holds a trade. Overlap, not
 * equality, because intraday vendor bars need not be aligned to the epoch
 * (Yahoo's 1h bars start at 9:30 New York); the check reads the tables
 * directly, not this window's rows, so a bar at a window edge is judged the
 * same in every window. Imported bars have no sides: with trade_type they
 * are left out. Column 13 says "trades" or "imported". hn (NULL: none)
 * leaves out what it shows cannot match. */
static void build_bars(sqlp *s, const tf_hist_query *q, const bhints *hn, int64_t ws, int64_t we,
                       int64_t limit)
{
    memset(s, 0, sizeof *s);
    int dirty = !hn || !hn->known || hn->dirty;
    int imported = !q->side[0] && (!hn || !hn->known || hn->imported);
    /* constant bounds on the trades a dirty bucket can hold (all of them
     * when nothing is known): trades of [floor(dmin), floor(dmax) + width)
     * for the raw aggregation, [dmin, dmax + 1 minute) for the imported
     * bars' check of dirty minutes */
    char tb[160] = "", t2b[160] = "";
    if (hn && hn->known && hn->dirty) {
        char a[40], b[40], c[40];
        tf_fmt_iso_us(floor_to(hn->dmin, q->width_us), a);
        tf_fmt_iso_us(floor_to(hn->dmax, q->width_us) + q->width_us, b);
        snprintf(tb, sizeof tb, " AND t.event_time >= '%s' AND t.event_time < '%s'", a, b);
        tf_fmt_iso_us(hn->dmin, a);
        tf_fmt_iso_us(hn->dmax + US_MIN, c);
        snprintf(t2b, sizeof t2b, " AND t2.event_time >= '%s' AND t2.event_time < '%s'", a, c);
    }
    const char *w = width_sql(q->width_us);
    int ps = sp_time(s, ws), pe = sp_time(s, we);
    int pk = q->ticker[0] ? sp_param(s, q->ticker) : 0; /* one $n per value, used where needed */
    int pm = q->market[0] ? sp_param(s, q->market) : 0;
    int pside = sp_param(s, q->side[0] ? q->side : "*");
    sp_cat(s, "WITH ");
    if (dirty) {
        sp_cat(s,
               "d AS (SELECT DISTINCT date_bin('%s', x.bucket, timestamptz 'epoch') AS b, x.ticker"
               " FROM stock_bars_dirty x WHERE x.bucket >= $%d AND x.bucket < $%d",
               w, ps, pe);
        if (pk) sp_cat(s, " AND x.ticker = $%d", pk);
        sp_cat(s, "), ");
    }
    sp_cat(s,
           "u AS (SELECT m.bucket, m.ticker, m.market_code, m.open, m.high, m.low, m.close,"
           " m.volume, m.trades, m.notional, m.buy_volume, m.sell_volume"
           " FROM %s m WHERE m.bucket >= $%d AND m.bucket < $%d AND m.trade_type = $%d",
           table_of(q->width_us), ps, pe, pside);
    if (pk) sp_cat(s, " AND m.ticker = $%d", pk);
    if (pm) sp_cat(s, " AND m.market_code = $%d", pm);
    if (dirty) {
        sp_cat(s,
               " AND NOT EXISTS (SELECT 1 FROM d WHERE d.b = m.bucket AND d.ticker = m.ticker)"
               " UNION ALL SELECT d.b, t.ticker, t.market_code,"
               " (array_agg(t.price ORDER BY t.event_time, t.id))[1], max(t.price), min(t.price),"
               " (array_agg(t.price ORDER BY t.event_time DESC, t.id DESC))[1],"
               " sum(t.quantity)::bigint, count(*), sum(t.price * t.quantity),"
               " coalesce(sum(t.quantity) FILTER (WHERE t.trade_type = 'BUY'), 0)::bigint,"
               " coalesce(sum(t.quantity) FILTER (WHERE t.trade_type = 'SELL'), 0)::bigint"
               " FROM d JOIN stock_trades t ON t.ticker = d.ticker AND t.event_time >= d.b"
               " AND t.event_time < d.b + interval '%s' AND t.event_time >= $%d AND t.event_time < $%d%s",
               w, ps, pe, tb);
        if (pm) sp_cat(s, " AND t.market_code = $%d", pm);
        if (q->side[0]) sp_cat(s, " AND t.trade_type = $%d", pside);
        sp_cat(s, " GROUP BY 1, 2, 3");
    }
    sp_cat(s, "), v AS (SELECT u.*, 'trades'::text AS source FROM u");
    if (imported) {
        /* [bs, be): the trade buckets overlapping the imported bar */
        char bs[96], be[128];
        snprintf(bs, sizeof bs, "date_bin('%s', i.bucket, timestamptz 'epoch')", w);
        snprintf(be, sizeof be,
                 "date_bin('%s', i.bucket + interval '%s' - interval '1 microsecond', timestamptz 'epoch')"
                 " + interval '%s'", w, w, w);
        /* q->interval is one of 1m, 1h, 1d (tf_hist_parse), safe inline */
        sp_cat(s,
               " UNION ALL SELECT i.bucket, i.ticker, i.market_code, i.open, i.high, i.low, i.close,"
               " i.volume, 0::bigint, NULL::numeric, 0::bigint, 0::bigint, 'imported'::text"
               " FROM market_bars i WHERE i.interval = '%s' AND i.bucket >= $%d AND i.bucket < $%d",
               q->interval, ps, pe);
        if (pk) sp_cat(s, " AND i.ticker = $%d", pk);
        if (pm) sp_cat(s, " AND i.market_code = $%d", pm);
        sp_cat(s,
               " AND NOT EXISTS (SELECT 1 FROM %s c WHERE c.ticker = i.ticker AND c.trade_type = '*'"
               " AND c.bucket >= %s AND c.bucket < %s",
               table_of(q->width_us), bs, be);
        if (pm) sp_cat(s, " AND c.market_code = $%d", pm);
        sp_cat(s, ")");
        if (dirty) {
            sp_cat(s,
                   " AND NOT EXISTS (SELECT 1 FROM stock_bars_dirty x2 JOIN stock_trades t2"
                   " ON t2.ticker = x2.ticker AND t2.event_time >= x2.bucket"
                   " AND t2.event_time < x2.bucket + interval '1 minute'%s"
                   " WHERE x2.ticker = i.ticker AND x2.bucket >= %s AND x2.bucket < %s",
                   t2b, bs, be);
            if (pm) sp_cat(s, " AND t2.market_code = $%d", pm);
            sp_cat(s, ")");
        }
    }
    sp_cat(s,
           ") SELECT bucket, ticker, market_code, open::text, high::text, low::text, close::text,"
           " volume::int8, trades::int8, round(notional / nullif(volume, 0), 4)::text, buy_volume::int8,"
           " sell_volume::int8, notional::text, source FROM v");
    if (q->has_cursor) {
        int pt = sp_time(s, q->cur_time_us);
        int pck = sp_param(s, q->cur_ticker);
        int pcm = sp_param(s, q->cur_market);
        sp_cat(s, " WHERE (bucket, ticker, market_code) > ($%d::timestamptz, $%d::text, $%d::text)",
               pt, pck, pcm);
    }
    sp_cat(s, " ORDER BY bucket, ticker, market_code");
    if (limit > 0) sp_cat(s, " LIMIT %lld", (long long)limit);
}

enum { PH_BEGIN = 1, PH_HINTS, PH_QUERY, PH_COMMIT };

static void fail(hjob *j, int status, const char *fmt, const char *m)
{
    if (j->status) return; /* the first failure is the one to report */
    j->status = status;
    snprintf(j->errmsg, sizeof j->errmsg, fmt, m && *m ? m : "unknown");
    size_t l = strlen(j->errmsg);
    while (l && j->errmsg[l - 1] == '\n') j->errmsg[--l] = '\0';
}

static void hjob_free(hjob *j)
{
    tf_hseg_free(j->seg);
    free(j->out.b);
    free(j->by_ticker.b);
    free(j);
}

static void commit_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    (void)e; /* a read-only transaction: its COMMIT failing changes no answer */
    hjob *j = ud;
    tf_pga_release(c); /* a failed COMMIT leaves no transaction open either */
    hjob_free(j);
}

static void wrap_page(hjob *j)
{
    int more = j->more;
    /* wrap the page */
    tf_sbuf page = {0};
    char cur[200] = "";
    if (more) {
        char c[160];
        if (more == 2) /* exact page at a window edge: resume after the last bucket */
            tf_hist_cursor_encode(&j->q, j->last_time, 0, "~", "", c, sizeof c);
        else
            tf_hist_cursor_encode(&j->q, j->last_time, j->last_id, j->last_ticker, j->last_market,
                                  c, sizeof c);
        snprintf(cur, sizeof cur, "\"%s\"", c);
    }
    char s1[40], s2[40];
    tf_fmt_iso_us(j->q.start_us, s1);
    tf_fmt_iso_us(j->q.end_us, s2);
    tf_sbuf_str(&page, "{\"data\":[");
    if (j->out.b) tf_sbuf_add(&page, j->out.b, j->out.len);
    tf_sbuf_fmt(&page, "],\"count\":%lld,\"next_cursor\":%s,\"filters\":{", (long long)j->n,
           more ? cur : "null");
    if (j->q.ticker[0]) {
        tf_sbuf_str(&page, "\"ticker\":");
        put_json_str(&page, j->q.ticker, (int)strlen(j->q.ticker));
        tf_sbuf_str(&page, ",");
    }
    if (j->q.market[0]) tf_sbuf_fmt(&page, "\"market_code\":\"%s\",", j->q.market);
    if (j->q.side[0]) tf_sbuf_fmt(&page, "\"trade_type\":\"%s\",", j->q.side);
    tf_sbuf_fmt(&page, "\"start\":\"%s\",\"end\":\"%s\",\"interval\":\"%s\",\"limit\":%lld},", s1, s2,
           j->q.interval, (long long)j->q.limit);
    /* the page's own aggregate (what "aggregate" meant before it covered
     * the range), then the range: totals, per ticker */
    char pagg[600];
    int pn = snprintf(pagg, sizeof pagg, "{\"buckets\":%lld,\"trades\":%lld,\"volume\":%lld",
                      (long long)j->n, (long long)j->trades, (long long)j->volume);
    if (j->n > 0 && pn > 0 && (size_t)pn < sizeof pagg) {
        char o[64], h[64], l[64], c[64], v[64];
        fmt_e4_128(j->open_e4, o);
        fmt_e4_128(j->high_e4, h);
        fmt_e4_128(j->low_e4, l);
        fmt_e4_128(j->close_e4, c);
        __int128 vw = 0;
        if (j->volume > 0) { /* round half away from zero, like numeric round() */
            vw = (j->notional_e4 * 2 + j->volume) / (2 * (__int128)j->volume);
        }
        fmt_e4_128(vw, v);
        snprintf(pagg + pn, sizeof pagg - (size_t)pn,
                 ",\"open\":\"%s\",\"high\":\"%s\",\"low\":\"%s\",\"close\":\"%s\",\"vwap\":\"%s\"}",
                 o, h, l, c, v);
    } else if (pn > 0 && (size_t)pn < sizeof pagg) {
        snprintf(pagg + pn, sizeof pagg - (size_t)pn,
                 ",\"open\":null,\"high\":null,\"low\":null,\"close\":null,\"vwap\":null}");
    }
    /* prices of several tickers do not combine: null unless one ticker */
    const char *prices = j->r_tickers == 1
                             ? j->r_one
                             : "\"open\":null,\"high\":null,\"low\":null,\"close\":null,\"vwap\":null";
    char rng[320];
    snprintf(rng, sizeof rng,
             "\"start\":\"%s\",\"end\":\"%s\",\"buckets\":%lld,\"trades\":%lld,\"volume\":%lld,"
             "\"tickers\":%lld,",
             s1, s2, (long long)j->r_buckets, (long long)j->r_trades, (long long)j->r_volume,
             (long long)j->r_tickers);
    tf_sbuf_fmt(&page,
                "\"aggregate\":{\"interval\":\"%s\",\"buckets\":%lld,\"trades\":%lld,"
                "\"volume\":%lld,%s,\"range\":{%s%s},\"page\":%s,\"by_ticker\":{",
                j->q.interval, (long long)j->r_buckets, (long long)j->r_trades,
                (long long)j->r_volume, prices, rng, prices, pagg);
    if (j->by_ticker.b) tf_sbuf_add(&page, j->by_ticker.b, j->by_ticker.len);
    tf_sbuf_str(&page, "}");
    if (j->by_ticker.oom) page.oom = 1;
    tf_sbuf_str(&page, "}}");
    int oom = page.oom || j->out.oom; /* a row that did not fit is not dropped silently */
    free(j->out.b);
    j->out = page;
    if (oom) {
        j->status = 503;
        snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
    }
}

/* ---- the whole range's aggregate, per ticker (JSON pages) ------------- */

static void complete(hjob *j);

/* One ticker of the range aggregate (prices x10^4). */
static void add_range_row(hjob *j, const char *tk, int tkl, int64_t b, int64_t tr, int64_t vol,
                          const __int128 px_e4[4], __int128 nt)
{
    char px[4][64], vw[64];
    for (int k = 0; k < 4; k++) fmt_e4_128(px_e4[k], px[k]);
    fmt_e4_128(vol > 0 ? (nt * 2 + vol) / (2 * (__int128)vol) : 0, vw);
    snprintf(j->r_one, sizeof j->r_one,
             "\"open\":\"%s\",\"high\":\"%s\",\"low\":\"%s\",\"close\":\"%s\",\"vwap\":\"%s\"",
             px[0], px[1], px[2], px[3], vw);
    if (j->r_tickers > 0) tf_sbuf_str(&j->by_ticker, ",");
    put_json_str(&j->by_ticker, tk, tkl);
    tf_sbuf_fmt(&j->by_ticker, ":{\"buckets\":%lld,\"trades\":%lld,\"volume\":%lld,%s}",
                (long long)b, (long long)tr, (long long)vol, j->r_one);
    j->r_tickers++;
    j->r_buckets += b;
    j->r_trades += tr;
    j->r_volume = sat_add(j->r_volume, vol);
}

/* Columns: ticker, buckets, trades, volume, open, high, low, close, notional */
static int on_agg_rows(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    hjob *j = ud;
    int n = PQntuples(res);
    if (n > 0 && PQnfields(res) != 9) return 0;
    for (int i = 0; i < n; i++) {
        __int128 px[4];
        for (int k = 0; k < 4; k++) px[k] = parse_e4_128(PQgetvalue(res, i, 4 + k), PQgetlength(res, i, 4 + k));
        add_range_row(j, PQgetvalue(res, i, 0), PQgetlength(res, i, 0), rd_i64(PQgetvalue(res, i, 1)),
                      rd_i64(PQgetvalue(res, i, 2)), rd_i64(PQgetvalue(res, i, 3)), px,
                      parse_e4_128(PQgetvalue(res, i, 8), PQgetlength(res, i, 8)));
    }
    return 0;
}

/* A JSON page of bars for one ticker that holds the whole range (no
 * cursor, the walk reached the end, nothing after it): the range aggregate
 * is the page's own, which emit_bar has summed in the statement's order
 * ((bucket, market_code) for one ticker, what the SQL aggregate orders
 * open/close by), so no statement is needed. Returns 1 when it applied. */
static int range_from_page(hjob *j)
{
    if (j->q.width_us == 0 || !j->q.ticker[0] || j->had_cursor || j->more || j->ws < j->q.end_us)
        return 0;
    if (j->n > 0) {
        __int128 px[4] = {j->open_e4, j->high_e4, j->low_e4, j->close_e4};
        add_range_row(j, j->last_ticker, (int)strlen(j->last_ticker), j->n, j->trades, j->volume, px,
                      j->notional_e4);
    }
    j->agg_done = 1;
    return 1;
}

static void on_agg_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    (void)c;
    hjob *j = ud;
    if (err) fail(j, 503, "database error: %s", msg);
    j->agg_done = 1;
    complete(j);
}

/* ---- the probe: dirty minutes and imported bars in range ----------------- */

static void start_agg(hjob *j);
static void bars_next(hjob *j);

/* Columns: first dirty minute, last dirty minute (NULL when none), whether
 * an imported bar exists */
static int on_hints_row(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    hjob *j = ud;
    if (PQntuples(res) != 1 || PQnfields(res) != 3) return 0;
    if (!PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1) && PQgetlength(res, 0, 0) == 8 &&
        PQgetlength(res, 0, 1) == 8) {
        j->hn.dirty = 1;
        j->hn.dmin = rd_ts(PQgetvalue(res, 0, 0));
        j->hn.dmax = rd_ts(PQgetvalue(res, 0, 1));
    }
    j->hn.imported = PQgetlength(res, 0, 2) == 1 && PQgetvalue(res, 0, 2)[0] != 0;
    j->hn.known = 1;
    return 0;
}

static void on_hints_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    (void)c;
    hjob *j = ud;
    if (e) fail(j, 503, "database error: %s", e->msg); /* hn stays unknown without a row */
    if (j->status) {
        complete(j);
        return;
    }
    if (j->phase == PH_HINTS) { /* bars: the first window next */
        j->phase = PH_QUERY;
        bars_next(j);
        return;
    }
    j->hints_sent = 1;
    start_agg(j); /* the raw range's aggregate */
}

/* Sends the probe for q's range at bar width w (the interval's, or 1 hour
 * for a raw range's aggregate); imp 0 leaves imported bars out (reported
 * absent). One statement of three index probes, inside the transaction. */
static int send_hints(hjob *j, int64_t w, int imp)
{
    static const tf_pga_cbs cbs = {on_hints_row, NULL, on_hints_done};
    sqlp s;
    memset(&s, 0, sizeof s);
    int ps = sp_time(&s, j->q.start_us), pe = sp_time(&s, j->q.end_us);
    int pw = sp_time(&s, j->q.end_us + w); /* imported bars reach one bucket past end */
    int pk = j->q.ticker[0] ? sp_param(&s, j->q.ticker) : 0;
    /* typed: $2 goes unused when imported bars are left out */
    sp_cat(&s, "SELECT min(x.bucket), max(x.bucket), ($%d::timestamptz IS NULL OR ", pe);
    if (imp && !j->q.side[0]) {
        /* q->interval is one of 1m, 1h, 1d (tf_hist_parse), safe inline */
        sp_cat(&s,
               "EXISTS (SELECT 1 FROM market_bars i WHERE i.interval = '%s' AND i.bucket >= $%d"
               " AND i.bucket < $%d",
               j->q.interval, ps, pe);
        if (pk) sp_cat(&s, " AND i.ticker = $%d", pk);
        if (j->q.market[0]) sp_cat(&s, " AND i.market_code = $%d", sp_param(&s, j->q.market));
        sp_cat(&s, ")");
    } else {
        sp_cat(&s, "false");
    }
    sp_cat(&s, ") FROM stock_bars_dirty x WHERE x.bucket >= $%d AND x.bucket < $%d", ps, pw);
    if (pk) sp_cat(&s, " AND x.ticker = $%d", pk);
    return tf_pga_send(j->c, s.sql, s.n, s.vals, 1, TF_PGA_WHOLE, &cbs, j);
}

/* Appends (UNION ALL) selects of cols over [a, b) (aligned to fine) from the
 * coarsest rollup level that holds whole buckets of it, down to fine at the
 * edges: a 30-day range is 30 day rows instead of 720 hour or 43,200 minute
 * rows. f: the filters on alias m, after the trade_type one. */
static void add_levels(sqlp *s, int64_t a, int64_t b, int64_t fine, int64_t level, const char *cols,
                       int pside, const char *f, int *first)
{
    if (a >= b) return;
    int64_t ca = level == fine ? a : ceil_to(a, level), fb = level == fine ? b : floor_to(b, level);
    if (ca < fb) {
        int pa = sp_time(s, ca), pb = sp_time(s, fb);
        sp_cat(s, "%sSELECT %s FROM %s m WHERE m.bucket >= $%d AND m.bucket < $%d AND m.trade_type = $%d%s",
               *first ? "" : " UNION ALL ", cols, table_of(level), pa, pb, pside, f);
        *first = 0;
    }
    if (level == fine) return;
    int64_t next = level == US_DAY ? US_HOUR : US_MIN;
    if (ca < fb) {
        add_levels(s, a, ca, fine, next, cols, pside, f, first);
        add_levels(s, fb, b, fine, next, cols, pside, f, first);
    } else { /* no whole bucket of this level: all of it one level down */
        add_levels(s, a, b, fine, next, cols, pside, f, first);
    }
}

/* The filters (ticker, market) on alias m as text with their $n. */
static void filters_m(sqlp *s, const tf_hist_query *q, char *f, size_t cap)
{
    size_t fl = 0;
    f[0] = '\0';
    if (q->ticker[0]) fl += (size_t)snprintf(f + fl, cap - fl, " AND m.ticker = $%d", sp_param(s, q->ticker));
    if (q->market[0] && fl < cap) snprintf(f + fl, cap - fl, " AND m.market_code = $%d", sp_param(s, q->market));
}

/* The bars range aggregate when the probe found no dirty minute and no
 * imported bar: the stitched bars are then the rollup's rows, so the
 * statement reads them directly instead of the stitched set (the general
 * statement materialised, cast and sorted every bar of the range: ~145 ms
 * for a 30-day 1m range of one ticker, most of a 1m page). buckets: the
 * interval's rows (an index-only count on its primary key); trades, volume,
 * high, low, notional: the coarsest level's rows that cover whole buckets
 * (add_levels); open/close: the first/last row in (bucket, market_code)
 * order through the primary key. The same numbers as the general
 * statement. */
static void build_bars_agg_clean(sqlp *s, const tf_hist_query *q)
{
    memset(s, 0, sizeof *s);
    const char *fine = table_of(q->width_us);
    int ps = sp_time(s, q->start_us), pe = sp_time(s, q->end_us);
    int pside = sp_param(s, q->side[0] ? q->side : "*");
    char f[96];
    filters_m(s, q, f, sizeof f);
    sp_cat(s,
           "WITH c AS (SELECT m.ticker, count(*)::int8 AS n FROM %s m WHERE m.bucket >= $%d"
           " AND m.bucket < $%d AND m.trade_type = $%d%s GROUP BY m.ticker), p AS (",
           fine, ps, pe, pside, f);
    int first = 1;
    add_levels(s, q->start_us, q->end_us, q->width_us, US_DAY,
               "m.ticker, m.trades, m.volume, m.high, m.low, m.notional", pside, f, &first);
    char lf[64] = ""; /* the laterals' market filter (the ticker is c's) */
    const char *mk = strstr(f, " AND m.market_code");
    if (mk) snprintf(lf, sizeof lf, "%s", mk);
    sp_cat(s,
           "), g AS (SELECT ticker, sum(trades)::int8 AS tr,"
           /* volume saturates as the rollup's does (store/rollup.c SAT) */
           " LEAST(coalesce(sum(volume), 0), 9223372036854775807)::int8 AS vol, max(high) AS hi,"
           " min(low) AS lo, sum(notional) AS nt FROM p GROUP BY ticker)"
           " SELECT c.ticker, c.n, g.tr, g.vol, o.open::text, g.hi::text, g.lo::text, cl.close::text,"
           " g.nt::text FROM c JOIN g ON g.ticker = c.ticker"
           " CROSS JOIN LATERAL (SELECT m.open FROM %s m WHERE m.ticker = c.ticker AND m.bucket >= $%d"
           " AND m.bucket < $%d AND m.trade_type = $%d%s ORDER BY m.bucket, m.market_code LIMIT 1) o"
           " CROSS JOIN LATERAL (SELECT m.close FROM %s m WHERE m.ticker = c.ticker AND m.bucket >= $%d"
           " AND m.bucket < $%d AND m.trade_type = $%d%s ORDER BY m.bucket DESC, m.market_code DESC"
           " LIMIT 1) cl ORDER BY c.ticker",
           fine, ps, pe, pside, lf, fine, ps, pe, pside, lf);
}

/* A raw range of whole hours with no dirty minute: its aggregate from the
 * rollup alone (whole days from 1d rows, the rest from 1h, add_levels),
 * open/close the rows with the first (first_time, first_id) / last
 * (last_time, last_id) trade - the same numbers as the general statement
 * (whole hours from the stitched 1h bars, edges and open/close from trades)
 * without planning its stock_trades scans. */
static void build_raw_agg_clean(sqlp *s, const tf_hist_query *q)
{
    memset(s, 0, sizeof *s);
    int pside = sp_param(s, q->side[0] ? q->side : "*");
    char f[96];
    filters_m(s, q, f, sizeof f);
    sp_cat(s, "WITH p AS (");
    int first = 1;
    add_levels(s, q->start_us, q->end_us, US_HOUR, US_DAY,
               "m.ticker, m.trades, m.volume, m.high, m.low, m.notional, m.open, m.first_time,"
               " m.first_id, m.close, m.last_time, m.last_id", pside, f, &first);
    sp_cat(s,
           ") SELECT ticker, sum(trades)::int8, sum(trades)::int8,"
           " LEAST(coalesce(sum(volume), 0), 9223372036854775807)::int8,"
           " (array_agg(open ORDER BY first_time, first_id))[1]::text, max(high)::text,"
           " min(low)::text, (array_agg(close ORDER BY last_time DESC, last_id DESC))[1]::text,"
           " sum(notional)::text FROM p GROUP BY ticker HAVING sum(trades) > 0 ORDER BY ticker");
}

/* One statement over [start, end) with the filters and no cursor: raw
 * trades grouped by ticker, or the same stitched bars a page reads, grouped
 * by ticker. Bars run inside the page's REPEATABLE READ transaction, so
 * page and aggregate see one snapshot. */
static void start_agg(hjob *j)
{
    static const tf_pga_cbs agg_cbs = {on_agg_rows, NULL, on_agg_done};
    tf_hist_query q = j->q;
    q.has_cursor = 0;
    sqlp s;
    char sql[sizeof s.sql + 2048];
    if (q.width_us == 0 && j->segs) { /* rows and segments, combined in SQL */
        int rc = tf_hseg_aggregate(j->c, &q, &agg_cbs, j);
        if (rc) {
            fail(j, 503, "database error: %s", tf_pg_strerror(rc));
            j->agg_done = 1;
            complete(j);
        }
        return;
    }
    const int64_t hour = US_HOUR;
    int64_t hs = ceil_to(q.start_us, hour), he = floor_to(q.end_us, hour);
    if (q.width_us == 0 && hs < he && !j->hints_sent) {
        int rc = send_hints(j, hour, 0); /* on_hints_done comes back here */
        if (rc) {
            fail(j, 503, "database error: %s", tf_pg_strerror(rc));
            j->agg_done = 1;
            complete(j);
        }
        return;
    }
    if (q.width_us == 0 && hs == q.start_us && he == q.end_us && j->hn.known && !j->hn.dirty) {
        build_raw_agg_clean(&s, &q);
        snprintf(sql, sizeof sql, "%s", s.sql);
    } else if (q.width_us == 0 && hs < he) {
        /* A raw range holding whole hours: the hours from the stitched 1h
         * bars (the rollup, with dirty minutes aggregated from the trades,
         * exactly what the bars pages read; imported bars left out), the
         * partial hours at the edges from the trades, and open/close as the
         * first and last trade by (event_time, id) through the (ticker,
         * event_time) index. The same numbers as aggregating every trade,
         * without sorting every trade of the range on every page (a 30-day
         * range is ~224k trades per ticker in bench-history). */
        tf_hist_query q2 = q;
        q2.width_us = hour;
        snprintf(q2.interval, sizeof q2.interval, "1h");
        build_bars(&s, &q2, &j->hn, hs, he, 0);
        char *ord = strstr(s.sql, " ORDER BY bucket, ticker, market_code");
        if (ord) *ord = '\0';
        char inner[sizeof s.sql];
        snprintf(inner, sizeof inner, "%s", s.sql);
        s.len = 0;
        s.sql[0] = '\0';
        int ps = sp_time(&s, q.start_us), pe = sp_time(&s, q.end_us);
        int phs = sp_time(&s, hs), phe = sp_time(&s, he);
        sp_cat(&s,
               "WITH b AS (%s), p AS (SELECT ticker, trades::int8 AS n, volume::numeric AS vol,"
               " high::numeric AS hi, low::numeric AS lo, notional::numeric AS nt FROM b"
               " WHERE source = 'trades' UNION ALL SELECT t.ticker, 1, t.quantity, t.price, t.price,"
               " t.price * t.quantity FROM stock_trades t WHERE ((t.event_time >= $%d AND t.event_time < $%d)"
               " OR (t.event_time >= $%d AND t.event_time < $%d))",
               inner, ps, phs, phe, pe);
        filters(&s, &q, "t", 1);
        sp_cat(&s,
               "), g AS (SELECT ticker, sum(n)::int8 AS n,"
               " LEAST(coalesce(sum(vol), 0), 9223372036854775807)::int8 AS vol, max(hi) AS hi,"
               " min(lo) AS lo, sum(nt) AS nt FROM p GROUP BY ticker HAVING sum(n) > 0)"
               " SELECT g.ticker, g.n, g.n, g.vol, o.price::text, g.hi::text, g.lo::text, c.price::text,"
               " g.nt::text FROM g CROSS JOIN LATERAL (SELECT t.price FROM stock_trades t"
               " WHERE t.ticker = g.ticker AND t.event_time >= $%d AND t.event_time < $%d",
               ps, pe);
        filters(&s, &q, "t", 0);
        sp_cat(&s,
               " ORDER BY t.event_time, t.id LIMIT 1) o CROSS JOIN LATERAL (SELECT t.price"
               " FROM stock_trades t WHERE t.ticker = g.ticker AND t.event_time >= $%d AND t.event_time < $%d",
               ps, pe);
        filters(&s, &q, "t", 0);
        sp_cat(&s, " ORDER BY t.event_time DESC, t.id DESC LIMIT 1) c ORDER BY g.ticker");
        snprintf(sql, sizeof sql, "%s", s.sql);
    } else if (q.width_us == 0) {
        memset(&s, 0, sizeof s);
        int ps = sp_time(&s, q.start_us), pe = sp_time(&s, q.end_us);
        sp_cat(&s,
               /* volume saturates as the rollup's does (store/rollup.c SAT) */
               "SELECT t.ticker, count(*)::int8, count(*)::int8,"
               " LEAST(coalesce(sum(t.quantity), 0), 9223372036854775807)::int8,"
               " (array_agg(t.price ORDER BY t.event_time, t.id))[1]::text, max(t.price)::text,"
               " min(t.price)::text, (array_agg(t.price ORDER BY t.event_time DESC, t.id DESC))[1]::text,"
               " sum(t.price * t.quantity)::text"
               " FROM stock_trades t WHERE t.event_time >= $%d AND t.event_time < $%d", ps, pe);
        filters(&s, &q, "t", 1);
        sp_cat(&s, " GROUP BY t.ticker ORDER BY t.ticker");
        snprintf(sql, sizeof sql, "%s", s.sql);
    } else if (j->hn.known && !j->hn.dirty && (!j->hn.imported || q.side[0])) {
        build_bars_agg_clean(&s, &q);
        snprintf(sql, sizeof sql, "%s", s.sql);
    } else {
        build_bars(&s, &q, &j->hn, q.start_us, q.end_us, 0);
        char *ord = strstr(s.sql, " ORDER BY bucket, ticker, market_code");
        if (ord) *ord = '\0';
        snprintf(sql, sizeof sql,
                 "SELECT ticker, count(*)::int8, sum(trades)::int8, sum(volume)::int8,"
                 " (array_agg(open::numeric ORDER BY bucket, market_code))[1]::text,"
                 " max(high::numeric)::text, min(low::numeric)::text,"
                 " (array_agg(close::numeric ORDER BY bucket DESC, market_code DESC))[1]::text,"
                 " sum(notional::numeric)::text FROM (%s) b GROUP BY ticker ORDER BY ticker",
                 s.sql);
    }
    int rc = tf_pga_send(j->c, sql, s.n, s.vals, 1, TF_PGA_WHOLE, &agg_cbs, j);
    if (rc) {
        fail(j, 503, "database error: %s", tf_pg_strerror(rc));
        j->agg_done = 1;
        complete(j);
    }
}

/* Finishes the HTTP side (response / end of stream), then ends the
 * transaction if one is open and gives the connection back. */
static void complete(hjob *j)
{
    tf_http_req *r = j->req;
    if (j->q.format != TF_HIST_JSON) {
        if (!j->status && flush_chunk(j, 1) < 0 && !j->gone) fail(j, 503, "%s", "out of memory");
        j->req = NULL;
        if (j->started && j->status) {
            if (!j->gone)
                tf_warn("http", "history stream failed midway", TF_STR("error", j->errmsg),
                        TF_UINT("conn", (unsigned long long)tf_http_conn_id_of(r)));
            tf_http_stream_abort(r);
        } else if (j->started) {
            tf_http_stream_end(r);
        } else {
            tf_http_error(r, j->status ? j->status : 503, "unavailable",
                          j->status ? j->errmsg : "stream not started", NULL);
        }
    } else if (j->status) {
        j->req = NULL;
        tf_http_error(r, j->status, "unavailable", j->errmsg, NULL);
    } else if (!j->agg_done && j->c && !range_from_page(j)) {
        start_agg(j); /* comes back here with agg_done */
        return;
    } else {
        j->req = NULL;
        wrap_page(j);
        if (j->status) tf_http_error(r, j->status, "unavailable", j->errmsg, NULL);
        else tf_http_json(r, 200, j->out.b ? j->out.b : "{}");
    }
    tf_pga_conn *c = j->c;
    j->c = NULL;
    if (c && j->in_tx && !j->status) {
        static const tf_pga_cbs cbs = {NULL, NULL, commit_done};
        j->phase = PH_COMMIT;
        if (tf_pga_send(c, "COMMIT", 0, NULL, 0, TF_PGA_WHOLE, &cbs, j) == 0) return;
    }
    if (c) tf_pga_release(c); /* an open or failed transaction: the pool replaces it */
    hjob_free(j);
}

/* ---- streaming to the client ------------------------------------------- */

static void bars_next(hjob *j);

static void hj_on_writable(tf_http_req *r, void *ud)
{
    (void)r;
    hjob *j = ud;
    if (j->paused && j->c) {
        j->paused = 0;
        tf_pga_pause(j->c, 0);
    }
    if (j->wait_writable) {
        j->wait_writable = 0;
        bars_next(j);
    }
    if (j->seg && tf_hseg_paused(j->seg)) tf_hseg_resume(j->seg);
}

static void hj_on_close(tf_http_req *r, void *ud)
{
    (void)r;
    hjob *j = ud;
    j->gone = 1;
    if (j->wait_writable || (j->seg && tf_hseg_paused(j->seg))) { /* nothing runs */
        j->wait_writable = 0;
        fail(j, 503, "%s", "client went away");
        complete(j);
        return;
    }
    if (j->c) tf_pga_cancel(j->c); /* on_done follows from the loop */
}

/* Sends the current chunk. Returns -1 when the client is gone or memory ran
 * out (rows were lost: cut the stream rather than send a gap). force also
 * starts an empty stream. */
static int flush_chunk(hjob *j, int force)
{
    if (j->gone) return -1;
    if (j->out.oom) return -1;
    if (j->out.len == 0 && !(force && !j->started)) return 0;
    if (!force && j->out.len < CHUNK) return 0;
    if (!j->started) {
        static const tf_http_stream_cbs cbs = {hj_on_writable, hj_on_close};
        if (tf_http_stream_begin(j->req, 200, ctype_of(j->q.format), &cbs, j) < 0) return -1;
        j->started = 1;
    }
    tf_http_stream_write(j->req, j->out.b, j->out.len);
    j->out.len = 0;
    if (tf_http_req_gone(j->req)) return -1;
    if (tf_http_stream_queued(j->req) > HIGH_WATER && j->c && !j->paused) {
        j->paused = 1;
        tf_pga_pause(j->c, 1);
    }
    return 0;
}

/* ---- query callbacks ------------------------------------------------------ */

static int on_copy_row(tf_pga_conn *c, const char *buf, int len, void *ud)
{
    (void)c;
    hjob *j = ud;
    if (j->status) return 0; /* drain */
    int t = copy_tuple(j, buf, len);
    if (t < 0) {
        fail(j, 503, "%s", "malformed COPY data from the database");
        return -1;
    }
    if (j->out.len >= CHUNK && flush_chunk(j, 0) < 0) return -1; /* gone: abandon */
    return 0;
}

static int on_raw_page(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    hjob *j = ud;
    int n = PQntuples(res);
    int more = n > j->q.limit;
    if (more) n = (int)j->q.limit;
    if (PQnfields(res) != 7) return 0;
    for (int i = 0; i < n; i++) emit_raw(j, res, i);
    j->more = more;
    return 0;
}

static int on_bars(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    hjob *j = ud;
    int n = PQntuples(res);
    if (n > 0 && PQnfields(res) != 14) return 0;
    for (int i = 0; i < n; i++) {
        if (j->want && j->got == j->want) { /* the extra row: there is more */
            j->more = 1;
            return 0;
        }
        emit_bar(j, res, i);
        j->got++;
        if (j->q.format != TF_HIST_JSON && j->out.len >= CHUNK && flush_chunk(j, 0) < 0) return -1;
    }
    return 0;
}

static void on_query_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    (void)c;
    hjob *j = ud;
    if (err && err != TF_PGA_ECANCELED) fail(j, 503, "database error: %s", msg);
    else if (err) fail(j, 503, "%s", "query canceled");
    if (j->status || j->q.width_us == 0) {
        complete(j);
        return;
    }
    if (j->phase == PH_BEGIN) {
        j->in_tx = 1;
        j->phase = PH_HINTS;
        int rc = send_hints(j, j->q.width_us, 1); /* on_hints_done goes on */
        if (rc) {
            fail(j, 503, "database error: %s", tf_pg_strerror(rc));
            complete(j);
        }
        return;
    }
    /* a bars window finished */
    if (j->more) {
        complete(j);
        return;
    }
    if (j->want && j->got == j->want && j->q.format != TF_HIST_JSON) {
        complete(j);
        return;
    }
    j->ws = j->we;
    j->q.has_cursor = 0; /* the cursor only matters inside its window */
    if (j->q.format == TF_HIST_JSON && j->want && j->got == j->want) {
        /* page full exactly at a window edge: more only if rows remain;
         * resume after everything before ws (1 us before it, after every
         * ticker), also after imported bars that start inside a bucket */
        j->last_time = j->ws - 1;
        j->more = j->ws < j->q.end_us ? 2 : 0;
        complete(j);
        return;
    }
    if (j->q.format != TF_HIST_JSON && j->req && tf_http_stream_queued(j->req) > HIGH_WATER) {
        j->wait_writable = 1; /* hj_on_writable sends the next window */
        return;
    }
    bars_next(j);
}

static const tf_pga_cbs raw_page_cbs = {on_raw_page, NULL, on_query_done};
static const tf_pga_cbs copy_cbs = {NULL, on_copy_row, on_query_done};
static const tf_pga_cbs bars_cbs = {on_bars, NULL, on_query_done};
static const tf_pga_cbs begin_cbs = {NULL, NULL, on_query_done};

static void send_or_fail(hjob *j, const char *sql, int n, const char *const *vals, int binary,
                         int mode, const tf_pga_cbs *cbs)
{
    int rc = tf_pga_send(j->c, sql, n, vals, binary, mode, cbs, j);
    if (rc) {
        fail(j, 503, "database error: %s", tf_pg_strerror(rc));
        complete(j);
    }
}

/* The next window of bars: (limit + 1) buckets for a page, FETCH_ROWS
 * buckets for a stream (read in single-row mode so a slow client pauses it
 * mid-window). */
static void bars_next(hjob *j)
{
    if (j->ws >= j->q.end_us || j->gone) {
        if (j->gone) fail(j, 503, "%s", "client went away");
        complete(j);
        return;
    }
    int json = j->q.format == TF_HIST_JSON;
    int64_t span = (json ? j->q.limit + 1 : FETCH_ROWS) * j->q.width_us;
    j->we = j->q.end_us - j->ws > span ? j->ws + span : j->q.end_us;
    int64_t lim = j->want ? j->want - j->got + (json ? 1 : 0) : 0;
    sqlp s;
    build_bars(&s, &j->q, &j->hn, j->ws, j->we, lim);
    send_or_fail(j, s.sql, s.n, s.vals, 1, json ? TF_PGA_WHOLE : TF_PGA_ROWS, &bars_cbs);
}

/* Raw rows: a JSON page with one LIMIT query; a stream as COPY binary (one
 * row per message, no per-row result objects). Runs in the transaction
 * tf_hseg_probe opened, when the range has no compressed day. */
static void start_raw_rows(hjob *j)
{
    sqlp s;
    j->phase = PH_QUERY;
    if (j->q.format == TF_HIST_JSON) {
        build_raw(&s, &j->q, j->q.limit + 1);
        send_or_fail(j, s.sql, s.n, s.vals, 1, TF_PGA_WHOLE, &raw_page_cbs);
        return;
    }
    build_raw(&s, &j->q, j->q.limit);
    /* COPY takes no parameters: inline them as literals. Every value comes
     * from our own formatting or passed strict validation (ISO times, digits,
     * [A-Z0-9.-] tickers, market and side names), and is checked again here
     * to hold no quote or backslash. */
    char copy[8192];
    size_t o = (size_t)snprintf(copy, sizeof copy, "COPY (");
    for (const char *p = s.sql; *p && o < sizeof copy - 64;) {
        if (*p == '$' && p[1] >= '1' && p[1] <= '9') {
            int k = 0;
            p++;
            while (*p >= '0' && *p <= '9') k = k * 10 + (*p++ - '0');
            const char *v = k >= 1 && k <= s.n ? s.vals[k - 1] : NULL;
            if (!v || strpbrk(v, "'\\")) {
                fail(j, 400, "%s", "bad query value");
                complete(j);
                return;
            }
            o += (size_t)snprintf(copy + o, sizeof copy - o, "'%s'", v);
        } else {
            copy[o++] = *p++;
        }
    }
    o += (size_t)snprintf(copy + o, sizeof copy - o, ") TO STDOUT (FORMAT binary)");
    if (o >= sizeof copy - 1) {
        fail(j, 503, "%s", "query too long");
        complete(j);
        return;
    }
    send_or_fail(j, copy, 0, NULL, 1, TF_PGA_COPY, &copy_cbs);
}

/* price_e4 (> 0, numeric(18,4)) as PostgreSQL prints it: 4 decimals. */
static int fmt_px(int64_t e4, char *out)
{
    char *o = out;
    uint64_t u = e4 < 0 ? (uint64_t)0 - (uint64_t)e4 : (uint64_t)e4;
    if (e4 < 0) *o++ = '-';
    o = put_i64(o, (int64_t)(u / 10000));
    unsigned f = (unsigned)(u % 10000);
    o[0] = '.';
    o[1] = (char)('0' + f / 1000);
    o[2] = (char)('0' + f / 100 % 10);
    o[3] = (char)('0' + f / 10 % 10);
    o[4] = (char)('0' + f % 10);
    return (int)(o + 5 - out);
}

/* tf_hseg row callback: one trade of the merged walk, formatted as the
 * rows path formats it. */
static int seg_row(void *ud, const tf_trade *t)
{
    hjob *j = ud;
    if (j->status || j->gone) return -1;
    if (j->q.limit > 0 && j->n >= j->q.limit) {
        if (j->q.format == TF_HIST_JSON) j->more = 1; /* a row after the page */
        return 2;
    }
    char px[48];
    int pxl = fmt_px(t->price_e4, px);
    int sell = t->side == 'S';
    emit_raw_fields(j, t->id, t->ticker, (int)strlen(t->ticker), t->market, (int)strlen(t->market),
                    sell ? "SELL" : "BUY", sell ? 4 : 3, px, pxl, t->quantity, t->event_us);
    if (j->q.format == TF_HIST_JSON) return 0;
    if (j->out.len >= CHUNK && flush_chunk(j, 0) < 0) return -1;
    return j->started && tf_http_stream_queued(j->req) > HIGH_WATER ? 1 : 0;
}

static void seg_done(void *ud, int err, const char *msg)
{
    hjob *j = ud;
    if (err && err != TF_PGA_ECANCELED) fail(j, 503, "database error: %s", msg);
    else if (err) fail(j, 503, "%s", j->gone ? "client went away" : "query canceled");
    complete(j);
}

static void on_probe(void *ud, int err, const char *msg, int has_segments)
{
    hjob *j = ud;
    if (err) {
        fail(j, 503, "database error: %s", msg);
        complete(j);
        return;
    }
    if (j->rdirty.known) { /* the raw aggregate's probe, already done */
        j->hn = (bhints){1, j->rdirty.any, j->rdirty.first, j->rdirty.last, 0};
        j->hints_sent = 1;
    }
    if (!has_segments) {
        start_raw_rows(j);
        return;
    }
    static const tf_hseg_cbs cbs = {seg_row, seg_done};
    j->segs = 1;
    j->seg = tf_hseg_start(j->c, &j->q, &cbs, j);
    if (!j->seg) {
        fail(j, 503, "%s", "out of memory");
        complete(j);
    }
}

/* Raw rows, in one REPEATABLE READ transaction: rows only when no day of
 * the range is compressed, else the merge walk of rows and segments. */
static void start_raw(hjob *j)
{
    j->phase = PH_QUERY;
    j->in_tx = 1; /* complete() commits it */
    int rc = tf_hseg_probe(j->c, &j->q, &j->rdirty, on_probe, j);
    if (rc) {
        fail(j, 503, "database error: %s", tf_pg_strerror(rc));
        complete(j);
    }
}

static void on_conn(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    hjob *j = ud;
    j->c = c;
    if (!c) {
        fail(j, 503, "database unavailable: %s", msg);
        complete(j);
        return;
    }
    if (tf_http_req_gone(j->req)) {
        fail(j, 503, "%s", "client went away");
        complete(j);
        return;
    }
    (void)err;
    if (j->q.format == TF_HIST_CSV) {
        const char *hdr = j->q.width_us == 0
                              ? "id,ticker,market_code,trade_type,price,quantity,event_time\n"
                              : "ticker,market_code,start,end,open,high,low,close,volume,count,vwap,"
                                "buy_volume,sell_volume,source\n";
        tf_sbuf_str(&j->out, hdr);
    }
    if (j->q.width_us == 0) {
        start_raw(j);
        return;
    }
    j->want = j->q.limit; /* 0 = all */
    j->ws = j->q.start_us;
    /* windows stay aligned (raw aggregation covers whole buckets); the
     * cursor's WHERE skips what it has seen */
    j->had_cursor = j->q.has_cursor;
    if (j->q.has_cursor) {
        int64_t cw = tf_floor_div(j->q.cur_time_us, j->q.width_us) * j->q.width_us;
        if (cw > j->ws) j->ws = cw;
    }
    j->phase = PH_BEGIN;
    send_or_fail(j, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, 0, TF_PGA_WHOLE,
                 &begin_cbs);
}

void tf_hist_handle(tf_http_req *r, void *ud)
{
    (void)ud;
    tf_server *s = tf_http_server(r);
    const tf_config *cfg = tf_server_config(s);
    tf_hist_param ps[64];
    int n = tf_http_query_count(r);
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) tf_http_query_at(r, i, &ps[i].name, &ps[i].value, &ps[i].vlen);
    hjob *j = calloc(1, sizeof *j);
    if (!j) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    const char *bad = NULL;
    char msg[256];
    int rc = tf_hist_parse(cfg, ps, n, tf_http_header(r, "Accept"), tf_now_us(), &j->q, &bad, msg,
                           sizeof msg);
    if (rc != 0) {
        const char *param = bad;
        char pname[64];
        if (rc <= -2) { /* unknown parameter: name it (sanitized) */
            const char *nm = ps[-2 - rc].name;
            size_t nl = strlen(nm);
            if (nl < sizeof pname && tf_utf8_valid((const unsigned char *)nm, nl))
                snprintf(pname, sizeof pname, "%s", nm);
            else
                snprintf(pname, sizeof pname, "(invalid name)");
            param = pname;
            snprintf(msg, sizeof msg, "unknown parameter '%s'", pname);
        }
        free(j);
        if (rc == -1 && bad && strcmp(bad, "Accept") == 0)
            tf_http_error(r, 406, "not_acceptable", msg, NULL);
        else
            tf_http_error(r, 400, rc <= -2 ? "unknown_parameter" : "invalid_parameter", msg, param);
        return;
    }
    j->req = r;
    j->srv = s;
    j->cfg = cfg;
    j->db = ud;
    /* a stream may last as long as its client reads slowly: a dedicated
     * connection, so it never holds one of the pool's */
    int rc2 = j->db ? tf_pga_acquire(j->db, j->q.format != TF_HIST_JSON, on_conn, j) : TF_PG_ECONN;
    if (rc2 < 0) {
        hjob_free(j);
        tf_http_error(r, 503, "unavailable",
                      rc2 == TF_PGA_EBUSY ? "too many queries in progress, retry later"
                                          : "database unavailable",
                      NULL);
    }
}
