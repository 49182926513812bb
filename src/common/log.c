/*
 * log.c - structured logging: one JSON object per line on stderr, written
 * with a single write(2) so lines from different threads never interleave.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"

/* The one mutable process-wide setting; written once at start-up. */
static volatile int log_min_level = TF_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tf_log_set_level(int level)
{
    if (level >= TF_LOG_DEBUG && level <= TF_LOG_ERROR) log_min_level = level;
}

int tf_log_level_from_str(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return TF_LOG_WARN;
    return -1;
}

void tf_log(int level, const char *comp, const char *msg, const char *fields_fmt, ...)
{
    if (level < log_min_level) return;
    char line[4096];
    char ts[40];
    tf_fmt_iso_us(tf_now_us(), ts);
    int lvl = level < TF_LOG_DEBUG ? TF_LOG_DEBUG : level > TF_LOG_ERROR ? TF_LOG_ERROR : level;
    size_t n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"comp\":\"%s\",\"msg\":\"", ts,
                                level_names[lvl], comp);
    int e = tf_json_escape(msg, strlen(msg), line + n, sizeof line - n - 8);
    if (e < 0) e = 0;
    n += (size_t)e;
    line[n++] = '"';
    if (fields_fmt && *fields_fmt) {
        line[n++] = ',';
        va_list ap;
        va_start(ap, fields_fmt);
        int w = vsnprintf(line + n, sizeof line - n - 3, fields_fmt, ap);
        va_end(ap);
        if (w < 0) w = 0;
        n += (size_t)w < sizeof line - n - 3 ? (size_t)w : sizeof line - n - 3;
    }
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
}
