/* test_calendar.c - trading days, holidays from config, the previous
 * session (Monday -> Friday, over holidays), closes in each market's zone. */
#include "jobs/calendar.h"
#include "tf_test.h"

static int64_t D(int y, int m, int d) { return tf_days_from_civil(y, m, d); }

int main(void)
{
    char err[256];
    tf_calendar *cal = tf_calendar_new("2026-12-25, 2026-12-31", "2026-11-26,2026-12-25", err, sizeof err);
    TF_CHECK(cal != NULL);
    if (!cal) {
        fprintf(stderr, "%s\n", err);
        TF_TEST_MAIN_END();
    }
    /* 2026-12-07 is a Monday */
    TF_EQ_INT(tf_calendar_is_trading_day(cal, TF_MKT_KRX, D(2026, 12, 7)), 1);
    TF_EQ_INT(tf_calendar_is_trading_day(cal, TF_MKT_KRX, D(2026, 12, 5)), 0); /* Saturday */
    TF_EQ_INT(tf_calendar_is_trading_day(cal, TF_MKT_KRX, D(2026, 12, 25)), 0);
    TF_EQ_INT(tf_calendar_is_trading_day(cal, TF_MKT_NYSE, D(2026, 12, 31)), 1); /* KRX-only holiday */
    TF_EQ_INT(tf_calendar_prev_session(cal, TF_MKT_KRX, D(2026, 12, 7)), D(2026, 12, 4)); /* Mon -> Fri */
    TF_EQ_INT(tf_calendar_prev_session(cal, TF_MKT_NYSE, D(2026, 11, 27)), D(2026, 11, 25)); /* over Thanksgiving */
    TF_EQ_INT(tf_calendar_prev_session(cal, TF_MKT_KRX, D(2026, 12, 28)), D(2026, 12, 24)); /* Mon after Xmas Fri */
    /* closes: KRX 15:30 KST = 06:30Z; NYSE 16:00 EST = 21:00Z, EDT = 20:00Z */
    TF_EQ_INT(tf_calendar_close_utc(cal, TF_MKT_KRX, D(2026, 12, 7)), D(2026, 12, 7) * 86400 + 6 * 3600 + 1800);
    TF_EQ_INT(tf_calendar_close_utc(cal, TF_MKT_NYSE, D(2026, 12, 7)), D(2026, 12, 7) * 86400 + 21 * 3600);
    TF_EQ_INT(tf_calendar_close_utc(cal, TF_MKT_NYSE, D(2026, 7, 7)), D(2026, 7, 7) * 86400 + 20 * 3600);
    /* the session a job at a given time works on */
    int64_t mon = D(2026, 12, 7) * 86400;
    TF_EQ_INT(tf_calendar_session_at(cal, TF_MKT_KRX, mon), D(2026, 12, 4));             /* Mon 09:00 KST */
    TF_EQ_INT(tf_calendar_session_at(cal, TF_MKT_KRX, mon + 6 * 3600 + 1800), D(2026, 12, 7)); /* at the close */
    TF_EQ_INT(tf_calendar_session_at(cal, TF_MKT_KRX, mon + 6 * 3600 + 1799), D(2026, 12, 4));
    TF_EQ_INT(tf_calendar_session_at(cal, TF_MKT_NYSE, mon + 22 * 3600), D(2026, 12, 7));
    TF_EQ_INT(tf_calendar_session_at(cal, TF_MKT_NYSE, mon + 20 * 3600), D(2026, 12, 4));
    TF_EQ_INT(tf_calendar_market("kospi"), TF_MKT_KRX);
    TF_EQ_INT(tf_calendar_market("NASDAQ"), TF_MKT_NYSE);
    TF_EQ_INT(tf_calendar_market("LSE"), -1);
    tf_calendar_free(cal);
    TF_CHECK(tf_calendar_new("2026-13-01", "", err, sizeof err) == NULL);
    TF_EQ_STR(err, "calendar.holidays_krx: bad date '2026-13-01' (expected YYYY-MM-DD)");
    TF_CHECK(tf_calendar_new("", "2026-02-30", err, sizeof err) == NULL);
    TF_EQ_STR(err, "calendar.holidays_nyse: bad date '2026-02-30' (expected YYYY-MM-DD)");
    TF_TEST_MAIN_END();
}
