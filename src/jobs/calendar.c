/*
 * calendar.c - trading days from weekdays and configured holidays; session
 * closes placed in the market's zone with the TZif reader (jobs/tz.c).
 */
#include "jobs/calendar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

#define MAX_HOLIDAYS 512

static const struct {
    const char *name, *zone, *codes;
    int close_s; /* local time of day */
} markets[TF_MKT_COUNT] = {
    {"KRX", "Asia/Seoul", "{KOSPI,KOSDAQ,KRX}", 15 * 3600 + 30 * 60},
    {"NYSE", "America/New_York", "{NYSE,NASDAQ}", 16 * 3600},
};

struct tf_calendar {
    tf_tz *zone[TF_MKT_COUNT];
    int64_t holidays[TF_MKT_COUNT][MAX_HOLIDAYS]; /* sorted */
    int nholidays[TF_MKT_COUNT];
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Parses "YYYY-MM-DD,YYYY-MM-DD" into the market's sorted list. */
static int parse_holidays(tf_calendar *cal, int mkt, const char *list, const char *key, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t n = strcspn(p, ", ");
        int y, m, d, used = 0;
        if (n != 10 || sscanf(p, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || used != 10 || m < 1 || m > 12 ||
            d < 1 || d > tf_days_in_month(y, m)) {
            snprintf(err, errlen, "%s: bad date '%.*s' (expected YYYY-MM-DD)", key, (int)n, p);
            return -1;
        }
        if (cal->nholidays[mkt] == MAX_HOLIDAYS) {
            snprintf(err, errlen, "%s: more than %d dates", key, MAX_HOLIDAYS);
            return -1;
        }
        cal->holidays[mkt][cal->nholidays[mkt]++] = tf_days_from_civil(y, m, d);
        p += n;
    }
    qsort(cal->holidays[mkt], (size_t)cal->nholidays[mkt], sizeof(int64_t), cmp_i64);
    return 0;
}

tf_calendar *tf_calendar_new(const char *krx, const char *nyse, char *err, size_t errlen)
{
    tf_calendar *cal = calloc(1, sizeof *cal);
    if (!cal) {
        snprintf(err, errlen, "calendar: out of memory");
        return NULL;
    }
    for (int i = 0; i < TF_MKT_COUNT; i++)
        if (!(cal->zone[i] = tf_tz_load(markets[i].zone, err, errlen))) goto err;
    if (parse_holidays(cal, TF_MKT_KRX, krx ? krx : "", "calendar.holidays_krx", err, errlen) != 0 ||
        parse_holidays(cal, TF_MKT_NYSE, nyse ? nyse : "", "calendar.holidays_nyse", err, errlen) != 0)
        goto err;
    return cal;
err:
    tf_calendar_free(cal);
    return NULL;
}

void tf_calendar_free(tf_calendar *cal)
{
    if (!cal) return;
    for (int i = 0; i < TF_MKT_COUNT; i++) tf_tz_free(cal->zone[i]);
    free(cal);
}

int tf_calendar_market(const char *name)
{
    if (!strcasecmp(name, "KRX") || !strcasecmp(name, "KOSPI") || !strcasecmp(name, "KOSDAQ")) return TF_MKT_KRX;
    if (!strcasecmp(name, "NYSE") || !strcasecmp(name, "NASDAQ")) return TF_MKT_NYSE;
    return -1;
}

const char *tf_calendar_market_name(int market) { return markets[market].name; }
const char *tf_calendar_market_codes(int market) { return markets[market].codes; }
const tf_tz *tf_calendar_zone(const tf_calendar *cal, int market) { return cal->zone[market]; }

int tf_calendar_is_trading_day(const tf_calendar *cal, int market, int64_t day)
{
    int wd = tf_weekday(day);
    if (wd == 0 || wd == 6) return 0;
    return bsearch(&day, cal->holidays[market], (size_t)cal->nholidays[market], sizeof(int64_t), cmp_i64) == NULL;
}

int64_t tf_calendar_prev_session(const tf_calendar *cal, int market, int64_t day)
{
    /* at most MAX_HOLIDAYS + weekends back; the bound only guards a bad list */
    for (int i = 0; i < 4 * MAX_HOLIDAYS; i++)
        if (tf_calendar_is_trading_day(cal, market, --day)) return day;
    return day;
}

int64_t tf_calendar_close_utc(const tf_calendar *cal, int market, int64_t day)
{
    int64_t local = day * 86400 + markets[market].close_s;
    return local - tf_tz_offset_local(cal->zone[market], local, 0);
}

int64_t tf_calendar_session_at(const tf_calendar *cal, int market, int64_t utc_s)
{
    int64_t local = utc_s + tf_tz_offset_utc(cal->zone[market], utc_s);
    int64_t day = tf_floor_div(local, 86400);
    if (tf_calendar_is_trading_day(cal, market, day) && tf_calendar_close_utc(cal, market, day) <= utc_s) return day;
    return tf_calendar_prev_session(cal, market, day);
}
