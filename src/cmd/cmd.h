/*
 * cmd.h - the subcommands of the tickflow binary. Each gets the loaded
 * configuration and its positional arguments, returns the process exit code.
 * main.c parses flags/config and dispatches; each command lives in its own
 * cmd_<name>.c.
 */
#ifndef TF_CMD_H
#define TF_CMD_H

#include <stdint.h>

#include "common/config.h"

int tf_cmd_migrate(tf_config *cfg, int npos, const char **pos);  /* cmd_migrate.c  */
int tf_cmd_generate(tf_config *cfg, int npos, const char **pos); /* cmd_generate.c */
int tf_cmd_cdc(tf_config *cfg, int npos, const char **pos);      /* cmd_cdc.c      */
int tf_cmd_process(tf_config *cfg, int npos, const char **pos);  /* cmd_process.c  */
int tf_cmd_serve(tf_config *cfg, int npos, const char **pos);    /* cmd_serve.c    */
int tf_cmd_run(tf_config *cfg, int npos, const char **pos);      /* cmd_run.c      */
int tf_cmd_signals(tf_config *cfg, int npos, const char **pos);  /* cmd_signals.c  */
int tf_cmd_job(tf_config *cfg, int npos, const char **pos);      /* cmd_job.c      */
int tf_cmd_scheduler(tf_config *cfg, int npos, const char **pos); /* cmd_job.c     */
int tf_cmd_import(tf_config *cfg, int npos, const char **pos);   /* cmd_import.c   */
extern const char tf_cmd_import_usage_text[];                   /* cmd_import.c   */
int tf_cmd_compress(tf_config *cfg, int npos, const char **pos); /* cmd_compress.c */
int tf_cmd_detect(tf_config *cfg, int npos, const char **pos);   /* cmd_detect.c   */
int tf_cmd_replay(tf_config *cfg, int npos, const char **pos);   /* cmd_replay.c   */

/* cmd_jobs.c: gives the api its generate and replay jobs (api.h
 * tf_api_job_ops). Free after tf_api_free. NULL on out of memory. */
struct tf_api;
struct tf_metrics;
typedef struct tf_cmd_jobs tf_cmd_jobs;
tf_cmd_jobs *tf_cmd_jobs_wire(struct tf_api *api, const tf_config *cfg, struct tf_metrics *m);
void tf_cmd_jobs_free(tf_cmd_jobs *w);
int tf_cmd_ingest(tf_config *cfg, int npos, const char **pos);   /* cmd_ingest.c   */
extern const char tf_cmd_ingest_usage_text[];                   /* cmd_ingest.c   */
/* cmd_ingest.c: the live-provider feed with the source.market_hours
 * calendar wired in (ingest/ knows no calendar). NULL with errbuf. */
struct tf_cmd_feed;
struct tf_feed;
struct tf_metrics;
struct tf_cmd_feed *tf_cmd_feed_start(const tf_config *cfg, struct tf_metrics *m, char *errbuf, size_t errlen);
struct tf_feed *tf_cmd_feed_get(struct tf_cmd_feed *cf);
void tf_cmd_feed_stop(struct tf_cmd_feed *cf); /* NULL ok */

/* cmd_common.c. tf_cmd_catch_stop installs SIGINT/SIGTERM handlers that set
 * the flag tf_cmd_stop_requested() reads and, when s is not NULL, stop that
 * server gracefully; tf_cmd_release_stop restores the defaults (a second
 * signal then kills). */
struct tf_server;
void tf_cmd_catch_stop(struct tf_server *s);
void tf_cmd_release_stop(void);
int tf_cmd_stop_requested(void);
/* Blocks until a stop signal arrives or timeout_ms pass (a self-pipe the
 * handler writes, not a sleep). Returns 1 when a stop was requested. */
int tf_cmd_wait_stop(int timeout_ms);
/* Wakes a tf_cmd_wait_stop early without asking for a stop (it then returns
 * 0 and the caller looks at what changed). Any thread; async-signal-safe. */
void tf_cmd_wake(void);
/* Milliseconds from now until the tf_mono_us() instant mono_us, rounded up,
 * at least 0: a tf_cmd_wait_stop timeout that never becomes "forever". */
int tf_cmd_ms_until(int64_t mono_us);
/* Logs one error line (what, with err as its "error" field) and returns
 * code: errors are reported once, as JSON, on stderr. */
int tf_cmd_fail(const char *cmd, int code, const char *what, const char *err);
/* 0 when there are no positional arguments; else logs the first, -1. */
int tf_cmd_no_args(const char *cmd, int npos, const char **pos);
/* 0 when cfg names Kafka brokers; else prints why `tickflow <name>` needs them, -1. */
int tf_cmd_require_kafka(const tf_config *cfg, const char *name);

#endif
