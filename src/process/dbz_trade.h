/*
 * dbz_trade.h - a fast, allocation-free reader of the stock.stock_trades
 * Debezium envelope (DESIGN.md section 3) into a tf_trade.
 *
 * The processor's throughput target (>= 500k trades/s on one core) leaves
 * ~2 us per message for parse + rules; a general JSON DOM (jansson) costs
 * about that alone, so this is a single-pass scanner that only looks at
 * op, after.{id,ticker,market_code,trade_type,price,quantity,event_time}
 * and source.{ts_ms,lsn}, and skips every other value (nesting and string
 * escapes handled, depth bounded). It is a pure function over (buf, len).
 */
#ifndef TF_PROCESS_DBZ_TRADE_H
#define TF_PROCESS_DBZ_TRADE_H

#include <stddef.h>
#include <stdint.h>

#include "common/trade.h"

typedef struct tf_dbz_trade {
    tf_trade tr;           /* valid when the parse returned TF_DBZ_TRADE */
    char op;               /* 'c' 'u' 'd' 'r' 't' */
    int64_t commit_ts_ms;  /* source.ts_ms, 0 when absent */
    uint64_t lsn;          /* source.lsn, 0 when absent */
} tf_dbz_trade;

enum {
    TF_DBZ_TRADE = 0,  /* an insert / snapshot read / update with a complete "after" row */
    TF_DBZ_SKIP = 1,   /* a valid envelope without a row to process (delete, truncate) */
    TF_DBZ_BAD = -1,   /* malformed; *why says what is wrong */
};

int tf_dbz_parse_trade(const char *buf, size_t len, tf_dbz_trade *out, const char **why);

/* The inverse, for tests and benchmarks that feed the bus without CDC: the
 * envelope CDC would produce for t (op 'c'). Returns the length or -1 when
 * cap (512 is always enough) is too small. */
int tf_dbz_encode_trade(const tf_trade *t, int64_t commit_ts_ms, uint64_t lsn, int64_t xid, char *buf,
                        size_t cap);

#endif
