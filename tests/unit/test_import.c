/* test_import.c - CSV records, decimals, times and trade rows of ingest/import.h. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ingest/import.h"
#include "tf_test.h"

/* Parses all of s (eof) into "f1|f2;f1|f2;" with BAD as "!err;" */
static void parse_all(const char *s, size_t len, char sep, char *out, size_t cap)
{
    tf_csv_field f[TF_CSV_FIELDS_MAX];
    char *scratch = malloc(len + 1);
    size_t off = 0, o = 0;
    out[0] = '\0';
    for (;;) {
        tf_csv_rec rec;
        int rc = tf_csv_next(s + off, len - off, 1, sep, f, TF_CSV_FIELDS_MAX, scratch, &rec);
        if (rc == TF_CSV_MORE)
            break;
        off += rec.consumed;
        if (rc == TF_CSV_BLANK)
            continue;
        if (rc == TF_CSV_BAD) {
            o += (size_t)snprintf(out + o, cap - o, "!%s;", rec.err);
            continue;
        }
        for (int i = 0; i < rec.nf; i++)
            o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? "|" : "", (int)f[i].len, f[i].p);
        o += (size_t)snprintf(out + o, cap - o, "/%d;", rec.lines);
    }
    free(scratch);
}

static void test_csv_basic(void)
{
    char out[1024];
    parse_all("a,b,c\n1,2,3\n", 12, ',', out, sizeof out);
    TF_EQ_STR(out, "a|b|c/1;1|2|3/1;");
    parse_all("a,b\r\n1,2\r\n", 10, ',', out, sizeof out);
    TF_EQ_STR(out, "a|b/1;1|2/1;");
    parse_all("a,b\n1,2", 7, ',', out, sizeof out); /* no final line end */
    TF_EQ_STR(out, "a|b/1;1|2/1;");
    const char *q = "\"x,y\",\"he said \"\"hi\"\"\",\"two\nlines\"\r\nz,,\n";
    parse_all(q, strlen(q), ',', out, sizeof out);
    TF_EQ_STR(out, "x,y|he said \"hi\"|two\nlines/2;z||/1;");
    parse_all("\n\r\na\n\n", 6, ',', out, sizeof out); /* blank lines skipped */
    TF_EQ_STR(out, "a/1;");
    parse_all("\"\"\n\"\"\"\"\n", 8, ',', out, sizeof out); /* empty quoted, one quote */
    TF_EQ_STR(out, "/1;\"/1;");
    parse_all("ab\"c,d\n", 7, ',', out, sizeof out); /* lenient: literal quote */
    TF_EQ_STR(out, "ab\"c|d/1;");
    parse_all("A|B\nx|y\n", 8, '|', out, sizeof out);
    TF_EQ_STR(out, "A|B/1;x|y/1;");
    parse_all("\"a\"b,c\nok\n", 10, ',', out, sizeof out);
    TF_EQ_STR(out, "!unexpected character after a closing quote;ok/1;");
    parse_all("x\n\"open,end\n", 11, ',', out, sizeof out);
    TF_EQ_STR(out, "x/1;!unterminated quoted field;");
    parse_all("\"a\"\r\n", 5, ',', out, sizeof out);
    TF_EQ_STR(out, "a/1;");
}

static void test_csv_text_len(void)
{
    tf_csv_field f[8];
    char scratch[64];
    tf_csv_rec rec;
    const char *s = "a,\"b\r\nc\"\r\nnext\n";
    TF_EQ_INT(tf_csv_next(s, strlen(s), 0, ',', f, 8, scratch, &rec), TF_CSV_RECORD);
    TF_EQ_INT(rec.text_len, 8);
    TF_EQ_INT(rec.consumed, 10);
    TF_EQ_INT(rec.lines, 2);
    /* more fields than room */
    TF_EQ_INT(tf_csv_next("a,b,c\nx\n", 8, 0, ',', f, 2, scratch, &rec), TF_CSV_BAD);
    TF_EQ_INT(rec.consumed, 6);
    TF_EQ_INT(rec.text_len, 5);
}

/* Every prefix of a valid input, parsed without eof, yields a prefix of
 * the full parse's records and then asks for more. */
