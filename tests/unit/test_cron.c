/* test_cron.c - cron parser (fields, names, steps, aliases, errors naming
 * the field) and next fire times: UTC, the day OR rule, DST in New York. */
#include <stdio.h>
#include <string.h>

#include "jobs/cron.h"
#include "jobs/tz.h"
#include "tf_test.h"

static tf_tz *utc, *ny;

/* Unix seconds of a UTC civil time */
static int64_t U(int y, int mo, int d, int h, int mi) { return tf_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60; }

static int64_t next(const char *expr, const tf_tz *tz, int64_t after)
{
    tf_cron c;
    char err[256];
    if (tf_cron_parse(&c, expr, err, sizeof err) != 0) {
        fprintf(stderr, "parse %s: %s\n", expr, err);
        return -2;
    }
    return tf_cron_next(&c, tz, after);
}

static void test_parse(void)
{
    tf_cron c;
    char err[256];
    TF_EQ_INT(tf_cron_parse(&c, "*/15 9-17 * JAN-MAR mon-fri", err, sizeof err), 0);
    TF_EQ_INT(c.minute, (1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45));
    TF_EQ_INT(c.hour, 0x3FE00);
    TF_EQ_INT(c.month, 0xE);
    TF_EQ_INT(c.dow, 0x3E);
    TF_EQ_INT(c.dom_star, 1);
    TF_EQ_INT(tf_cron_parse(&c, "1-30/2,59 0 1,15 * 7", err, sizeof err), 0);
    TF_EQ_INT(c.minute & 7, 2); /* 1 but not 0 or 2 */
    TF_CHECK(c.minute >> 29 & 1);
    TF_CHECK(c.minute >> 59 & 1);
    TF_CHECK(!(c.minute >> 31 & 1));
    TF_EQ_INT(c.dow, 1);        /* 7 is Sunday */
    TF_EQ_INT(c.dom_star, 0);
    TF_EQ_INT(c.dow_star, 0);
    TF_EQ_INT(tf_cron_parse(&c, "10/20 * * * *", err, sizeof err), 0);
    TF_EQ_INT(c.minute, (1ULL << 10) | (1ULL << 30) | (1ULL << 50));
    TF_EQ_INT(tf_cron_parse(&c, "@weekly", err, sizeof err), 0);
    TF_EQ_INT(c.dow, 1);
    TF_EQ_INT(c.minute, 1);
    TF_EQ_INT(tf_cron_parse(&c, "  @DAILY", err, sizeof err), 0);
    TF_EQ_INT(c.hour, 1);
    static const struct {
        const char *expr, *msg;
    } bad[] = {
        {"* * 32 * *", "day-of-month: 32 out of range 1-31"},
        {"0 25 * * *", "hour: 25 out of range 0-23"},
        {"* * * 0 *", "month: 0 out of range 1-12"},
        {"* * * * 8", "day-of-week: 8 out of range 0-7"},
        {"* * * XYZ *", "month: unknown value 'XYZ'"},
        {"*/0 * * * *", "minute: bad step '0'"},
        {"* */ * * *", "hour: bad step ''"},
        {"10-5 * * * *", "minute: range 10-5 runs backwards"},
        {"* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
        {"*,5 * * * *", "minute: '*' cannot be part of a list"},
        {"? * * * *", "minute: bad value '?'"},
        {"@often", "unknown cron alias '@often' (@yearly @annually @monthly @weekly @daily @midnight @hourly)"},
        {"", "expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        TF_EQ_INT(tf_cron_parse(&c, bad[i].expr, err, sizeof err), -1);
        TF_EQ_STR(err, bad[i].msg);
    }
}

/* Every prefix of valid expressions parses or fails with a message, never
 * reading past the end (ASan); the ones that parse are the 5-field ones. */
static void test_prefixes(void)
{
    static const char *const full[] = {"*/15 9-17 1,15 JAN-MAR mon-fri", "1-30/2,59 0 ? * 7", "@annually"};
    for (size_t k = 0; k < sizeof full / sizeof *full; k++) {
        size_t len = strlen(full[k]);
        int parsed = 0, messages = 0;
        for (size_t n = 0; n <= len; n++) {
            char buf[64];
            memcpy(buf, full[k], n);
            buf[n] = 0;
            tf_cron c;
            char err[256] = "";
            if (tf_cron_parse(&c, buf, err, sizeof err) == 0) parsed++;
            else messages += err[0] != 0;
        }
        TF_EQ_INT(parsed + messages, (int)len + 1);
        TF_CHECK(parsed >= 1);
    }
}

static void test_next_utc(void)
{
    int64_t t = U(2026, 12, 1, 10, 0);
    TF_EQ_INT(next("* * * * *", utc, t), t + 60);
    TF_EQ_INT(next("* * * * *", utc, t + 59), t + 60);
    TF_EQ_INT(next("0 0 * * *", utc, t), U(2026, 12, 2, 0, 0));
    TF_EQ_INT(next("30 15 * * 1-5", utc, U(2026, 12, 4, 16, 0)), U(2026, 12, 7, 15, 30)); /* Fri -> Mon */
    TF_EQ_INT(next("0 0 29 2 *", utc, t), U(2028, 2, 29, 0, 0));
    TF_EQ_INT(next("0 0 31 * *", utc, U(2027, 1, 31, 0, 0)), U(2027, 3, 31, 0, 0));
    TF_EQ_INT(next("@yearly", utc, t), U(2027, 1, 1, 0, 0));
    TF_EQ_INT(next("@monthly", utc, t), U(2027, 1, 1, 0, 0));
    TF_EQ_INT(next("0 0 30 2 *", utc, t), -1);
    /* OR rule: the 13th or any Friday; 2026-12-04 is a Friday, 12-13 a Sunday */
    TF_EQ_INT(next("0 0 13 * FRI", utc, t), U(2026, 12, 4, 0, 0));
    TF_EQ_INT(next("0 0 13 * FRI", utc, U(2026, 12, 11, 0, 0)), U(2026, 12, 13, 0, 0));
    /* with '*' in one day field, the other one alone decides */
    TF_EQ_INT(next("0 0 * * FRI", utc, U(2026, 12, 11, 0, 0)), U(2026, 12, 18, 0, 0));
}

static void test_next_dst(void)
{
    /* New York, 2026-03-08: 02:00 EST -> 03:00 EDT. A 02:30 job runs once, at 03:00 EDT. */
    int64_t sat_noon = U(2026, 3, 7, 17, 0);
    int64_t t1 = next("30 2 * * *", ny, sat_noon);
    TF_EQ_INT(t1, U(2026, 3, 8, 7, 0)); /* 03:00 EDT */
    TF_EQ_INT(next("30 2 * * *", ny, t1), U(2026, 3, 9, 6, 30));
    /* hour '*': 02:30 does not exist, the next is 03:30 EDT */
    TF_EQ_INT(next("30 * * * *", ny, U(2026, 3, 8, 6, 30)), U(2026, 3, 8, 7, 30));
    /* 2026-11-01: 02:00 EDT -> 01:00 EST. 02:30 runs once; 01:30 at both instants. */
    int64_t sat = U(2026, 10, 31, 16, 0);
    int64_t f1 = next("30 2 * * *", ny, sat);
    TF_EQ_INT(f1, U(2026, 11, 1, 7, 30));
    TF_EQ_INT(next("30 2 * * *", ny, f1), U(2026, 11, 2, 7, 30));
    int64_t a = next("30 1 * * *", ny, sat);
    TF_EQ_INT(a, U(2026, 11, 1, 5, 30)); /* 01:30 EDT */
    int64_t b = next("30 1 * * *", ny, a);
    TF_EQ_INT(b, U(2026, 11, 1, 6, 30)); /* 01:30 EST */
    TF_EQ_INT(next("30 1 * * *", ny, b), U(2026, 11, 2, 6, 30));
}

int main(void)
{
    char err[256];
    utc = tf_tz_load("UTC", err, sizeof err);
    ny = tf_tz_load("America/New_York", err, sizeof err);
    if (!utc || !ny) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    test_parse();
    test_prefixes();
    test_next_utc();
    test_next_dst();
    tf_tz_free(utc);
    tf_tz_free(ny);
    TF_TEST_MAIN_END();
}
