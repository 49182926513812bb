/*
 * assets.c - serves the embedded dashboard (assets.h): GET of an asset path
 * answers its bytes with Content-Type, Cache-Control and a strong ETag,
 * 304 Not Modified when If-None-Match names that ETag, and the gzip form
 * (precompressed at build time, so no CPU is spent per request) with
 * Content-Encoding: gzip when Accept-Encoding allows it. Vary:
 * Accept-Encoding tells caches the two forms apart.
 */
#include "http/assets.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const tf_asset *tf_asset_find(const char *path)
{
    if (strcmp(path, "/") == 0) path = "/index.html";
    for (const tf_asset *a = tf_web_assets; a->path; a++)
        if (strcmp(a->path, path) == 0) return a;
    return NULL;
}

/* Next comma-separated element of a header list: skips blanks, returns its
 * start and sets *len (trailing blanks trimmed), or NULL at the end. */
static const char *list_next(const char **p, size_t *len)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',') s++;
    if (!*s) return NULL;
    const char *e = strchr(s, ',');
    if (!e) e = s + strlen(s);
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *len = (size_t)(e - s);
    return s;
}

int tf_asset_etag_match(const char *inm, const char *etag)
{
    if (!inm || !etag) return 0;
    size_t el = strlen(etag), n;
    const char *t;
    while ((t = list_next(&inm, &n))) {
        if (n == 1 && *t == '*') return 1;
        if (n >= 2 && t[0] == 'W' && t[1] == '/') t += 2, n -= 2;
        if (n == el && memcmp(t, etag, el) == 0) return 1;
    }
    return 0;
}

int tf_asset_accepts_gzip(const char *ae)
{
    if (!ae) return 0;
    size_t n;
    const char *t;
    int star = 0, gzip = -1; /* -1: not named */
    while ((t = list_next(&ae, &n))) {
        size_t cl = 0;
        while (cl < n && t[cl] != ';' && t[cl] != ' ' && t[cl] != '\t') cl++;
        int ok = 1;
        /* q=0 (0, 0.0, 0.000) refuses the coding; any other q accepts it */
        const char *q = memchr(t, ';', n);
        while (q && q < t + n) {
            q++;
            while (q < t + n && (*q == ' ' || *q == '\t')) q++;
            if (q + 1 < t + n && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
                const char *v = q + 2;
                ok = 0;
                for (; v < t + n && (isdigit((unsigned char)*v) || *v == '.'); v++)
                    if (*v >= '1' && *v <= '9') ok = 1;
            }
            q = memchr(q, ';', (size_t)(t + n - q));
        }
        if ((cl == 4 && strncasecmp(t, "gzip", 4) == 0) || (cl == 6 && strncasecmp(t, "x-gzip", 6) == 0))
            gzip = ok;
        else if (cl == 1 && *t == '*')
            star = ok;
    }
    return gzip >= 0 ? gzip : star;
}

static void h_asset(tf_http_req *r, void *ud)
{
    const tf_asset *a = ud;
    int gz = a->gz && tf_asset_accepts_gzip(tf_http_header(r, "Accept-Encoding"));
    const char *etag = gz ? a->etag_gz : a->etag;
    if (tf_http_add_header(r, "ETag", etag) < 0 ||
        tf_http_add_header(r, "Cache-Control", a->cache_control) < 0 ||
        (a->gz && tf_http_add_header(r, "Vary", "Accept-Encoding") < 0)) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (tf_asset_etag_match(tf_http_header(r, "If-None-Match"), etag)) {
        tf_http_respond(r, 304, NULL, NULL, 0);
        return;
    }
    if (gz) {
        if (tf_http_add_header(r, "Content-Encoding", "gzip") < 0) {
            tf_http_error(r, 503, "unavailable", "out of memory", NULL);
            return;
        }
        tf_http_respond(r, 200, a->content_type, a->gz, a->gz_len);
    } else {
        tf_http_respond(r, 200, a->content_type, a->data, a->len);
    }
}

int tf_assets_route(tf_server *s)
{
    for (const tf_asset *a = tf_web_assets; a->path; a++) {
        if (tf_server_route(s, "GET", a->path, h_asset, (void *)a) < 0) return -1;
        if (strcmp(a->path, "/index.html") == 0 &&
            tf_server_route(s, "GET", "/", h_asset, (void *)a) < 0)
            return -1;
    }
    return 0;
}
