// Pipeline view: /metrics (Prometheus text) parsed every 2 s into rates and
// levels, /ready at a glance (each check), the active market-data source and
// its switches (tickflow_source_* metrics; none = no live providers
// configured), the scheduled jobs with their last runs and a button to run
// one (GET /api/v1/jobs, POST /api/v1/jobs/{name}/run), refreshed every 10 s.

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

// name -> [{source label or '', value}] for the per-source metrics
export function metricsBy(text: string, prefix: string, label: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const re = new RegExp(`${label}="([^"]*)"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp);
    const b = key.indexOf('{');
    const name = b < 0 ? key : key.slice(0, b);
    const lv = b < 0 ? '' : (re.exec(key.slice(b))?.[1] ?? '');
    const v = parseFloat(line.slice(sp + 1));
    if (!isFinite(v)) continue;
    let m = out.get(lv);
    if (!m) out.set(lv, (m = new Map()));
    m.set(name, v);
  }
  return out;
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
  private ticks = 0;
  last: Map<string, number> | null = null;
  source: { active: string; sources: string[]; switches: number } | null = null;
  ready: { ready: boolean; checks: Record<string, { ready: boolean; detail?: string }> } | null = null;
  jobs: Job[] | null = null;

  start() {
    if (this.timer) return;
    this.poll();
    this.loadJobs();
    this.timer = setInterval(() => {
      this.poll();
      if (++this.ticks % 5 === 0) this.loadJobs();
    }, 2000);
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
    this.renderSource(text, m);
    const now = performance.now();
    const p = this.prev;
    const rate = (n: string) => (p ? Math.max(0, ((m.get(n) ?? 0) - (p.m.get(n) ?? 0)) / ((now - p.t) / 1000)) : NaN);
    $('p-tiles').replaceChildren(...TILES.map((t) => h('div', { class: 'tile' }, h('div', { class: 'v' }, t.v(m, rate)), h('div', { class: 'k' }, t.k))));
    this.prev = { t: now, m };
    this.last = m;
    // /ready answers 503 with the same body when a check fails: read it either way
    let rd: Pipeline['ready'] = null;
    try {
      const res = await fetch('/ready');
      rd = (await res.json()) as Pipeline['ready'];
    } catch {
      rd = null;
    }
    this.ready = rd;
    if (!rd || !rd.checks) {
      ready.className = 'ready bad';
      ready.textContent = 'The server cannot be reached, or /ready did not answer.';
      return;
    }
    const names = Object.keys(rd.checks);
    const bad = names.filter((k) => !rd!.checks[k].ready);
    ready.className = rd.ready ? 'ready ok' : 'ready bad';
    ready.textContent = rd.ready
      ? `Ready: ${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} up.`
      : `Not ready: ${bad.map((k) => `${k} (${rd!.checks[k].detail || 'down'})`).join(', ') || 'the server is stopping'}.`;
    $('p-checks').replaceChildren(...names.map((k) => h('li', { class: rd!.checks[k].ready ? 'up' : 'down' },
      `${rd!.checks[k].ready ? '✓' : '✗'} ${k}${rd!.checks[k].detail ? ': ' + rd!.checks[k].detail : ''}`)));
  }

  // Active source and switches from tickflow_source_{active,up,written_total,
  // failures_total} per source and tickflow_source_switches_total.
  private renderSource(text: string, m: Map<string, number>) {
    const by = metricsBy(text, 'tickflow_source_', 'source');
    const box = $('p-source');
    const sources = [...by.keys()].filter((k) => k !== '');
    const switches = by.get('')?.get('tickflow_source_switches_total') ?? 0;
    if (!sources.length) {
      const flowing = (m.get('tickflow_ingest_rows_total') ?? 0) > 0;
      this.source = { active: flowing ? 'generator' : 'not configured', sources: [], switches: 0 };
      box.replaceChildren(h('p', {}, flowing
        ? 'Market data source: generator (no live providers are configured; trades come from the built-in generator and the API).'
        : 'Market data source: not configured (no live providers; start the generator in Try it).'));
      return;
    }
    const active = sources.find((k) => by.get(k)!.get('tickflow_source_active') === 1) ?? 'none';
    this.source = { active, sources, switches };
    box.replaceChildren(
      h('p', {}, `Market data source: ${active === 'none' ? 'none active (every provider is down)' : active}; ${fmtInt(switches)} switch${switches === 1 ? '' : 'es'} so far.`),
      h('table', { class: 'grid', 'aria-label': 'Market data sources in priority order' },
        h('thead', {}, h('tr', {}, h('th', {}, 'source'), h('th', {}, 'state'), h('th', {}, 'written'), h('th', {}, 'failures'))),
        h('tbody', {}, ...sources.map((k) => {
          const x = by.get(k)!;
          const st = x.get('tickflow_source_active') === 1 ? 'active' : x.get('tickflow_source_up') === 1 ? 'up (standby)' : 'down';
          return h('tr', { class: st === 'active' ? 'sel' : '' }, h('td', {}, k), h('td', {}, st),
            h('td', {}, fmtInt(x.get('tickflow_source_written_total') ?? NaN)), h('td', {}, fmtInt(x.get('tickflow_source_failures_total') ?? NaN)));
        }))),
    );
  }

  private async loadJobs() {
    const box = $('p-jobs');
    const r = await api<{ data?: Job[] } | Job[]>('/api/v1/jobs');
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'muted' }, r.missing ? 'Scheduled jobs are not available on this server.' : `Jobs: ${r.message}.`));
      return;
    }
    const jobs = Array.isArray(r.data) ? r.data : r.data.data ?? [];
    this.jobs = jobs;
    if (!jobs.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'No scheduled jobs on this server.'));
      return;
    }
    const when = (s?: string | null) => (s ? s.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '');
    box.replaceChildren(
      h('table', { class: 'grid', 'aria-label': 'Scheduled jobs and their last runs' },
        h('thead', {}, h('tr', {}, h('th', {}, 'job'), h('th', {}, 'schedule'), h('th', {}, 'next run'), h('th', {}, 'last run'), h('th', {}, 'rows'), h('th', {}, ''))),
        h('tbody', {}, ...jobs.map((j) => {
          const btn = h('button', { 'aria-label': `Run job ${j.name} now` }, 'Run now');
          btn.addEventListener('click', async () => {
            btn.setAttribute('disabled', '');
            const x = await api<{ status?: string; scheduled_for?: string }>(`/api/v1/jobs/${encodeURIComponent(j.name)}/run`, { method: 'POST' });
            btn.removeAttribute('disabled');
            btn.textContent = x.ok ? 'Queued' : 'Run now';
            $('p-jobs-status').textContent = x.ok
              ? `Job ${j.name} queued for ${when(x.data.scheduled_for)}; its run appears below when it finishes.`
              : `Could not run ${j.name}: ${x.message}.`;
            setTimeout(() => this.loadJobs(), 1500);
          });
          const lr = j.last_run;
          const last = lr ? `${lr.status ?? ''} ${when(lr.finished_at ?? lr.started_at ?? lr.scheduled_for)}${lr.detail ? ' · ' + lr.detail : ''}` : 'never';
          return h('tr', { 'data-job': j.name, class: j.failing ? 'down' : '' },
            h('td', { title: j.about ?? '' }, j.name + (j.enabled === false ? ' (disabled)' : '')),
            h('td', {}, `${j.cron ?? ''} ${j.tz ?? ''}`.trim()), h('td', {}, when(j.next_run) || '–'),
            h('td', { class: 'last' }, last), h('td', {}, lr?.rows != null ? fmtInt(lr.rows) : ''), h('td', {}, btn));
        }))),
    );
  }
}

interface Job {
  name: string;
  about?: string;
  enabled?: boolean;
  cron?: string;
  tz?: string;
  next_run?: string | null;
  failing?: boolean;
  last_run?: { status?: string; scheduled_for?: string; started_at?: string; finished_at?: string; rows?: number; detail?: string | null } | null;
}
