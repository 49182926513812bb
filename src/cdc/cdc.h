/*
 * cdc.h - change data capture: a PostgreSQL logical-replication client
 * (pgoutput, proto 1, publication cfg->cdc_publication, slot cfg->cdc_slot)
 * on its own thread, turning each committed row change of stock_trades into
 * a Debezium-style event on bus topic stock.stock_trades (key = ticker,
 * lsn/xid = the transaction's commit LSN and xid).
 *
 * Safety: the slot's flush position is confirmed only through transactions
 * whose every event the bus has delivered (delivery callback), in commit
 * order; with nothing outstanding the latest received WAL position is
 * confirmed so an idle publication never pins WAL. Confirmed positions never
 * move backwards. Lost connections are re-established with backoff and
 * streaming resumes from the slot (at-least-once).
 */
#ifndef TF_CDC_H
#define TF_CDC_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "bus/bus.h"
#include "common/config.h"
#include "common/metrics.h"

typedef struct tf_cdc tf_cdc;

enum {
    TF_CDC_CONNECTING = 0, /* (re)connecting / setting up */
    TF_CDC_SNAPSHOT,       /* emitting the initial snapshot */
    TF_CDC_STREAMING,
    TF_CDC_BACKOFF,        /* lost PostgreSQL or the bus: waiting to retry */
    TF_CDC_STOPPED,
    TF_CDC_FAILED,         /* a fatal error (last_error says which) ended replication */
};

typedef struct tf_cdc_status {
    int state;
    const char *state_name;   /* "connecting", "snapshot", "streaming", "backoff", "stopped", "failed" */
    uint64_t received_lsn;    /* latest WAL position seen from the server */
    uint64_t confirmed_lsn;   /* last flush position sent to the server */
    int64_t lag_bytes;        /* server WAL end - confirmed */
    int lag_exceeded;         /* lag_bytes > cdc.max_lag_bytes: PostgreSQL keeps that much WAL */
    int64_t lag_ms;           /* now - commit time of the oldest unconfirmed transaction */
    int64_t events;           /* events produced since start */
    int64_t outstanding;      /* events produced, not yet delivered */
    char last_error[256];     /* "" when none */
} tf_cdc_status;

/* Connects, checks wal_level, the publication and the slot (creating it if
 * missing; cfg->cdc_snapshot "initial" then emits existing rows as op "r"),
 * and starts streaming on a new thread. Returns NULL with a clear reason in
 * e (class fatal) when PostgreSQL is unreachable or misconfigured. bus and m are
 * borrowed and must outlive the tf_cdc. */
tf_cdc *tf_cdc_start(const tf_config *cfg, tf_bus *bus, tf_metrics *m, tf_err *e);

/* Graceful stop: stops reading, waits (up to timeout_ms) for the bus to
 * deliver what was produced, confirms the last delivered position, closes
 * the replication connection and joins the thread. Status stays readable.
 * Accepts NULL.
 *
 * Shutdown order: tf_cdc_stop, then tf_bus_free (it reports every delivery
 * still due, with TF_BUS_ECLOSED), then tf_cdc_free. Events the bus had not
 * delivered were never confirmed: the slot sends them again. */
void tf_cdc_stop(tf_cdc *c, int timeout_ms);

/* Frees c after tf_cdc_stop, once the bus can call back no more (it was
 * freed, or tf_bus_flush returned 0). Accepts NULL. */
void tf_cdc_free(tf_cdc *c);

void tf_cdc_get_status(tf_cdc *c, tf_cdc_status *out);

/* Has fn(ud) called when replication ends (state failed or stopped): from
 * the CDC thread, or at once from this call when it has already ended. So a
 * command waits for the end instead of polling the state. fn must be quick
 * and safe from any thread (e.g. a write to a pipe); NULL removes it. */
void tf_cdc_on_end(tf_cdc *c, void (*fn)(void *ud), void *ud);

/* "1/2A3B4C" into buf (>= 20 bytes). */
const char *tf_lsn_fmt(uint64_t lsn, char *buf);

#endif
