/*
 * err.c - the error value (err.h): filling, prefixing, naming classes.
 */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int tf_err_set(tf_err *e, tf_err_class cls, const char *sqlstate, const char *fmt, ...)
{
    if (!e) return -1;
    e->cls = cls;
    e->code = 0;
    snprintf(e->sqlstate, sizeof e->sqlstate, "%s", sqlstate ? sqlstate : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int tf_err_setc(tf_err *e, tf_err_class cls, int code, const char *fmt, ...)
{
    if (!e) return code;
    e->cls = cls;
    e->code = code;
    e->sqlstate[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void tf_err_prefix(tf_err *e, const char *what)
{
    if (!e || !what || !*what) return;
    char tmp[sizeof e->msg];
    size_t w = strlen(what);
    if (w > sizeof tmp - 3) w = sizeof tmp - 3;
    memcpy(tmp, what, w);
    memcpy(tmp + w, ": ", 2);
    size_t m = strnlen(e->msg, sizeof e->msg - 1), room = sizeof tmp - 1 - w - 2;
    if (m > room) m = room;
    memcpy(tmp + w + 2, e->msg, m);
    tmp[w + 2 + m] = '\0';
    memcpy(e->msg, tmp, sizeof e->msg);
}

void tf_err_clear(tf_err *e)
{
    if (e) memset(e, 0, sizeof *e);
}

int tf_err_copy(const tf_err *e, char *buf, size_t cap)
{
    if (buf && cap) snprintf(buf, cap, "%s", e->msg);
    return e->code ? e->code : -1;
}

const char *tf_err_class_name(tf_err_class cls)
{
    switch (cls) {
    case TF_EOK: return "ok";
    case TF_ERETRY: return "retry";
    case TF_ERECONNECT: return "reconnect";
    case TF_EFATAL: return "fatal";
    }
    return "fatal";
}
