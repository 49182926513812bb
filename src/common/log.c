/*
 * log.c - structured logging: one JSON object per line on stderr, written
 * with a single write(2) so lines from different threads never interleave.
 * Values are typed (log.h) and escaped here; nothing a caller passes can
 * make a line invalid JSON.
 */
#include "common/log.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"

/* The one mutable process-wide setting; written once at start-up. */
static volatile int log_min_level = TF_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

#define LINE_MAX_BYTES 4096
#define VALUE_CUT 1024 /* a string value longer than this (escaped) is cut */

void tf_log_set_level(int level)
{
    if (level >= TF_LOG_DEBUG && level <= TF_LOG_ERROR) log_min_level = level;
}

int tf_log_enabled(int level) { return level >= log_min_level; }

int tf_log_level_from_str(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return TF_LOG_WARN;
    return -1;
}

typedef struct out {
    char *buf;
    size_t cap, n; /* cap keeps room for the closing "}" */
    int full;
} out;

static void put(out *o, const char *s, size_t len)
{
    if (o->full || o->n + len > o->cap) {
        o->full = 1;
        return;
    }
    memcpy(o->buf + o->n, s, len);
    o->n += len;
}

/* A JSON string: escaped, cut to what fits (and to VALUE_CUT), "..." marking
 * a cut. Always closed, so the line stays valid. */
static void put_str(out *o, const char *s, size_t len)
{
    if (o->full) return;
    size_t room = o->cap - o->n;
    if (room < 2 + 3) { /* quotes + "...": an empty string keeps the line valid */
        if (room >= 2) {
            memcpy(o->buf + o->n, "\"\"", 2);
            o->n += 2;
        }
        o->full = 1;
        return;
    }
    size_t limit = room - 2 - 3;
    if (limit > VALUE_CUT) limit = VALUE_CUT;
    o->buf[o->n++] = '"';
    size_t take = len;
    int e;
    while ((e = tf_json_escape(s, take, o->buf + o->n, limit)) < 0) take /= 2;
    o->n += (size_t)e;
    if (take < len) {
        memcpy(o->buf + o->n, "...", 3);
        o->n += 3;
    }
    o->buf[o->n++] = '"';
}

static void put_fmt(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(out *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (w > 0) put(o, tmp, (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

static void put_value(out *o, const tf_field *f)
{
    switch (f->type) {
    case TF_F_STR:
        if (f->v.s) put_str(o, f->v.s, strlen(f->v.s));
        else put(o, "null", 4);
        break;
    case TF_F_STRN:
        if (f->v.s) put_str(o, f->v.s, f->len);
        else put(o, "null", 4);
        break;
    case TF_F_INT: put_fmt(o, "%" PRId64, f->v.i); break;
    case TF_F_UINT: put_fmt(o, "%" PRIu64, f->v.u); break;
    case TF_F_DBL:
        if (isfinite(f->v.d)) put_fmt(o, "%.17g", f->v.d);
        else put(o, "null", 4);
        break;
    case TF_F_BOOL: put(o, f->v.i ? "true" : "false", f->v.i ? 4 : 5); break;
    case TF_F_LSN: put_fmt(o, "\"%X/%X\"", (unsigned)(f->v.u >> 32), (unsigned)f->v.u); break;
    default: put(o, "null", 4); break;
    }
}

size_t tf_log_format(char *buf, size_t cap, int level, const char *comp, const char *msg, const tf_field *fields)
{
    if (cap < 128) { /* too small for the fixed keys: an empty object */
        if (cap >= 3) memcpy(buf, "{}", 3);
        else if (cap) buf[0] = '\0';
        return cap >= 3 ? 2 : 0;
    }
    out o = {buf, cap - 2, 0, 0};
    char ts[40];
    tf_fmt_iso_us(tf_now_us(), ts);
    int lvl = level < TF_LOG_DEBUG ? TF_LOG_DEBUG : level > TF_LOG_ERROR ? TF_LOG_ERROR : level;
    put(&o, "{\"ts\":\"", 7);
    put(&o, ts, strlen(ts));
    put(&o, "\",\"level\":\"", 11);
    put(&o, level_names[lvl], strlen(level_names[lvl]));
    put(&o, "\",\"comp\":", 9);
    put_str(&o, comp ? comp : "", comp ? strlen(comp) : 0);
    put(&o, ",\"msg\":", 7);
    put_str(&o, msg ? msg : "", msg ? strlen(msg) : 0);
    for (const tf_field *f = fields; f && f->key; f++) {
        size_t mark = o.n;
        put(&o, ",", 1);
        put_str(&o, f->key, strlen(f->key));
        put(&o, ":", 1);
        put_value(&o, f);
        if (o.full) { /* drop the field that did not fit, keep the line valid */
            o.n = mark;
            break;
        }
    }
    buf[o.n++] = '}';
    buf[o.n] = '\0';
    return o.n;
}

void tf_log_fields(int level, const char *comp, const char *msg, const tf_field *fields)
{
    if (level < log_min_level) return;
    char line[LINE_MAX_BYTES + 2];
    size_t n = tf_log_format(line, LINE_MAX_BYTES, level, comp, msg, fields);
    line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
