/*
 * jobsync.c - see jobsync.h: the lock/wait steps genjob and replay had each
 * written for themselves.
 */
#include "ingest/jobsync.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "common/util.h"

void tf_jobsync_init(pthread_mutex_t *mu, pthread_cond_t *cv)
{
    pthread_mutex_init(mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* nap() deadlines are monotonic */
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

int tf_jobsync_nap(pthread_mutex_t *mu, pthread_cond_t *cv, const int *stop, int64_t us)
{
    struct timespec ts;
    tf_mono_timespec(tf_mono_us() + us, &ts);
    pthread_mutex_lock(mu);
    while (!*stop && pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT)
        ;
    int s = *stop;
    pthread_mutex_unlock(mu);
    return s;
}

int tf_jobsync_stopping(pthread_mutex_t *mu, const int *stop)
{
    pthread_mutex_lock(mu);
    int s = *stop;
    pthread_mutex_unlock(mu);
    return s;
}

int tf_jobsync_wait_for(pthread_mutex_t *mu, pthread_cond_t *cv, const int *running, int timeout_ms)
{
    struct timespec ts;
    tf_mono_timespec(tf_mono_us() + (int64_t)timeout_ms * 1000, &ts);
    pthread_mutex_lock(mu);
    while (*running && pthread_cond_timedwait(cv, mu, &ts) == 0)
        ;
    int done = !*running;
    pthread_mutex_unlock(mu);
    return done;
}

int tf_jobsync_err(int *code, int v, char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    if (code) *code = v;
    return -1;
}
