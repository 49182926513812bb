// Try it: start/stop the generator (POST /api/v1/stock/generate with a rate,
// DELETE .../generate/{id}) and inject labelled anomalies, so a first-time
// user sees everything move within a minute.

import { $, api, fmtInt, h } from './util';

interface GenJob {
  id: number;
  status: string;
  rate: number;
  duration_s: number;
  inserted: number;
}

export class TryIt {
  constructor() {
    $('t-gen').addEventListener('submit', (e) => {
      e.preventDefault();
      this.startGen();
    });
    $('t-inject').addEventListener('submit', (e) => {
      e.preventDefault();
      this.inject();
    });
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

  async refresh() {
    const r = await api<{ data?: GenJob[] } | GenJob[]>('/api/v1/stock/generate');
    const box = $('t-jobs');
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'muted' }, `Generators: ${r.message}.`));
      return;
    }
    const jobs = Array.isArray(r.data) ? r.data : r.data.data ?? [];
    if (!jobs.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'None running.'));
      return;
    }
    box.replaceChildren(
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
        }))),
    );
  }
}
