/*
 * config.c - one table of settings; defaults, INI file, environment, flags.
 *
 * The INI file is parsed by libinih (Debian libinih-dev): a small, well-kept,
 * widely packaged parser; we only add the table, validation and overrides.
 * Every value goes through tf_config_set, so the file, the environment and
 * flags are validated identically and errors name "section.key".
 */
#include "common/config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"

enum { T_STR, T_INT, T_I64, T_DBL, T_BOOL };

typedef struct key {
    const char *section, *key;
    int type;
    size_t off, size;       /* size for T_STR */
    double min, max;        /* numbers */
    const char *def;
    const char *flag;       /* extra flag alias (without --), or NULL */
    const char *allowed;    /* T_STR: "|a|b|" allowed values, or NULL */
} key;

#define F(f) offsetof(tf_config, f), sizeof(((tf_config *)0)->f)
static const key keys[] = {
    {"postgres", "url", T_STR, F(pg_url), 0, 0, "postgresql://tickflow@127.0.0.1:54329/tickflow", "pg-url", NULL},
    {"log", "level", T_STR, F(log_level), 0, 0, "info", NULL, "|debug|info|warn|error|"},
    {"http", "bind", T_STR, F(http_bind), 0, 0, "127.0.0.1", NULL, NULL},
    {"http", "port", T_INT, F(http_port), 0, 65535, "8080", "port", NULL},
    {"http", "max_connections", T_INT, F(http_max_connections), 1, 1000000, "20000", NULL, NULL},
    {"http", "max_header_bytes", T_INT, F(http_max_header_bytes), 256, 1 << 20, "16384", NULL, NULL},
    {"http", "max_body_bytes", T_INT, F(http_max_body_bytes), 0, 64 << 20, "1048576", NULL, NULL},
    {"http", "header_timeout_ms", T_INT, F(http_header_timeout_ms), 100, 3600000, "10000", NULL, NULL},
    {"http", "idle_timeout_ms", T_INT, F(http_idle_timeout_ms), 100, 86400000, "60000", NULL, NULL},
    {"http", "db_pool", T_INT, F(http_db_pool), 1, 64, "4", NULL, NULL},
    {"http", "threads", T_INT, F(http_threads), 0, 256, "0", NULL, NULL},
    {"storage", "retention_days", T_INT, F(storage_retention_days), 0, 100000, "0", NULL, NULL},
    {"storage", "partitions_ahead", T_INT, F(storage_partitions_ahead), 0, 366, "3", NULL, NULL},
    {"storage", "batch_size", T_INT, F(storage_batch_size), 1, 1000000, "10000", "batch-size", NULL},
    {"storage", "compress_after_days", T_INT, F(storage_compress_after_days), 0, 100000, "0", NULL, NULL},
    {"storage", "segment_rows", T_INT, F(storage_segment_rows), 1, 1000000, "10000", NULL, NULL},
    {"compress", "day", T_STR, F(compress_day), 0, 0, "", "day", NULL},
    {"compress", "decompress", T_BOOL, F(compress_decompress), 0, 1, "false", "decompress", NULL},
    {"compress", "scan", T_BOOL, F(compress_scan), 0, 1, "false", "scan", NULL},
    {"compress", "unpack", T_BOOL, F(compress_unpack), 0, 1, "false", "unpack", NULL},
    {"compress", "ticker", T_STR, F(compress_ticker), 0, 0, "", NULL, NULL},
    {"compress", "from", T_STR, F(compress_from), 0, 0, "", NULL, NULL},
    {"compress", "to", T_STR, F(compress_to), 0, 0, "", NULL, NULL},
    {"generator", "enabled", T_BOOL, F(gen_enabled), 0, 1, "true", NULL, NULL},
    {"generator", "rate", T_DBL, F(gen_rate), 0, 10000000, "1000", NULL, NULL},
    {"generator", "count", T_I64, F(gen_count), 0, 1e12, "0", NULL, NULL},
    {"generator", "duration_s", T_DBL, F(gen_duration_s), 0, 1e9, "0", "duration", NULL},
    {"generator", "start", T_STR, F(gen_start), 0, 0, "", NULL, NULL},
    {"generator", "tickers", T_STR, F(gen_tickers), 0, 0, "", NULL, NULL},
    {"generator", "seed", T_I64, F(gen_seed), 0, 9.2e18, "42", NULL, NULL},
    {"generator", "anomalies", T_DBL, F(gen_anomalies), 0, 0.1, "0.0005", NULL, NULL},
    {"generator", "model", T_STR, F(gen_model), 0, 0, "realistic", NULL, "|gbm|realistic|"},
    {"cdc", "enabled", T_BOOL, F(cdc_enabled), 0, 1, "true", NULL, NULL},
    {"cdc", "slot", T_STR, F(cdc_slot), 0, 0, "tickflow", NULL, NULL},
    {"cdc", "publication", T_STR, F(cdc_publication), 0, 0, "dbz_publication", NULL, NULL},
    {"cdc", "snapshot", T_STR, F(cdc_snapshot), 0, 0, "no_data", NULL, "|no_data|initial|"},
    {"cdc", "key", T_STR, F(cdc_key), 0, 0, "ticker", NULL, "|ticker|primary_key|"},
    /* comma list of c u d t (Debezium: skipped.operations, default t); "none" publishes all */
    {"cdc", "skipped_operations", T_STR, F(cdc_skipped_operations), 0, 0, "t", NULL, NULL},
    {"cdc", "max_lag_bytes", T_I64, F(cdc_max_lag_bytes), 1024, 1e15, "1073741824", NULL, NULL},
    {"cdc", "status_interval_ms", T_INT, F(cdc_status_interval_ms), 10, 600000, "1000", NULL, NULL},
    {"bus", "capacity", T_INT, F(bus_capacity), 16, 100000000, "262144", NULL, NULL},
    {"kafka", "brokers", T_STR, F(kafka_brokers), 0, 0, "", "kafka-brokers", NULL},
    {"kafka", "group", T_STR, F(kafka_group), 0, 0, "tickflow-process", NULL, NULL},
    {"kafka", "compression", T_STR, F(kafka_compression), 0, 0, "none", NULL, "|none|gzip|snappy|lz4|zstd|"},
    {"kafka", "session_timeout_ms", T_INT, F(kafka_session_timeout_ms), 6000, 300000, "10000", NULL, NULL},
    {"kafka", "linger_ms", T_INT, F(kafka_linger_ms), 0, 10000, "2", NULL, NULL},
    /* scaling out (issue 16): a read replica for serve-side reads, the Kafka consumer fetch queue */
    {"postgres", "read_url", T_STR, F(pg_read_url), 0, 0, "", "pg-read-url", NULL},
    {"postgres", "read_max_lag_ms", T_INT, F(pg_read_max_lag_ms), 0, 86400000, "5000", NULL, NULL},
    {"kafka", "fetch_queue_mb", T_INT, F(kafka_fetch_queue_mb), 1, 2047, "256", NULL, NULL},
    {"rollup", "interval_ms", T_INT, F(rollup_interval_ms), 50, 3600000, "1000", NULL, NULL},
    {"history", "max_range_days", T_INT, F(history_max_range_days), 1, 36500, "366", NULL, NULL},
    {"history", "default_limit", T_INT, F(history_default_limit), 1, 10000, "1000", NULL, NULL},
    {"history", "max_limit", T_INT, F(history_max_limit), 1, 1000000, "10000", NULL, NULL},
    {"ws", "ping_interval_ms", T_INT, F(ws_ping_interval_ms), 100, 3600000, "20000", NULL, NULL},
    {"ws", "max_queue_bytes", T_INT, F(ws_max_queue_bytes), 1024, 1 << 30, "1048576", NULL, NULL},
    {"ws", "max_message_bytes", T_INT, F(ws_max_message_bytes), 128, 64 << 20, "65536", NULL, NULL},
    {"ws", "candle_grace_ms", T_INT, F(ws_candle_grace_ms), 0, 60000, "100", NULL, NULL},
    {"ws", "slow_close_ms", T_INT, F(ws_slow_close_ms), 100, 3600000, "10000", NULL, NULL},
    {"sse", "heartbeat_s", T_INT, F(sse_heartbeat_s), 1, 3600, "15", NULL, NULL},
    {"sse", "retry_ms", T_INT, F(sse_retry_ms), 0, 3600000, "3000", NULL, NULL},
    {"sse", "lag_threshold_ms", T_INT, F(sse_lag_threshold_ms), 100, 3600000, "5000", NULL, NULL},
    {"process", "enabled", T_BOOL, F(process_enabled), 0, 1, "true", NULL, NULL},
    {"process", "out_of_order_ms", T_INT, F(process_out_of_order_ms), 0, 3600000, "2000", NULL, NULL},
    {"process", "allowed_lateness_ms", T_INT, F(process_allowed_lateness_ms), 0, 86400000, "60000", NULL, NULL},
    {"process", "spike_k", T_DBL, F(process_spike_k), 1, 1000, "6", NULL, NULL},
    {"process", "spike_window_s", T_DBL, F(process_spike_window_s), 1, 86400, "60", NULL, NULL},
    {"process", "rapid_pct", T_DBL, F(process_rapid_pct), 0.001, 1000, "0.5", NULL, NULL},
    {"process", "rapid_z", T_DBL, F(process_rapid_z), 1, 1000, "7", NULL, NULL},
    {"process", "rapid_window_s", T_DBL, F(process_rapid_window_s), 0.1, 86400, "30", NULL, NULL},
    {"process", "volume_k", T_DBL, F(process_volume_k), 1, 1000, "6", NULL, NULL},
    {"process", "volume_window_s", T_DBL, F(process_volume_window_s), 1, 86400, "300", NULL, NULL},
    {"process", "burst_k", T_DBL, F(process_burst_k), 0, 1000, "3", NULL, NULL},
    {"process", "burst_window_ms", T_INT, F(process_burst_window_ms), 1, 3600000, "200", NULL, NULL},
    {"process", "burst_history_s", T_DBL, F(process_burst_history_s), 1, 86400, "60", NULL, NULL},
    {"process", "burst_min_trades", T_INT, F(process_burst_min_trades), 2, 1000000, "20", NULL, NULL},
    {"process", "vwap_k", T_DBL, F(process_vwap_k), 1, 1000, "3", NULL, NULL},
    {"process", "vwap_pct", T_DBL, F(process_vwap_pct), 0, 1000, "0.3", NULL, NULL},
    {"process", "vwap_window_s", T_DBL, F(process_vwap_window_s), 1, 86400, "60", NULL, NULL},
    {"process", "vwap_trades", T_INT, F(process_vwap_trades), 2, 100000, "100", NULL, NULL},
    {"process", "warmup", T_INT, F(process_warmup), 2, 1000000, "50", NULL, NULL},
    {"process", "cooldown_s", T_DBL, F(process_cooldown_s), 0, 86400, "10", NULL, NULL},
    {"process", "spike.false_alarms_per_100k", T_DBL, F(process_spike_fa), 1e-6, 1000, "0.2", NULL, NULL},
    {"process", "rapid.false_alarms_per_100k", T_DBL, F(process_rapid_fa), 1e-6, 1000, "0.2", NULL, NULL},
    {"process", "volume.false_alarms_per_100k", T_DBL, F(process_volume_fa), 1e-6, 1000, "0.2", NULL, NULL},
    {"process", "burst.false_alarms_per_100k", T_DBL, F(process_burst_fa), 1e-6, 1000, "0.2", NULL, NULL},
    {"process", "vwap.false_alarms_per_100k", T_DBL, F(process_vwap_fa), 1e-6, 1000, "0.2", NULL, NULL},
    {"process", "volume_median_multiple", T_DBL, F(process_volume_median_multiple), 1, 1e9, "50", NULL, NULL},
    {"process", "upgrade_ratio", T_DBL, F(process_upgrade_ratio), 1, 1000, "2", NULL, NULL},
    {"process", "status_interval_ms", T_INT, F(process_status_interval_ms), 100, 600000, "1000", NULL, NULL},
    /* trades dated beyond now + this are quarantined (never move a watermark) and refused by the generate API */
    {"process", "max_future_ms", T_INT, F(process_max_future_ms), 1000, 2000000000, "300000", NULL, NULL},
    {"process", "store", T_BOOL, F(process_store), 0, 1, "true", NULL, NULL},
    {"signals", "rules", T_STR, F(signals_rules), 0, 0, "all", NULL, NULL},
    {"signals", "cooldown_bars", T_INT, F(signals_cooldown_bars), 0, 1000000, "5", NULL, NULL},
    {"signals", "horizons", T_STR, F(signals_horizons), 0, 0, "1m,5m,15m,1h,1d", NULL, NULL},
    {"signals", "rsi_low", T_DBL, F(signals_rsi_low), 0, 100, "30", NULL, NULL},
    {"signals", "rsi_high", T_DBL, F(signals_rsi_high), 0, 100, "70", NULL, NULL},
    {"signals", "bb_low", T_DBL, F(signals_bb_low), -10, 10, "0.05", NULL, NULL},
    {"signals", "bb_high", T_DBL, F(signals_bb_high), -10, 10, "0.95", NULL, NULL},
    {"signals", "volume_mult", T_DBL, F(signals_volume_mult), 0.01, 1e6, "3", NULL, NULL},
    {"signals", "sma_fast", T_INT, F(signals_sma_fast), 1, 1024, "20", NULL, NULL},
    {"signals", "sma_slow", T_INT, F(signals_sma_slow), 1, 1024, "60", NULL, NULL},
    /* [watchlist] (jobs/job_watchlist.c): scan results older than this many days are dropped; 0 keeps all */
    {"watchlist", "retention_days", T_INT, F(watchlist_retention_days), 0, 100000, "90", NULL, NULL},
    {"backtest", "from", T_STR, F(backtest_from), 0, 0, "", NULL, NULL},
    {"backtest", "to", T_STR, F(backtest_to), 0, 0, "", NULL, NULL},
    {"backtest", "interval", T_STR, F(backtest_interval), 0, 0, "1d", NULL, "|1d|1m|"},
    /* alias: --store means this one; tickflow process says --process.store */
    {"backtest", "store", T_BOOL, F(backtest_store), 0, 1, "false", "store", NULL},
    /* scheduled jobs (src/jobs): cron and tz are checked when the scheduler loads them */
    {"scheduler", "enabled", T_BOOL, F(scheduler_enabled), 0, 1, "true", NULL, NULL},
    {"calendar", "holidays_krx", T_STR, F(calendar_holidays_krx), 0, 0, "", NULL, NULL},
    {"calendar", "holidays_nyse", T_STR, F(calendar_holidays_nyse), 0, 0, "", NULL, NULL},
#define JOB_ROWS(i, name, cron_, tz_, enabled_)                                                                   \
    {"job." name, "cron", T_STR, F(job[i].cron), 0, 0, cron_, NULL, NULL},                                     \
    {"job." name, "tz", T_STR, F(job[i].tz), 0, 0, tz_, NULL, NULL},                                           \
    {"job." name, "catchup", T_STR, F(job[i].catchup), 0, 0, "latest", NULL, "|none|latest|all|"},            \
    {"job." name, "retries", T_INT, F(job[i].retries), 0, 100, "2", NULL, NULL},                              \
    {"job." name, "retry_backoff_s", T_DBL, F(job[i].retry_backoff_s), 0, 86400, "30", NULL, NULL},           \
    {"job." name, "timeout_s", T_DBL, F(job[i].timeout_s), 0.01, 604800, "3600", NULL, NULL},                \
    {"job." name, "enabled", T_BOOL, F(job[i].enabled), 0, 1, enabled_, NULL, NULL}
    JOB_ROWS(TF_JOB_PARTITIONS, "partitions", "5 0 * * *", "UTC", "true"),
    JOB_ROWS(TF_JOB_DAILY_BARS, "daily_bars", "30 16 * * 1-5", "America/New_York", "true"),
    JOB_ROWS(TF_JOB_DAILY_INDICATORS, "daily_indicators", "45 16 * * 1-5", "America/New_York", "true"),
    JOB_ROWS(TF_JOB_WATCHLIST_SCAN, "watchlist_scan", "0 17 * * 1-5", "America/New_York", "true"),
    JOB_ROWS(TF_JOB_SIGNAL_PERFORMANCE, "signal_performance", "15 17 * * 1-5", "America/New_York", "true"),
    JOB_ROWS(TF_JOB_SYMBOLS, "symbols", "0 6 * * *", "UTC", "true"),
    JOB_ROWS(TF_JOB_COMPRESS, "compress", "30 1 * * *", "UTC", "true"),
    JOB_ROWS(TF_JOB_SPLIT_CHECK, "split_check", "40 16 * * 1-5", "America/New_York", "true"),
    {"job.split_check", "min_move_pct", T_DBL, F(job[TF_JOB_SPLIT_CHECK].min_move_pct), 0, 1e6, "40", NULL, NULL},
    {"job.split_check", "ratio_tolerance", T_DBL, F(job[TF_JOB_SPLIT_CHECK].ratio_tolerance), 0, 1, "0.05", NULL,
     NULL},
    {"job.symbols", "files", T_STR, F(job[TF_JOB_SYMBOLS].files), 0, 0, "", NULL, NULL},
    JOB_ROWS(TF_JOB_SELFTEST, "selftest", "* * * * *", "UTC", "false"),
    {"job.selftest", "fail_times", T_INT, F(job[TF_JOB_SELFTEST].fail_times), 0, 100, "0", NULL, NULL},
    {"job.selftest", "sleep_ms", T_INT, F(job[TF_JOB_SELFTEST].sleep_ms), 0, 3600000, "0", NULL, NULL},
#undef JOB_ROWS
    {"import", "format", T_STR, F(import_format), 0, 0, "auto", "format", "|auto|csv|ndjson|"},
    {"import", "time_unit", T_STR, F(import_time_unit), 0, 0, "", "time-unit", NULL},
    {"import", "market", T_STR, F(import_market), 0, 0, "", "market", NULL},
    {"import", "ticker", T_STR, F(import_ticker), 0, 0, "", "ticker", NULL},
    {"import", "bar_interval", T_STR, F(import_interval), 0, 0, "1d", "bar-interval", "|1m|5m|15m|30m|1h|1d|"},
    {"import", "on_error", T_STR, F(import_on_error), 0, 0, "abort", "on-error", "|abort|skip|"},
    {"import", "rejects", T_STR, F(import_rejects), 0, 0, "", "rejects", NULL},
    {"import", "force", T_BOOL, F(import_force), 0, 1, "false", "force", NULL},
    {"import", "max_future_ms", T_I64, F(import_max_future_ms), 0, 3.1e12, "300000", NULL, NULL},
    /* live providers (ingest/providers): secrets are never keys here, see feed.h */
    {"source", "enabled", T_BOOL, F(source_enabled), 0, 1, "false", NULL, NULL},
    {"source", "providers", T_STR, F(source_providers), 0, 0, "generator", NULL, NULL},
    {"source", "symbols", T_STR, F(source_tickers), 0, 0, "AAPL,MSFT", NULL, NULL},
    {"source", "default_market", T_STR, F(source_market), 0, 0, "NASDAQ", NULL, "|KOSPI|KOSDAQ|NASDAQ|NYSE|"},
    {"source", "stall_s", T_DBL, F(source_stall_s), 0.1, 86400, "10", NULL, NULL},
    /* a provider stalls only while this market's session is open (calendar.holidays_*) */
    {"source", "market_hours", T_STR, F(source_market_hours), 0, 0, "NYSE", NULL, "|always|NYSE|KRX|"},
    {"source", "probe_s", T_DBL, F(source_probe_s), 0.1, 86400, "30", NULL, NULL},
    {"source", "flush_ms", T_INT, F(source_flush_ms), 1, 60000, "100", NULL, NULL},
    {"source", "timeout_ms", T_INT, F(source_timeout_ms), 100, 600000, "10000", NULL, NULL},
    {"source", "alpaca_url", T_STR, F(source_alpaca_url), 0, 0, "wss://stream.data.alpaca.markets/v2/iex", NULL, NULL},
    {"source", "finnhub_url", T_STR, F(source_finnhub_url), 0, 0, "wss://ws.finnhub.io", NULL, NULL},
    {"source", "tickflow_url", T_STR, F(source_tickflow_url), 0, 0, "ws://127.0.0.1:8080/api/v1/stock/real-time", NULL, NULL},
    {"source", "file_path", T_STR, F(source_file_path), 0, 0, "", NULL, NULL},
    {"source", "file_rate", T_DBL, F(source_file_rate), 0.001, 1e7, "100", NULL, NULL},
    {"source", "ca_file", T_STR, F(source_ca_file), 0, 0, "", NULL, NULL},
    {"source", "secrets_file", T_STR, F(source_secrets_file), 0, 0, "", NULL, NULL},
    {"source", "keys_retention_days", T_INT, F(source_keys_retention_days), 0, 100000, "7", NULL, NULL},
};
#define NKEYS (sizeof keys / sizeof *keys)

