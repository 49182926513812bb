// Pipeline view: /metrics (Prometheus text) parsed every 2 s into rates and
// levels, /ready at a glance, the scheduled jobs when the server has them.

import { $, api, fmtInt, h } from './util';

// name -> sum over every label set (enough for the headline numbers)
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    const key = line.slice(0, sp);
    const v = parseFloat(line.slice(sp + 1));
    if (!isFinite(v)) continue;
    const b = key.indexOf('{');
    const name = b < 0 ? key : key.slice(0, b);
    m.set(name, (m.get(name) ?? 0) + v);
  }
  return m;
}

interface Tile {
  k: string;
  v: (cur: Map<string, number>, rate: (n: string) => number) => string;
}

const TILES: Tile[] = [
  { k: 'ingest, rows/s', v: (_, r) => fmtInt(r('tickflow_ingest_rows_total')) },
  { k: 'CDC events/s', v: (_, r) => fmtInt(r('tickflow_cdc_events_total')) },
  { k: 'CDC lag', v: (c) => `${fmtInt(c.get('tickflow_cdc_lag_ms') ?? NaN)} ms · ${fmtInt(c.get('tickflow_cdc_lag_bytes') ?? NaN)} B` },
  { k: 'bus depth (messages)', v: (c) => fmtInt(c.get('tickflow_bus_topic_depth') ?? NaN) },
  { k: 'processor lag', v: (c) => `${fmtInt(c.get('tickflow_process_lag_ms') ?? NaN)} ms` },
  { k: 'WebSocket clients', v: (c) => fmtInt(c.get('tickflow_ws_clients') ?? NaN) },
  { k: 'SSE clients', v: (c) => fmtInt(c.get('tickflow_sse_clients') ?? NaN) },
  { k: 'HTTP connections', v: (c) => fmtInt(c.get('tickflow_http_connections') ?? NaN) },
  { k: 'anomalies per minute', v: (_, r) => fmtInt(r('tickflow_anomalies_total') * 60) },
  { k: 'signals per minute', v: (c, r) => (c.has('tickflow_signals_total') ? fmtInt(r('tickflow_signals_total') * 60) : 'n/a') },
  { k: 'WS messages/s', v: (_, r) => fmtInt(r('tickflow_ws_messages_sent_total')) },
  { k: 'WS dropped (total)', v: (c) => fmtInt(c.get('tickflow_ws_dropped_total') ?? NaN) },
];

export class Pipeline {
  private prev: { t: number; m: Map<string, number> } | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  last: Map<string, number> | null = null;

  start() {
    if (this.timer) return;
    this.poll();
    this.loadJobs();
    this.timer = setInterval(() => this.poll(), 2000);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async poll() {
    const ready = $('p-ready');
    let text = '';
    try {
      const res = await fetch('/metrics');
      text = res.ok ? await res.text() : '';
      if (!res.ok) throw new Error(String(res.status));
    } catch {
      ready.textContent = 'The server cannot be reached: retrying every 2 s.';
      ready.className = 'ready bad';
      return;
    }
    const m = parseMetrics(text);
    const now = performance.now();
    const p = this.prev;
    const rate = (n: string) => (p ? Math.max(0, ((m.get(n) ?? 0) - (p.m.get(n) ?? 0)) / ((now - p.t) / 1000)) : NaN);
    $('p-tiles').replaceChildren(...TILES.map((t) => h('div', { class: 'tile' }, h('div', { class: 'v' }, t.v(m, rate)), h('div', { class: 'k' }, t.k))));
    this.prev = { t: now, m };
    this.last = m;
    const r = await api<unknown>('/ready');
    const detail = r.ok ? r.data : null;
    ready.className = r.ok ? 'ready ok' : 'ready bad';
    ready.textContent = r.ok
      ? `Ready: PostgreSQL, bus and CDC are up.${detail ? ' ' + summarize(detail) : ''}`
      : r.status === 0 ? 'The server cannot be reached.' : `Not ready: ${r.message}.`;
  }

  private async loadJobs() {
    const box = $('p-jobs');
    const r = await api<{ data?: Job[] } | Job[]>('/api/v1/jobs');
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'muted' }, r.missing ? 'Scheduled jobs are not available on this server.' : `Jobs: ${r.message}.`));
      return;
    }
    const jobs = Array.isArray(r.data) ? r.data : r.data.data ?? [];
    box.replaceChildren(
      h('table', { class: 'grid', 'aria-label': 'Jobs' },
        h('thead', {}, h('tr', {}, h('th', {}, 'job'), h('th', {}, 'schedule'), h('th', {}, 'last run'), h('th', {}, ''))),
        h('tbody', {}, ...jobs.map((j) => {
          const btn = h('button', { 'aria-label': `Run ${j.name} now` }, 'Run now');
          btn.addEventListener('click', async () => {
            const x = await api(`/api/v1/jobs/${encodeURIComponent(j.name)}/run`, { method: 'POST' });
            btn.textContent = x.ok ? 'Started' : `Failed: ${x.message}`;
            setTimeout(() => this.loadJobs(), 1500);
          });
          const last = j.last_run ? `${j.last_run.status ?? ''} ${j.last_run.finished_at ?? j.last_run.started_at ?? ''}` : '–';
          return h('tr', {}, h('td', {}, j.name), h('td', {}, j.cron ?? ''), h('td', {}, last), h('td', {}, btn));
        }))),
    );
  }
}

interface Job {
  name: string;
  cron?: string;
  last_run?: { status?: string; started_at?: string; finished_at?: string };
}

function summarize(d: unknown): string {
  if (!d || typeof d !== 'object') return '';
  const src = (d as { source?: unknown }).source;
  return src ? `Market data source: ${typeof src === 'string' ? src : JSON.stringify(src)}.` : '';
}