static void test_csv_prefixes(void)
{
    const char *s = "ticker,price\r\n\"A,\"\"B\",\"1\n2\"\nC,3\r\n\n\"\",x\nlast,\"q\"\"\"\n";
    size_t len = strlen(s);
    char full[512], part[512];
    parse_all(s, len, ',', full, sizeof full);
    int bad = 0;
    for (size_t k = 0; k <= len; k++) {
        tf_csv_field f[TF_CSV_FIELDS_MAX];
        char scratch[128];
        size_t off = 0, o = 0;
        part[0] = '\0';
        for (;;) {
            tf_csv_rec rec;
            int rc = tf_csv_next(s + off, k - off, 0, ',', f, TF_CSV_FIELDS_MAX, scratch, &rec);
            if (rc == TF_CSV_MORE)
                break;
            if (rc == TF_CSV_BAD || off + rec.consumed > k) {
                bad++;
                break;
            }
            off += rec.consumed;
            if (rc == TF_CSV_BLANK)
                continue;
            for (int i = 0; i < rec.nf; i++)
                o += (size_t)snprintf(part + o, sizeof part - o, "%s%.*s", i ? "|" : "", (int)f[i].len, f[i].p);
            o += (size_t)snprintf(part + o, sizeof part - o, "/%d;", rec.lines);
        }
        if (strncmp(full, part, strlen(part)) != 0) {
            bad++;
            fprintf(stderr, "prefix %zu: got %s\n", k, part);
        }
        if (k == len && strcmp(full, part) != 0) /* all of it, each record ends in LF */
            bad++;
    }
    TF_EQ_INT(bad, 0);
}

static void test_roles(void)
{
    TF_EQ_INT(tf_imp_trade_role("Symbol", 6), TF_COL_TICKER);
    TF_EQ_INT(tf_imp_trade_role(" TICKER ", 8), TF_COL_TICKER);
    TF_EQ_INT(tf_imp_trade_role("p", 1), TF_COL_PRICE);
    TF_EQ_INT(tf_imp_trade_role("Size", 4), TF_COL_QTY);
    TF_EQ_INT(tf_imp_trade_role("volume", 6), TF_COL_QTY);
    TF_EQ_INT(tf_imp_trade_role("qty", 3), TF_COL_QTY);
    TF_EQ_INT(tf_imp_trade_role("quantity", 8), TF_COL_QTY);
    TF_EQ_INT(tf_imp_trade_role("SIDE", 4), TF_COL_SIDE);
    TF_EQ_INT(tf_imp_trade_role("trade_type", 10), TF_COL_SIDE);
    TF_EQ_INT(tf_imp_trade_role("Timestamp", 9), TF_COL_TIME);
    TF_EQ_INT(tf_imp_trade_role("time", 4), TF_COL_TIME);
    TF_EQ_INT(tf_imp_trade_role("event_time", 10), TF_COL_TIME);
    TF_EQ_INT(tf_imp_trade_role("market_code", 11), TF_COL_MARKET);
    TF_EQ_INT(tf_imp_trade_role("id", 2), TF_COL_NONE);
    TF_EQ_INT(tf_imp_trade_role("prices", 6), TF_COL_NONE);
}

