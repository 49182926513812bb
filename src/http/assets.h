/*
 * assets.h - the dashboard's static files (web/), embedded in the binary at
 * build time and served from memory, so the page is there wherever tickflow
 * runs (no ./web at run time, no placeholder).
 *
 * The build (CMakeLists.txt, "dashboard" block) bundles web/ with esbuild and
 * turns web/dist/ into a generated C file (cmake/embed_assets.cmake) that
 * defines tf_web_assets[]: each file's bytes, its gzip -9n form, a strong
 * ETag (SHA-256 of the bytes, computed at build time), its Content-Type and
 * Cache-Control. Hashed bundle names (app-<hash>.js) are immutable and
 * cached for a year; index.html is "no-cache" (always revalidated, answered
 * 304 when unchanged).
 */
#ifndef TF_ASSETS_H
#define TF_ASSETS_H

#include <stddef.h>

#include "http/http.h"

typedef struct tf_asset {
    const char *path;          /* URL path, "/index.html", "/assets/app-XXXX.js" */
    const char *content_type;  /* "text/html; charset=utf-8" */
    const char *cache_control; /* "no-cache" or "public, max-age=31536000, immutable" */
    const char *etag;          /* quoted strong validator of the identity bytes */
    const char *etag_gz;       /* the same for the gzip representation ("...-gz") */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz;   /* gzip of data (NULL when it would not be smaller) */
    size_t gz_len;
} tf_asset;

/* Generated at build time; the table ends with a NULL path. */
extern const tf_asset tf_web_assets[];

/* Registers GET routes for every embedded asset, and "/" for index.html.
 * Returns 0 or -1 (out of memory). */
int tf_assets_route(tf_server *s);

/* Finds an asset by URL path ("/" means "/index.html"); NULL if none. */
const tf_asset *tf_asset_find(const char *path);

/*
 * Pure helpers (for the unit test):
 *   tf_asset_etag_match: 1 when an If-None-Match value (a list, "*", W/
 *     prefixes allowed: the weak comparison RFC 9110 13.1.2 asks for) names
 *     etag, else 0.
 *   tf_asset_accepts_gzip: 1 when an Accept-Encoding value allows gzip
 *     (a "gzip" or "*" coding whose q is not 0), else 0.
 */
int tf_asset_etag_match(const char *if_none_match, const char *etag);
int tf_asset_accepts_gzip(const char *accept_encoding);

#endif
