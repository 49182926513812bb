/*
 * job_watchlist.h - the daily_indicators and watchlist_scan jobs (DESIGN
 * §8), run functions of the job table in jobs/jobs.c.
 *
 * Both work on each ticker's session: the latest trading session of the
 * ticker's market (jobs/calendar.h; the market of its latest 1d bar, NYSE
 * when unknown) whose close is at or before the run's logical time - a
 * run after the close takes that day, a run on Monday morning Friday's.
 * Bars are 1d from trades, else imported (store/schema.c's
 * tickflow_bars_with_imported), each ticker's whole history up to that
 * session, so indicators are those of a state that saw every bar (the
 * backtest's and /api/v1/indicators').
 *
 *   daily_indicators  every ticker with a bar in its session: the default
 *       indicator set (process/indicators.h) of that bar into
 *       daily_indicators (ticker, day): close, score, indicators.
 *   watchlist_scan    for every watchlist (tickflow_watchlists): its scan,
 *       if any, over the tickers with a session bar (criteria, tier,
 *       market, universe, then top_gainers; process/watchlist.h) gives the
 *       scan members; then the list's rule set (over [signals]) runs over
 *       each member's bars (hand-made and scan members) and the rules that
 *       fire on the session bar are stored in stock_signals (deterministic
 *       id; the list's name is added to watchlists[]), and one row per
 *       member into tickflow_watchlist_scans (score, recommendation,
 *       indicators, signal ids). Scan members change only for a logical
 *       time not older than the one that last set them (a backfill of old
 *       dates leaves today's list alone); each change is a dated row of
 *       tickflow_watchlist_changes. Scan results older than
 *       watchlist.retention_days before the logical date are deleted.
 * Idempotent: every write is an upsert that changes nothing the second
 * time; one transaction per run.
 */
#ifndef TF_JOB_WATCHLIST_H
#define TF_JOB_WATCHLIST_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/jobs.h"

int tf_job_daily_indicators(tf_job_ctx *ctx, int64_t logical_ms, char *errbuf, size_t errlen);
int tf_job_watchlist_scan(tf_job_ctx *ctx, int64_t logical_ms, char *errbuf, size_t errlen);

#endif
