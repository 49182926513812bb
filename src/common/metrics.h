/*
 * metrics.h - a small thread-safe metrics registry rendered in Prometheus
 * text exposition format (GET /metrics).
 *
 * One registry per process, created by the subcommand and passed to each
 * component. Metrics are created once (at start-up or first use, under a
 * lock) and then updated lock-free with atomics from any thread. A metric is
 * identified by name + label set; asking again for the same pair returns the
 * same object, so components need not keep pointers if they do not want to.
 * Pointers stay valid until tf_metrics_free.
 */
#ifndef TF_METRICS_H
#define TF_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tf_metrics tf_metrics;
typedef struct tf_metric tf_metric;

tf_metrics *tf_metrics_new(void);
void tf_metrics_free(tf_metrics *m);

/* labels: NULL or a Prometheus label body such as `route="/api/v1/stock",status="200"`. */
tf_metric *tf_counter(tf_metrics *m, const char *name, const char *help, const char *labels);
tf_metric *tf_gauge(tf_metrics *m, const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (le), copied; +Inf is implicit. */
tf_metric *tf_histogram(tf_metrics *m, const char *name, const char *help, const char *labels,
                        const double *bounds, int nbounds);

void tf_metric_add(tf_metric *c, int64_t v);  /* counters and gauges */
void tf_metric_set(tf_metric *g, int64_t v);  /* gauges */
void tf_metric_setf(tf_metric *g, double v);  /* gauges holding a double */
int64_t tf_metric_get(const tf_metric *c);
void tf_metric_observe(tf_metric *h, double v); /* histograms */

/* Default latency bounds in seconds (0.0005 .. 10). */
extern const double tf_latency_bounds[];
extern const int tf_latency_nbounds;

/* Renders everything; returns a malloc'd NUL-terminated string (caller frees)
 * and its length in *len. */
char *tf_metrics_render(tf_metrics *m, size_t *len);

#endif
