/*
 * src_ws.c - the shared part of the WebSocket providers (see src_ws.h).
 */
#include "ingest/providers/src_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define MAX_MESSAGE (4u << 20)

int tf_wsrc_init(tf_wsrc *w, const tf_source_ctx *ctx, tf_wsrc_parse_fn parse, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->ctx = *ctx;
    w->parse = parse;
    if (!(w->trades = malloc(TF_WSRC_BATCH * sizeof *w->trades))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tf_pv_result_init(&w->r, w->trades, TF_WSRC_BATCH);
    return 0;
}

void tf_wsrc_destroy(tf_wsrc *w)
{
    tf_wsc_free(w->ws);
    w->ws = NULL;
    free(w->trades);
    w->trades = NULL;
}

int tf_wsrc_connect(tf_wsrc *w, const char *url, char *err, size_t errlen)
{
    tf_wsrc_close(w);
    tf_wsc_opts o = {.ca_file = w->ctx.cfg->source_ca_file, .timeout_ms = w->ctx.cfg->source_timeout_ms,
                     .max_message = MAX_MESSAGE};
    int status = 0;
    char e[384];
    w->ws = tf_wsc_connect(url, &o, &status, e, sizeof e);
    if (w->ws) return 0;
    /* the URL without its query (finnhub's carries the token) */
    snprintf(err, errlen, "%.*s: %s", (int)strcspn(url, "?"), url, e);
    return status == 401 || status == 403 ? TF_SRC_EAUTH : TF_SRC_ECONN;
}

int tf_wsrc_send(tf_wsrc *w, const char *msg, char *err, size_t errlen)
{
    return w->ws && tf_wsc_send_text(w->ws, msg, strlen(msg), err, errlen) == 0 ? 0 : TF_SRC_ECONN;
}

/* Parses and delivers one message: 0, -1 not understood, -2 the backend's
 * on_msg ends the connection (err). */
static int handle(tf_wsrc *w, const char *m, size_t n, char *err, size_t errlen)
{
    if (w->parse(m, n, &w->r) != 0) {
        tf_source_log_bad(w->ctx.name, w->r.bad, m, n);
        w->ctx.sink.bad(w->ctx.sink.ud, 1);
        return -1;
    }
    tf_source_deliver(&w->ctx, &w->r, m, n);
    if (w->on_msg && w->on_msg(w, &w->r, err, errlen) != 0) return -2;
    return 0;
}

int tf_wsrc_await(tf_wsrc *w, int want, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = tf_mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int64_t left = (deadline - tf_mono_us()) / 1000;
        if (left <= 0) {
            snprintf(err, errlen, "%s: no answer within source.timeout_ms", w->ctx.name);
            return TF_SRC_ECONN;
        }
        const char *m;
        size_t n;
        char e[256];
        int rc = tf_wsc_recv(w->ws, (int)left, &m, &n, e, sizeof e);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", w->ctx.name, e);
            return TF_SRC_ECONN;
        }
        if (rc == 0) continue;
        rc = handle(w, m, n, err, errlen);
        if (rc == -2) return TF_SRC_ECONN;
        if (rc != 0) continue;
        if (w->r.ctl == TF_PV_CTL_ERROR) {
            if (w->r.code)
                snprintf(err, errlen, "%s refused: %s (code %d)", w->ctx.name, w->r.text, w->r.code);
            else
                snprintf(err, errlen, "%s refused: %s", w->ctx.name, w->r.text);
            return TF_WSRC_ECTL;
        }
        if (w->r.ctl == want) return 0;
    }
}

int tf_wsrc_poll(void *st, int timeout_ms, char *err, size_t errlen)
{
    tf_wsrc *w = st;
    if (!w->ws) {
        snprintf(err, errlen, "not connected");
        return -1;
    }
    for (int i = 0; i < 64; i++) {
        const char *m;
        size_t n;
        char e[256];
        int rc = tf_wsc_recv(w->ws, i == 0 ? timeout_ms : 0, &m, &n, e, sizeof e);
        if (rc < 0) {
            snprintf(err, errlen, "%s", e);
            return -1;
        }
        if (rc == 0) return 0;
        rc = handle(w, m, n, err, errlen);
        if (rc == -2) return -1;
        if (rc != 0) continue;
        if (w->r.ctl == TF_PV_CTL_NONE || w->r.ctl == TF_PV_CTL_PING) continue;
        if (w->on_ctl) {
            w->on_ctl(w, &w->r);
        } else if (w->r.ctl == TF_PV_CTL_ERROR) {
            tf_warn("source", "provider reported an error", TF_STR("source", w->ctx.name), TF_INT("code", w->r.code),
                    TF_STR("error", w->r.text));
        }
    }
    return 0;
}

void tf_wsrc_close(void *st)
{
    tf_wsrc *w = st;
    tf_wsc_free(w->ws);
    w->ws = NULL;
}
