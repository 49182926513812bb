/*
 * api_symbols.h - GET /api/v1/symbols?q=&market=&limit=: search the symbol
 * universe (table symbols, filled by `tickflow import symbols` and seeded
 * with the generator's tickers). Registered by api.c.
 */
#ifndef TF_API_SYMBOLS_H
#define TF_API_SYMBOLS_H

#include "http/http.h"

/* The route handler; ud unused. */
void tf_api_symbols_handle(tf_http_req *r, void *ud);

#endif
