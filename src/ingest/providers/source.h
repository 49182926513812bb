/*
 * source.h - the one interface every live provider implements (DESIGN.md
 * section 6): alpaca, finnhub, tickflow, file and generator, one file each
 * (src_<name>.c), behind this ops table, like bus/bus.h's backends.
 *
 * A source only produces trades: connect, authenticate, subscribe, then hand
 * each received trade (with the provider's own key) to the sink. Which source
 * is written, fallback, probing, de-duplication and the COPY writes are the
 * feed's (providers/feed.h); a source knows nothing of the others.
 *
 * Threads: each source runs on its own thread, owned by the feed; all calls
 * on one source come from that thread. The sink is called on it too.
 *
 * Secrets (API keys) never come from config keys or flags: tf_source_secret
 * reads the environment, then source.secrets_file (which must not be
 * readable by group or others). They are never logged.
 */
#ifndef TF_SOURCE_H
#define TF_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "ingest/providers/pv_msg.h"

/* open() results besides 0 */
enum {
    TF_SRC_ECONN = -1, /* could not connect / lost during the handshake: try again later */
    TF_SRC_EAUTH = -2, /* credentials refused (or missing): down until they change */
};

typedef struct tf_source_sink {
    /* trades[0..n) borrowed for the call; ticker upper-case and valid; side
     * may be 0, market may be "" (the feed fills both). */
    void (*trades)(void *ud, const tf_pv_trade *trades, size_t n);
    /* n items of one message could not be used (already logged) */
    void (*bad)(void *ud, size_t n);
    /* the newest event time written from this source so far (0 = none):
     * where a provider that can replay resumes */
    int64_t (*resume_us)(void *ud);
    void *ud;
} tf_source_sink;

typedef struct tf_source_ctx {
    const tf_config *cfg;   /* borrowed for the source's life */
    const char *name;       /* the kind, e.g. "alpaca" (static) */
    tf_source_sink sink;
} tf_source_ctx;

typedef struct tf_source_ops {
    const char *name;
    /* Checks configuration and secrets; NULL with errbuf when the source can
     * never work as configured (start-up then fails, naming it). ctx is
     * copied. */
    void *(*create)(const tf_source_ctx *ctx, char *errbuf, size_t errlen);
    /* Connects, authenticates, subscribes. 0, or TF_SRC_ECONN / TF_SRC_EAUTH
     * with errbuf (never holding a secret). On failure nothing stays open. */
    int (*open)(void *st, char *errbuf, size_t errlen);
    /* Waits up to timeout_ms and delivers what arrived through the sink.
     * 0 (maybe nothing arrived), or -1 when the connection is over (errbuf). */
    int (*poll)(void *st, int timeout_ms, char *errbuf, size_t errlen);
    /* Closes the connection (open may be called again). */
    void (*close)(void *st);
    void (*destroy)(void *st);
} tf_source_ops;

/* The backend named name ("alpaca", ...), or NULL. */
const tf_source_ops *tf_source_lookup(const char *name);

/* A secret named name (e.g. "APCA_API_KEY_ID") from the environment, else
 * from cfg->source_secrets_file. 1 found (copied into out), 0 absent, -1 the
 * file is unusable (errbuf: unreadable, readable by others, too long). */
int tf_source_secret(const tf_config *cfg, const char *name, char *out, size_t cap, char *errbuf,
                     size_t errlen);

/* Logs a message a provider sent that could not be used, as one JSON error
 * line with the provider's name, why, and the start of the message. */
void tf_source_log_bad(const char *source, const char *why, const char *msg, size_t len);

/* Shared by the WebSocket backends: hands a parsed result's trades to the
 * sink and logs / counts its bad items. */
void tf_source_deliver(const tf_source_ctx *ctx, const tf_pv_result *r, const char *msg, size_t len);

/* The backends (src_<name>.c). */
extern const tf_source_ops tf_src_alpaca_ops, tf_src_finnhub_ops, tf_src_tickflow_ops, tf_src_file_ops,
    tf_src_generator_ops;

#endif
