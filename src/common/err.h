/*
 * err.h - one error value for every external failure (libpq, Kafka,
 * sockets, files): what to do about it, the SQLSTATE where PostgreSQL gave
 * one, and a message that names what failed.
 *
 * A failure is classified once, where it is seen (store/pg.c for libpq,
 * bus_kafka.c for librdkafka), and every loop honours the class:
 *   TF_ERETRY      transient: back off and try the same thing again
 *   TF_ERECONNECT  the connection is gone: drop it, reconnect with back-off
 *   TF_EFATAL      retrying cannot help (misconfiguration, permissions, bad
 *                  data, a fatal producer error): stop with the message
 *
 * Functions that fail fill a caller-supplied tf_err and return -1 (or NULL);
 * on success they leave it untouched. The struct is plain data: copy it,
 * keep it in a status, log it with TF_ERR_FIELDS.
 */
#ifndef TF_COMMON_ERR_H
#define TF_COMMON_ERR_H

#include <stddef.h>

typedef enum tf_err_class { TF_EOK = 0, TF_ERETRY, TF_ERECONNECT, TF_EFATAL } tf_err_class;

typedef struct tf_err {
    tf_err_class cls;
    int code;          /* the classifier's detail (e.g. TF_PG_E*), 0 = none */
    char sqlstate[6];  /* "" when the failure did not come from PostgreSQL */
    char msg[512];
} tf_err;

/* Fills e (NULL is fine: then only the return value tells) and returns -1,
 * so a failing function can `return tf_err_set(e, TF_EFATAL, NULL, ...)`. */
int tf_err_set(tf_err *e, tf_err_class cls, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same with a classifier's detail code (e.g. TF_PG_EINVAL) in e->code;
 * returns code, so `return tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, ...)`. */
int tf_err_setc(tf_err *e, tf_err_class cls, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the message with "what: " (context added on the way up). */
void tf_err_prefix(tf_err *e, const char *what);

void tf_err_clear(tf_err *e);

/* For code whose own API still reports into a caller's buffer (ingest,
 * jobs): copies e->msg into buf (cap > 0) and returns e->code, or -1 when
 * the error has no code. */
int tf_err_copy(const tf_err *e, char *buf, size_t cap);

/* "retry", "reconnect", "fatal" ("ok" for TF_EOK). */
const char *tf_err_class_name(tf_err_class cls);

/* Log fields for an error: TF_STR("error", ...), its class and SQLSTATE. */
#define TF_ERR_FIELDS(e)                                                                       \
    TF_STR("error", (e)->msg), TF_STR("class", tf_err_class_name((e)->cls)),                   \
        TF_STR("sqlstate", (e)->sqlstate[0] ? (e)->sqlstate : NULL)

#endif
