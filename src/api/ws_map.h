/*
 * ws_map.h - a small hash map from ticker (or any string of at most
 * TF_TICKER_MAX - 1 bytes) to a pointer, used by the WebSocket code for the
 * watcher registry and the candle state of each interval. Open addressing
 * with linear probing and backward-shift deletion (no tombstones), grows
 * at 50 % load. Single-threaded. The map copies keys; values are borrowed.
 */
#ifndef TF_WS_MAP_H
#define TF_WS_MAP_H

#include <stddef.h>

#include "event/trade.h"

typedef struct tf_ws_map tf_ws_map;

tf_ws_map *tf_ws_map_new(void);
void tf_ws_map_free(tf_ws_map *m); /* does not free values; accepts NULL */
size_t tf_ws_map_count(const tf_ws_map *m);
void *tf_ws_map_get(const tf_ws_map *m, const char *key);
/* Inserts or replaces. Returns 0, -1 on a key too long or out of memory. */
int tf_ws_map_put(tf_ws_map *m, const char *key, void *val);
/* Removes key; returns its value or NULL. */
void *tf_ws_map_del(tf_ws_map *m, const char *key);
/* Iteration: start with *it = 0; returns 1 with key/val set, 0 at the end.
 * The map must not change during an iteration. */
int tf_ws_map_next(const tf_ws_map *m, size_t *it, const char **key, void **val);

#endif
