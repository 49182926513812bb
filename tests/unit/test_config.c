/* test_config.c - defaults, file, environment and flag precedence, errors naming the key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/metrics.h"
#include "tf_test.h"

static int load(tf_config *c, char *err, int argc, char **argv)
{
    const char *pos[4];
    int npos;
    return tf_config_load(c, argc, argv, pos, 4, &npos, err, 512);
}

int main(void)
{
    tf_config c;
    char err[512];
    tf_config_defaults(&c);
    TF_EQ_INT(c.http_port, 8080);
    TF_EQ_STR(c.cdc_slot, "tickflow");
    TF_EQ_STR(c.cdc_publication, "dbz_publication");
    TF_EQ_STR(c.cdc_snapshot, "no_data");
    TF_EQ_INT(c.history_max_limit, 10000);

    char path[] = "/tmp/tf-config-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "[http]\nport = 9000\n[postgres]\nurl = postgresql://x@h/db\n[generator]\nrate=250.5\n");
    fclose(f);
    setenv("TICKFLOW_CONFIG", path, 1);
    setenv("TICKFLOW_HTTP_PORT", "9001", 1);
    char *argv1[] = {"--rate", "7", "--kafka-brokers", "127.0.0.1:9092", "pos1", NULL};
    TF_EQ_INT(load(&c, err, 5, argv1), 0);
    TF_EQ_INT(c.http_port, 9001);                 /* env beats file */
    TF_EQ_STR(c.pg_url, "postgresql://x@h/db");   /* from file */
    TF_CHECK(c.gen_rate == 7.0);                   /* flag beats file */
    TF_EQ_STR(c.kafka_brokers, "127.0.0.1:9092");
    char *argv2[] = {"--port", "9002", "--http.idle_timeout_ms=5000", NULL};
    TF_EQ_INT(load(&c, err, 3, argv2), 0);
    TF_EQ_INT(c.http_port, 9002);                 /* flag beats env */
    TF_EQ_INT(c.http_idle_timeout_ms, 5000);
    unsetenv("TICKFLOW_HTTP_PORT");
    /* a bare boolean flag takes the next word only when it is a boolean */
    char *argv3[] = {"--force", "file.csv", "--on-error", "skip", NULL};
    TF_EQ_INT(load(&c, err, 4, argv3), 0);
    TF_EQ_INT(c.import_force, 1);
    TF_EQ_STR(c.import_on_error, "skip");
    char *argv4[] = {"--force", "false", NULL};
    TF_EQ_INT(load(&c, err, 2, argv4), 0);
    TF_EQ_INT(c.import_force, 0);

    char *bad1[] = {"--nope", "1", NULL};
    TF_EQ_INT(load(&c, err, 2, bad1), -1);
    TF_CHECK(strstr(err, "nope") != NULL);
    char *bad2[] = {"--port", "70000", NULL};
    TF_EQ_INT(load(&c, err, 2, bad2), -1);
    TF_CHECK(strstr(err, "http.port") != NULL);
    char *bad3[] = {"--cdc.snapshot", "sometimes", NULL};
    TF_EQ_INT(load(&c, err, 2, bad3), -1);
    TF_CHECK(strstr(err, "cdc.snapshot") != NULL);
    setenv("TICKFLOW_HTTP_PORT", "eighty", 1);
    TF_EQ_INT(load(&c, err, 0, NULL), -1);
    TF_CHECK(strstr(err, "http.port") && strstr(err, "TICKFLOW_HTTP_PORT"));
    unsetenv("TICKFLOW_HTTP_PORT");

    f = fopen(path, "w");
    fprintf(f, "[http]\nprot = 1\n");
    fclose(f);
    TF_EQ_INT(load(&c, err, 0, NULL), -1);
    TF_CHECK(strstr(err, "http.prot") != NULL);
    f = fopen(path, "w");
    fprintf(f, "[http\nport = 1\n");
    fclose(f);
    TF_EQ_INT(load(&c, err, 0, NULL), -1);
    TF_CHECK(strstr(err, "line 1") != NULL);
    unlink(path);
    setenv("TICKFLOW_CONFIG", "/nonexistent/tickflow.ini", 1);
    TF_EQ_INT(load(&c, err, 0, NULL), -1);
    TF_CHECK(strstr(err, "cannot open") != NULL);
    unsetenv("TICKFLOW_CONFIG");

    /* metrics render */
    tf_metrics *m = tf_metrics_new();
    tf_metric_add(tf_counter(m, "t_total", "things", "type=\"a\""), 3);
    tf_metric_add(tf_counter(m, "t_total", "things", "type=\"a\""), 2);
    tf_metric_add(tf_counter(m, "t_total", "things", "type=\"b\""), 1);
    tf_metric *h = tf_histogram(m, "lat_seconds", "latency", NULL, tf_latency_bounds, tf_latency_nbounds);
    tf_metric_observe(h, 0.003);
    tf_metric_observe(h, 20);
    size_t len;
    char *txt = tf_metrics_render(m, &len);
    TF_CHECK(strstr(txt, "t_total{type=\"a\"} 5\n") != NULL);
    TF_CHECK(strstr(txt, "t_total{type=\"b\"} 1\n") != NULL);
    TF_CHECK(strstr(txt, "lat_seconds_bucket{le=\"0.005\"} 1\n") != NULL);
    TF_CHECK(strstr(txt, "lat_seconds_bucket{le=\"+Inf\"} 2\n") != NULL);
    TF_CHECK(strstr(txt, "lat_seconds_count 2\n") != NULL);
    char *once = strstr(txt, "# TYPE t_total counter");
    TF_CHECK(once && !strstr(once + 1, "# TYPE t_total"));
    free(txt);
    tf_metrics_free(m);
    /* a first run listens on loopback only */
    tf_config_defaults(&c);
    TF_EQ_STR(c.http_bind, "127.0.0.1");
    /* Kafka's and Debezium's producers default to no compression: any consumer can read the topic */
    TF_EQ_STR(c.kafka_compression, "none");
    /* an environment variable naming no key is rejected, naming it */
    setenv("TICKFLOW_HTPP_PORT", "9002", 1);
    char *argv5[] = {NULL};
    TF_EQ_INT(load(&c, err, 0, argv5), -1);
    TF_CHECK(strstr(err, "TICKFLOW_HTPP_PORT") != NULL);
    unsetenv("TICKFLOW_HTPP_PORT");
    setenv("TICKFLOW_HTTP_NOPE", "1", 1);
    TF_EQ_INT(load(&c, err, 0, argv5), -1);
    TF_CHECK(strstr(err, "TICKFLOW_HTTP_NOPE") != NULL);
    unsetenv("TICKFLOW_HTTP_NOPE");
    TF_EQ_INT(load(&c, err, 0, argv5), 0);
    TF_TEST_MAIN_END();
}
