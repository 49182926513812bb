/*
 * import.c - CSV records, column aliases and trade values for `tickflow
 * import` (see import.h). Everything here is a pure function over caller
 * buffers; the hot path (an unquoted CSV record, a decimal, an ISO time) does
 * no allocation and no copying beyond the trade it fills.
 */
#include "ingest/import.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

/* ---- CSV ----------------------------------------------------------------- */

/* Skips a malformed record to the end of its physical line. */
static int csv_bad(const char *buf, size_t len, int eof, size_t at, const char *why, tf_csv_rec *rec)
{
    const char *nl = at < len ? memchr(buf + at, '\n', len - at) : NULL;
    if (!nl && !eof)
        return TF_CSV_MORE;
    size_t end = nl ? (size_t)(nl - buf) : len;
    rec->consumed = nl ? end + 1 : len;
    rec->text_len = end > 0 && buf[end - 1] == '\r' && nl ? end - 1 : end;
    rec->err = why;
    return TF_CSV_BAD;
}

int tf_csv_next(const char *buf, size_t len, int eof, char sep, tf_csv_field *f, int maxf,
                char *scratch, tf_csv_rec *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->lines = 1;
    if (len == 0)
        return TF_CSV_MORE;
    if (buf[0] == '\n' || (buf[0] == '\r' && len >= 2 && buf[1] == '\n')) {
        rec->consumed = buf[0] == '\n' ? 1 : 2;
        return TF_CSV_BLANK;
    }
    if (buf[0] == '\r' && len == 1) {
        if (!eof)
            return TF_CSV_MORE;
        rec->consumed = 1;
        return TF_CSV_BLANK;
    }
    size_t i = 0, so = 0;
    int nf = 0;
    for (;;) {
        if (nf == maxf)
            return csv_bad(buf, len, eof, i, "too many fields", rec);
        if (i < len && buf[i] == '"') {
            size_t start = ++i, close;
            int esc = 0;
            for (;;) {
                const char *q = memchr(buf + i, '"', len - i);
                if (!q) {
                    if (!eof)
                        return TF_CSV_MORE;
                    rec->consumed = rec->text_len = len;
                    rec->err = "unterminated quoted field";
                    return TF_CSV_BAD;
                }
                size_t qi = (size_t)(q - buf);
                if (qi + 1 < len && buf[qi + 1] == '"') {
                    esc = 1;
                    i = qi + 2;
                    continue;
                }
                if (qi + 1 == len && !eof)
                    return TF_CSV_MORE; /* "" may be split across reads */
                close = qi;
                i = qi + 1;
                break;
            }
            for (size_t k = start; k < close; k++)
                rec->lines += buf[k] == '\n';
            if (esc) {
                char *d = scratch + so;
                size_t dl = 0;
                for (size_t k = start; k < close; k++) {
                    d[dl++] = buf[k];
                    if (buf[k] == '"')
                        k++; /* the second of a doubled quote */
                }
                f[nf].p = d;
                f[nf].len = dl;
                so += dl;
            } else {
                f[nf].p = buf + start;
                f[nf].len = close - start;
            }
            nf++;
            if (i == len) { /* eof: last record without a line end */
                rec->consumed = rec->text_len = len;
                break;
            }
            if (buf[i] == sep) {
                i++;
                continue;
            }
            if (buf[i] == '\n') {
                rec->text_len = i;
                rec->consumed = i + 1;
                break;
            }
            if (buf[i] == '\r') {
                if (i + 1 == len && !eof)
                    return TF_CSV_MORE;
                if (i + 1 == len || buf[i + 1] == '\n') {
                    rec->text_len = i;
                    rec->consumed = i + 1 == len ? len : i + 2;
                    break;
                }
            }
            rec->nf = nf;
            return csv_bad(buf, len, eof, i, "unexpected character after a closing quote", rec);
        }
        size_t start = i;
        while (i < len && buf[i] != sep && buf[i] != '\n')
            i++;
        if (i == len && !eof)
            return TF_CSV_MORE;
        if (i < len && buf[i] == sep) {
            f[nf].p = buf + start;
            f[nf++].len = i - start;
            i++;
            continue;
        }
        size_t end = i;
        if (end > start && buf[end - 1] == '\r')
            end--;
        f[nf].p = buf + start;
        f[nf++].len = end - start;
        rec->text_len = end;
        rec->consumed = i < len ? i + 1 : len;
        break;
    }
    rec->nf = nf;
    return TF_CSV_RECORD;
}

