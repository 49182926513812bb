/*
 * api_watchlists.h - the watchlist routes (DESIGN §8), on the server's
 * asynchronous PostgreSQL pool (store/pgasync.h). A watchlist is
 * {"name", "tickers", "rules", "scan"}: tickers the hand-made members,
 * rules its signal rule set and scan its criteria (formats and validation
 * in process/watchlist.h); the watchlist_scan job (jobs/job_watchlist.c)
 * fills scan members and writes scan results.
 *
 *   GET    /api/v1/watchlists                 {"data": [watchlist...], "count": n}
 *   POST   /api/v1/watchlists                 body {"name", "tickers"?, "rules"?, "scan"?}
 *                                             -> 201 watchlist; 409 conflict when the name exists
 *   GET    /api/v1/watchlists/{name}          watchlist
 *   PUT    /api/v1/watchlists/{name}          body {"name"?, "tickers"?, "rules"?, "scan"?}: replaces
 *                                             all three (absent: [], {}, null) -> 200 watchlist
 *   DELETE /api/v1/watchlists/{name}          -> 200 {"deleted": name}
 *   GET    /api/v1/watchlists/{name}/members  {"name", "members": [...], "changes": [{"ticker",
 *                                             "source", "change": "added"|"removed", "day", "at"}]}
 *                                             newest first; query limit (1..10000, default 1000)
 *   POST   /api/v1/watchlists/{name}/members  body {"tickers": [...]}: adds hand-made members
 *   DELETE /api/v1/watchlists/{name}/members/{ticker}  removes a hand-made member
 *   GET    /api/v1/watchlists/{name}/scans    scan results: {"name", "session", "data": [{"ticker",
 *                                             "market_code", "session", "member_source", "close",
 *                                             "score", "recommendation", "indicators", "signals",
 *                                             "scanned_at"}]}; query session (YYYY-MM-DD; default
 *                                             each ticker's latest), limit (1..10000, default 1000)
 *
 * A watchlist answer: {"name", "tickers": [hand-made, sorted], "rules": as
 * stored, "effective_rules": the rule set over [signals] ({"enabled": [..],
 * "cooldown_bars": {RULE: n}, "rsi_low", ...}), "scan": as stored or null,
 * "members": [{"ticker", "source": "manual"|"scan", "since"}], "created_at",
 * "updated_at", "last_session": latest scanned session or null}.
 *
 * Tickers are case-insensitive, normalised to upper case, de-duplicated;
 * an invalid one is 400 invalid_parameter "tickers". Unknown body or query
 * keys are 400 unknown_parameter naming the key ("rules.foo" inside a rule
 * set); bad values 400 invalid_parameter; unknown list or member 404;
 * PostgreSQL down 503.
 */
#ifndef TF_API_WATCHLISTS_H
#define TF_API_WATCHLISTS_H

#include <stddef.h>

#include "http/http.h"
#include "store/pgasync.h"

typedef struct tf_api_watchlists tf_api_watchlists;

/* Registers the routes. s and db are borrowed (db NULL: every route answers
 * 503). Free AFTER tf_pga_free(db) (cancelled queries still find it).
 * NULL + errbuf on failure. */
tf_api_watchlists *tf_api_watchlists_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen);
void tf_api_watchlists_free(tf_api_watchlists *x); /* NULL ok */

#endif
