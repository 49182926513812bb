// Signals and their track record (DESIGN.md section 7). The endpoints may be
// missing on this server (they come with the signals issue): then the view
// says so in words and opens no stream.

import { $, api, debounce, fmtTime, h } from './util';

interface Signal {
  id: string;
  rule: string;
  direction: string;
  ticker: string;
  interval?: string;
  bar_start: string;
  price: string;
  score?: number;
  indicators?: Record<string, number>;
}

interface PerfRow {
  [k: string]: unknown;
}

export class Signals {
  available: boolean | null = null;
  items: Signal[] = [];
  private es: EventSource | null = null;

  constructor() {
    const again = debounce(() => this.refresh(), 300);
    for (const id of ['s-rule', 's-ticker', 's-dir', 's-group', 's-horizon']) $(id).addEventListener('input', again);
  }

  async refresh() {
    const q = new URLSearchParams({ limit: '100' });
    const rule = $<HTMLInputElement>('s-rule').value.trim().toUpperCase();
    const tk = $<HTMLInputElement>('s-ticker').value.trim().toUpperCase();
    const dir = $<HTMLSelectElement>('s-dir').value;
    if (rule) q.set('rule', rule);
    if (tk) q.set('ticker', tk);
    if (dir) q.set('direction', dir);
    const r = await api<{ data: Signal[] }>(`/api/v1/signals?${q}`);
    const st = $('s-status');
    if (!r.ok) {
      this.available = r.missing ? false : this.available;
      st.textContent = r.missing
        ? 'Signals are not available on this server (it has no /api/v1/signals yet).'
        : `Signals: ${r.message}.`;
      $('s-list').replaceChildren();
      $('s-perf').replaceChildren(h('p', { class: 'muted' }, r.missing ? 'Track record is not available on this server.' : ''));
      return;
    }
    this.available = true;
    this.items = r.data.data ?? [];
    st.textContent = `${this.items.length} signals.`;
    this.renderList();
    this.loadPerf();
    if (!this.es) this.openStream();
  }

  private async loadPerf() {
    const g = $<HTMLSelectElement>('s-group').value;
    const hz = $<HTMLSelectElement>('s-horizon').value;
    const r = await api<{ data: PerfRow[] }>(`/api/v1/signals/performance?group_by=${g}&horizon=${hz}`);
    const box = $('s-perf');
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'muted' }, `Track record: ${r.message}.`));
      return;
    }
    const rows = r.data.data ?? [];
    if (!rows.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'No finished horizons yet.'));
      return;
    }
    const cols = Object.keys(rows[0]);
    box.replaceChildren(
      h('table', { class: 'grid', 'aria-label': 'Track record' },
        h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', {}, c.replace(/_/g, ' '))))),
        h('tbody', {}, ...rows.map((row) => h('tr', {}, ...cols.map((c) => h('td', {}, fmtCell(row[c]))))))),
    );
  }

  private openStream() {
    const es = new EventSource('/api/v1/signals/stream');
    this.es = es;
    es.addEventListener('signal', (ev) => {
      try {
        this.items.unshift(JSON.parse((ev as MessageEvent).data) as Signal);
        this.renderList();
      } catch {
        /* skipped */
      }
    });
  }

  private renderList() {
    $('s-list').replaceChildren(
      ...this.items.slice(0, 200).map((s) =>
        h('li', { class: s.direction === 'long' ? 'low' : 'high' },
          h('div', {}, `${s.rule.replace(/_/g, ' ').toLowerCase()} on ${s.ticker} (${s.direction}) at ${s.price}, bar ${fmtTime(Date.parse(s.bar_start), true)} UTC` +
            (typeof s.score === 'number' ? `, score ${s.score}` : '')),
          h('div', { class: 'ev' }, Object.entries(s.indicators ?? {}).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(3) : v}`).join(' · ')))),
    );
  }
}

function fmtCell(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (Array.isArray(v)) return v.map(fmtCell).join('–');
  if (v && typeof v === 'object') return JSON.stringify(v);
  return String(v ?? '');
}
