/*
 * cmd_ingest.c - `tickflow ingest`: the live providers alone (DESIGN.md
 * section 6; ingest/providers/feed.h): migrates, starts the feed of
 * source.providers and writes their trades into stock_trades until
 * SIGINT/SIGTERM. `tickflow run --source.enabled true` runs the same feed
 * inside the full pipeline (with /ready and /metrics).
 * Exit 0 after a stop signal, 2 bad configuration, 1 PostgreSQL unreachable.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "ingest/providers/feed.h"
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
    "source.ca_file trusts extra certificates for wss:// (default: the system's).\n";

int tf_cmd_ingest(tf_config *cfg, int npos, const char **pos)
{
    if (tf_cmd_no_args("ingest", npos, pos) != 0) return 2;
    char err[1024];
    PGconn *conn = tf_pg_connect(cfg->pg_url, err, sizeof err);
    if (!conn) return tf_cmd_fail("ingest", 1, "cannot connect to PostgreSQL", err);
    int rc = tf_schema_migrate(conn, cfg, NULL, err, sizeof err);
    PQfinish(conn);
    if (rc) return tf_cmd_fail("ingest", 1, "migration failed", err);

    tf_feed *feed = tf_feed_start(cfg, NULL, err, sizeof err);
    if (!feed) return tf_cmd_fail("ingest", 2, "cannot start the providers", err);
    tf_cmd_catch_stop(NULL);
    while (!tf_cmd_wait_stop(60000)) {
        tf_feed_status st;
        tf_feed_get_status(feed, &st);
        tf_info("ingest", "status", TF_STR("active", st.active[0] ? st.active : NULL), TF_INT("written", st.written),
                TF_INT("switches", st.switches), TF_INT("duplicates", st.duplicates), TF_INT("overlap", st.overlap),
                TF_INT("bad", st.bad));
    }
    tf_cmd_release_stop();
    tf_feed_stop(feed);
    return 0;
}
