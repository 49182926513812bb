/* candle.c - candle arithmetic (see candle.h). */
#include "event/candle.h"

#include <string.h>

#include "common/util.h"

__extension__ typedef unsigned __int128 u128;

int64_t tf_candle_bucket(int64_t interval_ms, int64_t event_us)
{
    int64_t iv = interval_ms * 1000;
    return tf_floor_div(event_us, iv) * iv;
}

void tf_candle_init(tf_candle *c, int64_t interval_ms, int64_t event_us)
{
    memset(c, 0, sizeof *c);
    c->interval_ms = interval_ms;
    c->start_us = tf_candle_bucket(interval_ms, event_us);
}

void tf_candle_add(tf_candle *c, const tf_trade *t)
{
    if (c->count == 0) {
        c->open_e4 = c->high_e4 = c->low_e4 = c->close_e4 = t->price_e4;
        c->open_key_us = c->close_key_us = t->event_us;
        c->open_id = c->close_id = t->id;
    } else {
        if (t->price_e4 > c->high_e4) c->high_e4 = t->price_e4;
        if (t->price_e4 < c->low_e4) c->low_e4 = t->price_e4;
        if (t->event_us < c->open_key_us || (t->event_us == c->open_key_us && t->id < c->open_id)) {
            c->open_e4 = t->price_e4;
            c->open_key_us = t->event_us;
            c->open_id = t->id;
        }
        if (t->event_us > c->close_key_us || (t->event_us == c->close_key_us && t->id > c->close_id)) {
            c->close_e4 = t->price_e4;
            c->close_key_us = t->event_us;
            c->close_id = t->id;
        }
    }
    c->count++;
    c->volume += t->quantity;
    if (t->side == 'B') c->buy_volume += t->quantity;
    else c->sell_volume += t->quantity;
    u128 pv = ((u128)c->pv_hi << 64) | c->pv_lo;
    pv += (u128)(uint64_t)t->price_e4 * (u128)(uint64_t)t->quantity;
    c->pv_lo = (uint64_t)pv;
    c->pv_hi = (uint64_t)(pv >> 64);
}

int64_t tf_candle_vwap_e4(const tf_candle *c)
{
    if (c->volume <= 0) return c->close_e4;
    u128 pv = ((u128)c->pv_hi << 64) | c->pv_lo;
    u128 v = (u128)(uint64_t)c->volume;
    u128 q = pv / v, r = pv % v;
    if (r * 2 >= v) q++;
    return (int64_t)q;
}
