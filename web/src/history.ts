// History explorer: ticker, range, interval; pages through next_cursor so a
// long range (30 days of 1m bars = 43,200 rows) arrives whole; a chart of all
// of it, a paged table, and CSV from the API's own CSV stream (fetch with
// Accept: text/csv, since a link cannot set Accept).

import { createChart, CandlestickSeries, ColorType, IChartApi, ISeriesApi, UTCTimestamp } from 'lightweight-charts';
import { aggregateTrades, Bar, fromRest, RestBar, RestTrade } from './bars';
import { fetchAll } from './rest';
import { $, fmtInt, h } from './util';

const PAGE = 200;

export class History {
  rows: (RestBar | RestTrade)[] = [];
  bars: Bar[] = [];
  pages = 0;
  done = false;
  private page = 0;
  private chart: IChartApi | null = null;
  private series: ISeriesApi<'Candlestick'> | null = null;
  private gen = 0;
  private interval = '1m';

  constructor() {
    const end = new Date();
    const start = new Date(end.getTime() - 86400e3);
    $<HTMLInputElement>('h-start').value = local(start);
    $<HTMLInputElement>('h-end').value = local(end);
    $('h-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.load();
    });
    $('h-csv').addEventListener('click', () => this.csv());
    $('h-prev').addEventListener('click', () => this.show(this.page - 1));
    $('h-next').addEventListener('click', () => this.show(this.page + 1));
  }

  setTicker(t: string) {
    const i = $<HTMLInputElement>('h-ticker');
    if (!i.value) i.value = t;
  }

  private params(): Record<string, string> | null {
    const tk = $<HTMLInputElement>('h-ticker').value.trim().toUpperCase();
    const s = $<HTMLInputElement>('h-start').value;
    const e = $<HTMLInputElement>('h-end').value;
    if (!tk || !s || !e) {
      $('h-status').textContent = 'Give a ticker, a start and an end.';
      return null;
    }
    // datetime-local is local time; the API takes UTC ISO times
    return {
      ticker: tk,
      start: new Date(s).toISOString(),
      end: new Date(e).toISOString(),
      interval: $<HTMLSelectElement>('h-interval').value,
    };
  }

  async load(p: Record<string, string> | null = this.params()) {
    if (!p) return;
    const g = ++this.gen;
    this.done = false;
    this.interval = p.interval;
    const st = $('h-status');
    st.textContent = 'Loading…';
    try {
      const { rows, pages } = await fetchAll<RestBar | RestTrade>(p, {
        onPage: (n) => g === this.gen && (st.textContent = `Loading… ${fmtInt(n)} rows`),
        signal: () => g === this.gen,
      });
      if (g !== this.gen) return;
      this.rows = rows;
      this.pages = pages;
      this.bars = p.interval === 'raw' ? aggregateTrades(rows as RestTrade[], 60000) : (rows as RestBar[]).map(fromRest);
      st.textContent = `${fmtInt(rows.length)} ${p.interval === 'raw' ? 'trades' : `${p.interval} bars`} in ${pages} page${pages === 1 ? '' : 's'}, whole.`;
      this.drawChart();
      this.show(0);
      this.done = true;
    } catch (e) {
      if (g !== this.gen) return;
      st.textContent = `Could not load history: ${e instanceof Error ? e.message : String(e)}.`;
    }
  }

  // Called when the view becomes visible: the chart needs a laid-out box.
  shown() {
    if (this.bars.length) this.drawChart();
  }

  private drawChart() {
    const el = $('h-chart');
    if (el.offsetParent === null) return; // hidden: drawn when shown
    if (!this.chart) {
      this.chart = createChart(el, {
        autoSize: true,
        layout: { background: { type: ColorType.Solid, color: '#161b22' }, textColor: '#c9d1d9' },
        grid: { vertLines: { color: '#21262d' }, horzLines: { color: '#21262d' } },
        timeScale: { timeVisible: true },
      });
      this.series = this.chart.addSeries(CandlestickSeries, { upColor: '#26a69a', downColor: '#ef5350', borderVisible: false });
    }
    this.series!.setData(this.bars.map((b) => ({ time: (b.t / 1000) as UTCTimestamp, open: b.open, high: b.high, low: b.low, close: b.close })));
    this.chart.timeScale().fitContent();
  }

  private show(page: number) {
    const n = Math.max(1, Math.ceil(this.rows.length / PAGE));
    this.page = Math.min(Math.max(0, page), n - 1);
    const slice = this.rows.slice(this.page * PAGE, (this.page + 1) * PAGE);
    $('h-page').textContent = `rows ${fmtInt(this.page * PAGE + (slice.length ? 1 : 0))}–${fmtInt(this.page * PAGE + slice.length)} of ${fmtInt(this.rows.length)}`;
    const raw = this.interval === 'raw';
    const cols = raw
      ? ['event_time', 'ticker', 'trade_type', 'price', 'quantity', 'id']
      : ['start', 'ticker', 'open', 'high', 'low', 'close', 'volume', 'count'];
    $('h-head').replaceChildren(h('tr', {}, ...cols.map((c) => h('th', { scope: 'col' }, c.replace(/_/g, ' ')))));
    $('h-rows').replaceChildren(
      ...slice.map((r) => h('tr', {}, ...cols.map((c) => h('td', {}, String((r as unknown as Record<string, unknown>)[c] ?? ''))))),
    );
  }

  private async csv() {
    const p = this.params();
    if (!p) return;
    const st = $('h-status');
    st.textContent = 'Preparing CSV…';
    try {
      const res = await fetch(`/api/v1/stock?${new URLSearchParams(p)}`, { headers: { Accept: 'text/csv' } });
      if (!res.ok) {
        st.textContent = `CSV: the server answered ${res.status}.`;
        return;
      }
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `${p.ticker}-${p.interval}.csv` }) as HTMLAnchorElement;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      st.textContent = `CSV ready (${fmtInt(blob.size)} bytes).`;
    } catch {
      st.textContent = 'CSV: the server cannot be reached.';
    }
  }
}

function local(d: Date): string {
  const z = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return z.toISOString().slice(0, 19);
}
