/*
 * src_file.c - a trade file as a provider: source.file_path holds NDJSON
 * lines, one trade each ({"ticker"|"symbol", "price", "quantity"|"size"|
 * "volume", optional "trade_type"|"side" BUY/SELL/B/S and "market_code"}),
 * written at source.file_rate trades/s with event times of now, from the
 * top again at the end (a loop, as a stand-in feed for demos and tests).
 * The file is read line by line (constant memory, any size). A line that is
 * not a trade is logged and skipped. Keys: "<open time us>-<n>".
 */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ingest/providers/pace.h"
#include "ingest/providers/source.h"

#define BATCH 1024
#define MAX_LINE 4096

typedef struct fsrc {
    tf_source_ctx ctx;
    FILE *f;
    tf_pace pace;
    int64_t open_us, lineno;
    char line[MAX_LINE];
    tf_pv_trade out[BATCH];
} fsrc;

static json_t *get(json_t *o, const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(o, a);
    if (!v && b) v = json_object_get(o, b);
    if (!v && c) v = json_object_get(o, c);
    return v;
}

/* 0 with *t filled, or -1 with why. */
static int parse_line(const char *s, size_t len, tf_trade *t, const char **why)
{
    json_t *o = json_loadb(s, len, 0, NULL);
    int rc = -1;
    memset(t, 0, sizeof *t);
    if (!json_is_object(o)) {
        *why = "not a JSON object";
        goto out;
    }
    json_t *tk = get(o, "ticker", "symbol", NULL), *p = get(o, "price", NULL, NULL),
           *q = get(o, "quantity", "size", "volume"), *sd = get(o, "trade_type", "side", NULL),
           *mk = json_object_get(o, "market_code");
    size_t n = json_is_string(tk) ? json_string_length(tk) : 0;
    if (n == 0 || n >= TF_TICKER_MAX) {
        *why = "ticker missing or too long";
        goto out;
    }
    for (size_t i = 0; i < n; i++) t->ticker[i] = (char)toupper((unsigned char)json_string_value(tk)[i]);
    if (!tf_ticker_valid(t->ticker, n)) {
        *why = "ticker is not a valid symbol";
        goto out;
    }
    if (json_is_string(p) ? tf_parse_fixed(json_string_value(p), json_string_length(p), 4, &t->price_e4) != 0
        : json_is_number(p) ? (t->price_e4 = (int64_t)(json_number_value(p) * TF_PRICE_SCALE + 0.5), 0)
                            : 1) {
        *why = "price is not a decimal";
        goto out;
    }
    if (t->price_e4 <= 0) {
        *why = "price must be > 0";
        goto out;
    }
    if (!json_is_integer(q) || json_integer_value(q) <= 0) {
        *why = "quantity is not a positive integer";
        goto out;
    }
    t->quantity = json_integer_value(q);
    if (sd) {
        const char *v = json_is_string(sd) ? json_string_value(sd) : "";
        if (!strcasecmp(v, "BUY") || !strcasecmp(v, "B"))
            t->side = 'B';
        else if (!strcasecmp(v, "SELL") || !strcasecmp(v, "S"))
            t->side = 'S';
        else {
            *why = "trade_type is not BUY/SELL/B/S";
            goto out;
        }
    }
    if (mk) {
        if (!json_is_string(mk) || !tf_market_valid(json_string_value(mk), json_string_length(mk))) {
            *why = "market_code is not a market";
            goto out;
        }
        snprintf(t->market, sizeof t->market, "%s", json_string_value(mk));
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static void *create(const tf_source_ctx *ctx, char *err, size_t errlen)
{
    if (!ctx->cfg->source_file_path[0]) return snprintf(err, errlen, "the file provider needs source.file_path"), NULL;
    fsrc *s = calloc(1, sizeof *s);
    if (!s) return snprintf(err, errlen, "out of memory"), NULL;
    s->ctx = *ctx;
    return s;
}

static int open_(void *st, char *err, size_t errlen)
{
    fsrc *s = st;
    if (!(s->f = fopen(s->ctx.cfg->source_file_path, "r"))) {
        snprintf(err, errlen, "cannot open source.file_path %s", s->ctx.cfg->source_file_path);
        return TF_SRC_ECONN;
    }
    s->open_us = tf_now_us();
    s->lineno = 0;
    tf_pace_start(&s->pace, s->ctx.cfg->source_file_rate);
    return 0;
}

static int poll_(void *st, int timeout_ms, char *err, size_t errlen)
{
    fsrc *s = st;
    if (!s->f) return snprintf(err, errlen, "not open"), -1;
    int64_t due = tf_pace_due(&s->pace, timeout_ms, BATCH);
    size_t n = 0;
    int rewound = 0;
    while ((int64_t)n < due) {
        if (!fgets(s->line, sizeof s->line, s->f)) {
            if (rewound++ || s->lineno == 0) break; /* an empty file (or no good line): nothing to loop */
            rewind(s->f);
            continue;
        }
        rewound = 0;
        s->lineno++;
        size_t len = strcspn(s->line, "\r\n");
        if (len == 0) continue;
        const char *why = NULL;
        tf_pv_trade *o = &s->out[n];
        if (parse_line(s->line, len, &o->t, &why) != 0) {
            tf_source_log_bad(s->ctx.name, why, s->line, len);
            s->ctx.sink.bad(s->ctx.sink.ud, 1);
            continue;
        }
        o->t.event_us = tf_now_us();
        snprintf(o->sid, sizeof o->sid, "%" PRId64 "-%" PRId64, s->open_us, s->pace.emitted + (int64_t)n);
        n++;
    }
    s->pace.emitted += due; /* lines skipped count too: the rate is of lines */
    if (n) s->ctx.sink.trades(s->ctx.sink.ud, s->out, n);
    return 0;
}

static void close_(void *st)
{
    fsrc *s = st;
    if (s->f) fclose(s->f);
    s->f = NULL;
}

static void destroy(void *st)
{
    if (!st) return;
    close_(st);
    free(st);
}

const tf_source_ops tf_src_file_ops = {
    .name = "file", .create = create, .open = open_, .poll = poll_, .close = close_, .destroy = destroy,
};
