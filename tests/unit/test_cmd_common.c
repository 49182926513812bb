/* test_cmd_common.c - the commands' wait (cmd_common.c): tf_cmd_wake ends a
 * tf_cmd_wait_stop early without asking for a stop, is seen once (the next
 * wait runs its full timeout: the self-pipe was emptied, no busy loop), a
 * SIGTERM ends the wait with 1, and tf_cmd_ms_until never gives a negative
 * (forever) timeout. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "cmd/cmd.h"
#include "common/util.h"
#include "tf_test.h"

static void *waker(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL); /* the test's own delay before the event, not a hand-off */
    tf_cmd_wake();
    return NULL;
}

int main(void)
{
    tf_cmd_catch_stop(NULL);
    /* a wake from another thread ends the wait early, without a stop */
    pthread_t t;
    pthread_create(&t, NULL, waker, NULL);
    int64_t t0 = tf_mono_us();
    TF_EQ_INT(tf_cmd_wait_stop(20000), 0);
    int64_t took = tf_mono_us() - t0;
    pthread_join(t, NULL);
    TF_CHECK(took < 10 * 1000000LL);
    TF_CHECK(!tf_cmd_stop_requested());
    /* several wakes are one event: the next wait lasts its timeout */
    tf_cmd_wake();
    tf_cmd_wake();
    tf_cmd_wake();
    TF_EQ_INT(tf_cmd_wait_stop(1000), 0);
    t0 = tf_mono_us();
    TF_EQ_INT(tf_cmd_wait_stop(150), 0);
    took = tf_mono_us() - t0;
    if (took < 140000) fprintf(stderr, "  second wait took %lld us\n", (long long)took);
    TF_CHECK(took >= 140000);
    /* a stop signal ends it with 1, and every later wait at once */
    raise(SIGTERM);
    TF_EQ_INT(tf_cmd_wait_stop(20000), 1);
    TF_EQ_INT(tf_cmd_stop_requested(), 1);
    TF_EQ_INT(tf_cmd_wait_stop(20000), 1);
    tf_cmd_release_stop();
    /* timeouts */
    int64_t now = tf_mono_us();
    TF_EQ_INT(tf_cmd_ms_until(now - 5000000), 0);
    TF_EQ_INT(tf_cmd_ms_until(now - 1), 0);
    TF_CHECK(tf_cmd_ms_until(now + 1500) >= 1 && tf_cmd_ms_until(now + 1500) <= 2);
    TF_CHECK(tf_cmd_ms_until(now + 10000000) > 9000 && tf_cmd_ms_until(now + 10000000) <= 10000);
    TF_EQ_INT(tf_cmd_ms_until(INT64_MAX), INT32_MAX);
    TF_TEST_MAIN_END();
}
