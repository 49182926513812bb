/*
 * score.c - detection scoring against generator labels (see score.h).
 * O(labels x detections): fine for the few thousand of a benchmark run.
 */
#include "process/score.h"

#include <stdlib.h>
#include <string.h>

#define MATCH_BEFORE_US 1000000LL
#define MATCH_AFTER_US 5000000LL

static int matches(const tf_anomaly_label *l, const tf_anomaly *d)
{
    if (strcmp(l->ticker, d->ticker) != 0) return 0;
    /* the detection's trades span [lo, hi] (a rapid move lists its first
     * and last trade) */
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int i = 0; i < d->ntrades; i++) {
        if (d->trade_ids[i] < lo) lo = d->trade_ids[i];
        if (d->trade_ids[i] > hi) hi = d->trade_ids[i];
    }
    for (int j = 0; j < l->ntrades; j++)
        if (l->trade_idx[j] >= lo && l->trade_idx[j] <= hi) return 1;
    return d->event_us >= l->event_us - MATCH_BEFORE_US && d->event_us <= l->event_us + MATCH_AFTER_US;
}

void tf_score_run(const tf_anomaly_label *labels, size_t nl, const tf_anomaly *dets, size_t nd, tf_score *s)
{
    memset(s, 0, sizeof *s);
    const int NONE = TF_ANOM_NTYPES;
    char *found = calloc(nl ? nl : 1, 1);
    for (size_t i = 0; i < nl; i++) s->labels[labels[i].type]++;
    for (size_t k = 0; k < nd; k++) {
        const tf_anomaly *d = &dets[k];
        s->detections[d->type]++;
        long same = -1, other = -1;
        for (size_t i = 0; i < nl && same < 0; i++) {
            if (!matches(&labels[i], d)) continue;
            if (labels[i].type == d->type) same = (long)i;
            else if (other < 0) other = (long)i;
        }
        if (same >= 0) {
            s->true_pos[d->type]++;
            if (!found[same]) s->conf[d->type][d->type]++;
            found[same] = 1;
        } else if (other >= 0) {
            s->conf[labels[other].type][d->type]++;
        } else {
            s->conf[NONE][d->type]++;
            s->false_alarms++;
        }
    }
    for (size_t i = 0; i < nl; i++) {
        if (found[i]) s->found[labels[i].type]++;
        else s->conf[labels[i].type][NONE]++;
    }
    free(found);
    s->min_precision = s->min_recall = 1.0;
    for (int t = 0; t < TF_ANOM_NTYPES; t++) {
        s->precision[t] = s->detections[t] ? (double)s->true_pos[t] / (double)s->detections[t] : 1.0;
        s->recall[t] = s->labels[t] ? (double)s->found[t] / (double)s->labels[t] : 1.0;
        if (s->precision[t] < s->min_precision) s->min_precision = s->precision[t];
        if (s->recall[t] < s->min_recall) s->min_recall = s->recall[t];
    }
}

void tf_score_print(const tf_score *s, FILE *f)
{
    static const char *abbr[] = {"SPIKE", "RAPID", "VOLUME", "BURST", "OFFVWAP", "none"};
    fprintf(f, "%-14s", "label\\detected");
    for (int c = 0; c <= TF_ANOM_NTYPES; c++) fprintf(f, " %8s", c == TF_ANOM_NTYPES ? "missed" : abbr[c]);
    fprintf(f, "\n");
    for (int r = 0; r <= TF_ANOM_NTYPES; r++) {
        fprintf(f, "%-14s", r == TF_ANOM_NTYPES ? "(no label)" : tf_anomaly_name((tf_anomaly_type)r));
        for (int c = 0; c <= TF_ANOM_NTYPES; c++) fprintf(f, " %8lld", (long long)s->conf[r][c]);
        fprintf(f, "\n");
    }
    for (int t = 0; t < TF_ANOM_NTYPES; t++)
        fprintf(f, "%-14s labels %5lld detections %5lld precision %.3f recall %.3f\n",
                tf_anomaly_name((tf_anomaly_type)t), (long long)s->labels[t], (long long)s->detections[t],
                s->precision[t], s->recall[t]);
}
