/*
 * log.h - the one logger: one JSON object per line on stderr, with a level,
 * a component and a message, plus optional extra fields written by the caller
 * as a JSON fragment ("\"slot\":\"tickflow\",\"lsn\":\"0/16B3748\"").
 * Thread-safe (one write(2) per line).
 */
#ifndef TF_LOG_H
#define TF_LOG_H

enum { TF_LOG_DEBUG = 0, TF_LOG_INFO, TF_LOG_WARN, TF_LOG_ERROR };

void tf_log_set_level(int level);
int tf_log_level_from_str(const char *s); /* -1 if unknown */

/* msg is plain text (escaped here). fields_fmt may be NULL; otherwise it is a
 * printf format producing a JSON fragment of extra key/values. */
void tf_log(int level, const char *comp, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define tf_debug(comp, msg, ...) tf_log(TF_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define tf_info(comp, msg, ...) tf_log(TF_LOG_INFO, comp, msg, __VA_ARGS__)
#define tf_warn(comp, msg, ...) tf_log(TF_LOG_WARN, comp, msg, __VA_ARGS__)
#define tf_error(comp, msg, ...) tf_log(TF_LOG_ERROR, comp, msg, __VA_ARGS__)

#endif