/* ---- names ----------------------------------------------------------------- */

void tf_imp_trim(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *s = p;
    *len = n;
}

static int name_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

int tf_imp_trade_role(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int role;
    } aliases[] = {
        {"ticker", TF_COL_TICKER},     {"symbol", TF_COL_TICKER},     {"market_code", TF_COL_MARKET},
        {"market", TF_COL_MARKET},     {"trade_type", TF_COL_SIDE},   {"side", TF_COL_SIDE},
        {"price", TF_COL_PRICE},       {"p", TF_COL_PRICE},           {"quantity", TF_COL_QTY},
        {"qty", TF_COL_QTY},           {"size", TF_COL_QTY},          {"volume", TF_COL_QTY},
        {"event_time", TF_COL_TIME},   {"timestamp", TF_COL_TIME},    {"time", TF_COL_TIME},
    };
    tf_imp_trim(&name, &len);
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
        if (name_is(name, len, aliases[i].name))
            return aliases[i].role;
    return TF_COL_NONE;
}

const char *tf_imp_role_name(int role)
{
    static const char *const names[TF_COL_N] = {"ticker",   "market_code", "trade_type",
                                                 "price",    "quantity",    "event_time"};
    return role >= 0 && role < TF_COL_N ? names[role] : "?";
}

int tf_imp_time_unit(const char *s)
{
    if (!s || !*s)
        return TF_TU_NONE;
    if (!strcmp(s, "s"))
        return TF_TU_S;
    if (!strcmp(s, "ms"))
        return TF_TU_MS;
    if (!strcmp(s, "us"))
        return TF_TU_US;
    if (!strcmp(s, "ns"))
        return TF_TU_NS;
    return -1;
}

/* ---- numbers ----------------------------------------------------------------- */

int tf_imp_decimal(const char *s, size_t len, int scale, int64_t *out)
{
    char dig[24];
    size_t nd = 0, i = 0;
    int dexp = 0, any = 0, lead = 1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        any = 1;
        if (lead && s[i] == '0')
            continue;
        lead = 0;
        if (nd == sizeof dig)
            return -1;
        dig[nd++] = s[i];
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            any = 1;
            dexp--;
            if (lead && s[i] == '0')
                continue;
            lead = 0;
            if (nd == sizeof dig) {
                if (s[i] != '0')
                    return -1; /* more precision than any scale we accept */
                dexp++;        /* a trailing zero beyond: ignore it */
                continue;
            }
            dig[nd++] = s[i];
        }
    }
    if (!any)
        return -1;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        int neg = 0, e = 0, ed = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            neg = s[i++] == '-';
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, ed++)
            if ((e = e * 10 + (s[i] - '0')) > 400)
                return -1;
        if (!ed)
            return -1;
        dexp += neg ? -e : e;
    }
    if (i != len)
        return -1;
    while (nd > 0 && dig[nd - 1] == '0')
        nd--, dexp++;
    if (nd == 0) {
        *out = 0;
        return 0;
    }
    int shift = dexp + scale;
    if (shift < 0 || (int)nd + shift > 18)
        return -1;
    int64_t v = 0;
    for (size_t k = 0; k < nd; k++)
        v = v * 10 + (dig[k] - '0');
    for (int k = 0; k < shift; k++)
        v *= 10;
    *out = v;
    return 0;
}

static int is_epoch_text(const char *s, size_t len)
{
    size_t i = 0, d = 0;
    if (i < len && s[i] == '-')
        i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        d++;
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            d++;
    return d > 0 && i == len;
}

