/*
 * source.c - the backend registry and what the backends share: secrets,
 * logging of unusable provider messages, delivery of parsed trades.
 */
#include "ingest/providers/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

static const tf_source_ops *const backends[] = {
    &tf_src_alpaca_ops, &tf_src_finnhub_ops, &tf_src_tickflow_ops, &tf_src_file_ops, &tf_src_generator_ops,
};

const tf_source_ops *tf_source_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof *backends; i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

int tf_source_secret(const tf_config *cfg, const char *name, char *out, size_t cap, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v && *v) {
        if (strlen(v) >= cap) return snprintf(err, errlen, "%s is too long", name), -1;
        snprintf(out, cap, "%s", v);
        return 1;
    }
    const char *path = cfg->source_secrets_file;
    if (!path[0]) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, errlen, "source.secrets_file %s: %s", path, strerror(errno)), -1;
    struct stat st;
    /* like ssh with its keys: a secret others can read is not used */
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
        fclose(f);
        snprintf(err, errlen, "source.secrets_file %s is readable by group or others (chmod 600 it)", path);
        return -1;
    }
    char line[1024];
    size_t nl = strlen(name);
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strncmp(line, name, nl) && line[nl] == '=') {
            if (strlen(line + nl + 1) >= cap) {
                fclose(f);
                return snprintf(err, errlen, "%s in source.secrets_file is too long", name), -1;
            }
            snprintf(out, cap, "%s", line + nl + 1);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

void tf_source_log_bad(const char *source, const char *why, const char *msg, size_t len)
{
    tf_error("source", "unusable message from provider", TF_STR("source", source), TF_STR("error", why),
             TF_STRN("message", msg, len > 200 ? 200 : len), TF_INT("bytes", len));
}

void tf_source_deliver(const tf_source_ctx *ctx, const tf_pv_result *r, const char *msg, size_t len)
{
    if (r->ntrades) ctx->sink.trades(ctx->sink.ud, r->trades, r->ntrades);
    if (r->nbad) {
        tf_source_log_bad(ctx->name, r->bad, msg, len);
        ctx->sink.bad(ctx->sink.ud, r->nbad);
    }
}
