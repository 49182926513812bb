/*
 * src_finnhub.c - the Finnhub trade stream provider (formats in pv_msg.h):
 * wss://ws.finnhub.io?token=T, then one {"type":"subscribe","symbol":S} per
 * symbol; Finnhub sends no acknowledgement, so the connection counts as up
 * once the upgrade succeeded (a refused token is HTTP 401 there). Token:
 * FINNHUB_TOKEN from the environment or source.secrets_file; it is in the
 * URL's query, which is never logged.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/providers/src_ws.h"

typedef struct finnhub {
    tf_wsrc w;
    char token[256];
} finnhub;

static void *create(const tf_source_ctx *ctx, char *err, size_t errlen)
{
    finnhub *f = calloc(1, sizeof *f);
    if (!f) return snprintf(err, errlen, "out of memory"), NULL;
    if (tf_wsrc_init(&f->w, ctx, tf_pv_parse_finnhub, err, errlen) != 0) goto err;
    int k = tf_source_secret(ctx->cfg, "FINNHUB_TOKEN", f->token, sizeof f->token, err, errlen);
    if (k < 0) goto err;
    if (!k) {
        snprintf(err, errlen, "finnhub needs FINNHUB_TOKEN (environment or source.secrets_file)");
        goto err;
    }
    for (const char *p = f->token; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            snprintf(err, errlen, "FINNHUB_TOKEN has characters a token does not have");
            goto err;
        }
    return f;
err:
    tf_wsrc_destroy(&f->w);
    free(f);
    return NULL;
}

static int open_(void *st, char *err, size_t errlen)
{
    finnhub *f = st;
    const tf_config *cfg = f->w.ctx.cfg;
    char url[1024];
    snprintf(url, sizeof url, "%s%stoken=%s", cfg->source_finnhub_url, strchr(cfg->source_finnhub_url, '?') ? "&" : "?",
             f->token);
    int rc = tf_wsrc_connect(&f->w, url, err, errlen);
    memset(url, 0, sizeof url);
    if (rc) return rc;
    const char *p = cfg->source_tickers;
    while (*p) {
        size_t l = strcspn(p, ",");
        char tk[TF_TICKER_MAX] = "", msg[128];
        size_t a = 0, b = l;
        while (a < b && isspace((unsigned char)p[a])) a++;
        while (b > a && isspace((unsigned char)p[b - 1])) b--;
        if (b > a && b - a < sizeof tk) {
            memcpy(tk, p + a, b - a);
            tk[b - a] = '\0';
            if (tf_pv_enc_finnhub_subscribe(msg, sizeof msg, tk) < 0 || (rc = tf_wsrc_send(&f->w, msg, err, errlen))) {
                if (!rc) snprintf(err, errlen, "source.symbols: '%s' is not a valid symbol", tk);
                tf_wsrc_close(&f->w);
                return TF_SRC_ECONN;
            }
        }
        p += l;
        if (*p == ',') p++;
    }
    return 0;
}

static void destroy(void *st)
{
    finnhub *f = st;
    if (!f) return;
    tf_wsrc_destroy(&f->w);
    memset(f->token, 0, sizeof f->token);
    free(f);
}

const tf_source_ops tf_src_finnhub_ops = {
    .name = "finnhub", .create = create, .open = open_, .poll = tf_wsrc_poll, .close = tf_wsrc_close,
    .destroy = destroy,
};
