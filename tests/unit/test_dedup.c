/* test_dedup.c - the de-dup key and the recent-key set (event/dedup.c):
 * FIFO eviction at capacity, a reference model, and the anomaly key. */
#include "event/dedup.h"

#include <stdlib.h>
#include <string.h>

#include "tf_test.h"

/* Feeds 40,000 ids of one shape to a 1024-key set and to a reference FIFO
 * of the last 1024 distinct ids; returns how often they disagreed.
 * shape 0: random ids in 1..3000; 1: increasing ids with replays of a
 * recent stretch (CDC after a restart); 2: ids 8 apart, then 1024 apart. */
static int model_mismatches(int shape)
{
    tf_idset *s = tf_idset_new(1024);
    int64_t *fifo = calloc(1024, sizeof *fifo);
    int head = 0, n = 0, bad = 0;
    uint64_t seed = 99;
    int64_t next = 1;
    for (int i = 0; i < 40000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t id;
        if (shape == 0) id = 1 + (int64_t)((seed >> 33) % 3000);
        else if (shape == 1) id = (seed >> 60) == 0 && next > 600 ? next - 1 - (int64_t)((seed >> 33) % 600) : next++;
        else id = i < 20000 ? 8 * (int64_t)(i + 1) : 1024 * (int64_t)(i + 1);
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
    free(fifo);
    tf_idset_free(s);
    return bad;
}

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
    TF_EQ_INT(model_mismatches(0), 0);
    /* the shapes the home slots are laid out for (runs of neighbouring ids)
     * and against (strides that hit one slot of every run): many evictions */
    TF_EQ_INT(model_mismatches(1), 0);
    TF_EQ_INT(model_mismatches(2), 0);
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
