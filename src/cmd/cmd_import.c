/*
 * cmd_import.c - `tickflow import`: files into PostgreSQL (the importers are
 * ingest/import_run.h; this file maps flags to options and prints).
 *
 *   tickflow import trades FILE...|-  [--format auto|csv|ndjson] [--time-unit s|ms|us|ns]
 *                   [--market M] [--ticker T] [--on-error abort|skip] [--rejects FILE]
 *                   [--force] [--batch-size N]
 *   tickflow import bars FILE --ticker T [--market M] [--interval 1d] [--on-error ...]
 *   (--interval is this command's own flag, main.c hands it over in pos[]
 *   after the files; import.bar_interval is its config default)
 *   tickflow import symbols FILE...  (nasdaqlisted.txt / otherlisted.txt or CSV)
 *
 * On stdout at the end, one JSON object:
 *   {"read":N,"inserted":N,"rejected":N,"first_id":A,"last_id":B,"elapsed_ms":T}
 * (first_id/last_id null when no trade was inserted; "error" when it failed).
 * Exit 0 ok, 1 failed (bad row under abort, database), 2 bad arguments or
 * input layout, 3 refused: the content was imported before.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "ingest/import_run.h"

const char tf_cmd_import_usage_text[] =
            "usage: tickflow import trades FILE...|-  [options]\n"
            "       tickflow import bars FILE|- --ticker T [--market M] [--interval 1m|5m|15m|30m|1h|1d]\n"
            "       tickflow import symbols FILE...|-\n"
            "\n"
            "trades: CSV with a header row (RFC 4180) or NDJSON, plain or gzip. Columns by name,\n"
            "  case-insensitive: ticker|symbol, market_code|market, trade_type|side (BUY SELL B S),\n"
            "  price|p, quantity|qty|size|volume, event_time|timestamp|time (ISO-8601 with offset,\n"
            "  or epoch numbers with --time-unit). Written by binary COPY in --batch-size batches.\n"
            "bars:   OHLCV CSV (Yahoo, Stooq, brokers): Date|Datetime, Open, High, Low, Close,\n"
            "  [Adj Close], Volume; upserted into market_bars by (ticker, interval, bucket).\n"
            "symbols: NASDAQ Trader nasdaqlisted.txt / otherlisted.txt, or CSV\n"
            "  symbol,name,market[,market_cap,sector]; upserted into symbols.\n"
            "\n"
            "options:\n"
            "  --format auto|csv|ndjson   (trades; auto: '{' first means NDJSON)\n"
            "  --time-unit s|ms|us|ns     unit of epoch-number times\n"
            "  --market M, --ticker T     for rows without one\n"
            "  --on-error abort|skip      abort (default): stop at the first bad row, nothing of\n"
            "                             its batch written; skip: go on, bad rows to --rejects\n"
            "  --rejects FILE             skipped rows as NDJSON {file,line,column,reason,text}\n"
            "  --force                    import content imported before (same sha256)\n"
            "  --import.max_future_ms N   reject event times later than now + N (default 300000)\n"
            "prints {\"read\",\"inserted\",\"rejected\",\"first_id\",\"last_id\",\"elapsed_ms\"} on stdout.\n"
            "exit: 0 ok, 1 failed, 2 bad arguments or layout, 3 refused (imported before)\n";

static void print_summary(const tf_import_result *r)
{
    char ids[64];
    if (r->first_id > 0)
        snprintf(ids, sizeof ids, "%lld,\"last_id\":%lld", (long long)r->first_id, (long long)r->last_id);
    else
        snprintf(ids, sizeof ids, "null,\"last_id\":null");
    printf("{\"read\":%lld,\"inserted\":%lld,\"rejected\":%lld,\"first_id\":%s,\"elapsed_ms\":%lld",
           (long long)r->read, (long long)r->inserted, (long long)r->rejected, ids,
           (long long)r->elapsed_ms);
    if (r->code) {
        char esc[4200];
        int n = tf_json_escape(r->error, strlen(r->error), esc, sizeof esc - 1);
        esc[n < 0 ? 0 : n] = '\0';
        printf(",\"error\":\"%s\"", esc);
    }
    printf("}\n");
    fflush(stdout);
}

int tf_cmd_import(tf_config *cfg, int npos, const char **pos)
{
    if (npos < 1 || (strcmp(pos[0], "trades") && strcmp(pos[0], "bars") && strcmp(pos[0], "symbols"))) {
        if (npos >= 1 && !strcmp(pos[0], "help")) {
            fputs(tf_cmd_import_usage_text, stdout);
            return 0;
        }
        return tf_cmd_fail("import", 2, "say what to import: trades, bars or symbols (see --help)",
                           npos ? pos[0] : NULL);
    }
    const char *kind = pos[0];
    if (npos < 2) {
        return tf_cmd_fail("import", 2, "give at least one FILE (or - for stdin)", kind);
    }
    tf_import_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = cfg->pg_url;
    o.files = pos + 1;
    o.nfiles = npos - 1;
    o.format = !strcmp(cfg->import_format, "csv") ? TF_IMP_CSV
               : !strcmp(cfg->import_format, "ndjson") ? TF_IMP_NDJSON : TF_IMP_AUTO;
    int tu = tf_imp_time_unit(cfg->import_time_unit);
    if (tu < 0) {
        return tf_cmd_fail("import", 2, "--time-unit must be s, ms, us or ns", cfg->import_time_unit);
    }
    o.defaults.time_unit = tu;
    /* defaults are upper-cased like values in rows */
    for (size_t i = 0; cfg->import_market[i] && i + 1 < sizeof o.defaults.market; i++)
        o.defaults.market[i] = (char)(cfg->import_market[i] >= 'a' && cfg->import_market[i] <= 'z'
                                          ? cfg->import_market[i] - 32 : cfg->import_market[i]);
    for (size_t i = 0; cfg->import_ticker[i] && i + 1 < sizeof o.defaults.ticker; i++)
        o.defaults.ticker[i] = (char)(cfg->import_ticker[i] >= 'a' && cfg->import_ticker[i] <= 'z'
                                          ? cfg->import_ticker[i] - 32 : cfg->import_ticker[i]);
    if (o.defaults.market[0] && !tf_market_valid(o.defaults.market, strlen(o.defaults.market)) &&
        strcmp(kind, "symbols") != 0) {
        return tf_cmd_fail("import", 2, "--market must be KOSPI, KOSDAQ, NASDAQ or NYSE", cfg->import_market);
    }
    if (o.defaults.ticker[0] && !tf_ticker_valid(o.defaults.ticker, strlen(o.defaults.ticker))) {
        return tf_cmd_fail("import", 2, "--ticker is not a ticker (1-15 of A-Z 0-9 . -)", cfg->import_ticker);
    }
    o.max_future_ms = cfg->import_max_future_ms;
    o.skip = !strcmp(cfg->import_on_error, "skip");
    o.rejects = cfg->import_rejects;
    if (o.rejects[0] && !o.skip) {
        return tf_cmd_fail("import", 2, "--rejects needs --on-error skip", NULL);
    }
    o.force = cfg->import_force;
    o.batch = cfg->storage_batch_size;
    o.progress = isatty(2);
    snprintf(o.interval, sizeof o.interval, "%s", cfg->import_interval);
    for (int i = 1; i < o.nfiles + 1; i++) {
        if (strncmp(pos[i], "--interval", 10) != 0)
            continue;
        /* own flags come after the files: "--interval V" or "--interval=V" */
        const char *v = pos[i][10] == '=' ? pos[i] + 11 : i + 1 < npos ? pos[i + 1] : "";
        if (strcmp(kind, "bars") != 0)
            return tf_cmd_fail("import", 2, "--interval is for import bars", NULL);
        if (strcmp(v, "1m") && strcmp(v, "5m") && strcmp(v, "15m") && strcmp(v, "30m") && strcmp(v, "1h") &&
            strcmp(v, "1d"))
            return tf_cmd_fail("import", 2, "--interval must be 1m, 5m, 15m, 30m, 1h or 1d", v);
        snprintf(o.interval, sizeof o.interval, "%s", v);
        o.nfiles = i - 1;
        break;
    }
    if (o.nfiles < 1)
        return tf_cmd_fail("import", 2, "give at least one FILE (or - for stdin)", kind);
    o.cfg = cfg;
    o.stop = tf_cmd_stop_requested;
    int stdin_count = 0;
    for (int i = 0; i < o.nfiles; i++)
        stdin_count += !strcmp(o.files[i], "-");
    if (stdin_count > 1) {
        return tf_cmd_fail("import", 2, "stdin (-) given more than once", NULL);
    }

    tf_import_result res;
    tf_cmd_catch_stop(NULL);
    if (!strcmp(kind, "trades"))
        tf_import_trades(&o, &res);
    else if (!strcmp(kind, "bars"))
        tf_import_bars(&o, &res);
    else
        tf_import_symbols(&o, &res);
    tf_cmd_release_stop();
    print_summary(&res);
    if (res.code)
        return tf_cmd_fail("import", res.code,
                           res.code == 3 ? "import refused" : res.code == 2 ? "invalid input" : "import failed",
                           res.error);
    return 0;
}
