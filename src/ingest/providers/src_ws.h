/*
 * src_ws.h - what the three WebSocket providers (src_alpaca.c,
 * src_finnhub.c, src_tickflow.c) share: a connection (providers/wsc.h), the
 * provider's decoder, waiting for a control message during the handshake,
 * and the read loop. Internal to providers/.
 */
#ifndef TF_SRC_WS_H
#define TF_SRC_WS_H

#include "ingest/providers/source.h"
#include "ingest/providers/wsc.h"

#define TF_WSRC_BATCH 4096 /* trades one message may carry */

typedef int (*tf_wsrc_parse_fn)(const char *buf, size_t len, tf_pv_result *r);

typedef struct tf_wsrc {
    tf_source_ctx ctx;
    tf_wsc *ws;
    tf_wsrc_parse_fn parse;
    tf_pv_trade *trades; /* TF_WSRC_BATCH, owned */
    tf_pv_result r;
    /* provider-specific hook for control messages seen while streaming
     * (NULL: errors are logged as warnings) */
    void (*on_ctl)(struct tf_wsrc *w, const tf_pv_result *r);
    /* provider-specific check of every message understood, after its trades
     * were delivered (NULL: none): -1 with errbuf ends the connection (the
     * feed then reconnects at once). */
    int (*on_msg)(struct tf_wsrc *w, const tf_pv_result *r, char *errbuf, size_t errlen);
    void *sub; /* the backend's own state */
} tf_wsrc;

/* 0, or -1 with errbuf (out of memory). */
int tf_wsrc_init(tf_wsrc *w, const tf_source_ctx *ctx, tf_wsrc_parse_fn parse, char *errbuf, size_t errlen);
void tf_wsrc_destroy(tf_wsrc *w);

/* Connects to url (errors never show its query: it may hold a token).
 * 0, TF_SRC_EAUTH (HTTP 401/403) or TF_SRC_ECONN. */
int tf_wsrc_connect(tf_wsrc *w, const char *url, char *errbuf, size_t errlen);
int tf_wsrc_send(tf_wsrc *w, const char *msg, char *errbuf, size_t errlen);

/* Reads until a control message of kind want arrives (trades met on the way
 * are delivered). 0; TF_SRC_ECONN on timeout / loss; TF_WSRC_ECTL when the
 * provider sent an error message instead (w->r.code, w->r.text). */
#define TF_WSRC_ECTL -3
int tf_wsrc_await(tf_wsrc *w, int want, int timeout_ms, char *errbuf, size_t errlen);

/* ops->poll for these backends: one wait of up to timeout_ms, then what is
 * already there (at most 64 messages per call). */
int tf_wsrc_poll(void *st, int timeout_ms, char *errbuf, size_t errlen);
void tf_wsrc_close(void *st);

#endif
