/* test_api_source.c - live provider switch rows as status event JSON
 * (api/api_source.c): a switch, every provider down (source null), the
 * start (previous null), a reason with quotes, a newline and multi-byte
 * characters escaped and cut on a character boundary, each event valid
 * JSON with the fields of api_source.h. Rows are built with libpq's own
 * PGresult constructors (no server needed). */
#include "api/api_source.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tf_test.h"

/* A tf_srcsw_sql_after result with one row; NULL values are SQL NULL. */
static PGresult *row(const char *seq, const char *from, const char *to, const char *reason, const char *inst,
                     const char *at)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[6];
    const char *names[6] = {"seq", "from_source", "to_source", "reason", "instance", "at"};
    memset(att, 0, sizeof att);
    for (int i = 0; i < 6; i++) {
        att[i].name = (char *)names[i];
        att[i].tableid = 0;
        att[i].typid = 25; /* text */
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    PQsetResultAttrs(r, 6, att);
    const char *v[6] = {seq, from, to, reason, inst, at};
    for (int i = 0; i < 6; i++) PQsetvalue(r, 0, i, (char *)v[i], v[i] ? (int)strlen(v[i]) : -1);
    return r;
}

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) fprintf(stderr, "not JSON (%s): %s\n", e.text, s);
    return j;
}

static void switch_row(void)
{
    PGresult *r = row("42", "alpaca", "finnhub", "stalled: no trade for 1.0 s (source.stall_s 1)", "vm:77",
                      "2026-12-01T14:00:00.123Z");
    char buf[1400];
    long long seq = 0;
    TF_CHECK(tf_srcsw_json(r, 0, buf, sizeof buf, &seq) > 0);
    TF_EQ_INT(seq, 42);
    TF_EQ_STR(buf, "{\"status\":\"ok\",\"component\":\"source\",\"source\":\"finnhub\",\"previous\":\"alpaca\","
                   "\"reason\":\"stalled: no trade for 1.0 s (source.stall_s 1)\",\"instance\":\"vm:77\","
                   "\"at\":\"2026-12-01T14:00:00.123Z\"}");
    /* too small a buffer: -1, never a cut JSON */
    TF_EQ_INT(tf_srcsw_json(r, 0, buf, 60, &seq), -1);
    PQclear(r);
}

static void down_and_start(void)
{
    char buf[1400];
    long long seq = 0;
    PGresult *r = row("7", "finnhub", NULL, "failed: x", "h:1", "2026-12-01T14:00:00.000Z");
    TF_CHECK(tf_srcsw_json(r, 0, buf, sizeof buf, &seq) > 0);
    json_t *j = parse(buf);
    TF_CHECK(j != NULL);
    TF_EQ_STR(json_string_value(json_object_get(j, "status")), "down");
    TF_CHECK(json_is_null(json_object_get(j, "source")));
    TF_EQ_STR(json_string_value(json_object_get(j, "previous")), "finnhub");
    json_decref(j);
    PQclear(r);
    r = row("8", NULL, "alpaca", "first in source.providers", "h:1", "2026-12-01T14:00:00.000Z");
    TF_CHECK(tf_srcsw_json(r, 0, buf, sizeof buf, &seq) > 0);
    j = parse(buf);
    TF_CHECK(j != NULL);
    TF_EQ_STR(json_string_value(json_object_get(j, "status")), "ok");
    TF_CHECK(json_is_null(json_object_get(j, "previous")));
    TF_EQ_STR(json_string_value(json_object_get(j, "source")), "alpaca");
    json_decref(j);
    PQclear(r);
}

static void escaped_reason(void)
{
    char reason[400], buf[1400];
    /* quotes, a backslash, a newline, then 2-byte characters past the 320-byte cut */
    int n = snprintf(reason, sizeof reason, "failed: \"auth\" \\ refused\n");
    while (n < 390) {
        reason[n++] = (char)0xC3;
        reason[n++] = (char)0xA9; /* é */
    }
    reason[n] = '\0';
    PGresult *r = row("9", "alpaca", "finnhub", reason, "h:1", "2026-12-01T14:00:00.000Z");
    long long seq = 0;
    TF_CHECK(tf_srcsw_json(r, 0, buf, sizeof buf, &seq) > 0);
    json_t *j = parse(buf);
    TF_CHECK(j != NULL);
    const char *got = json_string_value(json_object_get(j, "reason"));
    const char *want = "failed: \"auth\" \\ refused\n";
    TF_CHECK(got && strncmp(got, want, strlen(want)) == 0);
    TF_CHECK(got && strlen(got) <= 320 && strlen(got) >= 318); /* cut, on a character boundary (valid JSON) */
    json_decref(j);
    PQclear(r);
}

int main(void)
{
    switch_row();
    down_and_start();
    escaped_reason();
    TF_TEST_MAIN_END();
}
