/*
 * config.h - every setting tickflow has, in one struct.
 *
 * Sources, later wins: built-in defaults < INI file (--config FILE, parsed by
 * libinih) < environment TICKFLOW_<SECTION>_<KEY> < command-line flags
 * (--section.key VALUE, --key VALUE when the key name is unique, and the
 * aliases --pg-url, --port, --kafka-brokers, --config).
 * Unknown keys and bad values stop start-up with a message naming the key.
 *
 * To add a setting: add a field here and one row to the table in config.c.
 */
#ifndef TF_CONFIG_H
#define TF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* [job.NAME]: the built-in jobs (jobs/jobs.c registers one per index). */
enum {
    TF_JOB_PARTITIONS,
    TF_JOB_DAILY_BARS,
    TF_JOB_DAILY_INDICATORS,
    TF_JOB_WATCHLIST_SCAN,
    TF_JOB_SIGNAL_PERFORMANCE,
    TF_JOB_SYMBOLS,
    TF_JOB_COMPRESS,
    TF_JOB_SPLIT_CHECK,
    TF_JOB_SELFTEST, /* test-only: fails/sleeps as configured */
    TF_JOB_COUNT
};
typedef struct tf_job_config {
    char cron[128];
    char tz[64];
    char catchup[16];      /* none | latest | all */
    int retries;           /* attempts after the first */
    double retry_backoff_s; /* delay before retry n is this * 2^(n-1) */
    double timeout_s;      /* per attempt */
    int enabled;
    int fail_times;        /* selftest: attempts 1..N fail */
    int sleep_ms;          /* selftest: how long an attempt takes */
    char files[1024];      /* symbols: comma list of symbol files */
    double min_move_pct;   /* split_check: |close / previous close - 1| beyond this, in % */
    double ratio_tolerance; /* split_check: ratio within this fraction of 2, 3, 4, 5 or 10 */
} tf_job_config;

