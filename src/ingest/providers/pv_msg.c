/*
 * pv_msg.c - provider message decoders and encoders (see pv_msg.h for the
 * formats). JSON is parsed by jansson (Debian libjansson-dev, already our
 * JSON library): provider messages are small, nested and loosely typed
 * (numbers or strings, optional fields), which a hand parser would get wrong
 * more often than it would save time; each decoder then checks every field
 * before it is used.
 */
#include "ingest/providers/pv_msg.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define MAX_PRICE 1e11 /* numeric(18,4) holds 10^14; 4 decimals exact below 10^11 */
/* event times the COPY writer sends: [1900-01-01, 10000-01-01) UTC; a trade
 * outside is a bad item here rather than a refused batch there */
#define MIN_EVENT_US (-2208988800LL * TF_US_PER_SEC)
#define MAX_EVENT_US (253402300800LL * TF_US_PER_SEC)

static int time_ok(int64_t us) { return us >= MIN_EVENT_US && us < MAX_EVENT_US; }

void tf_pv_result_init(tf_pv_result *r, tf_pv_trade *trades, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->trades = trades;
    r->cap = cap;
}

static void reset(tf_pv_result *r)
{
    r->ntrades = 0;
    r->ctl = TF_PV_CTL_NONE;
    r->code = 0;
    r->seq = -1;
    r->text[0] = r->bad[0] = '\0';
    r->nbad = 0;
}

static void bad_item(tf_pv_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_item(tf_pv_result *r, const char *fmt, ...)
{
    if (r->nbad++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->bad, sizeof r->bad, fmt, ap);
        va_end(ap);
    }
}

static int bad_msg(tf_pv_result *r, const char *why)
{
    snprintf(r->bad, sizeof r->bad, "%s", why);
    return -1;
}

static json_t *load(const char *buf, size_t len, tf_pv_result *r)
{
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) snprintf(r->bad, sizeof r->bad, "not JSON: %.140s", je.text);
    return root;
}

/* Upper-cases a ticker into out; 0 when it is then a valid symbol. */
static int ticker(json_t *v, char out[TF_TICKER_MAX])
{
    if (!json_is_string(v)) return -1;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || n >= TF_TICKER_MAX) return -1;
    for (size_t i = 0; i < n; i++) out[i] = (char)toupper((unsigned char)s[i]);
    out[n] = '\0';
    return tf_ticker_valid(out, n) ? 0 : -1;
}

/* A JSON number price -> x10^4; 0 or -1. */
static int price_num(json_t *v, int64_t *out)
{
    if (!json_is_number(v)) return -1;
    double p = json_number_value(v);
    if (!isfinite(p) || p <= 0 || p >= MAX_PRICE) return -1;
    int64_t e4 = llround(p * TF_PRICE_SCALE);
    if (e4 <= 0) return -1;
    *out = e4;
    return 0;
}

/* A whole positive quantity given as a JSON number. */
static int qty_num(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t q = json_integer_value(v);
        if (q <= 0) return -1;
        *out = q;
        return 0;
    }
    if (!json_is_real(v)) return -1;
    double q = json_real_value(v);
    if (!isfinite(q) || q < 1 || q > 9e15 || q != floor(q)) return -1;
    *out = (int64_t)q;
    return 0;
}

static void set_text(tf_pv_result *r, json_t *msg)
{
    if (json_is_string(msg)) snprintf(r->text, sizeof r->text, "%s", json_string_value(msg));
}

static int push(tf_pv_result *r, const tf_pv_trade *t)
{
    if (r->ntrades >= r->cap) {
        bad_item(r, "more than %zu trades in one message", r->cap);
        return -1;
    }
    r->trades[r->ntrades++] = *t;
    return 0;
}

/* ---- Alpaca ---- */

