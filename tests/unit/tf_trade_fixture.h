/* tf_trade_fixture.h - a trade in one line, for the unit tests that feed
 * hand-made trades to candles and bars. */
#ifndef TF_TRADE_FIXTURE_H
#define TF_TRADE_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "event/trade.h"

static inline tf_trade tf_fixture_trade(int64_t id, const char *ticker, const char *market, int64_t price_e4,
                                        int64_t qty, int64_t event_us, char side)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = id;
    snprintf(t.ticker, sizeof t.ticker, "%s", ticker);
    snprintf(t.market, sizeof t.market, "%s", market);
    t.price_e4 = price_e4;
    t.quantity = qty;
    t.event_us = event_us;
    t.side = side;
    return t;
}

#endif