static const key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, name) == 0) return &keys[i];
    return NULL;
}

static int set_value(tf_config *c, const key *k, const char *v, char *err, size_t errlen)
{
    char *p = (char *)c + k->off;
    char *end;
    switch (k->type) {
    case T_STR: {
        size_t n = strlen(v);
        if (n >= k->size) {
            snprintf(err, errlen, "%s.%s: value too long (max %zu bytes)", k->section, k->key, k->size - 1);
            return -1;
        }
        if (k->allowed) {
            char pat[80];
            snprintf(pat, sizeof pat, "|%s|", v);
            if (!n || !strstr(k->allowed, pat)) {
                snprintf(err, errlen, "%s.%s: invalid value '%s' (one of %s)", k->section, k->key, v, k->allowed);
                return -1;
            }
        }
        memcpy(p, v, n + 1);
        return 0;
    }
    case T_BOOL: {
        int b;
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) b = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) b = 0;
        else {
            snprintf(err, errlen, "%s.%s: invalid boolean '%s' (true or false)", k->section, k->key, v);
            return -1;
        }
        *(int *)p = b;
        return 0;
    }
    case T_INT:
    case T_I64: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < k->min || x > k->max) {
            snprintf(err, errlen, "%s.%s: invalid integer '%s' (expected %.0f..%.0f)", k->section, k->key, v,
                     k->min, k->max);
            return -1;
        }
        if (k->type == T_INT) *(int *)p = (int)x;
        else *(int64_t *)p = x;
        return 0;
    }
    case T_DBL: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < k->min || x > k->max) {
            snprintf(err, errlen, "%s.%s: invalid number '%s' (expected %g..%g)", k->section, k->key, v, k->min,
                     k->max);
            return -1;
        }
        *(double *)p = x;
        return 0;
    }
    }
    return -1;
}

