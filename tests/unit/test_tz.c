/* test_tz.c - TZif reader: offsets and wall-clock folds for real zones,
 * the rule past the expanded years, and every truncated prefix refused. */
#include <stdio.h>
#include <stdlib.h>

#include "jobs/tz.h"
#include "tf_test.h"

#define H 3600

static void test_new_york(void)
{
    char err[256];
    tf_tz *tz = tf_tz_load("America/New_York", err, sizeof err);
    TF_CHECK(tz != NULL);
    if (!tz) return;
    /* 2026-03-08 07:00:00Z is 02:00 EST -> 03:00 EDT */
    int64_t spring = 1772953200;
    TF_EQ_INT(tf_tz_offset_utc(tz, spring - 1), -5 * H);
    TF_EQ_INT(tf_tz_offset_utc(tz, spring), -4 * H);
    int64_t l0230 = spring - 5 * H + 30 * 60; /* local 02:30, in the gap */
    TF_EQ_INT(tf_tz_local_exists(tz, l0230), 0);
    TF_EQ_INT(tf_tz_offset_local(tz, l0230, 0), -5 * H);
    TF_EQ_INT(tf_tz_offset_local(tz, l0230, 1), -4 * H);
    /* 2026-11-01 06:00:00Z is 02:00 EDT -> 01:00 EST; 01:30 happens twice */
    int64_t fall = 1793512800;
    int64_t l0130 = fall - 4 * H - 30 * 60;
    TF_EQ_INT(tf_tz_local_exists(tz, l0130), 1);
    TF_EQ_INT(tf_tz_offset_local(tz, l0130, 0), -4 * H);
    TF_EQ_INT(tf_tz_offset_local(tz, l0130, 1), -5 * H);
    TF_EQ_INT(tf_tz_offset_local(tz, l0130 + 3600, 0), -5 * H);
    /* year 3026: past the expanded transitions, the footer rule applies */
    int64_t jul3026 = (tf_days_from_civil(3026, 7, 1)) * 86400;
    int64_t jan3026 = (tf_days_from_civil(3026, 1, 1)) * 86400;
    TF_EQ_INT(tf_tz_offset_utc(tz, jul3026), -4 * H);
    TF_EQ_INT(tf_tz_offset_utc(tz, jan3026), -5 * H);
    TF_EQ_INT(tf_tz_offset_local(tz, jul3026, 0), -4 * H);
    tf_tz_free(tz);
}

static void test_sydney_seoul_utc(void)
{
    char err[256];
    tf_tz *syd = tf_tz_load("Australia/Sydney", err, sizeof err);
    tf_tz *seoul = tf_tz_load("Asia/Seoul", err, sizeof err);
    tf_tz *utc = tf_tz_load("UTC", err, sizeof err);
    TF_CHECK(syd && seoul && utc);
    if (syd && seoul && utc) {
        TF_EQ_INT(tf_tz_offset_utc(syd, tf_days_from_civil(2026, 1, 15) * 86400), 11 * H);
        TF_EQ_INT(tf_tz_offset_utc(syd, tf_days_from_civil(2026, 7, 15) * 86400), 10 * H);
        TF_EQ_INT(tf_tz_offset_utc(syd, tf_days_from_civil(2999, 1, 15) * 86400), 11 * H);
        TF_EQ_INT(tf_tz_offset_utc(syd, tf_days_from_civil(2999, 7, 15) * 86400), 10 * H);
        TF_EQ_INT(tf_tz_offset_utc(seoul, 1790000000), 9 * H);
        TF_EQ_INT(tf_tz_offset_utc(utc, 1790000000), 0);
        TF_EQ_INT(tf_tz_offset_local(utc, 1790000000, 1), 0);
    }
    tf_tz_free(syd);
    tf_tz_free(seoul);
    tf_tz_free(utc);
}

static void test_bad_names_and_prefixes(void)
{
    char err[256];
    TF_CHECK(tf_tz_load("../etc/passwd", err, sizeof err) == NULL);
    TF_CHECK(tf_tz_load("/etc/passwd", err, sizeof err) == NULL);
    TF_CHECK(tf_tz_load("Mars/Olympus", err, sizeof err) == NULL);
    TF_CHECK(tf_tz_load("", err, sizeof err) == NULL);
    FILE *f = fopen("/usr/share/zoneinfo/Europe/London", "rb");
    TF_CHECK(f != NULL);
    if (!f) return;
    static unsigned char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    tf_tz *whole = tf_tz_parse(buf, len, "whole", err, sizeof err);
    TF_CHECK(whole != NULL);
    tf_tz_free(whole);
    int accepted = 0;
    for (size_t n = 0; n < len; n++) { /* every truncation: refused, never over-read (ASan) */
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        tf_tz *tz = tf_tz_parse(copy, n, "prefix", err, sizeof err);
        accepted += tz != NULL;
        tf_tz_free(tz);
        free(copy);
    }
    TF_EQ_INT(accepted, 0);
}

static void test_civil(void)
{
    int y, m, d;
    TF_EQ_INT(tf_days_from_civil(1970, 1, 1), 0);
    TF_EQ_INT(tf_days_from_civil(2000, 3, 1), 11017);
    tf_civil_from_days(20454, &y, &m, &d); /* 2026-01-01 */
    TF_EQ_INT(y * 10000 + m * 100 + d, 20260101);
    TF_EQ_INT(tf_weekday(tf_days_from_civil(2026, 12, 1)), 2); /* Tuesday */
    TF_EQ_INT(tf_days_in_month(2024, 2), 29);
    TF_EQ_INT(tf_days_in_month(2100, 2), 28);
}

int main(void)
{
    test_new_york();
    test_sydney_seoul_utc();
    test_bad_names_and_prefixes();
    test_civil();
    TF_TEST_MAIN_END();
}
