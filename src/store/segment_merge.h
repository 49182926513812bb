/*
 * segment_merge.h - the rows of many segments (store/segment.h) as one
 * stream in (event_time, id) order, the order history reads. Pure: no I/O;
 * the caller feeds segments as it fetches them (the blocking scan in
 * store/compress.c, the asynchronous history walk in api/history_seg.c).
 *
 * Segments must be pushed in (first_time, first_id) order (their first
 * rows). A row can be handed out once no segment still to come can hold a
 * smaller one: when it is not after the last pushed segment's first row,
 * or after tf_seg_merge_end. Otherwise the merge asks for more
 * (TF_SEG_MERGE_NEED). Memory: the segments whose time ranges overlap, each
 * copied once plus a block of decoded rows.
 */
#ifndef TF_STORE_SEGMENT_MERGE_H
#define TF_STORE_SEGMENT_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "event/trade.h"

enum { TF_SEG_MERGE_NEED = 2 };

typedef struct tf_seg_merge tf_seg_merge;

/* Only rows with lo <= (event_us, id) < hi come out. NULL when out of
 * memory. */
tf_seg_merge *tf_seg_merge_new(int64_t lo_us, int64_t lo_id, int64_t hi_us, int64_t hi_id);
void tf_seg_merge_free(tf_seg_merge *m); /* NULL ok */

/*
 * Adds the next segment: data[0..len) is copied, ticker/market borrowed for
 * the call; first_us/first_id are its first row (the stored columns).
 * Returns 0, or -1 with e (corrupt header or checksum, pushed out of
 * order, out of memory); the merge is then failed.
 */
int tf_seg_merge_push(tf_seg_merge *m, const char *ticker, const char *market, int64_t first_us,
                      int64_t first_id, const uint8_t *data, size_t len, tf_err *e);

/* No segment follows. */
void tf_seg_merge_end(tf_seg_merge *m);

/*
 * The next row without taking it: 1 with *out pointing at it (valid until
 * the next call on m), 0 at the end (every row up to hi is out),
 * TF_SEG_MERGE_NEED when a segment must be pushed (or the end said) first,
 * -1 corrupt segment (e).
 */
int tf_seg_merge_peek(tf_seg_merge *m, const tf_trade **out, tf_err *e);

/* Takes the row peek returned 1 for. Returns 0, or -1 (e) when the
 * segment turned out corrupt while reading on. */
int tf_seg_merge_pop(tf_seg_merge *m, tf_err *e);

/* Segments held right now (for tests of the memory bound). */
size_t tf_seg_merge_held(const tf_seg_merge *m);

#endif