static void alpaca_trade(json_t *o, tf_pv_result *r, size_t idx)
{
    tf_pv_trade t;
    memset(&t, 0, sizeof t);
    json_t *tm = json_object_get(o, "t"), *id = json_object_get(o, "i"), *x = json_object_get(o, "x");
    if (ticker(json_object_get(o, "S"), t.t.ticker)) return bad_item(r, "item %zu: S is not a valid symbol", idx);
    if (price_num(json_object_get(o, "p"), &t.t.price_e4))
        return bad_item(r, "item %zu: p is not a positive price", idx);
    if (qty_num(json_object_get(o, "s"), &t.t.quantity))
        return bad_item(r, "item %zu: s is not a positive whole size", idx);
    if (!json_is_string(tm) || tf_parse_iso_us(json_string_value(tm), json_string_length(tm), &t.t.event_us) ||
        !time_ok(t.t.event_us))
        return bad_item(r, "item %zu: t is not an RFC 3339 time", idx);
    if (!json_is_integer(id) || json_integer_value(id) < 0) return bad_item(r, "item %zu: i is not a trade id", idx);
    const char *xs = json_is_string(x) ? json_string_value(x) : "";
    /* exchange codes are one letter; anything else would blur the key */
    size_t xl = strlen(xs);
    int xok = xl <= 8;
    for (size_t k = 0; k < xl && xok; k++) xok = isalnum((unsigned char)xs[k]) != 0;
    if (!xok) return bad_item(r, "item %zu: x is not an exchange code", idx);
    snprintf(t.sid, sizeof t.sid, "%s:%s:%" PRId64, t.t.ticker, xs, (int64_t)json_integer_value(id));
    push(r, &t);
}

int tf_pv_parse_alpaca(const char *buf, size_t len, tf_pv_result *r)
{
    reset(r);
    json_t *root = load(buf, len, r);
    if (!root) return -1;
    int rc = 0;
    if (!json_is_array(root)) {
        rc = bad_msg(r, "not a JSON array");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *o = json_array_get(root, i), *T = json_object_get(o, "T");
        if (!json_is_object(o) || !json_is_string(T)) {
            bad_item(r, "item %zu: no \"T\"", i);
            continue;
        }
        const char *k = json_string_value(T);
        if (!strcmp(k, "t")) {
            alpaca_trade(o, r, i);
        } else if (!strcmp(k, "success")) {
            json_t *m = json_object_get(o, "msg");
            set_text(r, m);
            if (json_is_string(m) && !strcmp(json_string_value(m), "authenticated"))
                r->ctl = TF_PV_CTL_AUTHENTICATED;
            else
                r->ctl = TF_PV_CTL_CONNECTED;
        } else if (!strcmp(k, "subscription")) {
            r->ctl = TF_PV_CTL_SUBSCRIBED;
        } else if (!strcmp(k, "error")) {
            r->ctl = TF_PV_CTL_ERROR;
            json_t *c = json_object_get(o, "code");
            r->code = json_is_integer(c) ? (int)json_integer_value(c) : 0;
            set_text(r, json_object_get(o, "msg"));
        }
        /* other kinds (quotes "q", bars "b", statuses "s", corrections "x"/"c")
         * are not trades: ignored, not errors, since we only subscribe to trades */
    }
out:
    json_decref(root);
    return rc;
}

/* A message that must be an object with a string "type" (Finnhub,
 * tickflow): the parsed root (the caller's to free) with *kind its type, or
 * NULL with r->bad set (r reset first either way). */
static json_t *load_typed(const char *buf, size_t len, tf_pv_result *r, const char **kind)
{
    reset(r);
    json_t *root = load(buf, len, r);
    if (!root) return NULL;
    json_t *type = json_object_get(root, "type");
    if (!json_is_object(root) || !json_is_string(type)) {
        bad_msg(r, "not an object with \"type\"");
        json_decref(root);
        return NULL;
    }
    *kind = json_string_value(type);
    return root;
}

/* ---- Finnhub ---- */

