/*
 * cron.h - cron expressions and their next fire time in a time zone.
 *
 * Five fields: minute hour day-of-month month day-of-week, each '*', a
 * value, a range a-b, a step (*\/n, a-b/n, a/n = a-max/n) or a comma list of
 * those; months JAN..DEC and days SUN..SAT by name (any case); day-of-week 7
 * is Sunday; '?' is '*' in the two day fields. Aliases @yearly @annually
 * @monthly @weekly @daily @midnight @hourly. When both day fields are
 * restricted a day matches either (cron's OR rule). Ranges run upwards
 * (5-1 is refused) and 5-5 is just 5.
 *
 * Daylight saving, as cron users expect and exactly as croniter 7.0.0 does
 * (the test oracle): a wall-clock time that does not exist on a
 * spring-forward day fires once, at the first minute after the gap (a 02:30
 * job runs at 03:00) unless the hour field is '*' (then the next listed
 * time that exists is used and nothing is doubled); a wall-clock time that
 * happens twice on a fall-back day fires at each of its two instants (a
 * 01:30 job runs at 01:30 summer time and at 01:30 standard time in New
 * York; a 02:30 job there, outside the repeated hour, runs once).
 *
 * tf_cron is a plain value the caller owns (parsing never allocates).
 */
#ifndef TF_CRON_H
#define TF_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/tz.h"

typedef struct tf_cron {
    uint64_t minute; /* bit n = minute n */
    uint32_t hour;   /* bits 0..23 */
    uint32_t dom;    /* bits 1..31 */
    uint32_t month;  /* bits 1..12 */
    uint32_t dow;    /* bits 0..6, 0 = Sunday */
    int dom_star, dow_star; /* unrestricted in the sense of the OR rule */
} tf_cron;

/* Parses expr. 0, or -1 with a message naming the field in errbuf
 * ("day-of-month: 32 out of range 1-31"). */
int tf_cron_parse(tf_cron *out, const char *expr, char *errbuf, size_t errlen);

/* The first fire time strictly after after_s (Unix seconds), in zone tz;
 * -1 when the expression never fires (e.g. "0 0 30 2 *"). */
int64_t tf_cron_next(const tf_cron *c, const tf_tz *tz, int64_t after_s);

#endif
