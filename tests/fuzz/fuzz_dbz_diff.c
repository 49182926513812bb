/*
 * fuzz_dbz_diff.c - differential libFuzzer target: the fast Debezium trade
 * decoder (event/dbz.c) against jansson on the same bytes.
 *
 * The oracle reads the input with json_loadb (flags 0) and applies the
 * contract of event/dbz.h to the DOM with its own field parsers (decimal
 * strings, timestamps through timegm), sharing only the ticker / market
 * validators (vocabulary, not decoding). "Agree" means:
 *   - both reject, or
 *   - both accept with the same result code (trade / skip), the same op,
 *     source.ts_ms and source.lsn (0 when absent), and for a trade the same
 *     id, ticker, market_code, side, price x10^4 (exact), quantity and
 *     event time in microseconds (fraction digits past the sixth truncated);
 *   - or the fast decoder rejects with an "unsupported:" reason where JSON
 *     means something it does not follow (escapes in keys or decoded
 *     strings, a decoded key twice - jansson keeps the last -, a real
 *     price, nesting past 32, a number past 127 characters); each such
 *     claim is checked against the input (a backslash is there, jansson
 *     with JSON_REJECT_DUPLICATES refuses it, the price is a real, ...), so
 *     a wrong "unsupported" is a finding too;
 *   - or the fast decoder rejects, for any reason, a document with a key
 *     repeated in one object (it may fail on the copy jansson drops).
 * Anything else (the fast decoder accepting what jansson refuses, a field
 * decoded differently) aborts.
 *
 * Seeds: tests/fuzz/corpus/fuzz_dbz_diff/, the encoder's own envelopes for
 * insert, update, delete, snapshot read and truncate.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event/dbz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* digits[.digits], fraction past the 4th only zeros, > 0, fits x10^4 */
static int o_decimal(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    __int128 v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + (s[i++] - '0');
        if (v > INT64_MAX) return -1;
    }
    if (i == 0) return -1;
    int nf = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t f0 = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nf < 4) {
                v = v * 10 + (s[i] - '0');
                nf++;
            } else if (s[i] != '0') {
                return -1;
            }
            i++;
            if (v > INT64_MAX) return -1;
        }
        if (i == f0) return -1;
    }
    if (i != n) return -1;
    for (; nf < 4; nf++) v *= 10;
    if (v <= 0 || v > INT64_MAX) return -1;
    *out = (int64_t)v;
    return 0;
}

static int num(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,9}]" + "Z" | "+HH:MM" | "-HH:MM", through timegm */
static int o_time(const char *s, size_t n, int64_t *out)
{
    int y, mo, d, h, mi, se;
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return -1;
    if (num(s, 4, &y) || num(s + 5, 2, &mo) || num(s + 8, 2, &d) || num(s + 11, 2, &h) || num(s + 14, 2, &mi) ||
        num(s + 17, 2, &se))
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - f0 < 6) frac = frac * 10 + (s[i] - '0');
            i++;
        }
        if (i == f0 || i - f0 > 9) return -1;
        for (size_t k = i - f0; k < 6; k++) frac *= 10;
    }
    int64_t off = 0;
    if (i + 1 == n && s[i] == 'Z') {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (num(s + i + 1, 2, &oh) || num(s + i + 4, 2, &om) || oh > 23 || om > 59) return -1;
        off = (s[i] == '-' ? -1 : 1) * ((int64_t)oh * 3600 + om * 60);
        i += 6;
    } else {
        return -1; /* a zone is required */
    }
    if (i != n || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    struct tm back;
    if (!gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1) return -1; /* Feb 30 ... */
    *out = ((int64_t)t - off) * 1000000 + frac;
    return 0;
}

static int o_str(json_t *o, const char *k, const char **s, size_t *n)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) return -1;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static int o_row(json_t *a, tf_trade *t)
{
    const char *s;
    size_t n;
    json_t *v = json_object_get(a, "id");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) return -1;
    t->id = json_integer_value(v);
    if (o_str(a, "ticker", &s, &n) || !tf_ticker_valid(s, n)) return -1;
    memcpy(t->ticker, s, n);
    if (o_str(a, "market_code", &s, &n) || !tf_market_valid(s, n)) return -1;
    memcpy(t->market, s, n);
    if (o_str(a, "trade_type", &s, &n)) return -1;
    if (n == 3 && !memcmp(s, "BUY", 3)) t->side = 'B';
    else if (n == 4 && !memcmp(s, "SELL", 4)) t->side = 'S';
    else return -1;
    v = json_object_get(a, "price");
    if (json_is_integer(v)) {
        if (json_integer_value(v) <= 0 || json_integer_value(v) > INT64_MAX / 10000) return -1;
        t->price_e4 = json_integer_value(v) * 10000;
    } else if (o_str(a, "price", &s, &n) || o_decimal(s, n, &t->price_e4)) {
        return -1; /* a real is not exact: refused by the contract */
    }
    v = json_object_get(a, "quantity");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) return -1;
    t->quantity = json_integer_value(v);
    if (o_str(a, "event_time", &s, &n) || o_time(s, n, &t->event_us)) return -1;
    return 0;
}