int tf_imp_epoch(const char *s, size_t len, int unit, int64_t *out_us)
{
    if (!is_epoch_text(s, len))
        return -1;
    int neg = s[0] == '-';
    size_t i = neg;
    int shift = unit == TF_TU_S ? 6 : unit == TF_TU_MS ? 3 : unit == TF_TU_US ? 0 : unit == TF_TU_NS ? -3 : 99;
    if (shift == 99)
        return -1;
    __int128 whole = 0;
    int nd = 0;
    for (; i < len && s[i] != '.'; i++) {
        whole = whole * 10 + (s[i] - '0');
        if (whole > 0 && ++nd > 22)
            return -1;
    }
    /* microseconds = whole * 10^shift + the first `shift` fraction digits */
    __int128 us;
    int rest = 0; /* digits below a microsecond were not all zero */
    if (shift >= 0) {
        us = whole;
        for (int k = 0; k < shift; k++)
            us *= 10;
        __int128 frac = 0;
        size_t fi = i < len ? i + 1 : len;
        for (int k = 0; k < shift; k++)
            frac = frac * 10 + (fi < len ? s[fi++] - '0' : 0);
        us += frac;
        for (; fi < len; fi++)
            rest |= s[fi] != '0';
    } else {
        us = whole / 1000;
        rest = whole % 1000 != 0;
        for (size_t fi = i + 1; fi < len; fi++)
            rest |= s[fi] != '0';
    }
    if (us > ((__int128)1 << 62))
        return -1;
    int64_t v = (int64_t)us;
    if (neg)
        v = -v - rest; /* towards minus infinity */
    *out_us = v;
    return 0;
}

int tf_imp_time(const char *s, size_t len, int unit, int64_t *out_us, char *why, size_t whylen)
{
    if (is_epoch_text(s, len)) {
        if (unit == TF_TU_NONE) {
            snprintf(why, whylen, "'%.*s' is an epoch number: say its unit with --time-unit s|ms|us|ns",
                     len > 40 ? 40 : (int)len, s);
            return -1;
        }
        if (tf_imp_epoch(s, len, unit, out_us) == 0)
            return 0;
        snprintf(why, whylen, "'%.*s' is out of range as an epoch time", len > 40 ? 40 : (int)len, s);
        return -1;
    }
    if (tf_parse_iso_us(s, len, out_us) == 0)
        return 0;
    snprintf(why, whylen, "'%.*s' is not an ISO-8601 time (like 2026-11-23T09:30:00.123-05:00)",
             len > 40 ? 40 : (int)len, s);
    return -1;
}

/* ---- one trade ---------------------------------------------------------------- */

/* The value for messages: at most 40 bytes, non-printable bytes as '?'. */
static void shown(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = len > 40 ? 40 : len, k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'' ? s[i] : '?';
    if (len > 40 && k + 3 < cap)
        out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
}

/* Upper-cases s into out (cap incl. NUL); 0, or -1 when it does not fit. */
static int upper_into(const char *s, size_t len, char *out, size_t cap)
{
    if (len >= cap)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 32) : s[i];
    out[len] = '\0';
    return 0;
}

#define MIN_EVENT_US (-2208988800LL * TF_US_PER_SEC) /* 1900-01-01, as the COPY writer */

