/*
 * main.c - the tickflow binary: loads configuration, dispatches subcommands.
 *
 *   tickflow run       everything in one process (migrate, CDC, processor,
 *                      server, generator) on the embedded bus (or Kafka)
 *   tickflow migrate   apply schema migrations
 *   tickflow generate  write synthetic trades (--count N | --rate R --duration S)
 *   tickflow cdc       PostgreSQL logical replication -> Kafka
 *   tickflow process   stream processor (anomalies) from the bus
 *   tickflow serve     HTTP server (REST, WebSocket, SSE, dashboard)
 *   tickflow config    print the effective configuration
 *   tickflow import    import trades, bars or symbols from files
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/config.h"
#include "common/log.h"

#ifndef TICKFLOW_VERSION
#define TICKFLOW_VERSION "0.1.0"
#endif

static int cmd_config(tf_config *cfg, int npos, const char **pos)
{
    (void)npos;
    (void)pos;
    tf_config_dump(cfg, stdout);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(tf_config *, int, const char **);
    const char *help;
} commands[] = {
    {"run", tf_cmd_run, "everything in one process: migrate, CDC, processor, server, generator"},
    {"migrate", tf_cmd_migrate, "apply schema migrations (idempotent)"},
    {"generate", tf_cmd_generate, "write synthetic trades: --count N | --rate R --duration S [--start ISO]"},
    {"cdc", tf_cmd_cdc, "change data capture: PostgreSQL logical replication -> bus"},
    {"process", tf_cmd_process, "stream processor: anomalies and signals from the bus"},
    {"serve", tf_cmd_serve, "HTTP server: REST history, WebSocket ticks, SSE anomalies, dashboard"},
    {"compress", tf_cmd_compress, "compress a past day into columnar segments: --day D [--decompress|--scan]"},
    {"config", cmd_config, "print the effective configuration as INI"},
    {"signals", tf_cmd_signals, "signals backtest --from T1 --to T2 [--tickers A,B] [--interval 1d|1m] [--store]: signal engine over stored bars"},
    {"scheduler", tf_cmd_scheduler, "the job scheduler alone: [job.NAME] cron jobs, catch-up, retries"},
    {"job", tf_cmd_job, "scheduled jobs: list | run NAME [--for DATE] | history NAME | backfill NAME ..."},
    {"import", tf_cmd_import, "import files: trades (CSV/NDJSON, gzip), bars (OHLCV CSV), symbols"},
    {"detect", tf_cmd_detect, "detect --from T1 --to T2 [--tickers A,B] [--store]: anomaly rules over stored trades"},
    {"replay", tf_cmd_replay, "replay --from T1 [--to T2] [--tickers A,B] [--speed N|max] | --file F: trades again, live"},
    {"ingest", tf_cmd_ingest, "live providers with fallback (alpaca, finnhub, tickflow, file, generator) -> stock_trades"},
};

/* Flags a command parses itself (they are not config keys and go to it in
 * pos[], after its positional arguments); "=" marks one that takes a value. */
static const struct {
    const char *name, *flags;
} own_flags[] = {
    {"job", "|--json|--for=|--from=|--to=|--limit=|"},
    {"import", "|--interval=|"}, /* bars' interval; backtest.interval is another command's */
    {"detect", "|--from=|--to=|--tickers=|--store|"}, /* backtest.* / --store are signals' */
    {"replay", "|--from=|--to=|--tickers=|--speed=|--file=|--market=|--time-unit=|"},
};

/* A command's own config section: a bare --key that names a key of it
 * means that one, even where other sections have a key of the same name
 * (`signals backtest --from` is backtest.from, `compress --from` is
 * compress.from). */
static const struct {
    const char *name, *section;
} own_sections[] = {
    {"signals", "backtest"},
    {"compress", "compress"},
    {"import", "import"},
    {"ingest", "source"},
};

static void prefer_own_section(const char *cmd, int argc, char **argv)
{
    static char buf[16][96];
    int used = 0;
    const char *sec = NULL;
    for (size_t i = 0; i < sizeof own_sections / sizeof *own_sections; i++)
        if (!strcmp(own_sections[i].name, cmd)) sec = own_sections[i].section;
    if (!sec) return;
    for (int i = 0; i < argc && used < 16; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || strchr(a, '.')) continue;
        char name[64];
        size_t n = strcspn(a + 2, "=");
        if (n == 0 || n >= sizeof name) continue;
        memcpy(name, a + 2, n);
        name[n] = '\0';
        for (char *q = name; *q; q++)
            if (*q == '-') *q = '_';
        if (!tf_config_has_key(sec, name)) continue;
        snprintf(buf[used], sizeof buf[used], "--%s.%s%s", sec, name, a + 2 + n);
        argv[i] = buf[used++];
    }
}

