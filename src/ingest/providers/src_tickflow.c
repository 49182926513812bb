/*
 * src_tickflow.c - follows another tickflow's raw trade feed
 * (/api/v1/stock/real-time, interval_ms 0): chained instances. The upstream
 * id is the key. After a restart the subscription carries "since" = the
 * newest event time this source wrote (DESIGN.md section 9), so the trades
 * the upstream committed meanwhile come again; the ones already written are
 * dropped by their keys. An upstream without "since" (it answers an error
 * naming it) is followed live only, with a warning: what it sent while we
 * were away is then missed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ingest/providers/src_ws.h"

typedef struct upstream {
    tf_wsrc w;
    int no_since; /* the upstream refused "since" once */
} upstream;

static void on_ctl(tf_wsrc *w, const tf_pv_result *r)
{
    if (r->ctl == TF_PV_CTL_LAGGED)
        tf_warn("source", "upstream tickflow skipped trades (we were too slow)", TF_STR("source", w->ctx.name),
                TF_INT("dropped", r->code));
    else if (r->ctl == TF_PV_CTL_ERROR)
        tf_warn("source", "upstream tickflow reported an error", TF_STR("source", w->ctx.name), TF_STR("error", r->text));
}

static void *create(const tf_source_ctx *ctx, char *err, size_t errlen)
{
    upstream *u = calloc(1, sizeof *u);
    if (!u) return snprintf(err, errlen, "out of memory"), NULL;
    if (tf_wsrc_init(&u->w, ctx, tf_pv_parse_tickflow, err, errlen) != 0) {
        free(u);
        return NULL;
    }
    u->w.on_ctl = on_ctl;
    char probe[2048];
    if (tf_pv_enc_tickflow_subscribe(probe, sizeof probe, ctx->cfg->source_tickers, 0) < 0) {
        snprintf(err, errlen, "source.symbols: not a comma list of valid symbols (or *)");
        tf_wsrc_destroy(&u->w);
        free(u);
        return NULL;
    }
    return u;
}

static int open_(void *st, char *err, size_t errlen)
{
    upstream *u = st;
    const tf_config *cfg = u->w.ctx.cfg;
    char msg[8192];
    int rc = tf_wsrc_connect(&u->w, cfg->source_tickflow_url, err, errlen);
    if (rc) return rc;
    int64_t since = u->no_since ? 0 : u->w.ctx.sink.resume_us(u->w.ctx.sink.ud);
    tf_pv_enc_tickflow_subscribe(msg, sizeof msg, cfg->source_tickers, since);
    if ((rc = tf_wsrc_send(&u->w, msg, err, errlen))) goto fail;
    rc = tf_wsrc_await(&u->w, TF_PV_CTL_SUBSCRIBED, cfg->source_timeout_ms, err, errlen);
    if (rc == TF_WSRC_ECTL && since && u->w.r.code == 1) {
        u->no_since = 1;
        tf_warn("source", "upstream tickflow cannot resume (no \"since\"); following it live only",
                TF_STR("source", u->w.ctx.name), TF_STR("error", u->w.r.text));
        tf_pv_enc_tickflow_subscribe(msg, sizeof msg, cfg->source_tickers, 0);
        if ((rc = tf_wsrc_send(&u->w, msg, err, errlen))) goto fail;
        rc = tf_wsrc_await(&u->w, TF_PV_CTL_SUBSCRIBED, cfg->source_timeout_ms, err, errlen);
    }
    if (rc == TF_WSRC_ECTL) rc = TF_SRC_ECONN;
    if (rc) goto fail;
    return 0;
fail:
    tf_wsrc_close(&u->w);
    return rc;
}

static void destroy(void *st)
{
    upstream *u = st;
    if (!u) return;
    tf_wsrc_destroy(&u->w);
    free(u);
}

const tf_source_ops tf_src_tickflow_ops = {
    .name = "tickflow", .create = create, .open = open_, .poll = tf_wsrc_poll, .close = tf_wsrc_close,
    .destroy = destroy,
};
