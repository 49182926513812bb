/*
 * tz.h - IANA time zones from the system tzdata, without touching TZ.
 *
 * Why our own reader: the C library's localtime_r/mktime only know the zone
 * named by the process-wide TZ variable (setenv is not thread-safe), and
 * Debian packages no small C library for named zones (ICU would do, at the
 * cost of a C++ runtime for one lookup). TZif (RFC 8536) is a small, fixed
 * binary format: a header, transition times, offsets, and a POSIX TZ footer
 * for the years after the last transition. tf_tz_parse reads it; the footer
 * rule is expanded into explicit transitions up to 2100 at load, so most
 * lookups are one binary search; later years apply the rule directly.
 *
 * Times are Unix seconds (UTC) or "local seconds" (the wall clock read as
 * if it were UTC). Offsets are seconds east of UTC.
 */
#ifndef TF_TZ_H
#define TF_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

typedef struct tf_tz tf_tz;

/* Parses a TZif file image (buf borrowed). NULL with errbuf on malformed
 * input (every truncation is an error, never an over-read). */
tf_tz *tf_tz_parse(const unsigned char *buf, size_t len, const char *name, char *errbuf, size_t errlen);

/* Loads /usr/share/zoneinfo/NAME ("UTC", "Asia/Seoul"). Names with "..",
 * a leading '/' or characters outside [A-Za-z0-9_+-/] are refused. */
tf_tz *tf_tz_load(const char *name, char *errbuf, size_t errlen);
void tf_tz_free(tf_tz *tz);
const char *tf_tz_name(const tf_tz *tz);

/* Offset in force at a UTC instant. */
int tf_tz_offset_utc(const tf_tz *tz, int64_t utc_s);

/*
 * Offset for a wall-clock time, resolved the way Python's zoneinfo does:
 * in a repeated hour, fold 0 picks the earlier instant (the offset before
 * the transition) and fold 1 the later one; in a skipped hour, fold 0 uses
 * the offset before the transition and fold 1 the one after.
 */
int tf_tz_offset_local(const tf_tz *tz, int64_t local_s, int fold);

/* 1 if the wall-clock time exists (is not inside a spring-forward gap). */
int tf_tz_local_exists(const tf_tz *tz, int64_t local_s);

/* Civil date helpers (proleptic Gregorian), days since 1970-01-01. */
/* tf_days_from_civil: common/util.h */
void tf_civil_from_days(int64_t z, int *y, int *m, int *d);
/* 0 = Sunday .. 6 = Saturday */
int tf_weekday(int64_t days);
int tf_days_in_month(int y, int m);

#endif
