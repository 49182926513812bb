/*
 * anomaly.h - the anomaly taxonomy every stage shares: the five kinds the
 * processor's rules detect (process/rules.h), the generator injects
 * (tickflow generate) and the API and SSE filter on, with their wire names
 * (DESIGN.md section 3, stock.anomalies "type"); and the ground-truth label
 * of one injected anomaly, which the generator writes and detection is
 * scored against (process/score.h).
 */
#ifndef TF_EVENT_ANOMALY_H
#define TF_EVENT_ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"

typedef enum tf_anomaly_type {
    TF_ANOM_PRICE_SPIKE = 0, /* one trade's return far outside the ticker's volatility */
    TF_ANOM_RAPID_MOVE,      /* price walks several percent within seconds */
    TF_ANOM_VOLUME_SPIKE,    /* one trade's quantity far above normal */
    TF_ANOM_TRADE_BURST,     /* many trades within one second */
    TF_ANOM_OFF_VWAP,        /* a trade far off the volume-weighted price */
    TF_ANOM_NTYPES
} tf_anomaly_type;

const char *tf_anomaly_name(tf_anomaly_type t);       /* "PRICE_SPIKE", ...; "UNKNOWN" out of range */
int tf_anomaly_from_name(const char *s);              /* -1 if unknown */

#define TF_ANOMALY_LABEL_MAX_TRADES 64

/* Ground truth for one injected anomaly. trade_idx[] index into the batch
 * the label was produced with, until the caller maps them to trade ids. */
typedef struct tf_anomaly_label {
    tf_anomaly_type type;
    char ticker[TF_TICKER_MAX];
    int64_t event_us;            /* event time of the first anomalous trade */
    int ntrades;
    int64_t trade_idx[TF_ANOMALY_LABEL_MAX_TRADES];
} tf_anomaly_label;

#endif