int tf_pv_parse_finnhub(const char *buf, size_t len, tf_pv_result *r)
{
    const char *k;
    json_t *root = load_typed(buf, len, r, &k);
    if (!root) return -1;
    int rc = 0;
    if (!strcmp(k, "ping")) {
        r->ctl = TF_PV_CTL_PING;
    } else if (!strcmp(k, "error")) {
        r->ctl = TF_PV_CTL_ERROR;
        set_text(r, json_object_get(root, "msg"));
    } else if (!strcmp(k, "trade")) {
        json_t *data = json_object_get(root, "data");
        if (!json_is_array(data)) {
            rc = bad_msg(r, "trade message without a data array");
            goto out;
        }
        size_t first = r->ntrades;
        for (size_t i = 0; i < json_array_size(data); i++) {
            json_t *o = json_array_get(data, i), *tm = json_object_get(o, "t");
            tf_pv_trade t;
            memset(&t, 0, sizeof t);
            if (!json_is_object(o)) {
                bad_item(r, "item %zu: not an object", i);
                continue;
            }
            if (ticker(json_object_get(o, "s"), t.t.ticker)) {
                bad_item(r, "item %zu: s is not a valid symbol", i);
                continue;
            }
            if (price_num(json_object_get(o, "p"), &t.t.price_e4)) {
                bad_item(r, "item %zu: p is not a positive price", i);
                continue;
            }
            if (qty_num(json_object_get(o, "v"), &t.t.quantity)) {
                bad_item(r, "item %zu: v is not a positive whole volume", i);
                continue;
            }
            if (!json_is_integer(tm) || json_integer_value(tm) <= 0 ||
                json_integer_value(tm) > 253402300799999LL) {
                bad_item(r, "item %zu: t is not epoch milliseconds", i);
                continue;
            }
            t.t.event_us = (int64_t)json_integer_value(tm) * 1000;
            /* k: identical trades earlier in this message */
            int dup = 0;
            for (size_t j = first; j < r->ntrades; j++) {
                const tf_trade *p = &r->trades[j].t;
                dup += p->event_us == t.t.event_us && p->price_e4 == t.t.price_e4 &&
                       p->quantity == t.t.quantity && !strcmp(p->ticker, t.t.ticker);
            }
            snprintf(t.sid, sizeof t.sid, "%s:%" PRId64 ":%" PRId64 ":%" PRId64 ":%d", t.t.ticker,
                     t.t.event_us / 1000, t.t.price_e4, t.t.quantity, dup);
            push(r, &t);
        }
    } else {
        rc = bad_msg(r, "unknown message type");
    }
out:
    json_decref(root);
    return rc;
}

/* ---- tickflow ---- */

int tf_pv_parse_tickflow(const char *buf, size_t len, tf_pv_result *r)
{
    const char *k;
    json_t *root = load_typed(buf, len, r, &k);
    if (!root) return -1;
    json_t *seq = json_object_get(root, "seq");
    if (json_is_integer(seq) && json_integer_value(seq) >= 0) r->seq = json_integer_value(seq);
    if (!strcmp(k, "trade")) {
        tf_pv_trade t;
        memset(&t, 0, sizeof t);
        json_t *id = json_object_get(root, "id"), *mk = json_object_get(root, "market_code"),
               *side = json_object_get(root, "trade_type"), *p = json_object_get(root, "price"),
               *tm = json_object_get(root, "event_time");
        if (!json_is_integer(id) || json_integer_value(id) <= 0) {
            bad_item(r, "id is not a trade id");
        } else if (ticker(json_object_get(root, "ticker"), t.t.ticker)) {
            bad_item(r, "ticker is not a valid symbol");
        } else if (!json_is_string(mk) || !tf_market_valid(json_string_value(mk), json_string_length(mk))) {
            bad_item(r, "market_code is not a market");
        } else if (!json_is_string(side) ||
                   (strcmp(json_string_value(side), "BUY") && strcmp(json_string_value(side), "SELL"))) {
            bad_item(r, "trade_type is not BUY or SELL");
        } else if (!json_is_string(p) ||
                   tf_parse_fixed(json_string_value(p), json_string_length(p), 4, &t.t.price_e4) ||
                   t.t.price_e4 <= 0 || t.t.price_e4 >= 1000000000000000000LL /* numeric(18,4) */) {
            bad_item(r, "price is not a positive decimal string");
        } else if (qty_num(json_object_get(root, "quantity"), &t.t.quantity)) {
            bad_item(r, "quantity is not a positive whole number");
        } else if (!json_is_string(tm) ||
                   tf_parse_iso_us(json_string_value(tm), json_string_length(tm), &t.t.event_us) ||
                   !time_ok(t.t.event_us)) {
            bad_item(r, "event_time is not an ISO-8601 time");
        } else {
            snprintf(t.t.market, sizeof t.t.market, "%s", json_string_value(mk));
            t.t.side = json_string_value(side)[0] == 'B' ? 'B' : 'S';
            snprintf(t.sid, sizeof t.sid, "%" PRId64, (int64_t)json_integer_value(id));
            push(r, &t);
        }
    } else if (!strcmp(k, "hello")) {
        r->ctl = TF_PV_CTL_CONNECTED;
    } else if (!strcmp(k, "subscribed")) {
        r->ctl = TF_PV_CTL_SUBSCRIBED;
    } else if (!strcmp(k, "error")) {
        r->ctl = TF_PV_CTL_ERROR;
        set_text(r, json_object_get(root, "message"));
        json_t *param = json_object_get(root, "param"), *code = json_object_get(root, "code");
        const char *c = json_is_string(code) ? json_string_value(code) : "";
        if (!strcmp(c, "history_too_large")) r->code = TF_PV_TF_TOO_MUCH;
        else if (!strcmp(c, "unavailable")) r->code = TF_PV_TF_UNAVAILABLE;
        else if (json_is_string(param) && !strcmp(json_string_value(param), "since")) r->code = TF_PV_TF_NO_SINCE;
    } else if (!strcmp(k, "history_end")) {
        r->ctl = TF_PV_CTL_HISTORY_END;
    } else if (!strcmp(k, "lagged")) {
        r->ctl = TF_PV_CTL_LAGGED;
        json_t *d = json_object_get(root, "dropped");
        r->code = json_is_integer(d) ? (int)json_integer_value(d) : 0;
    }
    /* candles ("tick"), ... : not trades, ignored */
    json_decref(root);
    return 0;
}

