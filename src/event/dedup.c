/* dedup.c - the de-dup key and the recent-key set (see dedup.h). */
#include "event/dedup.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

tf_event_key tf_anomaly_key(const char *id, size_t len)
{
    if (len < 3 || len > 40 || id[0] != 'a' || id[1] != '-') return -1;
    int64_t v;
    for (size_t i = 2; i < len; i++)
        if (id[i] < '0' || id[i] > '9') return -1;
    if (tf_parse_i64(id + 2, len - 2, &v) || v < 0) return -1;
    return v;
}

/* ---- recent key set: linear probing + FIFO ring for eviction -------------- */

struct tf_idset {
    int64_t *slots;  /* 0 = empty; size 2 * cap */
    size_t mask;
    int64_t *fifo;   /* insertion order, size cap */
    size_t cap, head, n;
};

tf_idset *tf_idset_new(size_t cap)
{
    size_t c = 16;
    while (c < cap) c <<= 1;
    tf_idset *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->slots = calloc(2 * c, sizeof *s->slots);
    s->fifo = calloc(c, sizeof *s->fifo);
    if (!s->slots || !s->fifo) {
        tf_idset_free(s);
        return NULL;
    }
    s->cap = c;
    s->mask = 2 * c - 1;
    return s;
}

void tf_idset_free(tf_idset *s)
{
    if (!s) return;
    free(s->slots);
    free(s->fifo);
    free(s);
}

/* A key's home slot. Keys are trade ids, an identity column: they arrive
 * nearly in order, so each run of 8 neighbouring ids gets 8 neighbouring
 * slots (one cache line) at a hashed place: one cache miss per 8 trades
 * instead of one per trade (over the processor's 16 MB table that miss was
 * its second largest cost per trade). Runs are only 8 long, so the probe
 * chains stay as short as with a hash of each key. */
static inline size_t id_hash(int64_t id)
{
    uint64_t x = ((uint64_t)id >> 3) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(((x ^ (x >> 29)) << 3) | ((uint64_t)id & 7));
}

static void idset_remove(tf_idset *s, int64_t id)
{
    size_t i = id_hash(id) & s->mask;
    while (s->slots[i] != id) {
        if (s->slots[i] == 0) return;
        i = (i + 1) & s->mask;
    }
    /* backward-shift deletion keeps probe chains intact without tombstones */
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->slots[j] == 0) break;
        size_t k = id_hash(s->slots[j]) & s->mask;
        /* move slots[j] into the hole at i if its home k is not in (i, j] */
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = 0;
}

int tf_idset_check_add(tf_idset *s, tf_event_key id)
{
    if (id == 0) return 0;
    size_t i = id_hash(id) & s->mask;
    while (s->slots[i] != 0) {
        if (s->slots[i] == id) return 1;
        i = (i + 1) & s->mask;
    }
    if (s->n == s->cap) {
        int64_t old = s->fifo[s->head];
        s->head = (s->head + 1) & (s->cap - 1); /* cap is a power of two */
        s->n--;
        idset_remove(s, old);
        /* the removal may have shifted the chain: find the free slot again */
        i = id_hash(id) & s->mask;
        while (s->slots[i] != 0) i = (i + 1) & s->mask;
    }
    s->slots[i] = id;
    s->fifo[(s->head + s->n) & (s->cap - 1)] = id;
    s->n++;
    return 0;
}
