/*
 * trade.h - the one in-memory shape of a stock trade, shared by every stage.
 *
 * Prices are numeric(18,4) in PostgreSQL; we keep them as exact fixed-point
 * integers scaled by 10^4 (price_e4) so nothing on the hot path touches
 * floating point or decimal strings. Times are microseconds since the Unix
 * epoch, UTC (PostgreSQL keeps microseconds since 2000-01-01; the store layer
 * converts).
 */
#ifndef TF_EVENT_TRADE_H
#define TF_EVENT_TRADE_H

#include <stddef.h>
#include <stdint.h>

#define TF_TICKER_MAX 16  /* incl. NUL; tickers are [A-Z0-9.]{1,15} */
#define TF_MARKET_MAX 8   /* KOSPI, KOSDAQ, NASDAQ, NYSE */
#define TF_PRICE_SCALE 10000

typedef struct tf_trade {
    int64_t id;
    int64_t price_e4;  /* price * 10^4 */
    int64_t quantity;
    int64_t event_us;  /* microseconds since 1970-01-01 UTC */
    char ticker[TF_TICKER_MAX];
    char market[TF_MARKET_MAX];
    char side;         /* 'B' (BUY) or 'S' (SELL) */
} tf_trade;

/* Returns 1 when s is a valid ticker: 1..15 chars of [A-Z0-9.-]. */
int tf_ticker_valid(const char *s, size_t len);

/* The one rule for a ticker given on input (query, body, subscription,
 * file): case-insensitive, upper-cased, then tf_ticker_valid. Writes the
 * upper-cased NUL-terminated ticker to out (borrowed, TF_TICKER_MAX bytes)
 * and returns 0, or returns -1 (out then holds "") when s[0..len) is not a
 * ticker. s need not be NUL-terminated; out may be s itself (in place,
 * then out needs only len + 1 bytes). */
int tf_ticker_norm(const char *s, size_t len, char out[TF_TICKER_MAX]);
/* What an endpoint says when tf_ticker_norm refuses (param "ticker"). */
#define TF_TICKER_RULE "1-15 characters of A-Z, 0-9, '.', '-' (any case)"
/* Returns 1 for KOSPI, KOSDAQ, NASDAQ, NYSE. */
int tf_market_valid(const char *s, size_t len);

/* Exchange tick size (x10^4) at a price: the KRX ladder in KRW for KOSPI and
 * KOSDAQ, 0.01 USD (0.0001 below 1 USD) for NASDAQ and NYSE. */
int64_t tf_tick_size_e4(const char *market, int64_t price_e4);

#endif
