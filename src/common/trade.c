/* trade.c - validation of the identifiers a trade carries. */
#include "common/trade.h"

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

int tf_market_valid(const char *s, size_t len)
{
    static const char *const markets[] = {"KOSPI", "KOSDAQ", "NASDAQ", "NYSE"};
    for (size_t i = 0; i < sizeof markets / sizeof *markets; i++)
        if (strlen(markets[i]) == len && memcmp(markets[i], s, len) == 0) return 1;
    return 0;
}