typedef struct tf_config {
    /* [postgres] */
    char pg_url[512];
    char pg_read_url[512];      /* streaming replica for history/indicator/signal reads; "" = none */
    int pg_read_max_lag_ms;     /* replica further behind than this: reads go to the primary */
    /* [log] */
    char log_level[16];
    /* [http] */
    char http_bind[64];
    int http_port;
    int http_max_connections;
    int http_max_header_bytes;
    int http_max_body_bytes;
    int http_header_timeout_ms;
    int http_idle_timeout_ms;
    int http_db_pool;          /* PostgreSQL connections used by the server */
    int http_threads;          /* event loops serving connections; 0 = online cores */
    /* [storage] */
    int storage_retention_days;  /* 0 = keep forever */
    int storage_partitions_ahead; /* daily partitions created ahead of today */
    int storage_batch_size;      /* rows per COPY transaction */
    /* compressed days (store/compress.h, cmd_compress.c) */
    int storage_compress_after_days; /* compress days older than this; 0 = never */
    int storage_segment_rows;    /* most trades per segment */
    char compress_day[16];       /* tickflow compress --day YYYY-MM-DD */
    int compress_decompress;     /* --decompress: the reverse */
    int compress_scan;           /* --scan: print the compressed day as CSV */
    int compress_unpack;         /* --unpack: segments of --ticker in [from, to) back to rows */
    char compress_ticker[24];    /* --ticker T: scan one ticker */
    char compress_from[40];      /* --compress.from ISO: scan from this time */
    char compress_to[40];        /* --compress.to ISO: scan before this time */
    /* [generator] */
    int gen_enabled;            /* tickflow run starts the generator */
    double gen_rate;            /* trades/s in paced mode */
    int64_t gen_count;          /* --count N: as fast as possible */
    double gen_duration_s;      /* 0 = until stopped */
    char gen_start[40];         /* ISO time for back-dated history; "" = now */
    char gen_tickers[1024];     /* comma list; "" = defaults */
    int64_t gen_seed;
    double gen_anomalies;       /* anomaly probability per trade */
    char gen_model[16];         /* "gbm" | "realistic" */
    /* [cdc] */
    int cdc_enabled;
    char cdc_slot[64];
    char cdc_publication[64];
    char cdc_snapshot[16];      /* no_data | initial */
    int cdc_status_interval_ms;
    int64_t cdc_max_lag_bytes;
    char cdc_key[16];           /* ticker | primary_key: the Kafka key (Debezium's JSON key) */
    char cdc_skipped_operations[16]; /* ops not published, Debezium's skipped.operations ("t") */  /* /ready and a metric flag slot lag past this */
    /* [bus] */
    int bus_capacity;           /* embedded: messages kept per topic */
    /* [kafka] */
    char kafka_brokers[512];    /* "" = embedded bus */
    char kafka_group[64];       /* processor consumer group */
    char kafka_compression[16];
    int kafka_linger_ms;
    int kafka_session_timeout_ms; /* consumer group session timeout */
    int kafka_fetch_queue_mb;   /* per consumer: messages fetched ahead, at most this many MB */
    /* [rollup] */
    int rollup_interval_ms;
    /* [history] */
    int history_max_range_days;
    int history_default_limit;
    int history_max_limit;
    /* [ws] */
    int ws_ping_interval_ms;
    int ws_max_queue_bytes;
    int ws_max_message_bytes;
    int ws_candle_grace_ms;     /* feed idle this long: candles close by the wall clock */
    int ws_slow_close_ms;       /* a client dropping messages this long is closed (1008) */
    /* [sse] */
    int sse_heartbeat_s;
    int sse_retry_ms;
    int sse_lag_threshold_ms;
    /* [process] */
    int process_enabled;
    int process_out_of_order_ms;   /* watermark = max event time - this */
    int process_allowed_lateness_ms;
    double process_spike_k;        /* PRICE_SPIKE: return z-score */
    double process_spike_window_s;
    double process_rapid_pct;      /* RAPID_MOVE: percent move ... */
    double process_rapid_z;        /* ... and z vs sd * sqrt(trades) */
    double process_rapid_window_s;
    double process_volume_k;       /* VOLUME_SPIKE: log-quantity z-score */
    double process_volume_window_s;
    double process_burst_k;        /* TRADE_BURST: floor, rolling mean + k * spread */
    int process_burst_window_ms;
    double process_burst_history_s;
    int process_burst_min_trades;
    double process_vwap_k;         /* OFF_VWAP: distance vs usual distance from VWAP */
    double process_vwap_pct;
    double process_vwap_window_s;
    int process_vwap_trades;
    int process_warmup;            /* samples before a rule may fire */
    double process_cooldown_s;     /* per (ticker, type), event time */
    double process_spike_fa;       /* calibrated false alarms per 100k trades, per rule */
    double process_rapid_fa;
    double process_volume_fa;
    double process_burst_fa;
    double process_vwap_fa;
    double process_volume_median_multiple; /* a print of this many medians always fires */
    double process_upgrade_ratio;  /* fires within a cool-down when this much more severe */
    int process_status_interval_ms; /* processor heartbeat row in PostgreSQL */
    int process_max_future_ms;     /* event time beyond now + this: quarantined / refused */
    int process_store;             /* write anomalies to PostgreSQL */
    /* [signals] (process/signals.h) */
    char signals_rules[256];       /* enabled rules: "all" or a comma list */
    int signals_cooldown_bars;     /* per (ticker, rule) */
    char signals_horizons[128];    /* track-record horizons, e.g. 1m,5m,15m,1h,1d */
    double signals_rsi_low, signals_rsi_high;
    double signals_bb_low, signals_bb_high;
    double signals_volume_mult;
    int signals_sma_fast, signals_sma_slow;
    /* [watchlist] (jobs/job_watchlist.c) */
    int watchlist_retention_days;  /* scan results kept this many days (0: all) */
    /* [backtest] options of `tickflow signals backtest` (--from, --to,
     * --interval, --store; --tickers is generator.tickers' flag) */
    char backtest_from[40], backtest_to[40];
    char backtest_interval[8];
    int backtest_store;
    /* [scheduler], [calendar], [job.NAME] (owner: src/jobs) */
    int scheduler_enabled;         /* tickflow run starts the scheduler */
    char calendar_holidays_krx[4096];  /* YYYY-MM-DD,... */
    char calendar_holidays_nyse[4096];
    tf_job_config job[TF_JOB_COUNT];
    /* [import] (tickflow import; flags --format, --time-unit, --market, ...) */
    char import_format[8];         /* auto | csv | ndjson */
    char import_time_unit[4];      /* "" | s | ms | us | ns: epoch numbers */
    char import_market[8];         /* market_code when a row has none */
    char import_ticker[16];        /* ticker when a row has none (bars: required) */
    char import_interval[8];       /* import.bar_interval, default of import bars --interval */
    char import_on_error[8];       /* abort | skip */
    char import_rejects[512];      /* skipped rows go here (NDJSON) */
    int import_force;              /* import content seen before */
    int64_t import_max_future_ms;  /* event times later than now + this are rejected */
    /* [source] live providers with fallback (ingest/providers/feed.h) */
    int source_enabled;            /* tickflow run starts the feed */
    char source_providers[128];    /* priority order: alpaca, finnhub, tickflow, file, generator */
    char source_tickers[1024];     /* symbols to subscribe (comma list) */
    char source_market[8];         /* market_code of provider trades that name none */
    double source_stall_s;         /* no trade this long: the provider is down */
    char source_market_hours[8];   /* always | NYSE | KRX: when silence is a stall */
    double source_probe_s;         /* a down provider is tried again this often */
    int source_flush_ms;           /* trades wait at most this long for their COPY batch */
    int source_timeout_ms;         /* connect / TLS / upgrade / auth handshake */
    char source_alpaca_url[256];
    char source_finnhub_url[256];
    char source_tickflow_url[256];
    char source_file_path[512];    /* file provider: NDJSON trades, replayed on a loop */
    double source_file_rate;       /* file provider: trades/s */
    char source_ca_file[512];      /* PEM certificates to trust for wss ("" = system store) */
    char source_secrets_file[512]; /* KEY=VALUE lines (APCA_API_KEY_ID, ...), mode 0600 */
    int source_keys_retention_days; /* provider keys (tickflow_source_trades) kept this long; 0 = forever */
} tf_config;

/* Fills defaults. */
void tf_config_defaults(tf_config *c);

/*
 * Loads the full configuration for a subcommand: defaults, then --config
 * FILE (or TICKFLOW_CONFIG), then environment, then flags from argv.
 * Arguments that are not flags are returned in positional[] (borrowed from
 * argv), their count in *npositional (capacity maxpos).
 * Returns 0, or -1 with a message naming the bad key in errbuf.
 */
int tf_config_load(tf_config *c, int argc, char **argv, const char **positional,
                   int maxpos, int *npositional, char *errbuf, size_t errlen);

/* 1 when section.key is a setting. */
int tf_config_has_key(const char *section, const char *key);

/* Sets one key ("section.key") from a string; 0 or -1 with errbuf. */
int tf_config_set(tf_config *c, const char *section, const char *key, const char *value,
                  char *errbuf, size_t errlen);

/* Prints every key with its current value as INI (for `tickflow config`). */
void tf_config_dump(const tf_config *c, void *file /* FILE* */);

#endif
