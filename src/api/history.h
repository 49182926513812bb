/*
 * history.h - GET /api/v1/stock: trade history and OHLCV bars (DESIGN.md
 * section 4). Validation is a pure function (tests and the fuzz target call
 * it); the query runs on the loop on the asynchronous pool
 * (store/pgasync.h); CSV and NDJSON streams are read from PostgreSQL only as
 * fast as the client's socket takes them.
 */
#ifndef TF_HISTORY_H
#define TF_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "event/trade.h"
#include "http/http.h"

enum { TF_HIST_JSON = 0, TF_HIST_CSV, TF_HIST_NDJSON };

/* The answer format an Accept header asks for (RFC 9110 12.5.1: q-values,
 * the most specific matching range decides each type's q, q=0 excludes;
 * ties go to the more specific match, then JSON). NULL or no match at all:
 * JSON. Returns -1 when every format is excluded (406). */
int tf_hist_accept(const char *accept);

typedef struct tf_hist_query {
    int64_t width_us;             /* 0 = raw, else bucket width (1m, 1h, 1d) */
    char interval[8];             /* "raw", "1m", "1h", "1d" */
    char ticker[TF_TICKER_MAX];   /* "" = any */
    char market[TF_MARKET_MAX];   /* "" = any */
    char side[8];                 /* "", "BUY", "SELL" */
    int64_t start_us, end_us;     /* [start, end); aligned to width for bars */
    int64_t limit;                /* rows per page; 0 = unlimited (streams) */
    int has_cursor;
    int64_t cur_time_us;          /* raw: event time; bars: bucket start */
    int64_t cur_id;               /* raw only */
    char cur_ticker[TF_TICKER_MAX];
    char cur_market[TF_MARKET_MAX];
    int format;                   /* TF_HIST_* */
} tf_hist_query;

typedef struct tf_hist_param {
    const char *name;
    const char *value;
    size_t vlen;
} tf_hist_param;

/*
 * Validates the query parameters (borrowed) into q. now_us is "now" for
 * duration without end. accept is the Accept header or NULL.
 * Returns 0, or -1 with *bad_param (a static string naming the parameter)
 * and a message in msg.
 */
int tf_hist_parse(const tf_config *cfg, const tf_hist_param *params, int nparams,
                  const char *accept, int64_t now_us, tf_hist_query *q, const char **bad_param,
                  char *msg, size_t msglen);

/* Opaque cursors: encode the position after a row / decode into q.
 * tf_hist_cursor_encode returns the length written into out (cap >= 128). */
size_t tf_hist_cursor_encode(const tf_hist_query *q, int64_t time_us, int64_t id,
                             const char *ticker, const char *market, char *out, size_t cap);
int tf_hist_cursor_decode(tf_hist_query *q, const char *s, size_t len);

/* The route handler; ud is the tf_pga pool (NULL: always 503). Registered
 * by api.c. */
void tf_hist_handle(tf_http_req *r, void *ud);

#endif
