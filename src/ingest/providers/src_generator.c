/*
 * src_generator.c - the built-in synthetic market (ingest/gen.h) as a
 * provider: the last resort in a providers list, so the pipeline keeps
 * moving when every real feed is down. It trades source.symbols at
 * generator.rate with generator.model and generator.seed; event times are
 * now. Keys: "<open time us>-<n>", new for every connection (its trades are
 * new trades, never a replay).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/gen.h"
#include "ingest/providers/pace.h"
#include "ingest/providers/source.h"

#define BATCH 2048

typedef struct gsrc {
    tf_source_ctx ctx;
    tf_gen *gen;
    tf_pace pace;
    int64_t open_us, last_us;
    int open;
    tf_trade tr[BATCH];
    tf_pv_trade out[BATCH];
} gsrc;

static void *create(const tf_source_ctx *ctx, char *err, size_t errlen)
{
    gsrc *g = calloc(1, sizeof *g);
    if (!g) return snprintf(err, errlen, "out of memory"), NULL;
    g->ctx = *ctx;
    /* the same symbols as the feeds it stands in for */
    char list[sizeof ctx->cfg->source_tickers];
    snprintf(list, sizeof list, "%s", ctx->cfg->source_tickers);
    const char *names[256];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(list, ", ", &save); t && n < 256; t = strtok_r(NULL, ", ", &save))
        names[n++] = t;
    tf_gen_opts o = {.seed = (uint64_t)ctx->cfg->gen_seed, .tickers = n ? names : NULL, .ntickers = n,
                     .model = tf_gen_model_from_name(ctx->cfg->gen_model)};
    if (o.model < 0) o.model = TF_GEN_GBM;
    if (!(g->gen = tf_gen_new(&o, err, errlen))) {
        free(g);
        return NULL;
    }
    if (ctx->cfg->gen_rate <= 0) {
        snprintf(err, errlen, "generator.rate must be > 0 for the generator provider");
        tf_gen_free(g->gen);
        free(g);
        return NULL;
    }
    return g;
}

static int open_(void *st, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    gsrc *g = st;
    g->open_us = g->last_us = tf_now_us();
    tf_pace_start(&g->pace, g->ctx.cfg->gen_rate);
    g->open = 1;
    return 0;
}

static int poll_(void *st, int timeout_ms, char *err, size_t errlen)
{
    gsrc *g = st;
    if (!g->open) return snprintf(err, errlen, "not open"), -1;
    int64_t n = tf_pace_due(&g->pace, timeout_ms, BATCH);
    if (n <= 0) return 0;
    int64_t now = tf_now_us();
    if (now <= g->last_us) now = g->last_us + 1;
    size_t nl = 0;
    tf_gen_fill(g->gen, g->tr, (size_t)n, g->last_us, now, NULL, 0, &nl);
    g->last_us = now;
    for (int64_t i = 0; i < n; i++) {
        g->out[i].t = g->tr[i];
        snprintf(g->out[i].sid, sizeof g->out[i].sid, "%" PRId64 "-%" PRId64, g->open_us, g->pace.emitted + i);
    }
    g->pace.emitted += n;
    g->ctx.sink.trades(g->ctx.sink.ud, g->out, (size_t)n);
    return 0;
}

static void close_(void *st) { ((gsrc *)st)->open = 0; }

static void destroy(void *st)
{
    gsrc *g = st;
    if (!g) return;
    tf_gen_free(g->gen);
    free(g);
}

const tf_source_ops tf_src_generator_ops = {
    .name = "generator", .create = create, .open = open_, .poll = poll_, .close = close_, .destroy = destroy,
};
