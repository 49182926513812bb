/*
 * log.h - the one logger: one JSON object per line on stderr, with a level,
 * a component, a message and typed key/value fields. Every value is escaped
 * here, so a line is valid JSON whatever a libpq or Kafka error text holds
 * (quotes, newlines, invalid UTF-8). Thread-safe: one write(2) per line.
 *
 *   tf_warn("cdc", "replication interrupted; reconnecting",
 *           TF_STR("slot", slot), TF_LSN("confirmed", lsn), TF_INT("retry_ms", ms));
 *
 * Fields are built with the TF_* constructors below (a compound literal per
 * field, no allocation); string values are borrowed for the call. A line
 * longer than 4 KiB has its longest values cut and marked "...".
 */
#ifndef TF_LOG_H
#define TF_LOG_H

#include <stddef.h>
#include <stdint.h>

enum { TF_LOG_DEBUG = 0, TF_LOG_INFO, TF_LOG_WARN, TF_LOG_ERROR };

void tf_log_set_level(int level);
int tf_log_level_from_str(const char *s); /* -1 if unknown */
int tf_log_enabled(int level);

enum { TF_F_END = 0, TF_F_STR, TF_F_STRN, TF_F_INT, TF_F_UINT, TF_F_DBL, TF_F_BOOL, TF_F_LSN };

typedef struct tf_field {
    const char *key;
    int type;
    size_t len; /* TF_F_STRN */
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
    } v;
} tf_field;

#define TF_STR(k, x) ((tf_field){.key = (k), .type = TF_F_STR, .v.s = (x)})       /* NULL -> null */
#define TF_STRN(k, p, n) ((tf_field){.key = (k), .type = TF_F_STRN, .len = (n), .v.s = (p)})
#define TF_INT(k, x) ((tf_field){.key = (k), .type = TF_F_INT, .v.i = (int64_t)(x)})
#define TF_UINT(k, x) ((tf_field){.key = (k), .type = TF_F_UINT, .v.u = (uint64_t)(x)})
#define TF_DBL(k, x) ((tf_field){.key = (k), .type = TF_F_DBL, .v.d = (double)(x)})  /* non-finite -> null */
#define TF_BOOL(k, x) ((tf_field){.key = (k), .type = TF_F_BOOL, .v.i = !!(x)})
#define TF_LSN(k, x) ((tf_field){.key = (k), .type = TF_F_LSN, .v.u = (uint64_t)(x)}) /* "%X/%X" */

/* Writes one line; fields ends with a {0} entry. Prefer the macros. */
void tf_log_fields(int level, const char *comp, const char *msg, const tf_field *fields);

/* Formats the line into buf (for tests); returns its length without the
 * newline, which it does not write. */
size_t tf_log_format(char *buf, size_t cap, int level, const char *comp, const char *msg,
                     const tf_field *fields);

#define tf_log(level, comp, msg, ...) \
    tf_log_fields(level, comp, msg, (const tf_field[]){__VA_ARGS__ __VA_OPT__(,) {0}})
#define tf_debug(comp, msg, ...) tf_log(TF_LOG_DEBUG, comp, msg __VA_OPT__(,) __VA_ARGS__)
#define tf_info(comp, msg, ...) tf_log(TF_LOG_INFO, comp, msg __VA_OPT__(,) __VA_ARGS__)
#define tf_warn(comp, msg, ...) tf_log(TF_LOG_WARN, comp, msg __VA_OPT__(,) __VA_ARGS__)
#define tf_error(comp, msg, ...) tf_log(TF_LOG_ERROR, comp, msg __VA_OPT__(,) __VA_ARGS__)

#endif