/* The contract on jansson's DOM; fills o like tf_dbz_parse_trade. */
static int oracle(const char *buf, size_t len, tf_dbz_trade *o)
{
    memset(o, 0, sizeof *o);
    if (len && buf[len - 1] == 0) len--; /* the one trailing NUL the contract allows */
    /* A NUL byte is never JSON (RFC 8259), but jansson skips one that
     * follows a number or literal ("{\"d\":null\0}" loads): the contract
     * follows the RFC there. */
    if (memchr(buf, 0, len)) return TF_DBZ_BAD;
    json_error_t je;
    json_t *root = json_loadb(buf, len, 0, &je);
    int rc = TF_DBZ_BAD;
    if (!json_is_object(root)) goto out;
    const char *s;
    size_t n;
    if (o_str(root, "op", &s, &n) || n != 1 || !strchr("cudrt", s[0]) || !s[0]) goto out;
    o->op = s[0];
    json_t *src = json_object_get(root, "source");
    if (src && !json_is_null(src)) {
        if (!json_is_object(src)) goto out;
        json_t *ts = json_object_get(src, "ts_ms"), *lsn = json_object_get(src, "lsn");
        if ((ts && !json_is_integer(ts)) || (lsn && !json_is_integer(lsn))) goto out;
        o->commit_ts_ms = ts ? json_integer_value(ts) : 0;
        o->lsn = lsn ? (uint64_t)json_integer_value(lsn) : 0;
    }
    json_t *a = json_object_get(root, "after");
    int have_after = a && !json_is_null(a);
    if (have_after && (!json_is_object(a) || o_row(a, &o->tr))) goto out;
    if (o->op == 'd' || o->op == 't') rc = TF_DBZ_SKIP;
    else if (have_after) rc = TF_DBZ_TRADE;
out:
    json_decref(root);
    return rc;
}

static int has(const char *buf, size_t len, const char *chars)
{
    for (size_t i = 0; i < len; i++)
        if (strchr(chars, buf[i]) && buf[i]) return 1;
    return 0;
}

static int depth_reaches(const char *buf, size_t len, int d)
{
    int k = 0, max = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '{' || buf[i] == '[') k++;
        if (k > max) max = k;
    }
    return max >= d;
}

/* 1 when the input is JSON with a key repeated in some object (jansson
 * reads it keeping the last, and refuses it with JSON_REJECT_DUPLICATES). */
static int dup_keys(const char *buf, size_t len)
{
    if (len && buf[len - 1] == 0) len--;
    json_error_t je;
    json_t *a = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (a) {
        json_decref(a);
        return 0;
    }
    json_t *b = json_loadb(buf, len, 0, &je);
    json_decref(b);
    return b != NULL;
}

/* An "unsupported" reason must be true of the input. */
static int claim_holds(const char *why, const char *buf, size_t len)
{
    if (strstr(why, "escaped")) return has(buf, len, "\\");
    if (strstr(why, "twice")) return dup_keys(buf, len);
    if (strstr(why, "JSON real")) return has(buf, len, ".eE");
    if (strstr(why, "nesting")) return depth_reaches(buf, len, 32);
    if (strstr(why, "longer than 127")) return len > 127;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy so reads past the end are caught */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    tf_dbz_trade f, j;
    const char *why = NULL;
    int rf = tf_dbz_parse_trade(buf, size, &f, &why);
    int rj = oracle(buf, size, &j);
    if (rf == TF_DBZ_BAD) {
        if (!why) abort();
        /* with a repeated key the scanner may fail on the copy jansson
         * drops before it sees the one jansson keeps */
        if (rj != TF_DBZ_BAD && !(strncmp(why, "unsupported:", 12) == 0 && claim_holds(why, buf, size)) &&
            !dup_keys(buf, size)) {
            fprintf(stderr, "fast rejected (%s), jansson accepted\n", why);
            abort();
        }
    } else {
        if (rj != rf || f.op != j.op || f.commit_ts_ms != j.commit_ts_ms || f.lsn != j.lsn) {
            fprintf(stderr, "disagree: rc %d/%d op %c/%c ts %lld/%lld lsn %llu/%llu\n", rf, rj, f.op ? f.op : '-',
                    j.op ? j.op : '-', (long long)f.commit_ts_ms, (long long)j.commit_ts_ms,
                    (unsigned long long)f.lsn, (unsigned long long)j.lsn);
            abort();
        }
        if (rf == TF_DBZ_TRADE &&
            (f.tr.id != j.tr.id || strcmp(f.tr.ticker, j.tr.ticker) || strcmp(f.tr.market, j.tr.market) ||
             f.tr.side != j.tr.side || f.tr.price_e4 != j.tr.price_e4 || f.tr.quantity != j.tr.quantity ||
             f.tr.event_us != j.tr.event_us)) {
            fprintf(stderr, "trade fields disagree: id %lld/%lld px %lld/%lld qty %lld/%lld t %lld/%lld\n",
                    (long long)f.tr.id, (long long)j.tr.id, (long long)f.tr.price_e4, (long long)j.tr.price_e4,
                    (long long)f.tr.quantity, (long long)j.tr.quantity, (long long)f.tr.event_us,
                    (long long)j.tr.event_us);
            abort();
        }
    }
    free(buf);
    return 0;
}
