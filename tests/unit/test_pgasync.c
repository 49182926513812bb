/*
 * test_pgasync.c - the asynchronous pool's contract without a database
 * (the integration test test_history_stream.py drives it against a real
 * PostgreSQL): against a refused port a waiting acquire is answered
 * TF_PG_ECONN from the loop, never from inside tf_pga_acquire; once every
 * connection is down in back-off, acquire fails at once and calls nothing;
 * a long (dedicated) acquire reports its failed connect; freeing the pool
 * answers waiters TF_PGA_ECANCELED; the loop closes with no handle left and
 * LeakSanitizer finds nothing.
 */
#include <stdio.h>
#include <string.h>

#include "store/pgasync.h"
#include "tf_test.h"

#define REFUSED "postgresql://nobody@127.0.0.1:1/none"

typedef struct got {
    int calls;
    int err;
    int conn_nonnull;
    int inside; /* set while tf_pga_acquire runs */
} got;

static void on_acq(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    (void)msg;
    got *g = ud;
    g->calls++;
    g->err = err;
    g->conn_nonnull = c != NULL;
    TF_CHECK(!g->inside); /* never from inside the call that registered it */
    if (c) tf_pga_release(c);
}

static void run_until(uv_loop_t *loop, const int *flag, int ms)
{
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + (uint64_t)ms;
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
}

static void close_loop(uv_loop_t *loop)
{
    int tries = 0;
    while (uv_loop_close(loop) == UV_EBUSY && tries++ < 1000) uv_run(loop, UV_RUN_NOWAIT);
    TF_CHECK(tries < 1000); /* every handle closed */
}

static void test_refused(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    tf_err e = {0};
    tf_pga *p = tf_pga_new(&loop, REFUSED, "-c jit=off", 2, &e);
    TF_CHECK(p != NULL);
    if (!p) return;
    TF_EQ_INT(tf_pga_healthy(p), 0);
    got g = {0};
    g.inside = 1;
    int rc = tf_pga_acquire(p, 0, on_acq, &g);
    g.inside = 0;
    TF_EQ_INT(rc, 0);      /* connections are still being tried: it waits */
    TF_EQ_INT(g.calls, 0); /* not called from inside */
    run_until(&loop, &g.calls, 5000);
    TF_EQ_INT(g.calls, 1);
    TF_EQ_INT(g.err, TF_PG_ECONN);
    TF_EQ_INT(g.conn_nonnull, 0);
    /* every connection is down, in back-off: refused at once, no callback */
    got g2 = {0};
    TF_EQ_INT(tf_pga_acquire(p, 0, on_acq, &g2), TF_PG_ECONN);
    TF_EQ_INT(tf_pga_query(p, "SELECT 1", 0, NULL, 0, NULL, NULL), TF_PG_ECONN);
    /* a dedicated connection reports its own failed connect, from the loop */
    got g3 = {0};
    g3.inside = 1;
    TF_EQ_INT(tf_pga_acquire(p, 1, on_acq, &g3), 0);
    g3.inside = 0;
    TF_EQ_INT(g3.calls, 0);
    run_until(&loop, &g3.calls, 5000);
    TF_EQ_INT(g3.calls, 1);
    TF_EQ_INT(g3.err, TF_PG_ECONN);
    tf_pga_free(p);
    close_loop(&loop);
}

static void test_free_answers_waiters(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    tf_err e = {0};
    tf_pga *p = tf_pga_new(&loop, REFUSED, NULL, 1, &e);
    TF_CHECK(p != NULL);
    if (!p) return;
    got a = {0}, b = {0}, l = {0};
    TF_EQ_INT(tf_pga_acquire(p, 0, on_acq, &a), 0);
    TF_EQ_INT(tf_pga_acquire(p, 0, on_acq, &b), 0);
    TF_EQ_INT(tf_pga_acquire(p, 1, on_acq, &l), 0);
    tf_pga_free(p); /* before the loop ever ran */
    TF_EQ_INT(a.calls, 1);
    TF_EQ_INT(a.err, TF_PGA_ECANCELED);
    TF_EQ_INT(b.calls, 1);
    TF_EQ_INT(b.err, TF_PGA_ECANCELED);
    TF_EQ_INT(l.calls, 1);
    TF_EQ_INT(l.err, TF_PGA_ECANCELED);
    close_loop(&loop);
    TF_EQ_INT(a.calls + b.calls + l.calls, 3); /* nothing called twice */
}

int main(void)
{
    test_refused();
    test_free_answers_waiters();
    TF_TEST_MAIN_END();
}