void tf_config_defaults(tf_config *c)
{
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        int r = set_value(c, &keys[i], keys[i].def, err, sizeof err);
        (void)r; /* defaults are valid by construction (unit-tested) */
    }
}

int tf_config_has_key(const char *section, const char *key)
{
    return find_key(section, key) != NULL;
}

int tf_config_set(tf_config *c, const char *section, const char *name, const char *value, char *err, size_t errlen)
{
    const key *k = find_key(section, name);
    if (!k) {
        snprintf(err, errlen, "unknown configuration key '%s.%s'", section, name);
        return -1;
    }
    return set_value(c, k, value, err, errlen);
}

typedef struct ini_ctx {
    tf_config *c;
    char *err;
    size_t errlen;
    const char *file;
    int failed;
} ini_ctx;

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *x = user;
    if (x->failed) return 0;
    char e[300];
    if (tf_config_set(x->c, section, name, value, e, sizeof e) != 0) {
        snprintf(x->err, x->errlen, "%s: %s", x->file, e);
        x->failed = 1;
    }
    return 1; /* so inih's return value only reports syntax errors */
}

static int load_file(tf_config *c, const char *path, char *err, size_t errlen)
{
    ini_ctx x = {c, err, errlen, path, 0};
    int r = ini_parse(path, on_ini, &x);
    if (r > 0) { /* a syntax error explains whatever the handler saw after it */
        snprintf(err, errlen, "config file %s: syntax error on line %d", path, r);
        return -1;
    }
    if (x.failed) return -1;
    if (r < 0) {
        snprintf(err, errlen, "config file %s: cannot open", path);
        return -1;
    }
    return 0;
}