/* Moves the command's own flags (with their values) out of argv into own[]. */
static int split_own_flags(const char *cmd, int *argc, char **argv, const char **own, int maxown)
{
    const char *flags = NULL;
    for (size_t i = 0; i < sizeof own_flags / sizeof *own_flags; i++)
        if (!strcmp(own_flags[i].name, cmd)) flags = own_flags[i].flags;
    int n = 0, kept = 0;
    for (int i = 0; i < *argc; i++) {
        char pat[48];
        size_t len = strcspn(argv[i], "=");
        snprintf(pat, sizeof pat, "|%.*s|", (int)len, argv[i]);
        char patv[48];
        snprintf(patv, sizeof patv, "|%.*s=|", (int)len, argv[i]);
        int plain = flags && len < 40 && strstr(flags, pat), valued = flags && len < 40 && strstr(flags, patv);
        if ((plain || valued) && n + 2 <= maxown) {
            own[n++] = argv[i];
            if (valued && !argv[i][len] && i + 1 < *argc) own[n++] = argv[++i];
        } else {
            argv[kept++] = argv[i];
        }
    }
    *argc = kept;
    return n;
}

/* Per-command usage for `tickflow <command> --help` (stdout, exit 0). A
 * command without a row here prints its one-line help and the common flags. */
static const struct {
    const char *name, *text;
} usages[] = {
    {"run", "usage: tickflow run [--config FILE] [--pg-url URL] [--port N] [--kafka-brokers LIST]\n"
            "                    [--generator.enabled true|false] [--generator.rate R] [--section.key VALUE ...]\n"
            "Runs everything in one process: migrations, CDC, the processor, the HTTP server\n"
            "(REST, WebSocket, SSE, dashboard) and, unless disabled, the generator.\n"},
    {"migrate", "usage: tickflow migrate [--pg-url URL]\n"
                "Applies the schema migrations that are missing (idempotent); prints {\"applied\", \"version\"}.\n"},
    {"generate", "usage: tickflow generate (--count N | --rate R --duration S) [--start ISO] [--tickers A,B]\n"
                 "                         [--seed N] [--anomalies P] [--pg-url URL]\n"
                 "Writes synthetic trades by binary COPY; prints {\"inserted\", \"first_id\", \"last_id\", ...}.\n"},
    {"cdc", "usage: tickflow cdc --kafka-brokers LIST [--pg-url URL] [--cdc.slot NAME] [--cdc.snapshot no_data|initial]\n"
            "Streams committed changes of stock_trades from logical replication onto Kafka.\n"},
    {"process", "usage: tickflow process --kafka-brokers LIST [--pg-url URL] [--kafka.group NAME]\n"
                "Anomaly detection from the bus, as one member of a Kafka consumer group.\n"},
    {"serve", "usage: tickflow serve [--pg-url URL] [--port N] [--kafka-brokers LIST]\n"
              "The HTTP server alone: REST history, WebSocket ticks, SSE anomalies, dashboard.\n"},
    {"compress", "usage: tickflow compress --day YYYY-MM-DD [--decompress | --scan [--ticker T]\n"
                 "                         [--compress.from ISO] [--compress.to ISO]] [--storage.segment_rows N]\n"
                 "       tickflow compress   (every day older than storage.compress_after_days)\n"
                 "       tickflow compress --unpack --ticker T --compress.from ISO --compress.to ISO\n"
                 "                           (segments back to rows, for UPDATE / DELETE corrections)\n"
                 "Turns a past day's partition into verified columnar segments in one transaction,\n"
                 "back into rows (--decompress), or prints its rows as history CSV (--scan).\n"},
    {"config", "usage: tickflow config [--config FILE] [--section.key VALUE ...]\n"
               "Prints the effective configuration (defaults < file < environment < flags) as INI.\n"},
    {"scheduler", "usage: tickflow scheduler [--pg-url URL] [--job.NAME.key VALUE ...]\n"
                  "Runs the enabled [job.NAME] jobs on their cron schedules until SIGINT/SIGTERM\n"
                  "(tickflow run starts the same scheduler unless --scheduler.enabled false).\n"},
    {"job", "usage: tickflow job list [--json]\n"
            "       tickflow job run NAME [--for DATE|TIME] [--json]\n"
            "       tickflow job history NAME [--limit N] [--json]\n"
            "       tickflow job backfill NAME --from DATE --to DATE [--json]\n"
            "DATE is YYYY-MM-DD in the job's zone (run: its first scheduled time that day;\n"
            "backfill: every scheduled time from the first day through the last); TIME is ISO-8601.\n"
            "run without --for runs the latest scheduled time; backfill runs each time once and\n"
            "skips times that already succeeded.\n"},
    {"import", tf_cmd_import_usage_text},
    {"ingest", tf_cmd_ingest_usage_text},
    {"detect", "usage: tickflow detect --from T1 --to T2 [--tickers A,B] [--store] [--pg-url URL]\n"
               "Runs the anomaly rules over stored trades of [T1, T2) in event-time order (warmed up on\n"
               "the 90 s before T1); prints a JSON summary. --store writes the anomalies to\n"
               "stock_anomalies with the live processor's ids (a re-run writes nothing new).\n"},
    {"replay", "usage: tickflow replay --from T1 [--to T2] [--tickers A,B] [--speed N|max] [--pg-url URL]\n"
               "       tickflow replay --file F [--market M] [--time-unit s|ms|us|ns] [--speed N|max]\n"
               "Writes stored trades of [T1, T2) (T2 default now), or a CSV trade file (gzip ok; the\n"
               "columns of `tickflow import trades`), again as new trades that CDC, the processor and\n"
               "every client see live. Speed N: the first lands now, gaps divided by N, each written\n"
               "when its time comes. max: as fast as possible, gaps kept, the last landing now.\n"
               "Prints a JSON summary; SIGINT stops after the batch in flight.\n"},
};

