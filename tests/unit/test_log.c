/*
 * test_log.c - every line the logger formats is one valid JSON object with
 * the values it was given, whatever they hold (checked with jansson).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tf_test.h"

static json_t *line(char *buf, size_t cap, const char *msg, const tf_field *f)
{
    size_t n = tf_log_format(buf, cap, TF_LOG_WARN, "test", msg, f);
    TF_EQ_INT(strlen(buf), n);
    json_error_t e;
    json_t *j = json_loadb(buf, n, 0, &e);
    if (!j) fprintf(stderr, "invalid JSON (%s): %s\n", e.text, buf);
    TF_CHECK(j != NULL);
    return j;
}

int main(void)
{
    char buf[4096];
    /* quotes, newlines, backslashes, control bytes and invalid UTF-8 */
    const char *nasty = "ERROR:  duplicate key \"id\"\nDETAIL:  Key (id)=(1) \\ exists\t\x01\xff\xc3";
    json_t *j = line(buf, sizeof buf, "msg with \"quotes\"\n",
                     (const tf_field[]){TF_STR("error", nasty), TF_INT("n", -42), TF_UINT("u", 9007199254740993ull),
                                        TF_DBL("nan", NAN), TF_DBL("x", 0.25), TF_BOOL("ok", 1),
                                        TF_LSN("lsn", 0x16B3748ull | (1ull << 32)), TF_STR("null", NULL),
                                        TF_STRN("slice", "abcdef", 3), {0}});
    if (j) {
        TF_EQ_STR(json_string_value(json_object_get(j, "level")), "warn");
        TF_EQ_STR(json_string_value(json_object_get(j, "msg")), "msg with \"quotes\"\n");
        const char *e = json_string_value(json_object_get(j, "error"));
        TF_CHECK(e && strncmp(e, "ERROR:  duplicate key \"id\"\nDETAIL:", 33) == 0);
        TF_EQ_INT(json_integer_value(json_object_get(j, "n")), -42);
        TF_EQ_INT(json_integer_value(json_object_get(j, "u")), 9007199254740993ll);
        TF_CHECK(json_is_null(json_object_get(j, "nan")));
        TF_CHECK(json_real_value(json_object_get(j, "x")) == 0.25);
        TF_CHECK(json_is_true(json_object_get(j, "ok")));
        TF_EQ_STR(json_string_value(json_object_get(j, "lsn")), "1/16B3748");
        TF_CHECK(json_is_null(json_object_get(j, "null")));
        TF_EQ_STR(json_string_value(json_object_get(j, "slice")), "abc");
        json_decref(j);
    }
    /* no fields at all */
    j = line(buf, sizeof buf, "plain", (const tf_field[]){{0}});
    if (j) {
        TF_EQ_INT(json_object_size(j), 4);
        json_decref(j);
    }
    /* values far longer than a line: cut and marked, the line stays valid */
    size_t big = 20000;
    char *longv = malloc(big + 1);
    for (size_t i = 0; i < big; i++) longv[i] = i % 7 == 0 ? '"' : 'a';
    longv[big] = '\0';
    for (size_t cap = 128; cap <= sizeof buf; cap *= 2) {
        j = line(buf, cap, "long", (const tf_field[]){TF_STR("a", longv), TF_STR("b", longv), TF_INT("after", 1), {0}});
        if (j) {
            const char *a = json_string_value(json_object_get(j, "a"));
            if (a) TF_CHECK(strlen(a) < big && strcmp(a + strlen(a) - 3, "...") == 0);
            json_decref(j);
        }
        TF_CHECK(strlen(buf) < cap);
    }
    free(longv);
    TF_TEST_MAIN_END();
}
