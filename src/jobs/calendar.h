/*
 * calendar.h - market calendars: which days a market trades and when its
 * session closes, in the market's own time zone.
 *
 *   KRX        (KOSPI, KOSDAQ)  Asia/Seoul        close 15:30
 *   NYSE       (NYSE, NASDAQ)   America/New_York  close 16:00
 *
 * A trading day is a weekday that is not in the market's holiday list
 * (config calendar.holidays_krx / calendar.holidays_nyse, comma-separated
 * YYYY-MM-DD). Days are civil day numbers (days since 1970-01-01, see
 * jobs/tz.h) of the market's local date. "The previous session" of a date is
 * the last trading day before it, so Monday's is Friday's (or Thursday's
 * when that Friday is a holiday) - never a calendar yesterday.
 */
#ifndef TF_CALENDAR_H
#define TF_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/tz.h"

enum { TF_MKT_KRX = 0, TF_MKT_NYSE = 1, TF_MKT_COUNT = 2 };

typedef struct tf_calendar tf_calendar;

/* Both holiday lists are borrowed strings ("" = none). NULL with errbuf
 * naming the config key and the bad entry. */
tf_calendar *tf_calendar_new(const char *holidays_krx, const char *holidays_nyse, char *errbuf, size_t errlen);
void tf_calendar_free(tf_calendar *cal);

/* TF_MKT_* for a market or market_code ("KRX", "KOSPI", "KOSDAQ", "NYSE",
 * "NASDAQ", any case), or -1. */
int tf_calendar_market(const char *name);
const char *tf_calendar_market_name(int market);  /* "KRX", "NYSE" */
/* The market_code values of stock_trades it covers, as an SQL array literal
 * ("{KOSPI,KOSDAQ,KRX}"). */
const char *tf_calendar_market_codes(int market);
const tf_tz *tf_calendar_zone(const tf_calendar *cal, int market);

int tf_calendar_is_trading_day(const tf_calendar *cal, int market, int64_t day);
/* The last trading day strictly before day. */
int64_t tf_calendar_prev_session(const tf_calendar *cal, int market, int64_t day);
/* Close of day's session, Unix seconds. */
int64_t tf_calendar_close_utc(const tf_calendar *cal, int market, int64_t day);
/* The latest session whose close is at or before utc_s: what a job that
 * runs at utc_s "after the close" works on (Monday morning -> Friday). */
int64_t tf_calendar_session_at(const tf_calendar *cal, int market, int64_t utc_s);

#endif
