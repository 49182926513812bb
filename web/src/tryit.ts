// Try it: start/stop the generator (POST /api/v1/stock/generate with a rate,
// DELETE .../generate/{id}), inject labelled anomalies, and replay a stored
// span as new live trades (POST /api/v1/stock/replay {"from","to","speed"},
// listed and stopped through GET/DELETE /api/v1/stock/replay/{id}), so a
// first-time user sees everything move within a minute.

import { $, api, fmtInt, h } from './util';

interface GenJob {
  id: number;
  status: string;
  rate: number;
  duration_s: number;
  inserted: number;
}

interface ReplayJob {
  id: number;
  status: string;
  speed: number | 'max';
  from: string;
  to: string;
  tickers: string[] | null;
  total: number;
  read: number;
  inserted: number;
  error: string | null;
}

type List<T> = { jobs?: T[]; data?: T[] } | T[];
const listOf = <T>(d: List<T>): T[] => (Array.isArray(d) ? d : d.jobs ?? d.data ?? []);

// datetime-local value (UTC, as the page shows every time) <-> ISO
const toLocal = (ms: number) => new Date(ms).toISOString().slice(0, 19);
const utc = (iso: string) => `${iso.slice(0, 19).replace('T', ' ')} UTC`;
const fromLocal = (v: string) => (v ? `${v.length === 16 ? v + ':00' : v}Z` : '');

export class TryIt {
  replays: ReplayJob[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor() {
    $('t-gen').addEventListener('submit', (e) => {
      e.preventDefault();
      this.startGen();
    });
    $('t-inject').addEventListener('submit', (e) => {
      e.preventDefault();
      this.inject();
    });
    $('t-replay').addEventListener('submit', (e) => {
      e.preventDefault();
      this.startReplay();
    });
    // default: the last full hour, a sensible "stored day" stand-in when the
    // server has run for a while; the user picks any span
    const now = Date.now();
    const from = $<HTMLInputElement>('t-r-from');
    const to = $<HTMLInputElement>('t-r-to');
    if (!from.value) from.value = toLocal(now - 3600e3 - (now % 60000));
    if (!to.value) to.value = toLocal(now - (now % 60000));
  }

  private status(t: string) {
    $('t-status').textContent = t;
  }

  private async startGen() {
    const rate = Number($<HTMLInputElement>('t-rate').value);
    const dur = Number($<HTMLInputElement>('t-dur').value);
    const r = await api<GenJob>('/api/v1/stock/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ rate, duration_s: dur }),
    });
    this.status(r.ok ? `Generator ${r.data.id} started at ${fmtInt(rate)} trades/s.` : `Could not start the generator: ${r.message}.`);
    this.refresh();
  }

  private async inject() {
    const count = Number($<HTMLInputElement>('t-count').value);
    const p = Number($<HTMLInputElement>('t-p').value);
    this.status('Injecting…');
    const r = await api<{ inserted: number; elapsed_ms: number }>('/api/v1/stock/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ count, anomalies: p }),
    });
    this.status(r.ok ? `Wrote ${fmtInt(r.data.inserted)} trades with anomalies in ${fmtInt(r.data.elapsed_ms)} ms: watch the Anomalies view.` : `Could not inject: ${r.message}.`);
  }

  private async startReplay() {
    const body: Record<string, unknown> = {
      from: fromLocal($<HTMLInputElement>('t-r-from').value),
      to: fromLocal($<HTMLInputElement>('t-r-to').value),
    };
    const sp = $<HTMLInputElement>('t-r-speed').value.trim();
    body.speed = sp === 'max' ? 'max' : Number(sp || '1');
    const tk = $<HTMLInputElement>('t-r-tickers').value.trim().toUpperCase();
    if (tk) body.tickers = tk.split(/[\s,]+/).filter(Boolean);
    if (!body.to) delete body.to;
    const r = await api<ReplayJob>('/api/v1/stock/replay', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    this.status(r.ok
      ? `Replay ${r.data.id} started: trades from ${utc(r.data.from)} to ${utc(r.data.to)} arrive again as live trades at speed ${r.data.speed}.`
      : `Could not start the replay: ${r.message}.`);
    this.refresh();
  }

  async refresh() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const [g, rp] = await Promise.all([
      api<List<GenJob>>('/api/v1/stock/generate'),
      api<List<ReplayJob>>('/api/v1/stock/replay'),
    ]);
    const box = $('t-jobs');
    if (!g.ok) {
      box.replaceChildren(h('p', { class: 'muted' }, `Generators: ${g.message}.`));
    } else {
      const jobs = listOf(g.data);
      box.replaceChildren(!jobs.length ? h('p', { class: 'muted' }, 'None running.') :
        h('table', { class: 'grid', 'aria-label': 'Generators' },
          h('thead', {}, h('tr', {}, h('th', {}, 'id'), h('th', {}, 'status'), h('th', {}, 'rate/s'), h('th', {}, 'inserted'), h('th', {}, ''))),
          h('tbody', {}, ...jobs.map((j) => {
            const stop = h('button', { 'aria-label': `Stop generator ${j.id}` }, 'Stop');
            stop.addEventListener('click', async () => {
              const x = await api(`/api/v1/stock/generate/${j.id}`, { method: 'DELETE' });
              this.status(x.ok ? `Generator ${j.id} stopped.` : `Could not stop ${j.id}: ${x.message}.`);
              this.refresh();
            });
            return h('tr', {}, h('td', {}, String(j.id)), h('td', {}, j.status), h('td', {}, fmtInt(j.rate)), h('td', {}, fmtInt(j.inserted)), h('td', {}, j.status === 'running' ? stop : ''));
          }))));
    }
    const rbox = $('t-replays');
    if (!rp.ok) {
      rbox.replaceChildren(h('p', { class: 'muted' }, rp.missing ? 'Replay is not available on this server.' : `Replays: ${rp.message}.`));
      return;
    }
    this.replays = listOf(rp.data);
    rbox.replaceChildren(!this.replays.length ? h('p', { class: 'muted' }, 'No replays yet.') :
      h('table', { class: 'grid', 'aria-label': 'Replays' },
        h('thead', {}, h('tr', {}, h('th', {}, 'id'), h('th', {}, 'status'), h('th', {}, 'span'), h('th', {}, 'speed'), h('th', {}, 'written / total'), h('th', {}, ''))),
        h('tbody', {}, ...this.replays.map((j) => {
          const stop = h('button', { 'aria-label': `Stop replay ${j.id}` }, 'Stop');
          stop.addEventListener('click', async () => {
            const x = await api(`/api/v1/stock/replay/${j.id}`, { method: 'DELETE' });
            this.status(x.ok ? `Replay ${j.id} stopped.` : `Could not stop replay ${j.id}: ${x.message}.`);
            this.refresh();
          });
          return h('tr', { 'data-replay': String(j.id) }, h('td', {}, String(j.id)),
            h('td', {}, j.status + (j.error ? `: ${j.error}` : '')),
            h('td', {}, `${j.from.slice(0, 19).replace('T', ' ')} – ${j.to.slice(0, 19).replace('T', ' ')}${j.tickers ? ' ' + j.tickers.join(',') : ''}`),
            h('td', {}, String(j.speed)), h('td', {}, `${fmtInt(j.inserted)} / ${fmtInt(j.total)}`),
            h('td', {}, j.status === 'running' ? stop : ''));
        }))));
    // while something runs, keep its counts moving (only while this view is shown)
    const running = this.replays.some((j) => j.status === 'running');
    if (running && !$('view-try').hidden) this.timer = setTimeout(() => this.refresh(), 2000);
  }
}
