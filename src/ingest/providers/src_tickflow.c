/*
 * src_tickflow.c - follows another tickflow's raw trade feed
 * (/api/v1/stock/real-time, interval_ms 0): chained instances. The upstream
 * id is the key.
 *
 * Resume (DESIGN.md section 9): every subscription after the first trade
 * written carries "since" = the newest event time this source wrote, less
 * RESUME_MARGIN_US, so the upstream sends what it stored meanwhile
 * ("history": true, then history_end, then live). Trades already written
 * come again and are dropped by their keys; the margin covers trades that
 * reached us out of event-time order around a crash (a trade older than the
 * newest written by more than the margin, committed upstream while we were
 * away, is the one case not recovered). The same resume runs when the
 * upstream says it skipped us ("lagged": we were too slow) or its "seq"
 * shows a message missing: the connection is ended and the feed reconnects
 * at once, with since.
 * An upstream without "since" (it answers an error naming it) is followed
 * live only, with a warning: what it sent while we were away is then
 * missed. One that has more to resume than it sends at once
 * (history_too_large) is followed live from now, with an error naming where
 * the gap starts; one whose history cannot be read now (unavailable) is
 * tried again later (the feed moves to the next provider meanwhile).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "ingest/providers/src_ws.h"

#define RESUME_MARGIN_US (2 * TF_US_PER_SEC)

typedef struct upstream {
    tf_wsrc w;        /* first: the tf_wsrc hooks get it */
    int no_since;     /* the upstream refused "since" once */
    int64_t next_seq; /* the "seq" the next message must carry (-1: none known) */
} upstream;

static void on_ctl(tf_wsrc *w, const tf_pv_result *r)
{
    if (r->ctl == TF_PV_CTL_ERROR)
        tf_warn("source", "upstream tickflow reported an error", TF_STR("source", w->ctx.name), TF_STR("error", r->text));
}

/* seq gaps and "lagged": end the connection; the reconnect resumes. */
static int on_msg(tf_wsrc *w, const tf_pv_result *r, char *err, size_t errlen)
{
    upstream *u = (upstream *)w;
    if (r->seq >= 0) {
        if (u->next_seq >= 0 && r->seq != u->next_seq) {
            snprintf(err, errlen, "upstream seq went from %" PRId64 " to %" PRId64 " (messages missing); resuming",
                     u->next_seq - 1, r->seq);
            return -1;
        }
        u->next_seq = r->seq + 1;
    }
    if (r->ctl == TF_PV_CTL_LAGGED) {
        snprintf(err, errlen, "upstream skipped %d trades (we were too slow); resuming%s", r->code,
                 u->no_since ? " live only (it has no since)" : " with since");
        return -1;
    }
    return 0;
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
    u->w.on_msg = on_msg;
    char probe[2048];
    if (tf_pv_enc_tickflow_subscribe(probe, sizeof probe, ctx->cfg->source_tickers, 0) < 0) {
        snprintf(err, errlen, "source.symbols: not a comma list of valid symbols (or *)");
        tf_wsrc_destroy(&u->w);
        free(u);
        return NULL;
    }
    return u;
}

static int subscribe(upstream *u, int64_t since, char *err, size_t errlen)
{
    const tf_config *cfg = u->w.ctx.cfg;
    char msg[8192];
    tf_pv_enc_tickflow_subscribe(msg, sizeof msg, cfg->source_tickers, since);
    int rc = tf_wsrc_send(&u->w, msg, err, errlen);
    if (rc == 0) rc = tf_wsrc_await(&u->w, TF_PV_CTL_SUBSCRIBED, cfg->source_timeout_ms, err, errlen);
    return rc;
}

static int open_(void *st, char *err, size_t errlen)
{
    upstream *u = st;
    u->next_seq = -1;
    int rc = tf_wsrc_connect(&u->w, u->w.ctx.cfg->source_tickflow_url, err, errlen);
    if (rc) return rc;
    int64_t resume = u->no_since ? 0 : u->w.ctx.sink.resume_us(u->w.ctx.sink.ud);
    int64_t since = resume > RESUME_MARGIN_US ? resume - RESUME_MARGIN_US : 0;
    rc = subscribe(u, since, err, errlen);
    if (rc == TF_WSRC_ECTL && since && u->w.r.code == TF_PV_TF_NO_SINCE) {
        u->no_since = 1;
        tf_warn("source", "upstream tickflow cannot resume (no \"since\"); following it live only",
                TF_STR("source", u->w.ctx.name), TF_STR("error", u->w.r.text));
        rc = subscribe(u, 0, err, errlen);
    } else if (rc == TF_WSRC_ECTL && since && u->w.r.code == TF_PV_TF_TOO_MUCH) {
        char iso[40];
        tf_fmt_iso_us(since, iso);
        tf_error("source", "upstream tickflow has more to resume than it sends at once; following it live:"
                 " its trades from since until now are missing here",
                 TF_STR("source", u->w.ctx.name), TF_STR("since", iso), TF_STR("error", u->w.r.text));
        rc = subscribe(u, 0, err, errlen);
    }
    if (rc == TF_WSRC_ECTL) rc = TF_SRC_ECONN;
    if (rc) goto fail;
    if (since) {
        char iso[40];
        tf_fmt_iso_us(since, iso);
        tf_info("source", "resuming from the upstream's storage", TF_STR("source", u->w.ctx.name), TF_STR("since", iso));
    }
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