static void test_decimal(void)
{
    int64_t v = -1;
    TF_EQ_INT(tf_imp_decimal("189.25", 6, 4, &v), 0);
    TF_EQ_INT(v, 1892500);
    TF_EQ_INT(tf_imp_decimal("1.8925e2", 8, 4, &v), 0);
    TF_EQ_INT(v, 1892500);
    TF_EQ_INT(tf_imp_decimal("100.", 4, 0, &v), 0);
    TF_EQ_INT(v, 100);
    TF_EQ_INT(tf_imp_decimal(".5", 2, 4, &v), 0);
    TF_EQ_INT(v, 5000);
    TF_EQ_INT(tf_imp_decimal("0.12340000000", 13, 4, &v), 0); /* zeros beyond the scale */
    TF_EQ_INT(v, 1234);
    TF_EQ_INT(tf_imp_decimal("1e3", 3, 0, &v), 0);
    TF_EQ_INT(v, 1000);
    TF_EQ_INT(tf_imp_decimal("0", 1, 4, &v), 0);
    TF_EQ_INT(v, 0);
    TF_EQ_INT(tf_imp_decimal("99999999999999.9999", 19, 4, &v), 0);
    TF_EQ_INT(v, 999999999999999999LL);
    TF_EQ_INT(tf_imp_decimal("0.12345", 7, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal("100.5", 5, 0, &v), -1);
    TF_EQ_INT(tf_imp_decimal("-1", 2, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal("1,5", 3, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal("", 0, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal(".", 1, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal("1e", 2, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal("1e999", 5, 4, &v), -1);
    TF_EQ_INT(tf_imp_decimal("9999999999999999999", 19, 0, &v), -1);
    TF_EQ_INT(tf_imp_decimal("abc", 3, 4, &v), -1);
}

static void test_times(void)
{
    int64_t us = 0;
    char why[160];
    TF_EQ_INT(tf_imp_epoch("1763890200", 10, TF_TU_S, &us), 0);
    TF_EQ_INT(us, 1763890200LL * 1000000);
    TF_EQ_INT(tf_imp_epoch("1763890200.123456", 17, TF_TU_S, &us), 0);
    TF_EQ_INT(us, 1763890200123456LL);
    TF_EQ_INT(tf_imp_epoch("1763890200123", 13, TF_TU_MS, &us), 0);
    TF_EQ_INT(us, 1763890200123000LL);
    TF_EQ_INT(tf_imp_epoch("1763890200123456", 16, TF_TU_US, &us), 0);
    TF_EQ_INT(us, 1763890200123456LL);
    TF_EQ_INT(tf_imp_epoch("1763890200123456789", 19, TF_TU_NS, &us), 0);
    TF_EQ_INT(us, 1763890200123456LL);
    TF_EQ_INT(tf_imp_epoch("-1.5", 4, TF_TU_S, &us), 0);
    TF_EQ_INT(us, -1500000);
    TF_EQ_INT(tf_imp_epoch("-1500", 5, TF_TU_NS, &us), 0); /* floor */
    TF_EQ_INT(us, -2);
    TF_EQ_INT(tf_imp_epoch("12a", 3, TF_TU_S, &us), -1);
    TF_EQ_INT(tf_imp_epoch("99999999999999999999999", 23, TF_TU_S, &us), -1);
    TF_EQ_INT(tf_imp_time("2026-11-23T09:30:00.123-05:00", 29, TF_TU_NONE, &us, why, sizeof why), 0);
    TF_EQ_INT(us, 1795444200123000LL);
    TF_EQ_INT(tf_imp_time("2026-11-23T14:30:00.123Z", 24, TF_TU_MS, &us, why, sizeof why), 0);
    TF_EQ_INT(us, 1795444200123000LL);
    TF_EQ_INT(tf_imp_time("2026-11-23 23:30:00.123+0900", 28, TF_TU_NONE, &us, why, sizeof why), 0);
    TF_EQ_INT(us, 1795444200123000LL);
    TF_EQ_INT(tf_imp_time("1763908200", 10, TF_TU_NONE, &us, why, sizeof why), -1);
    TF_CHECK(strstr(why, "--time-unit") != NULL);
    TF_EQ_INT(tf_imp_time("yesterday", 9, TF_TU_S, &us, why, sizeof why), -1);
    TF_CHECK(strstr(why, "ISO-8601") != NULL);
}

static tf_imp_vals vals(const char *tk, const char *mk, const char *sd, const char *pr, const char *q,
                        const char *tm)
{
    tf_imp_vals v;
    const char *a[TF_COL_N] = {tk, mk, sd, pr, q, tm};
    for (int i = 0; i < TF_COL_N; i++) {
        v.p[i] = a[i];
        v.len[i] = a[i] ? strlen(a[i]) : 0;
    }
    return v;
}

static void test_trade(void)
{
    tf_imp_defaults d = {.ticker = "", .market = "NYSE", .time_unit = TF_TU_MS,
                         .max_event_us = 1800000000LL * 1000000};
    tf_trade t;
    int bad = -1;
    char why[200];
    tf_imp_vals v = vals(" aapl ", "nasdaq", "b", "189.25", "100", "2026-11-23T14:30:00Z");
    TF_EQ_INT(tf_imp_trade(&v, &d, &t, &bad, why, sizeof why), 0);
    TF_EQ_STR(t.ticker, "AAPL");
    TF_EQ_STR(t.market, "NASDAQ");
    TF_EQ_INT(t.side, 'B');
    TF_EQ_INT(t.price_e4, 1892500);
    TF_EQ_INT(t.quantity, 100);
    TF_EQ_INT(t.event_us, 1795444200LL * 1000000);
    v = vals("KO", NULL, "Sell", "58.4", "1e2", "1763908200000");
    TF_EQ_INT(tf_imp_trade(&v, &d, &t, &bad, why, sizeof why), 0);
    TF_EQ_STR(t.market, "NYSE"); /* the default */
    TF_EQ_INT(t.side, 'S');
    TF_EQ_INT(t.quantity, 100);
    struct {
        tf_imp_vals v;
        int role;
        const char *says;
    } cases[] = {
        {vals("TOO-LONG-TICKER-X", NULL, "B", "1", "1", "1"), TF_COL_TICKER, "not a ticker"},
        {vals("A B", NULL, "B", "1", "1", "1"), TF_COL_TICKER, "not a ticker"},
        {vals("A", "LSE", "B", "1", "1", "1"), TF_COL_MARKET, "not a market"},
        {vals("A", NULL, "HOLD", "1", "1", "1"), TF_COL_SIDE, "not a side"},
        {vals("A", NULL, NULL, "1", "1", "1"), TF_COL_SIDE, "no trade_type"},
        {vals("A", NULL, "B", "0", "1", "1"), TF_COL_PRICE, "> 0"},
        {vals("A", NULL, "B", "1.23456", "1", "1"), TF_COL_PRICE, "4 decimal"},
        {vals("A", NULL, "B", "-3", "1", "1"), TF_COL_PRICE, "not a price"},
        {vals("A", NULL, "B", "1", "1.5", "1"), TF_COL_QTY, "whole number"},
        {vals("A", NULL, "B", "1", "0", "1"), TF_COL_QTY, "> 0"},
        {vals("A", NULL, "B", "1", "1", ""), TF_COL_TIME, "no event_time"},
        {vals("A", NULL, "B", "1", "1", "2099-01-01T00:00:00Z"), TF_COL_TIME, "future"},
        {vals("A", NULL, "B", "1", "1", "1800-01-01"), TF_COL_TIME, "1900"},
        {vals(NULL, NULL, "B", "1", "1", "1"), TF_COL_TICKER, "no ticker"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bad = -1;
        why[0] = '\0';
        int rc = tf_imp_trade(&cases[i].v, &d, &t, &bad, why, sizeof why);
        TF_EQ_INT(rc, -1);
        TF_EQ_INT(bad, cases[i].role);
        if (!strstr(why, cases[i].says)) {
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, why, cases[i].says);
            TF_CHECK(0);
        }
    }
}

static void test_num_cmp(void)
{
    TF_CHECK(tf_imp_num_cmp("104.06", 6, "100", 3) > 0);
    TF_CHECK(tf_imp_num_cmp("100", 3, "100.00", 6) == 0);
    TF_CHECK(tf_imp_num_cmp("0099.9", 6, "100", 3) < 0);
    TF_CHECK(tf_imp_num_cmp("95.96", 5, "95.961", 6) < 0);
    TF_CHECK(tf_imp_num_cmp("1000", 4, "999.99", 6) > 0);
    TF_CHECK(tf_imp_num_valid("100.34", 6));
    TF_CHECK(tf_imp_num_valid("100", 3));
    TF_CHECK(!tf_imp_num_valid("null", 4));
    TF_CHECK(!tf_imp_num_valid("-1", 2));
    TF_CHECK(!tf_imp_num_valid("1e5", 3));
    TF_CHECK(!tf_imp_num_valid("", 0));
}

int main(void)
{
    test_csv_basic();
    test_csv_text_len();
    test_csv_prefixes();
    test_roles();
    test_decimal();
    test_times();
    test_trade();
    test_num_cmp();
    TF_TEST_MAIN_END();
}
