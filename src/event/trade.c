/* trade.c - the identifiers a trade carries (and the one input rule for a
 * ticker: any case, upper-cased) and its market's tick size. */
#include "event/trade.h"

#include <string.h>

int tf_ticker_valid(const char *s, size_t len)
{
    if (len == 0 || len >= TF_TICKER_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return 0;
    }
    return 1;
}

int tf_ticker_norm(const char *s, size_t len, char out[TF_TICKER_MAX])
{
    /* into t first: out may be s itself (an in-place upper-casing) */
    char t[TF_TICKER_MAX];
    int ok = len > 0 && len < TF_TICKER_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = s[i];
        t[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    if (!ok || !tf_ticker_valid(t, len)) {
        out[0] = '\0';
        return -1;
    }
    t[len] = '\0';
    memcpy(out, t, len + 1);
    return 0;
}

int tf_market_valid(const char *s, size_t len)
{
    static const char *const markets[] = {"KOSPI", "KOSDAQ", "NASDAQ", "NYSE"};
    for (size_t i = 0; i < sizeof markets / sizeof *markets; i++)
        if (strlen(markets[i]) == len && memcmp(markets[i], s, len) == 0) return 1;
    return 0;
}

int64_t tf_tick_size_e4(const char *market, int64_t price_e4)
{
    if (market[0] == 'K') {
        /* KRX unified ladder (KOSPI and KOSDAQ, since 2023), in KRW. */
        int64_t p = price_e4 / TF_PRICE_SCALE;
        int64_t t = p < 2000 ? 1 : p < 5000 ? 5 : p < 20000 ? 10 : p < 50000 ? 50 : p < 200000 ? 100
                  : p < 500000 ? 500 : 1000;
        return t * TF_PRICE_SCALE;
    }
    return price_e4 < TF_PRICE_SCALE ? 1 : 100; /* 0.0001 below 1 USD, else 0.01 */
}
