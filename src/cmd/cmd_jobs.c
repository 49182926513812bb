/*
 * cmd_jobs.c - wires the ingest jobs into the api's job interface (api.h
 * tf_api_job_ops): POST /api/v1/stock/generate starts a generator job
 * (ingest/genjob.h), POST /api/v1/stock/replay a replay job
 * (ingest/replay.h). The api validates requests into plain structs; here
 * they become job options on top of the configuration ([generator],
 * [storage]), so the api never includes ingest/ (LAYOUT.md).
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cmd/cmd.h"
#include "ingest/genjob.h"
#include "ingest/replay.h"

struct tf_cmd_jobs {
    const tf_config *cfg;
    tf_metrics *metrics;
};

/* ---- generator --------------------------------------------------------- */

static void *gen_start(void *ud, const void *req, int *code, char *errbuf, size_t errlen)
{
    const struct tf_cmd_jobs *w = ud;
    const tf_api_gen_req *g = req;
    tf_genjob_opts o = tf_genjob_opts_from_config(w->cfg);
    o.count = g->count;
    o.rate = g->rate;
    o.duration_s = g->duration_s;
    o.start_us = g->start_us;
    o.tickers = g->tickers;
    o.seed = g->seed;
    o.anomalies = g->anomalies;
    o.metrics = w->metrics;
    return tf_genjob_start(&o, code, errbuf, errlen);
}

static void gen_status(void *job, tf_api_job_status *out)
{
    tf_genjob_status st;
    tf_genjob_status_get(job, &st);
    memset(out, 0, sizeof *out);
    out->running = st.running;
    out->cancelled = st.cancelled;
    out->error_code = st.error_code;
    out->inserted = st.inserted;
    out->first_id = st.first_id;
    out->last_id = st.last_id;
    out->batches = st.batches;
    out->elapsed_ms = st.elapsed_ms;
    out->labels = st.labels;
    memcpy(out->error, st.error, sizeof out->error);
    memcpy(out->run_id, st.run_id, sizeof out->run_id);
}

static void gen_stop(void *job) { tf_genjob_stop(job); }
static void gen_wait(void *job) { tf_genjob_wait(job, NULL); }
static void gen_free(void *job) { tf_genjob_free(job); }

static const tf_api_job_ops gen_ops = {gen_start, gen_status, gen_stop, gen_wait, gen_free};

/* ---- replay -------------------------------------------------------------- */

static void *rep_start(void *ud, const void *req, int *code, char *errbuf, size_t errlen)
{
    const struct tf_cmd_jobs *w = ud;
    const tf_api_replay_req *r = req;
    tf_replay_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = w->cfg->pg_url;
    o.from_us = r->from_us;
    o.to_us = r->to_us;
    o.tickers = r->tickers;
    o.speed = r->speed;
    o.batch_size = w->cfg->storage_batch_size;
    o.metrics = w->metrics;
    return tf_replay_start(&o, code, errbuf, errlen);
}

static void rep_status(void *job, tf_api_job_status *out)
{
    tf_replay_status st;
    tf_replay_status_get(job, &st);
    memset(out, 0, sizeof *out);
    out->running = st.running;
    out->cancelled = st.cancelled;
    out->error_code = st.error_code;
    out->inserted = st.inserted;
    out->first_id = st.first_id;
    out->last_id = st.last_id;
    out->batches = st.batches;
    out->elapsed_ms = st.elapsed_ms;
    out->read = st.read;
    out->total = st.total;
    out->base_us = st.base_us;
    memcpy(out->error, st.error, sizeof out->error);
    memcpy(out->run_id, st.run_id, sizeof out->run_id);
}

static void rep_stop(void *job) { tf_replay_stop(job); }
static void rep_wait(void *job) { tf_replay_wait(job, NULL); }
static void rep_free(void *job) { tf_replay_free(job); }

static const tf_api_job_ops rep_ops = {rep_start, rep_status, rep_stop, rep_wait, rep_free};

tf_cmd_jobs *tf_cmd_jobs_wire(tf_api *api, const tf_config *cfg, tf_metrics *m)
{
    tf_cmd_jobs *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cfg = cfg;
    w->metrics = m;
    tf_api_set_job_ops(api, TF_API_JOB_GENERATE, &gen_ops, w);
    tf_api_set_job_ops(api, TF_API_JOB_REPLAY, &rep_ops, w);
    return w;
}

void tf_cmd_jobs_free(tf_cmd_jobs *w)
{
    free(w);
}
