/*
 * cmd_ingest.c - `tickflow ingest`: the live providers alone (DESIGN.md
 * section 6; ingest/providers/feed.h): migrates, starts the feed of
 * source.providers and writes their trades into stock_trades until
 * SIGINT/SIGTERM. `tickflow run --source.enabled true` runs the same feed
 * inside the full pipeline (with /ready and /metrics).
 * Exit 0 after a stop signal, 2 bad configuration, 1 PostgreSQL unreachable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "ingest/providers/feed.h"
#include "jobs/calendar.h"
#include "store/pg.h"
#include "store/schema.h"

const char tf_cmd_ingest_usage_text[] =
    "usage: tickflow ingest [--source.providers alpaca,finnhub,generator] [--source.symbols AAPL,MSFT]\n"
    "                       [--source.stall_s S] [--source.probe_s S] [--source.key VALUE ...] [--pg-url URL]\n"
    "Writes live trades from the providers of source.providers (priority order: alpaca, finnhub,\n"
    "tickflow, file, generator) into stock_trades until SIGINT/SIGTERM. The first provider that\n"
    "works is written; one that fails or sends no trade for source.stall_s is left for the next,\n"
    "and probed every source.probe_s until it delivers again. Every provider trade is written\n"
    "once (its provider key is kept in tickflow_source_trades), also across restarts.\n"
    "Secrets come from the environment or source.secrets_file (mode 0600), never from flags:\n"
    "  alpaca   APCA_API_KEY_ID, APCA_API_SECRET_KEY   (source.alpaca_url)\n"
    "  finnhub  FINNHUB_TOKEN                          (source.finnhub_url)\n"
    "  tickflow another tickflow's raw WebSocket feed  (source.tickflow_url)\n"
    "  file     NDJSON trades replayed on a loop       (source.file_path, source.file_rate)\n"
    "  generator the built-in synthetic market         (generator.rate, generator.model)\n"
    "source.ca_file trusts extra certificates for wss:// (default: the system's).\n"
    "source.market_hours (NYSE, KRX or always): silence counts as a stall only in that session.\n";

/* ---- the feed with its market calendar (also used by cmd_run.c) ---- */

struct tf_cmd_feed {
    tf_feed *feed;
    tf_calendar *cal; /* NULL: source.market_hours = always */
    int market;
};

/* Both calendars' sessions last 6.5 h up to their close (NYSE 09:30-16:00
 * America/New_York, KRX 09:00-15:30 Asia/Seoul) on trading days. */
#define SESSION_S (6 * 3600 + 1800)

static int session_open(void *ud, int64_t now_us)
{
    struct tf_cmd_feed *cf = ud;
    int64_t utc = tf_floor_div(now_us, TF_US_PER_SEC);
    int64_t local = utc + tf_tz_offset_utc(tf_calendar_zone(cf->cal, cf->market), utc);
    int64_t day = tf_floor_div(local, 86400);
    if (!tf_calendar_is_trading_day(cf->cal, cf->market, day)) return 0;
    int64_t close = tf_calendar_close_utc(cf->cal, cf->market, day);
    return utc >= close - SESSION_S && utc < close;
}

struct tf_cmd_feed *tf_cmd_feed_start(const tf_config *cfg, tf_metrics *m, char *err, size_t errlen)
{
    struct tf_cmd_feed *cf = calloc(1, sizeof *cf);
    if (!cf) return snprintf(err, errlen, "out of memory"), NULL;
    if (strcmp(cfg->source_market_hours, "always") != 0) {
        cf->market = tf_calendar_market(cfg->source_market_hours);
        if (cf->market < 0 || !(cf->cal = tf_calendar_new(cfg->calendar_holidays_krx, cfg->calendar_holidays_nyse, err,
                                                          errlen))) {
            if (cf->market < 0) snprintf(err, errlen, "source.market_hours: unknown market");
            free(cf);
            return NULL;
        }
    }
    if (!(cf->feed = tf_feed_start(cfg, m, cf->cal ? session_open : NULL, cf, err, errlen))) {
        tf_calendar_free(cf->cal);
        free(cf);
        return NULL;
    }
    return cf;
}

struct tf_feed *tf_cmd_feed_get(struct tf_cmd_feed *cf) { return cf->feed; }

void tf_cmd_feed_stop(struct tf_cmd_feed *cf)
{
    if (!cf) return;
    tf_feed_stop(cf->feed);
    tf_calendar_free(cf->cal);
    free(cf);
}

int tf_cmd_ingest(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    if (tf_cmd_no_args("ingest", npos, pos) != 0) return 2;
    char err[1024];
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) return tf_cmd_fail("ingest", 1, "cannot connect to PostgreSQL", e.msg);
    int rc = tf_schema_migrate(conn, cfg, NULL, &e);
    PQfinish(conn);
    if (rc) return tf_cmd_fail("ingest", 1, "migration failed", e.msg);

    struct tf_cmd_feed *cf = tf_cmd_feed_start(cfg, NULL, err, sizeof err);
    if (!cf) return tf_cmd_fail("ingest", 2, "cannot start the providers", err);
    tf_feed *feed = tf_cmd_feed_get(cf);
    tf_cmd_catch_stop(NULL);
    while (!tf_cmd_wait_stop(60000)) {
        tf_feed_status st;
        tf_feed_get_status(feed, &st);
        tf_info("ingest", "status", TF_STR("active", st.active[0] ? st.active : NULL), TF_INT("written", st.written),
                TF_INT("switches", st.switches), TF_INT("duplicates", st.duplicates), TF_INT("overlap", st.overlap),
                TF_INT("bad", st.bad));
    }
    tf_cmd_release_stop();
    tf_cmd_feed_stop(cf);
    return 0;
}