/* ---- encoders ---- */

static int fit(int n, size_t cap) { return (n < 0 || (size_t)n >= cap) ? -1 : n; }

/* Appends a JSON string array of the comma list's valid tickers. */
static int ticker_array(const char *list, char *out, size_t cap)
{
    size_t o = 0;
    if (cap < 3) return -1;
    out[o++] = '[';
    const char *p = list;
    int n = 0;
    while (*p) {
        size_t l = strcspn(p, ",");
        char tk[TF_TICKER_MAX];
        size_t a = 0, b = l;
        while (a < b && isspace((unsigned char)p[a])) a++;
        while (b > a && isspace((unsigned char)p[b - 1])) b--;
        if (b > a) {
            if (b - a >= TF_TICKER_MAX) return -1;
            for (size_t i = a; i < b; i++) tk[i - a] = (char)toupper((unsigned char)p[i]);
            tk[b - a] = '\0';
            if (!tf_ticker_valid(tk, b - a) && strcmp(tk, "*")) return -1;
            if (o + (b - a) + 4 >= cap) return -1;
            o += (size_t)sprintf(out + o, "%s\"%s\"", n++ ? "," : "", tk);
        }
        p += l;
        if (*p == ',') p++;
    }
    out[o++] = ']';
    out[o] = '\0';
    return (int)o;
}

int tf_pv_enc_alpaca_auth(char *buf, size_t cap, const char *key, const char *secret)
{
    char k[512], s[512];
    int a = tf_json_escape(key, strlen(key), k, sizeof k - 1);
    int b = tf_json_escape(secret, strlen(secret), s, sizeof s - 1);
    if (a < 0 || b < 0) return -1;
    k[a] = s[b] = '\0';
    return fit(snprintf(buf, cap, "{\"action\":\"auth\",\"key\":\"%s\",\"secret\":\"%s\"}", k, s), cap);
}

int tf_pv_enc_alpaca_subscribe(char *buf, size_t cap, const char *tickers)
{
    char arr[8192];
    if (ticker_array(tickers, arr, sizeof arr) < 0) return -1;
    return fit(snprintf(buf, cap, "{\"action\":\"subscribe\",\"trades\":%s}", arr), cap);
}

int tf_pv_enc_finnhub_subscribe(char *buf, size_t cap, const char *ticker)
{
    char tk[TF_TICKER_MAX];
    size_t n = strlen(ticker);
    if (n == 0 || n >= TF_TICKER_MAX) return -1;
    for (size_t i = 0; i <= n; i++) tk[i] = (char)toupper((unsigned char)ticker[i]);
    if (!tf_ticker_valid(tk, n)) return -1;
    return fit(snprintf(buf, cap, "{\"type\":\"subscribe\",\"symbol\":\"%s\"}", tk), cap);
}

int tf_pv_enc_tickflow_subscribe(char *buf, size_t cap, const char *tickers, int64_t since_us)
{
    char arr[8192], since[48] = "";
    if (ticker_array(tickers, arr, sizeof arr) < 0) return -1;
    if (since_us > 0) {
        char iso[40];
        tf_fmt_iso_us(since_us, iso);
        snprintf(since, sizeof since, ",\"since\":\"%.30s\"", iso);
    }
    return fit(snprintf(buf, cap, "{\"action\":\"subscribe\",\"tickers\":%s,\"interval_ms\":0%s}", arr, since), cap);
}
