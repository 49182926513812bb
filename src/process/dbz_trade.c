/*
 * dbz_trade.c - single-pass reader of the Debezium trade envelope (see
 * dbz_trade.h). Every read checks the remaining length first.
 */
#include "process/dbz_trade.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

#define MAX_DEPTH 32

typedef struct cur {
    const char *p, *end;
    const char *why;
} cur;

static void ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static int expect(cur *c, char ch)
{
    ws(c);
    if (c->p >= c->end || *c->p != ch) return -1;
    c->p++;
    return 0;
}

/* Reads a string at c->p (after ws). Returns the raw slice between the
 * quotes; *escaped = 1 when it contains backslash escapes. */
static int str(cur *c, const char **s, size_t *n, int *escaped)
{
    ws(c);
    if (c->p >= c->end || *c->p != '"') return -1;
    const char *b = ++c->p, *q = b;
    int esc = 0;
    for (;;) {
        /* jump to the next quote; a backslash before it needs the slow path */
        const char *e = memchr(q, '"', (size_t)(c->end - q));
        if (!e) return -1;
        const char *bs = memchr(q, '\\', (size_t)(e - q));
        if (!bs) {
            q = e;
            break;
        }
        esc = 1;
        q = bs + 2; /* skip the escaped character */
        if (q > c->end) return -1;
    }
    for (const char *k = b; k < q; k++)
        if ((unsigned char)*k < 0x20) return -1;
    *s = b;
    *n = (size_t)(q - b);
    if (escaped) *escaped = esc;
    c->p = q + 1;
    return 0;
}

/* A number or literal token: the slice up to the next delimiter. */
static int token(cur *c, const char **s, size_t *n)
{
    ws(c);
    const char *q = c->p;
    while (q < c->end && *q != ',' && *q != '}' && *q != ']' && *q != ' ' && *q != '\n' &&
           *q != '\r' && *q != '\t')
        q++;
    if (q == c->p) return -1;
    *s = c->p;
    *n = (size_t)(q - c->p);
    c->p = q;
    return 0;
}

/* After a member or element: 1 on ',' (another follows), 0 on `close`
 * (consumed), -1 on anything else. */
static int next_member(cur *c, char close)
{
    ws(c);
    if (c->p >= c->end) return -1;
    if (*c->p == ',') {
        c->p++;
        return 1;
    }
    if (*c->p == close) {
        c->p++;
        return 0;
    }
    return -1;
}

static int skip_value(cur *c, int depth)
{
    ws(c);
    if (c->p >= c->end || depth > MAX_DEPTH) return -1;
    const char *s;
    size_t n;
    if (*c->p == '"') return str(c, &s, &n, NULL);
    if (*c->p == '{' || *c->p == '[') {
        char close = *c->p == '{' ? '}' : ']';
        int obj = *c->p == '{';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (obj) {
                if (str(c, &s, &n, NULL) || expect(c, ':')) return -1;
            }
            if (skip_value(c, depth + 1)) return -1;
            int more = next_member(c, close);
            if (more <= 0) return more;
        }
    }
    if (token(c, &s, &n)) return -1;
    /* literals and numbers: check the shape loosely */
    if ((n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "true", 4))) || (n == 5 && !memcmp(s, "false", 5)))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == '.' || ch == 'e' || ch == 'E')) return -1;
    }
    return 0;
}

static int is_null(cur *c)
{
    ws(c);
    if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) {
        c->p += 4;
        return 1;
    }
    return 0;
}

#define KEY(k, lit) (k##n == sizeof(lit) - 1 && !memcmp(k, lit, sizeof(lit) - 1))

enum { F_ID = 1, F_TICKER = 2, F_MARKET = 4, F_TYPE = 8, F_PRICE = 16, F_QTY = 32, F_TIME = 64, F_ALL = 127 };

static int parse_after(cur *c, tf_trade *t)
{
    if (expect(c, '{')) return -1;
    int have = 0;
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        c->why = "after: empty row";
        return -1;
    }
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        int esc;
        if (str(c, &k, &kn, NULL) || expect(c, ':')) return -1;
        if (KEY(k, "id")) {
            if (token(c, &v, &vn) || tf_parse_i64(v, vn, &t->id) || t->id <= 0) {
                c->why = "after.id: not a positive integer";
                return -1;
            }
            have |= F_ID;
        } else if (KEY(k, "ticker")) {
            if (str(c, &v, &vn, &esc) || esc || !tf_ticker_valid(v, vn)) {
                c->why = "after.ticker: invalid";
                return -1;
            }
            memcpy(t->ticker, v, vn);
            t->ticker[vn] = 0;
            have |= F_TICKER;
        } else if (KEY(k, "market_code")) {
            if (str(c, &v, &vn, &esc) || esc || !tf_market_valid(v, vn)) {
                c->why = "after.market_code: invalid";
                return -1;
            }
            memcpy(t->market, v, vn);
            t->market[vn] = 0;
            have |= F_MARKET;
        } else if (KEY(k, "trade_type")) {
            if (str(c, &v, &vn, &esc) || esc || !((vn == 3 && !memcmp(v, "BUY", 3)) || (vn == 4 && !memcmp(v, "SELL", 4)))) {
                c->why = "after.trade_type: not BUY or SELL";
                return -1;
            }
            t->side = v[0] == 'B' ? 'B' : 'S';
            have |= F_TYPE;
        } else if (KEY(k, "price")) {
            ws(c);
            int quoted = c->p < c->end && *c->p == '"';
            int rc = quoted ? str(c, &v, &vn, &esc) : token(c, &v, &vn);
            if (rc || (quoted && esc) || tf_parse_fixed(v, vn, 4, &t->price_e4) || t->price_e4 <= 0) {
                c->why = "after.price: not a positive decimal with at most 4 fraction digits";
                return -1;
            }
            have |= F_PRICE;
        } else if (KEY(k, "quantity")) {
            if (token(c, &v, &vn) || tf_parse_i64(v, vn, &t->quantity) || t->quantity <= 0) {
                c->why = "after.quantity: not a positive integer";
                return -1;
            }
            have |= F_QTY;
        } else if (KEY(k, "event_time")) {
            if (str(c, &v, &vn, &esc) || esc || tf_parse_iso_us(v, vn, &t->event_us)) {
                c->why = "after.event_time: not an ISO-8601 time";
                return -1;
            }
            have |= F_TIME;
        } else if (skip_value(c, 2)) {
            return -1;
        }
        int more = next_member(c, '}');
        if (more < 0) return -1;
        if (more == 0) break;
    }
    if (have != F_ALL) {
        c->why = "after: missing trade columns";
        return -1;
    }
    return 0;
}

