/*
 * tq.h - the one hand-off from other threads to an event loop: a bounded
 * FIFO of (fn, arg) calls plus a uv_async that runs them on the loop.
 *
 * Producers (CDC, processor, bus reader threads) call tf_tq_post; it never
 * sleeps-and-polls: when the queue holds `cap` items it blocks on a
 * condition variable until the loop has run some (back-pressure), the
 * timeout passes, or the queue is closed. The loop runs each fn(arg) in
 * FIFO order, at most `cap` per wake-up so one burst cannot starve its
 * other work (STYLE: bounded work per readiness event).
 *
 * Ownership: arg is TRANSFERRED on a successful post (0): fn, or the drop
 * function given to tf_tq_close, receives it exactly once. On failure
 * (non-zero) nothing was queued and the caller still owns arg.
 *
 * Life: tf_tq_new on the loop thread; tf_tq_close on the loop thread stops
 * accepting posts, wakes blocked producers (they get TF_TQ_ECLOSED), hands
 * every queued arg to drop (or runs it when drop is NULL) and closes the
 * async handle; the memory is freed in the handle's close callback, so
 * after tf_tq_close run the loop (uv_run) until its handles are closed.
 */
#ifndef TF_COMMON_TQ_H
#define TF_COMMON_TQ_H

#include <stddef.h>

#include <uv.h>

typedef struct tf_tq tf_tq;
typedef void (*tf_tq_fn)(void *arg);

#define TF_TQ_ETIMEDOUT (-2) /* still full when timeout_ms passed: nothing queued */
#define TF_TQ_ECLOSED (-3)   /* closed (or closing): nothing queued */

/* cap >= 1. Returns NULL with errbuf on failure. */
tf_tq *tf_tq_new(uv_loop_t *loop, size_t cap, char *errbuf, size_t errlen);

/* Any thread (not a signal handler). timeout_ms: -1 waits as long as it
 * takes, 0 never waits. Returns 0, TF_TQ_ETIMEDOUT or TF_TQ_ECLOSED. The
 * loop thread itself must use timeout 0 (it would wait for itself). */
int tf_tq_post(tf_tq *q, tf_tq_fn fn, void *arg, int timeout_ms);

/* Items queued and not yet run (a gauge). */
size_t tf_tq_depth(tf_tq *q);

/* Loop thread. Accepts NULL. See the header comment. */
void tf_tq_close(tf_tq *q, tf_tq_fn drop);

#endif
