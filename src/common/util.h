/*
 * util.h - small exact helpers used everywhere: time formatting/parsing and
 * fixed-point decimal <-> string. All are pure functions over caller buffers.
 */
#ifndef TF_UTIL_H
#define TF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define TF_US_PER_SEC 1000000LL

/* a / b rounded towards minus infinity (b > 0): buckets of times before 1970. */
static inline int64_t tf_floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }
/* microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch) */
#define TF_PG_EPOCH_OFFSET_US 946684800000000LL

/* Wall clock, microseconds since the Unix epoch. */
int64_t tf_now_us(void);
/* Monotonic clock in microseconds (for intervals, never for timestamps). */
int64_t tf_mono_us(void);
/* A tf_mono_us() instant as a timespec for pthread_cond_timedwait on a
 * condition variable whose clock is CLOCK_MONOTONIC. */
struct timespec;
void tf_mono_timespec(int64_t mono_us, struct timespec *ts);

/* Days since 1970-01-01 of a proleptic Gregorian date (any year). */
int64_t tf_days_from_civil(int64_t y, int m, int d);

/* Formats "2026-11-23T09:30:00.123456Z" into buf (>= 28 bytes). Returns length. */
size_t tf_fmt_iso_us(int64_t unix_us, char *buf);
/* Parses ISO-8601: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.ffffff]]" with an
 * optional "Z" or "+HH:MM"/"-HH:MM" suffix (none = UTC). Also accepts a space
 * instead of 'T'. Returns 0 and sets *out_us, or -1 on any malformed input. */
int tf_parse_iso_us(const char *s, size_t len, int64_t *out_us);

/* Formats a scale-`scale` fixed-point value as an exact decimal string with
 * exactly `scale` fraction digits ("189.2500", "-0.0100"). buf >= 32 bytes. */
size_t tf_fmt_fixed(int64_t v, int scale, char *buf);
/* Parses a decimal string with at most `scale` fraction digits into a
 * scale-`scale` fixed-point value. Returns 0 or -1 (malformed / overflow /
 * too many fraction digits). */
int tf_parse_fixed(const char *s, size_t len, int scale, int64_t *out);

/* Parses a whole base-10 int64 (optional sign); -1 on junk or overflow. */
int tf_parse_i64(const char *s, size_t len, int64_t *out);

/* Duration like "15m", "6h", "30d", "90s", "500ms" -> microseconds. */
int tf_parse_duration_us(const char *s, size_t len, int64_t *out_us);

/* Appends JSON-escaped s (without quotes) to buf; returns bytes written or
 * -1 if it does not fit. Invalid UTF-8 bytes are replaced by U+FFFD. */
int tf_json_escape(const char *s, size_t len, char *buf, size_t cap);

/* Returns 1 if the buffer is valid UTF-8 (no overlongs, no surrogates). */
int tf_utf8_valid(const unsigned char *s, size_t len);

/* A growable NUL-terminated string; {0} is empty, free(b) releases it. Out
 * of memory stops it growing and sets oom, so callers check once at the end. */
typedef struct tf_sbuf {
    char *b;
    size_t len, cap;
    int oom;
} tf_sbuf;

/* Room for n more bytes and the NUL; 0, or -1 (oom set). */
int tf_sbuf_reserve(tf_sbuf *s, size_t n);
void tf_sbuf_add(tf_sbuf *s, const void *p, size_t n);
void tf_sbuf_str(tf_sbuf *s, const char *str);
void tf_sbuf_fmt(tf_sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* str as a quoted, escaped JSON string (escaped a whole UTF-8 character at a
 * time, in chunks of at most 120 bytes). */
void tf_sbuf_json_str(tf_sbuf *s, const char *str);

#endif
