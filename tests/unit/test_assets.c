/* Unit tests for http/assets.c: the If-None-Match and Accept-Encoding
 * parsing, and the embedded table the build generated (web/embed.cmake). */
#include <string.h>

#include "http/assets.h"
#include "tf_test.h"

static void etag_match(void)
{
    const char *e = "\"abc123\"";
    TF_EQ_INT(tf_asset_etag_match("\"abc123\"", e), 1);
    TF_EQ_INT(tf_asset_etag_match("W/\"abc123\"", e), 1); /* weak comparison */
    TF_EQ_INT(tf_asset_etag_match("\"x\", \"abc123\"", e), 1);
    TF_EQ_INT(tf_asset_etag_match("\"x\",\"abc123\" ", e), 1);
    TF_EQ_INT(tf_asset_etag_match("*", e), 1);
    TF_EQ_INT(tf_asset_etag_match("\"abc1234\"", e), 0);
    TF_EQ_INT(tf_asset_etag_match("\"abc12\"", e), 0);
    TF_EQ_INT(tf_asset_etag_match("abc123", e), 0);
    TF_EQ_INT(tf_asset_etag_match("\"abc123\"-gz", e), 0);
    TF_EQ_INT(tf_asset_etag_match("", e), 0);
    TF_EQ_INT(tf_asset_etag_match(NULL, e), 0);
    TF_EQ_INT(tf_asset_etag_match(" , ,", e), 0);
}

static void gzip_ok(void)
{
    TF_EQ_INT(tf_asset_accepts_gzip("gzip"), 1);
    TF_EQ_INT(tf_asset_accepts_gzip("gzip, deflate, br"), 1);
    TF_EQ_INT(tf_asset_accepts_gzip("br;q=1.0, GZIP;q=0.5"), 1);
    TF_EQ_INT(tf_asset_accepts_gzip("x-gzip"), 1);
    TF_EQ_INT(tf_asset_accepts_gzip("*"), 1);
    TF_EQ_INT(tf_asset_accepts_gzip("gzip;q=0"), 0);
    TF_EQ_INT(tf_asset_accepts_gzip("gzip; q=0.000"), 0);
    TF_EQ_INT(tf_asset_accepts_gzip("gzip;q=0.001"), 1);
    TF_EQ_INT(tf_asset_accepts_gzip("*, gzip;q=0"), 0);  /* the named coding wins */
    TF_EQ_INT(tf_asset_accepts_gzip("*;q=0"), 0);
    TF_EQ_INT(tf_asset_accepts_gzip("deflate, br"), 0);
    TF_EQ_INT(tf_asset_accepts_gzip("identity"), 0);
    TF_EQ_INT(tf_asset_accepts_gzip("gzipx"), 0);
    TF_EQ_INT(tf_asset_accepts_gzip(""), 0);
    TF_EQ_INT(tf_asset_accepts_gzip(NULL), 0);
}

static void table(void)
{
    const tf_asset *idx = tf_asset_find("/");
    TF_CHECK(idx != NULL);
    TF_CHECK(idx == tf_asset_find("/index.html"));
    TF_CHECK(tf_asset_find("/nope") == NULL);
    if (!idx) return;
    TF_EQ_STR(idx->content_type, "text/html; charset=utf-8");
    TF_EQ_STR(idx->cache_control, "no-cache");
    TF_CHECK(idx->len > 100 && memmem(idx->data, idx->len, "/assets/app-", 12) != NULL);
    int js = 0, css = 0;
    for (const tf_asset *a = tf_web_assets; a->path; a++) {
        TF_CHECK(a->path[0] == '/');
        TF_CHECK(strlen(a->etag) == 34 && a->etag[0] == '"' && a->etag[33] == '"');
        TF_CHECK(strncmp(a->etag_gz, a->etag, 33) == 0 && strcmp(a->etag_gz + 33, "-gz\"") == 0);
        TF_CHECK(a->data[a->len] == 0); /* the generator's trailing NUL */
        if (a->gz) {
            TF_CHECK(a->gz_len < a->len && a->gz[0] == 0x1f && a->gz[1] == 0x8b);
            /* gzip -n: no name, mtime 0, so builds are reproducible */
            TF_CHECK(a->gz[3] == 0 && a->gz[4] == 0 && a->gz[5] == 0 && a->gz[6] == 0 && a->gz[7] == 0);
        }
        if (a != idx) TF_EQ_STR(a->cache_control, "public, max-age=31536000, immutable");
        size_t n = strlen(a->path);
        if (n > 3 && strcmp(a->path + n - 3, ".js") == 0) {
            js++;
            TF_EQ_STR(a->content_type, "text/javascript; charset=utf-8");
            TF_CHECK(a->gz != NULL);
        }
        if (n > 4 && strcmp(a->path + n - 4, ".css") == 0) {
            css++;
            TF_EQ_STR(a->content_type, "text/css; charset=utf-8");
        }
    }
    TF_EQ_INT(js, 1);
    TF_EQ_INT(css, 1);
}

int main(void)
{
    etag_match();
    gzip_ok();
    table();
    TF_TEST_MAIN_END();
}
