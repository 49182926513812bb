/* test_dedup.c - the de-dup key and the recent-key set (event/dedup.c):
 * FIFO eviction at capacity, a reference model, and the anomaly key. */
#include "event/dedup.h"

#include <stdlib.h>
#include <string.h>

#include "tf_test.h"

static void test_idset(void)
{
    tf_idset *s = tf_idset_new(100); /* rounds to 128 */
    TF_CHECK(s != NULL);
    TF_EQ_INT(tf_idset_check_add(s, 0), 0);
    TF_EQ_INT(tf_idset_check_add(s, 0), 0); /* 0 never de-duplicated */
    TF_EQ_INT(tf_idset_check_add(s, 42), 0);
    TF_EQ_INT(tf_idset_check_add(s, 42), 1);
    for (int64_t i = 1000; i < 1127; i++) tf_idset_check_add(s, i);
    /* 42 + 127 = 128 ids: all still there */
    TF_EQ_INT(tf_idset_check_add(s, 42), 1);
    TF_EQ_INT(tf_idset_check_add(s, 1126), 1);
    tf_idset_check_add(s, 5000); /* evicts the oldest: 42 */
    TF_EQ_INT(tf_idset_check_add(s, 1000), 1);
    TF_EQ_INT(tf_idset_check_add(s, 42), 0); /* forgotten, added again (evicting 1000) */
    tf_idset_free(s);

    /* against a reference model: the last `cap` distinct ids are remembered */
    s = tf_idset_new(1024);
    int64_t *fifo = calloc(1024, sizeof *fifo);
    int head = 0, n = 0, bad = 0;
    uint64_t seed = 99;
    for (int i = 0; i < 40000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t id = 1 + (int64_t)((seed >> 33) % 3000);
        int inref = 0;
        for (int k = 0; k < n; k++)
            if (fifo[(head + k) % 1024] == id) inref = 1;
        int got = tf_idset_check_add(s, id);
        if (got != inref) bad++;
        if (!inref) {
            if (n == 1024) {
                head = (head + 1) % 1024;
                n--;
            }
            fifo[(head + n) % 1024] = id;
            n++;
        }
    }
    TF_EQ_INT(bad, 0);
    free(fifo);
    tf_idset_free(s);
    tf_idset_free(NULL);
}

static void test_keys(void)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = 123;
    TF_EQ_INT(tf_trade_key(&t), 123);
    TF_EQ_INT(tf_anomaly_key("a-000000000123", 14), 123);
    TF_EQ_INT(tf_anomaly_key("a-0", 3), 0);
    TF_EQ_INT(tf_anomaly_key("a-", 2), -1);
    TF_EQ_INT(tf_anomaly_key("b-12", 4), -1);
    TF_EQ_INT(tf_anomaly_key("a-1x", 4), -1);
    TF_EQ_INT(tf_anomaly_key("a--1", 4), -1);
    TF_EQ_INT(tf_anomaly_key("a-99999999999999999999", 22), -1); /* overflow */
}

int main(void)
{
    test_idset();
    test_keys();
    TF_TEST_MAIN_END();
}
