// Signals and their track record (DESIGN.md section 7). The endpoints may be
// missing on this server (they come with the signals issue): then the view
// says so in words and opens no stream. Clicking a signal (or Enter on it)
// opens its horizons (GET /api/v1/signals/{id}) and its price path after the
// trigger (REST 1m bars from the trigger bar to its longest horizon).

import { createChart, ColorType, IChartApi, LineSeries, UTCTimestamp } from 'lightweight-charts';
import { fetchBars } from './rest';
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

interface Horizon {
  status: string;
  return_pct: number | null;
  mfe_pct: number | null;
  mae_pct: number | null;
}

const HORIZON_MS: Record<string, number> = { '1m': 60e3, '5m': 300e3, '15m': 900e3, '1h': 3600e3, '4h': 4 * 3600e3, '1d': 86400e3 };

interface PerfRow {
  [k: string]: unknown;
}

export class Signals {
  available: boolean | null = null;
  items: Signal[] = [];
  perf: PerfRow[] = [];
  detail: { id: string; returns: Record<string, Horizon>; path: number } | null = null;
  private es: EventSource | null = null;
  private chart: IChartApi | null = null;

  constructor() {
    const again = debounce(() => this.refresh(), 300);
    for (const id of ['s-rule', 's-ticker', 's-dir', 's-group', 's-horizon']) $(id).addEventListener('input', again);
    const list = $('s-list');
    const pick = (ev: Event) => {
      const li = (ev.target as HTMLElement).closest('li[data-id]');
      if (li) this.openDetail(li.getAttribute('data-id') ?? '');
    };
    list.addEventListener('click', pick);
    list.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        pick(ev);
      }
    });
  }

  async refresh() {
    const q = new URLSearchParams({ limit: '100' });
    const rule = $<HTMLInputElement>('s-rule').value.trim().toUpperCase();
    const tk = $<HTMLInputElement>('s-ticker').value.trim().toUpperCase();
    const dir = $<HTMLSelectElement>('s-dir').value;
    if (rule) q.set('rule', rule);
    if (tk) q.set('ticker', tk);
    if (dir) q.set('direction', dir);
    this.items = [];
    this.perf = [];
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
    // the same filters as the list, so the table speaks of what is listed
    const q = new URLSearchParams({ group_by: g, horizon: hz });
    for (const [id, k] of [['s-rule', 'rule'], ['s-ticker', 'ticker'], ['s-dir', 'direction']]) {
      const v = $<HTMLInputElement>(id).value.trim().toUpperCase();
      if (v) q.set(k, k === 'direction' ? v.toLowerCase() : v);
    }
    const r = await api<{ data: PerfRow[] }>(`/api/v1/signals/performance?${q}`);
    const box = $('s-perf');
    if (!r.ok) {
      box.replaceChildren(h('p', { class: 'muted' }, `Track record: ${r.message}.`));
      return;
    }
    const rows = r.data.data ?? [];
    this.perf = rows;
    if (!rows.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'No finished horizons yet.'));
      return;
    }
    const cols = Object.keys(rows[0]);
    box.replaceChildren(
      h('table', { class: 'grid', 'aria-label': 'Track record' },
        h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', {}, c.replace(/_/g, ' '))), h('th', {}, 'hit rate (chart)'))),
        h('tbody', {}, ...rows.map((row) => h('tr', {}, ...cols.map((c) => h('td', {}, fmtCell(row[c]))), h('td', {}, hitBar(row)))))),
    );
  }

  // The signal's horizons and the price path after it, under the list's
  // heading (one at a time).
  async openDetail(id: string) {
    const box = $('s-detail');
    box.hidden = false;
    box.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    const r = await api<Signal & { returns?: Record<string, Horizon> }>(`/api/v1/signals/${encodeURIComponent(id)}`);
    if (!r.ok) {
      box.replaceChildren(h('p', {}, `Signal ${id}: ${r.message}.`));
      return;
    }
    const s = r.data;
    const ret = s.returns ?? {};
    const hz = Object.keys(ret).sort((a, b) => (HORIZON_MS[a] ?? 0) - (HORIZON_MS[b] ?? 0));
    const pct = (v: number | null) => (v == null ? '–' : `${v >= 0 ? '+' : ''}${v.toFixed(3)}%`);
    const chartEl = h('div', { class: 'chart small', role: 'img', 'aria-label': `Price of ${s.ticker} after the signal` });
    box.replaceChildren(
      h('h2', { id: 's-detail-title' }, `${s.rule.replace(/_/g, ' ').toLowerCase()} on ${s.ticker} (${s.direction}) at ${s.price}, bar ${fmtTime(Date.parse(s.bar_start), true)} UTC`),
      hz.length
        ? h('table', { class: 'grid', 'aria-label': 'Horizons of this signal' },
          h('thead', {}, h('tr', {}, h('th', {}, 'horizon'), h('th', {}, 'status'), h('th', {}, 'return'), h('th', {}, 'MFE'), h('th', {}, 'MAE'))),
          h('tbody', {}, ...hz.map((k) => h('tr', { 'data-h': k }, h('td', {}, k), h('td', {}, ret[k].status), h('td', {}, pct(ret[k].return_pct)), h('td', {}, pct(ret[k].mfe_pct)), h('td', {}, pct(ret[k].mae_pct))))))
        : h('p', { class: 'muted' }, 'No horizons yet (they are filled as time passes).'),
      chartEl,
    );
    this.detail = { id, returns: ret, path: 0 };
    // price path: 1m bars from the trigger bar through the longest horizon
    const t0 = Date.parse(s.bar_start);
    const span = Math.max(3600e3, ...hz.map((k) => HORIZON_MS[k] ?? 0));
    const end = Math.min(Date.now(), t0 + span + 60e3);
    let bars;
    try {
      bars = await fetchBars(s.ticker, 60000, t0, end);
    } catch (e) {
      chartEl.replaceWith(h('p', { class: 'muted' }, `Price path: ${String((e as Error).message ?? e)}.`));
      return;
    }
    if (this.detail?.id !== id) return;
    if (this.chart) this.chart.remove();
    this.chart = createChart(chartEl, {
      layout: { background: { type: ColorType.Solid, color: '#161b22' }, textColor: '#d8dee4' },
      grid: { vertLines: { color: '#21262d' }, horzLines: { color: '#21262d' } },
      timeScale: { timeVisible: true, secondsVisible: false },
      autoSize: true,
    });
    const line = this.chart.addSeries(LineSeries, { color: s.direction === 'long' ? '#26a69a' : '#ef5350', lineWidth: 2 });
    line.setData(bars.map((b) => ({ time: (b.t / 1000) as UTCTimestamp, value: b.close })));
    line.createPriceLine({ price: Number(s.price), color: '#8b949e', lineStyle: 2, lineWidth: 1, title: 'trigger' });
    this.chart.timeScale().fitContent();
    this.detail.path = bars.length;
  }

  private openStream() {
    const es = new EventSource('/api/v1/signals/stream');
    this.es = es;
    es.addEventListener('signal', (ev) => {
      try {
        const sg = JSON.parse((ev as MessageEvent).data) as Signal;
        // the live stream carries every signal: keep the list to its filters
        const rule = $<HTMLInputElement>('s-rule').value.trim().toUpperCase();
        const tk = $<HTMLInputElement>('s-ticker').value.trim().toUpperCase();
        const dir = $<HTMLSelectElement>('s-dir').value;
        if ((rule && !rule.split(',').includes(sg.rule)) || (tk && !tk.split(',').includes(sg.ticker)) || (dir && dir !== sg.direction)) return;
        if (this.items.some((x) => x.id === sg.id)) return;
        this.items.unshift(sg);
        this.renderList();
      } catch {
        /* skipped */
      }
    });
  }

  private renderList() {
    $('s-list').replaceChildren(
      ...this.items.slice(0, 200).map((s) =>
        h('li', { class: s.direction === 'long' ? 'low' : 'high', 'data-id': s.id, tabindex: '0', role: 'button',
          'aria-label': `${s.rule} on ${s.ticker}, ${s.direction}: show its track record` },
          h('div', {}, `${s.rule.replace(/_/g, ' ').toLowerCase()} on ${s.ticker} (${s.direction}) at ${s.price}, bar ${fmtTime(Date.parse(s.bar_start), true)} UTC` +
            (typeof s.score === 'number' ? `, score ${s.score}` : '')),
          h('div', { class: 'ev' }, Object.entries(s.indicators ?? {}).map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(3) : v}`).join(' · ')))),
    );
  }
}

// The hit rate as a bar with its Wilson 95% interval drawn as a whisker
// (the track record "as a chart", one row per group, readable as text too).
function hitBar(row: PerfRow): HTMLElement {
  const hr = typeof row.hit_rate === 'number' ? row.hit_rate : NaN;
  const ci = Array.isArray(row.hit_rate_ci95) ? (row.hit_rate_ci95 as number[]) : [NaN, NaN];
  const pct = (v: number) => `${Math.max(0, Math.min(100, v * 100)).toFixed(1)}%`;
  if (!isFinite(hr)) return h('span', { class: 'muted' }, '–');
  const label = `hit rate ${pct(hr)}, 95% interval ${pct(ci[0])} to ${pct(ci[1])}`;
  return h('div', { class: 'hitbar', role: 'img', 'aria-label': label, title: label },
    h('div', { class: 'fill', style: `width:${pct(hr)}` }),
    isFinite(ci[0]) && isFinite(ci[1]) ? h('div', { class: 'ci', style: `left:${pct(ci[0])};width:${pct(ci[1] - ci[0])}` }) : '',
    h('div', { class: 'half' }));
}

function fmtCell(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (Array.isArray(v)) return v.map(fmtCell).join('–');
  if (v && typeof v === 'object') return JSON.stringify(v);
  return String(v ?? '');
}
