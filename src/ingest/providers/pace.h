/*
 * pace.h - how many trades a paced source (generator, file) owes now:
 * rate * elapsed minus what it already emitted, and a wait of at most
 * timeout_ms until the next one is due. Internal to providers/.
 */
#ifndef TF_PACE_H
#define TF_PACE_H

#include <stdint.h>
#include <time.h>

#include "common/util.h"

typedef struct tf_pace {
    int64_t t0_mono;   /* when the source opened */
    int64_t emitted;
    double rate;       /* trades per second */
} tf_pace;

static inline void tf_pace_start(tf_pace *p, double rate)
{
    p->t0_mono = tf_mono_us();
    p->emitted = 0;
    p->rate = rate;
}

/* Waits (on the source's own thread, nothing else to serve) until a trade
 * is due or timeout_ms passed; returns how many are due, at most max. */
static inline int64_t tf_pace_due(tf_pace *p, int timeout_ms, int64_t max)
{
    int64_t now = tf_mono_us();
    int64_t due = (int64_t)((double)(now - p->t0_mono) * p->rate / 1e6) - p->emitted;
    if (due <= 0) {
        int64_t next_us = p->t0_mono + (int64_t)((double)(p->emitted + 1) * 1e6 / p->rate);
        int64_t wait = next_us - now;
        if (wait > (int64_t)timeout_ms * 1000) wait = (int64_t)timeout_ms * 1000;
        struct timespec ts = {.tv_sec = wait / 1000000, .tv_nsec = (wait % 1000000) * 1000};
        nanosleep(&ts, NULL);
        now = tf_mono_us();
        due = (int64_t)((double)(now - p->t0_mono) * p->rate / 1e6) - p->emitted;
    }
    if (due < 0) due = 0;
    if (due > max) due = max;
    return due;
}

#endif
