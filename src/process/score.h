/*
 * score.h - scores detected anomalies against the generator's ground truth
 * (tf_anomaly_label, with trade_idx[] already mapped to trade ids), for the
 * detection benchmark and its smaller twin in the test suite.
 *
 * A detection matches a label when the ticker is the same and either a
 * labelled trade id lies in the detection's trade id range or the detection's event time lies within [label - 1 s,
 * label + 5 s] (a rapid move is detected part-way through the walk). A label
 * counts as found when a detection of ITS type matches it; a detection is a
 * true positive when it matches a label of its own type. Detections matching
 * a label of another type land off the diagonal of the confusion table;
 * detections matching no label are false alarms.
 */
#ifndef TF_PROCESS_SCORE_H
#define TF_PROCESS_SCORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event/anomaly.h"
#include "process/rules.h"

typedef struct tf_score {
    /* conf[label type][detected type]; row TF_ANOM_NTYPES = no label (false
     * alarm), column TF_ANOM_NTYPES = missed (label without a detection of
     * its type) */
    int64_t conf[TF_ANOM_NTYPES + 1][TF_ANOM_NTYPES + 1];
    int64_t labels[TF_ANOM_NTYPES], found[TF_ANOM_NTYPES];
    int64_t detections[TF_ANOM_NTYPES], true_pos[TF_ANOM_NTYPES];
    int64_t false_alarms;
    double precision[TF_ANOM_NTYPES], recall[TF_ANOM_NTYPES];
    double min_precision, min_recall; /* over types with labels or detections */
} tf_score;

void tf_score_run(const tf_anomaly_label *labels, size_t nlabels, const tf_anomaly *dets, size_t ndets,
                  tf_score *out);
/* Prints the confusion table and per-type precision / recall. */
void tf_score_print(const tf_score *s, FILE *f);

#endif