static void env_name(const key *k, char *buf, size_t n)
{
    snprintf(buf, n, "TICKFLOW_%s_%s", k->section, k->key);
    for (char *p = buf; *p; p++) {
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
        if (*p == '.') *p = '_'; /* [job.NAME] -> TICKFLOW_JOB_NAME_KEY */
    }
}

/* Finds the key a command-line flag names: "section.key", an alias, or a
 * key name that is unique across sections ("rate", "count"; '-' == '_'). */
static const key *flag_key(const char *flag, char *err, size_t errlen)
{
    char f[96];
    snprintf(f, sizeof f, "%s", flag);
    for (char *p = f; *p; p++)
        if (*p == '-') *p = '_';
    const char *dot = strrchr(f, '.'); /* --job.NAME.key: the section has a dot */
    if (dot) {
        char sec[48];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - f), f);
        const key *k = find_key(sec, dot + 1);
        if (!k) snprintf(err, errlen, "unknown option '--%s'", flag);
        return k;
    }
    const key *found = NULL;
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].flag && strcmp(keys[i].flag, flag) == 0) return &keys[i];
        if (strcmp(keys[i].key, f) == 0) found = &keys[i], n++;
    }
    if (n == 1) return found;
    if (n > 1) snprintf(err, errlen, "ambiguous option '--%s': say --section.%s", flag, f);
    else snprintf(err, errlen, "unknown option '--%s'", flag);
    return NULL;
}