static int parse_source(cur *c, tf_dbz_trade *o)
{
    if (expect(c, '{')) return -1;
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (str(c, &k, &kn, NULL) || expect(c, ':')) return -1;
        if (KEY(k, "ts_ms") || KEY(k, "lsn")) {
            int64_t x;
            if (token(c, &v, &vn) || tf_parse_i64(v, vn, &x)) {
                c->why = "source: bad ts_ms / lsn";
                return -1;
            }
            if (KEY(k, "lsn")) o->lsn = (uint64_t)x;
            else o->commit_ts_ms = x;
        } else if (skip_value(c, 2)) {
            return -1;
        }
        int more = next_member(c, '}');
        if (more <= 0) return more;
    }
}

int tf_dbz_parse_trade(const char *buf, size_t len, tf_dbz_trade *o, const char **why)
{
    cur c = {buf, buf + len, NULL};
    memset(o, 0, sizeof *o);
    int have_after = 0;
    const char *w = "malformed JSON";
    if (!buf || expect(&c, '{')) goto bad;
    ws(&c);
    if (c.p < c.end && *c.p == '}') {
        w = "empty envelope";
        goto bad;
    }
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        int esc;
        if (str(&c, &k, &kn, NULL) || expect(&c, ':')) goto bad;
        if (KEY(k, "after")) {
            if (!is_null(&c)) {
                if (parse_after(&c, &o->tr)) goto bad;
                have_after = 1;
            }
        } else if (KEY(k, "source")) {
            if (!is_null(&c) && parse_source(&c, o)) goto bad;
        } else if (KEY(k, "op")) {
            if (str(&c, &v, &vn, &esc) || vn != 1 || !strchr("cudrt", v[0])) {
                w = "op: not one of c u d r t";
                goto bad;
            }
            o->op = v[0];
        } else if (skip_value(&c, 1)) {
            goto bad;
        }
        ws(&c);
        if (c.p >= c.end) goto bad;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p == '}') {
            c.p++;
            break;
        }
        goto bad;
    }
    ws(&c);
    if (c.p != c.end && !(c.end - c.p == 1 && *c.p == 0)) {
        w = "trailing bytes after the envelope";
        goto bad;
    }
    if (!o->op) {
        w = "op missing";
        goto bad;
    }
    if (o->op == 'd' || o->op == 't') return TF_DBZ_SKIP;
    if (!have_after) {
        w = "after missing for an insert/update/read";
        goto bad;
    }
    return TF_DBZ_TRADE;
bad:
    if (why) *why = c.why ? c.why : w;
    return TF_DBZ_BAD;
}

int tf_dbz_encode_trade(const tf_trade *t, int64_t commit_ts_ms, uint64_t lsn, int64_t xid, char *buf,
                        size_t cap)
{
    char price[40], et[40];
    tf_fmt_fixed(t->price_e4, 4, price);
    tf_fmt_iso_us(t->event_us, et);
    int n = snprintf(buf, cap,
                     "{\"before\":null,\"after\":{\"id\":%lld,\"ticker\":\"%s\",\"market_code\":\"%s\","
                     "\"trade_type\":\"%s\",\"price\":\"%s\",\"quantity\":%lld,\"event_time\":\"%s\"},"
                     "\"source\":{\"version\":\"tickflow-0.1.0\",\"connector\":\"postgresql\",\"name\":\"stock\","
                     "\"ts_ms\":%lld,\"snapshot\":\"false\",\"db\":\"tickflow\",\"schema\":\"public\","
                     "\"table\":\"stock_trades\",\"txId\":%lld,\"lsn\":%llu},\"op\":\"c\",\"ts_ms\":%lld}",
                     (long long)t->id, t->ticker, t->market, t->side == 'B' ? "BUY" : "SELL", price,
                     (long long)t->quantity, et, (long long)commit_ts_ms, (long long)xid,
                     (unsigned long long)lsn, (long long)commit_ts_ms);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
