/*
 * src_alpaca.c - the Alpaca market-data stream v2 provider (message formats
 * in pv_msg.h). Handshake: upgrade -> [{"T":"success","msg":"connected"}]
 * -> auth -> "authenticated" (or error 402 auth failed / 406 connection
 * limit exceeded / 409 insufficient subscription) -> subscribe trades ->
 * "subscription". Credentials: APCA_API_KEY_ID and APCA_API_SECRET_KEY (the
 * names Alpaca's own SDKs read) from the environment or source.secrets_file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/providers/src_ws.h"

typedef struct alpaca {
    tf_wsrc w;
    char key[256], secret[256];
} alpaca;

static void *create(const tf_source_ctx *ctx, char *err, size_t errlen)
{
    alpaca *a = calloc(1, sizeof *a);
    if (!a) return snprintf(err, errlen, "out of memory"), NULL;
    if (tf_wsrc_init(&a->w, ctx, tf_pv_parse_alpaca, err, errlen) != 0) goto err;
    int k = tf_source_secret(ctx->cfg, "APCA_API_KEY_ID", a->key, sizeof a->key, err, errlen);
    if (k < 0) goto err;
    int s = tf_source_secret(ctx->cfg, "APCA_API_SECRET_KEY", a->secret, sizeof a->secret, err, errlen);
    if (s < 0) goto err;
    if (!k || !s) {
        snprintf(err, errlen, "alpaca needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (environment or source.secrets_file)");
        goto err;
    }
    char probe[2048];
    if (tf_pv_enc_alpaca_subscribe(probe, sizeof probe, ctx->cfg->source_tickers) < 0) {
        snprintf(err, errlen, "source.symbols: not a comma list of valid symbols");
        goto err;
    }
    return a;
err:
    tf_wsrc_destroy(&a->w);
    free(a);
    return NULL;
}

static int open_(void *st, char *err, size_t errlen)
{
    alpaca *a = st;
    const tf_config *cfg = a->w.ctx.cfg;
    char msg[8192];
    int rc = tf_wsrc_connect(&a->w, cfg->source_alpaca_url, err, errlen);
    if (rc) return rc;
    if ((rc = tf_wsrc_await(&a->w, TF_PV_CTL_CONNECTED, cfg->source_timeout_ms, err, errlen))) goto fail;
    if (tf_pv_enc_alpaca_auth(msg, sizeof msg, a->key, a->secret) < 0) {
        snprintf(err, errlen, "alpaca credentials cannot be encoded");
        rc = TF_SRC_EAUTH;
        goto fail;
    }
    if ((rc = tf_wsrc_send(&a->w, msg, err, errlen))) goto fail;
    memset(msg, 0, sizeof msg); /* the secret does not stay on the stack */
    rc = tf_wsrc_await(&a->w, TF_PV_CTL_AUTHENTICATED, cfg->source_timeout_ms, err, errlen);
    /* 402 auth failed; 401/404 not/too late authenticated; 409 plan lacks the feed */
    if (rc == TF_WSRC_ECTL) rc = a->w.r.code == 406 || a->w.r.code >= 500 ? TF_SRC_ECONN : TF_SRC_EAUTH;
    if (rc) goto fail;
    tf_pv_enc_alpaca_subscribe(msg, sizeof msg, cfg->source_tickers);
    if ((rc = tf_wsrc_send(&a->w, msg, err, errlen))) goto fail;
    rc = tf_wsrc_await(&a->w, TF_PV_CTL_SUBSCRIBED, cfg->source_timeout_ms, err, errlen);
    if (rc == TF_WSRC_ECTL) rc = a->w.r.code == 409 ? TF_SRC_EAUTH : TF_SRC_ECONN; /* 405 symbol limit: retry */
    if (rc) goto fail;
    return 0;
fail:
    tf_wsrc_close(&a->w);
    return rc;
}

static void destroy(void *st)
{
    alpaca *a = st;
    if (!a) return;
    tf_wsrc_destroy(&a->w);
    memset(a->secret, 0, sizeof a->secret);
    free(a);
}

const tf_source_ops tf_src_alpaca_ops = {
    .name = "alpaca", .create = create, .open = open_, .poll = tf_wsrc_poll, .close = tf_wsrc_close,
    .destroy = destroy,
};