int tf_imp_trade(const tf_imp_vals *v, const tf_imp_defaults *d, tf_trade *out, int *bad_role,
                 char *why, size_t whylen)
{
    const char *s[TF_COL_N];
    size_t n[TF_COL_N];
    char sh[48];
    for (int r = 0; r < TF_COL_N; r++) {
        s[r] = v->p[r];
        n[r] = v->len[r];
        if (s[r])
            tf_imp_trim(&s[r], &n[r]);
        if (s[r] && n[r] == 0)
            s[r] = NULL; /* empty = absent: the default applies */
    }
#define BAD(role, ...)                                                                     \
    do {                                                                                   \
        *bad_role = (role);                                                                \
        snprintf(why, whylen, __VA_ARGS__);                                                \
        return -1;                                                                         \
    } while (0)
    memset(out, 0, sizeof *out);
    if (!s[TF_COL_TICKER]) {
        if (!d->ticker[0])
            BAD(TF_COL_TICKER, "no ticker (and no --ticker default)");
        memcpy(out->ticker, d->ticker, sizeof out->ticker);
    } else if (upper_into(s[TF_COL_TICKER], n[TF_COL_TICKER], out->ticker, sizeof out->ticker) ||
               !tf_ticker_valid(out->ticker, n[TF_COL_TICKER])) {
        shown(s[TF_COL_TICKER], n[TF_COL_TICKER], sh, sizeof sh);
        BAD(TF_COL_TICKER, "'%s' is not a ticker (1-15 characters of A-Z 0-9 . -)", sh);
    }
    if (!s[TF_COL_MARKET]) {
        if (!d->market[0])
            BAD(TF_COL_MARKET, "no market_code (and no --market default)");
        memcpy(out->market, d->market, sizeof out->market);
    } else if (upper_into(s[TF_COL_MARKET], n[TF_COL_MARKET], out->market, sizeof out->market) ||
               !tf_market_valid(out->market, n[TF_COL_MARKET])) {
        shown(s[TF_COL_MARKET], n[TF_COL_MARKET], sh, sizeof sh);
        BAD(TF_COL_MARKET, "'%s' is not a market (KOSPI, KOSDAQ, NASDAQ or NYSE)", sh);
    }
    if (!s[TF_COL_SIDE])
        BAD(TF_COL_SIDE, "no trade_type");
    {
        const char *p = s[TF_COL_SIDE];
        size_t l = n[TF_COL_SIDE];
        if (name_is(p, l, "BUY") || name_is(p, l, "B"))
            out->side = 'B';
        else if (name_is(p, l, "SELL") || name_is(p, l, "S"))
            out->side = 'S';
        else {
            shown(p, l, sh, sizeof sh);
            BAD(TF_COL_SIDE, "'%s' is not a side (BUY, SELL, B or S)", sh);
        }
    }
    if (!s[TF_COL_PRICE])
        BAD(TF_COL_PRICE, "no price");
    if (tf_imp_decimal(s[TF_COL_PRICE], n[TF_COL_PRICE], 4, &out->price_e4) != 0 ||
        out->price_e4 >= 1000000000000000000LL) {
        shown(s[TF_COL_PRICE], n[TF_COL_PRICE], sh, sizeof sh);
        BAD(TF_COL_PRICE, "'%s' is not a price (a positive decimal, at most 4 decimal places)", sh);
    }
    if (out->price_e4 <= 0)
        BAD(TF_COL_PRICE, "price must be > 0");
    if (!s[TF_COL_QTY])
        BAD(TF_COL_QTY, "no quantity");
    if (tf_imp_decimal(s[TF_COL_QTY], n[TF_COL_QTY], 0, &out->quantity) != 0) {
        shown(s[TF_COL_QTY], n[TF_COL_QTY], sh, sizeof sh);
        BAD(TF_COL_QTY, "'%s' is not a quantity (a positive whole number)", sh);
    }
    if (out->quantity <= 0)
        BAD(TF_COL_QTY, "quantity must be > 0");
    if (!s[TF_COL_TIME])
        BAD(TF_COL_TIME, "no event_time");
    if (tf_imp_time(s[TF_COL_TIME], n[TF_COL_TIME], d->time_unit, &out->event_us, why, whylen) != 0) {
        *bad_role = TF_COL_TIME;
        return -1;
    }
    if (out->event_us < MIN_EVENT_US)
        BAD(TF_COL_TIME, "event_time before 1900-01-01");
    if (out->event_us > d->max_event_us) {
        char iso[40];
        tf_fmt_iso_us(out->event_us, iso);
        BAD(TF_COL_TIME, "event_time %s is too far in the future (import.max_future_ms)", iso);
    }
#undef BAD
    return 0;
}

/* ---- plain decimals (bars) ------------------------------------------------------- */

int tf_imp_num_valid(const char *s, size_t len)
{
    size_t i = 0, d = 0;
    if (len == 0 || len > 40)
        return 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        d++;
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            d++;
    return d > 0 && i == len;
}

int tf_imp_num_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    /* integer parts without leading zeros: longer is larger */
    while (al && *a == '0')
        a++, al--;
    while (bl && *b == '0')
        b++, bl--;
    const char *ad = memchr(a, '.', al), *bd = memchr(b, '.', bl);
    size_t ai = ad ? (size_t)(ad - a) : al, bi = bd ? (size_t)(bd - b) : bl;
    if (ai != bi)
        return ai < bi ? -1 : 1;
    int c = memcmp(a, b, ai);
    if (c)
        return c;
    /* fractions digit by digit, a missing digit is 0 */
    const char *af = ad ? ad + 1 : a + al, *bf = bd ? bd + 1 : b + bl;
    size_t afl = (size_t)(a + al - af), bfl = (size_t)(b + bl - bf);
    for (size_t k = 0; k < afl || k < bfl; k++) {
        char x = k < afl ? af[k] : '0', y = k < bfl ? bf[k] : '0';
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}
