/*
 * api_source.c - tickflow_source_switches rows as status event JSON (the
 * shape is in api_source.h).
 */
#include "api/api_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

const char tf_srcsw_sql_after[] =
    "SELECT seq, from_source, to_source, reason, instance,"
    " to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    " FROM tickflow_source_switches WHERE seq > $1::bigint ORDER BY seq LIMIT 50";

const char tf_srcsw_sql_prime[] =
    "SELECT coalesce(max(seq), 0) FROM tickflow_source_switches WHERE at < to_timestamp($1::float8)";

/* "text" (escaped, at most max bytes of whole UTF-8 characters) or null */
static int str_or_null(char *out, size_t cap, const PGresult *r, int i, int col, size_t max)
{
    if (PQgetisnull(r, i, col)) return snprintf(out, cap, "null") >= (int)cap ? -1 : 4;
    const char *s = PQgetvalue(r, i, col);
    size_t len = strlen(s);
    if (len > max) {
        len = max;
        while (len && ((unsigned char)s[len] & 0xC0) == 0x80) len--;
    }
    if (cap < 3) return -1;
    out[0] = '"';
    int n = tf_json_escape(s, len, out + 1, cap - 2);
    if (n < 0 || (size_t)n + 2 >= cap) return -1;
    out[n + 1] = '"';
    out[n + 2] = '\0';
    return n + 2;
}

int tf_srcsw_json(const PGresult *r, int i, char *buf, size_t cap, long long *seq)
{
    char from[80], to[80], reason[700], inst[200], at[48];
    *seq = atoll(PQgetvalue(r, i, 0));
    if (str_or_null(from, sizeof from, r, i, 1, 32) < 0 || str_or_null(to, sizeof to, r, i, 2, 32) < 0 ||
        str_or_null(reason, sizeof reason, r, i, 3, 320) < 0 || str_or_null(inst, sizeof inst, r, i, 4, 96) < 0 ||
        str_or_null(at, sizeof at, r, i, 5, 40) < 0)
        return -1;
    int n = snprintf(buf, cap,
                     "{\"status\":\"%s\",\"component\":\"source\",\"source\":%s,\"previous\":%s,\"reason\":%s,"
                     "\"instance\":%s,\"at\":%s}",
                     PQgetisnull(r, i, 2) ? "down" : "ok", to, from, reason, inst, at);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
