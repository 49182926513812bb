/*
 * jobsync.h - the stop/wait plumbing the background ingest jobs (genjob.c,
 * replay.c) share. Each job owns a mutex, a condition variable on the
 * monotonic clock, a stop flag and a running flag (both under the mutex);
 * these functions only lock and wait on them, so a stop or the job's end
 * wakes every waiter at once (the job broadcasts on the condition).
 */
#ifndef TF_INGEST_JOBSYNC_H
#define TF_INGEST_JOBSYNC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* The mutex and a condition variable whose timed waits use CLOCK_MONOTONIC
 * (the deadlines below are monotonic). */
void tf_jobsync_init(pthread_mutex_t *mu, pthread_cond_t *cv);

/* Waits up to us microseconds or until *stop; returns *stop. */
int tf_jobsync_nap(pthread_mutex_t *mu, pthread_cond_t *cv, const int *stop, int64_t us);

/* *stop, read under the mutex. */
int tf_jobsync_stopping(pthread_mutex_t *mu, const int *stop);

/* Waits up to timeout_ms while *running; 1 when it is no longer running. */
int tf_jobsync_wait_for(pthread_mutex_t *mu, pthread_cond_t *cv, const int *running, int timeout_ms);

/* Formats the error into errbuf, sets *code (when given) to v; returns -1. */
int tf_jobsync_err(int *code, int v, char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
