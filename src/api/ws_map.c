/* ws_map.c - see ws_map.h. */
#include "api/ws_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char key[TF_TICKER_MAX];
    void *val;
    uint32_t hash;
    int used;
} slot;

struct tf_ws_map {
    slot *s;
    size_t cap, n; /* cap is a power of two */
};

static uint32_t hash_str(const char *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *k; k++) h = (h ^ (uint8_t)*k) * 16777619u;
    return h;
}

tf_ws_map *tf_ws_map_new(void)
{
    tf_ws_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 16;
    m->s = calloc(m->cap, sizeof *m->s);
    if (!m->s) {
        free(m);
        return NULL;
    }
    return m;
}

void tf_ws_map_free(tf_ws_map *m)
{
    if (!m) return;
    free(m->s);
    free(m);
}

size_t tf_ws_map_count(const tf_ws_map *m) { return m->n; }

static size_t find(const tf_ws_map *m, const char *key, uint32_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (!m->s[i].used) return i;
        if (m->s[i].hash == h && strcmp(m->s[i].key, key) == 0) return i;
    }
}

void *tf_ws_map_get(const tf_ws_map *m, const char *key)
{
    size_t i = find(m, key, hash_str(key));
    return m->s[i].used ? m->s[i].val : NULL;
}

static int grow(tf_ws_map *m)
{
    size_t ncap = m->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->s[i].used) continue;
        size_t j = m->s[i].hash & (ncap - 1);
        while (ns[j].used) j = (j + 1) & (ncap - 1);
        ns[j] = m->s[i];
    }
    free(m->s);
    m->s = ns;
    m->cap = ncap;
    return 0;
}

int tf_ws_map_put(tf_ws_map *m, const char *key, void *val)
{
    size_t kl = strlen(key);
    if (kl >= TF_TICKER_MAX) return -1;
    if ((m->n + 1) * 2 > m->cap && grow(m) != 0) return -1;
    uint32_t h = hash_str(key);
    size_t i = find(m, key, h);
    if (!m->s[i].used) {
        memcpy(m->s[i].key, key, kl + 1);
        m->s[i].hash = h;
        m->s[i].used = 1;
        m->n++;
    }
    m->s[i].val = val;
    return 0;
}

void *tf_ws_map_del(tf_ws_map *m, const char *key)
{
    size_t i = find(m, key, hash_str(key));
    if (!m->s[i].used) return NULL;
    void *v = m->s[i].val;
    size_t mask = m->cap - 1;
    /* backward-shift: move later members of the probe run into the hole */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->s[j].used) break;
        size_t home = m->s[j].hash & mask;
        /* may s[j] move to i? only if home is not cyclically in (i, j] */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (in_range) continue;
        m->s[i] = m->s[j];
        i = j;
    }
    m->s[i].used = 0;
    m->n--;
    return v;
}

int tf_ws_map_next(const tf_ws_map *m, size_t *it, const char **key, void **val)
{
    for (size_t i = *it; i < m->cap; i++) {
        if (m->s[i].used) {
            *key = m->s[i].key;
            *val = m->s[i].val;
            *it = i + 1;
            return 1;
        }
    }
    *it = m->cap;
    return 0;
}