static int is_bool_word(const char *v)
{
    static const char *const w[] = {"true", "false", "1", "0", "yes", "no", "on", "off"};
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        if (!strcasecmp(v, w[i])) return 1;
    return 0;
}

int tf_config_load(tf_config *c, int argc, char **argv, const char **positional, int maxpos, int *npositional,
                   char *err, size_t errlen)
{
    tf_config_defaults(c);
    *npositional = 0;
    /* 1. the file: --config FILE or TICKFLOW_CONFIG */
    const char *file = getenv("TICKFLOW_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '--config' needs a file name");
                return -1;
            }
            file = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    if (file && *file && load_file(c, file, err, errlen) != 0) return -1;
    /* 2. the environment */
    for (size_t i = 0; i < NKEYS; i++) {
        char name[96];
        env_name(&keys[i], name, sizeof name);
        const char *v = getenv(name);
        if (v && set_value(c, &keys[i], v, err, errlen) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (from environment %s)", name);
            return -1;
        }
    }
    /* 2b. a TICKFLOW_* variable that names no key is a typo: say so, as
     * for an unknown INI key. A few names are not settings: the config
     * file, and what the test and benchmark scripts pass to every process. */
    static const char *const not_keys[] = {"TICKFLOW_CONFIG", "TICKFLOW_BIN", "TICKFLOW_BUILD", "TICKFLOW_SRC",
                                           NULL};
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "TICKFLOW_", 9) != 0) continue;
        size_t nl = strcspn(*e, "=");
        int ok = 0;
        for (int j = 0; not_keys[j] && !ok; j++) ok = strlen(not_keys[j]) == nl && !strncmp(*e, not_keys[j], nl);
        for (size_t i = 0; i < NKEYS && !ok; i++) {
            char name[96];
            env_name(&keys[i], name, sizeof name);
            ok = strlen(name) == nl && !strncmp(*e, name, nl);
        }
        if (!ok) {
            snprintf(err, errlen, "unknown environment variable '%.*s' (TICKFLOW_<SECTION>_<KEY> of a key in "
                     "`tickflow config`)", (int)(nl > 80 ? 80 : nl), *e);
            return -1;
        }
    }
    /* 3. flags */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (*npositional >= maxpos) {
                snprintf(err, errlen, "unexpected argument '%s'", a);
                return -1;
            }
            positional[(*npositional)++] = a;
            continue;
        }
        char name[96];
        const char *val = NULL;
        const char *eq = strchr(a + 2, '=');
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
        }
        if (strcmp(name, "config") == 0) {
            if (!eq) i++;
            continue;
        }
        const key *k = flag_key(name, err, errlen);
        if (!k) return -1;
        if (!val) {
            /* a bare boolean flag; the next word is its value only if it is one
             * (so `--force FILE` leaves FILE positional) */
            if (k->type == T_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
                                      !is_bool_word(argv[i + 1]))) {
                val = "true";
            } else {
                if (i + 1 >= argc) {
                    snprintf(err, errlen, "option '--%s' needs a value", name);
                    return -1;
                }
                val = argv[++i];
            }
        }
        if (set_value(c, k, val, err, errlen) != 0) return -1;
    }
    int lvl = tf_log_level_from_str(c->log_level);
    if (lvl >= 0) tf_log_set_level(lvl);
    return 0;
}

void tf_config_dump(const tf_config *c, void *file)
{
    FILE *f = file;
    const char *sec = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const key *k = &keys[i];
        if (strcmp(sec, k->section) != 0) fprintf(f, "%s[%s]\n", i ? "\n" : "", sec = k->section);
        const char *p = (const char *)c + k->off;
        switch (k->type) {
        case T_STR: fprintf(f, "%s = %s\n", k->key, p); break;
        case T_BOOL: fprintf(f, "%s = %s\n", k->key, *(const int *)p ? "true" : "false"); break;
        case T_INT: fprintf(f, "%s = %d\n", k->key, *(const int *)p); break;
        case T_I64: fprintf(f, "%s = %lld\n", k->key, (long long)*(const int64_t *)p); break;
        case T_DBL: fprintf(f, "%s = %g\n", k->key, *(const double *)p); break;
        }
    }
}