static int wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static void command_usage(const char *name, const char *help)
{
    for (size_t i = 0; i < sizeof usages / sizeof *usages; i++)
        if (!strcmp(usages[i].name, name)) {
            fputs(usages[i].text, stdout);
            goto common;
        }
    printf("usage: tickflow %s [flags]\n%s\n", name, help);
common:
    printf("\ncommon flags: --config FILE, --pg-url URL (TICKFLOW_POSTGRES_URL), --port N (TICKFLOW_HTTP_PORT),\n"
           "  --kafka-brokers LIST (TICKFLOW_KAFKA_BROKERS). Every config key is also\n"
           "  TICKFLOW_<SECTION>_<KEY> and --section.key VALUE; `tickflow config` lists them.\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tickflow <command> [--config FILE] [--section.key VALUE ...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f,
            "\ncommon flags: --pg-url URL (TICKFLOW_POSTGRES_URL), --port N (TICKFLOW_HTTP_PORT),\n"
            "  --kafka-brokers LIST (TICKFLOW_KAFKA_BROKERS; unset = embedded bus).\n"
            "Every config key is also TICKFLOW_<SECTION>_<KEY> and --section.key; see `tickflow config`.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("tickflow %s\n", TICKFLOW_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (wants_help(argc, argv)) {
            command_usage(commands[i].name, commands[i].help);
            return 0;
        }
        /* A peer closing a socket must never kill the process. */
        signal(SIGPIPE, SIG_IGN);
        static tf_config cfg;
        const char *pos[32], *own[16];
        int npos = 0, nargs = argc - 2;
        int nown = split_own_flags(argv[1], &nargs, argv + 2, own, 16);
        prefer_own_section(argv[1], nargs, argv + 2);
        char err[512];
        if (tf_config_load(&cfg, nargs, argv + 2, pos, 16, &npos, err, sizeof err) != 0) {
            tf_error("config", "invalid configuration", TF_STR("command", argv[1]), TF_STR("error", err));
            return 2;
        }
        for (int k = 0; k < nown; k++) pos[npos++] = own[k];
        return commands[i].fn(&cfg, npos, pos);
    }
    tf_error("cli", "unknown command", TF_STR("command", argv[1]));
    usage(stderr);
    return 2;
}
