// Market view: candlestick + volume chart of one ticker (history by the
// WebSocket subscribe's "history", resumed by "since" after a reconnect
// (DESIGN.md section 9); REST only against a server without hello; merged
// by bucket start so the seam has no duplicate and no gap), interval and ticker switches in place, the watch
// list (every ticker at 2 s candles) and the time-and-sales tape (raw mode).

import {
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  CrosshairMode,
  HistogramSeries,
  IChartApi,
  ISeriesApi,
  ISeriesMarkersPluginApi,
  SeriesMarker,
  Time,
  UTCTimestamp,
} from 'lightweight-charts';
import { Bar, BarSet, fromRest, Tick } from './bars';
import { Live, Msg } from './live';
import { fetchBars } from './rest';
import { $, api, fmtPrice, fmtSigned, fmtTime, h, num } from './util';

const WATCH_MS = 2000; // not a chart interval, so the chart's (un)subscribes never touch it
// how far back the chart loads, per interval
const WINDOW: Record<number, number> = {
  1000: 5 * 60e3,
  5000: 20 * 60e3,
  60000: 6 * 3600e3,
  300000: 2 * 86400e3,
  3600000: 30 * 86400e3,
};

export interface AnomalyLike {
  id: string;
  type: string;
  ticker: string;
  event_time: string;
  severity: string;
}

interface WatchRow {
  ticker: string;
  open: number;
  last: number;
}

export class Market {
  ticker = '';
  intervalMs = 1000;
  readonly bars = new BarSet();
  loaded = false;
  ticksSeen = 0;
  lastTick: Tick | null = null;
  private gen = 0;
  private buffer: Tick[] | null = null;
  private chart: IChartApi;
  private candles: ISeriesApi<'Candlestick'>;
  private volume: ISeriesApi<'Histogram'>;
  private markersApi: ISeriesMarkersPluginApi<Time>;
  private anomalies: AnomalyLike[] = [];
  markers: SeriesMarker<Time>[] = [];
  private watch = new Map<string, WatchRow>();
  private sortKey: 'ticker' | 'last' | 'chg' | 'pct' = 'ticker';
  private sortDir = 1;
  private wlDirty = false;
  private tape: Msg[] = [];
  private tapeDirty = false;
  private lagMs = NaN;
  private lastTradeAt = 0;
  private refetching = new Set<number>();
  private refetchAgain = new Set<number>();

  // Today's server keeps one candle interval per connection, so the chart,
  // the watch list and the tape each have a socket of their own.
  private live: Live;
  constructor(private lives: { chart: Live; watch: Live; tape: Live }) {
    const live = lives.chart;
    this.live = live;
    const el = $('m-chart');
    this.chart = createChart(el, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: '#161b22' }, textColor: '#c9d1d9', fontSize: 12 },
      grid: { vertLines: { color: '#21262d' }, horzLines: { color: '#21262d' } },
      crosshair: { mode: CrosshairMode.Normal },
      timeScale: { timeVisible: true, secondsVisible: true, borderColor: '#30363d' },
      rightPriceScale: { borderColor: '#30363d' },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: '#26a69a', downColor: '#ef5350', wickUpColor: '#26a69a', wickDownColor: '#ef5350', borderVisible: false,
    });
    this.volume = this.chart.addSeries(HistogramSeries, { priceScaleId: 'vol', priceFormat: { type: 'volume' }, color: '#3b5068' });
    this.chart.priceScale('vol').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
    this.markersApi = createSeriesMarkers(this.candles, []);

    for (const l of [lives.chart, lives.watch, lives.tape]) l.onMessage((m) => this.onMessage(m));
    live.onState((s, info) => {
      if (s === 'open' && info.resumed && !live.hello) this.reload('resumed');
    });
    lives.watch.subscribe('watch', ['*'], WATCH_MS);

    const input = $<HTMLInputElement>('m-ticker');
    input.addEventListener('change', () => this.select(input.value.trim().toUpperCase(), this.intervalMs));
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.select(input.value.trim().toUpperCase(), this.intervalMs);
    });
    const seg = $('m-intervals');
    for (const b of seg.querySelectorAll<HTMLButtonElement>('button')) {
      b.addEventListener('click', () => this.select(this.ticker, Number(b.dataset.ms)));
    }
    seg.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const list = [...seg.querySelectorAll<HTMLButtonElement>('button')];
      const i = list.findIndex((b) => Number(b.dataset.ms) === this.intervalMs);
      const n = list[(i + (e.key === 'ArrowRight' ? 1 : list.length - 1)) % list.length];
      n.focus();
      this.select(this.ticker, Number(n.dataset.ms));
    });
    for (const b of document.querySelectorAll<HTMLButtonElement>('#view-market th button')) {
      b.addEventListener('click', () => {
        const k = b.dataset.sort as Market['sortKey'];
        this.sortDir = this.sortKey === k ? -this.sortDir : k === 'ticker' ? 1 : -1;
        this.sortKey = k;
        this.renderWatch();
      });
    }
    setInterval(() => this.tickUi(), 500);
  }

  // First load: the watch list and symbols, then the first ticker.
  async init(initialTicker: string | null) {
    await this.loadWatch();
    const first = initialTicker || [...this.watch.keys()].sort()[0] || '';
    if (first) this.select(first, this.intervalMs);
    else $('m-status').textContent = 'No trades yet: start the generator in "Try it".';
    this.loadSymbols();
  }

  private async loadWatch() {
    // session open = the day's first price: today's 1d bar per ticker
    const r = await api<{ data: { ticker: string; open: string; close: string; start: string }[] }>(
      '/api/v1/stock?interval=1d&duration=1d&limit=10000',
    );
    if (!r.ok) {
      $('m-status').textContent = `Watch list: ${r.message}.`;
      return;
    }
    // rows are in time order, so the last one per ticker is today's
    for (const b of r.data.data) this.watch.set(b.ticker, { ticker: b.ticker, open: num(b.open), last: num(b.close) });
    this.wlDirty = true;
  }

  private async loadSymbols() {
    const r = await api<unknown>('/api/v1/symbols');
    let names: string[] = [];
    if (r.ok) {
      const d = r.data as { data?: { ticker?: string; symbol?: string }[] } | { ticker?: string }[];
      const arr = Array.isArray(d) ? d : d?.data ?? [];
      names = arr.map((x) => String((x as { ticker?: string; symbol?: string }).ticker ?? (x as { symbol?: string }).symbol ?? '')).filter(Boolean);
    }
    // without /api/v1/symbols (not on every server) the tickers seen trading do
    if (!names.length) names = [...this.watch.keys()];
    const dl = $('m-symbols');
    dl.replaceChildren(...names.sort().map((n) => h('option', { value: n })));
  }

  // Changes the chart's subscription in place: same socket, new pair.
  select(ticker: string, intervalMs: number) {
    if (!ticker || !/^[A-Z0-9.\-]{1,15}$/.test(ticker)) {
      $('m-status').textContent = 'A ticker is 1-15 characters of A-Z, 0-9, ".", "-".';
      return;
    }
    if (ticker === this.ticker && intervalMs === this.intervalMs && this.gen > 0) return;
    const tickerChanged = ticker !== this.ticker;
    this.ticker = ticker;
    this.intervalMs = intervalMs;
    $<HTMLInputElement>('m-ticker').value = ticker;
    for (const b of document.querySelectorAll<HTMLButtonElement>('#m-intervals button'))
      b.setAttribute('aria-checked', String(Number(b.dataset.ms) === intervalMs));
    this.chart.applyOptions({ timeScale: { secondsVisible: intervalMs < 60000 } });
    this.live.subscribe('chart', [ticker], intervalMs, (resume) => {
      const last = this.bars.all();
      // resume from the end of the last complete bar; else ask for history
      if (resume && last.length > 1) return { since: new Date(last[last.length - 2].t + intervalMs).toISOString() };
      return { history: 500 };
    });
    if (tickerChanged) {
      this.tape = [];
      this.tapeDirty = true;
      $('tape-ticker').textContent = ticker;
      this.lives.tape.subscribe('tape', [ticker], 0);
    }
    this.renderWatch();
    this.reload('switch');
  }

  // History, then live: ticks arriving while REST pages load are buffered
  // and applied after, each replacing the REST bar of its bucket.
  async reload(why: 'switch' | 'resumed') {
    const g = ++this.gen;
    const ticker = this.ticker;
    const iv = this.intervalMs;
    this.loaded = false;
    this.buffer = this.live.hello ? null : [];
    if (why === 'switch') {
      this.bars.clear();
      this.candles.setData([]);
      this.volume.setData([]);
    }
    if (this.live.hello) {
      // section 9 server: history comes on the socket (history:true ticks,
      // then history_end), so no REST round trip
      $('m-status').textContent = `Loading ${ticker} history…`;
      return;
    }
    $('m-status').textContent = why === 'resumed' ? `Filling the gap in ${ticker}…` : `Loading ${ticker} history…`;
    const now = Date.now();
    const start = Math.floor((now - WINDOW[iv]) / iv) * iv;
    try {
      const bars = await fetchBars(ticker, iv, start, null, () => g === this.gen);
      if (g !== this.gen) return;
      // after an outage the bars we had stay; REST fills the gap and
      // replaces the buckets it overlaps
      for (const b of bars) this.bars.put(b);
      const buf = this.buffer ?? [];
      this.buffer = null;
      for (const t of buf) this.applyTick(t, false);
      this.redraw();
      this.fitFew();
      this.loaded = true;
      $('m-status').textContent = `${ticker} · ${label(iv)} · ${this.bars.size} bars, live`;
    } catch (e) {
      if (g !== this.gen) return;
      this.buffer = null;
      const msg = e instanceof Error ? e.message : String(e);
      $('m-status').textContent = `Could not load ${ticker} history: ${msg}. Showing live candles only.`;
      this.loaded = true;
    }
  }

  private onMessage(m: Msg) {
    if (m.type === 'tick') {
      const t = m as unknown as Tick;
      if (t.interval_ms === WATCH_MS) this.onWatchTick(t);
      if (t.ticker !== this.ticker || t.interval_ms !== this.intervalMs) return;
      this.ticksSeen++;
      this.lastTick = t;
      if (this.buffer) this.buffer.push(t);
      else this.applyTick(t, true);
    } else if (m.type === 'trade') {
      const c = Number(m.commit_ts_ms);
      if (c > 0) {
        const l = Date.now() - c;
        this.lagMs = isFinite(this.lagMs) ? this.lagMs * 0.8 + l * 0.2 : l;
        this.lastTradeAt = Date.now();
      }
      if (m.ticker === this.ticker) {
        this.tape.unshift(m);
        if (this.tape.length > 60) this.tape.length = 60;
        this.tapeDirty = true;
      }
    } else if (m.type === 'history_end') {
      // the end of the chart's own history (not of an earlier subscription's)
      const tk = Array.isArray(m.tickers) ? (m.tickers as string[]) : [];
      if (m.interval_ms !== this.intervalMs || !tk.includes(this.ticker)) return;
      this.loaded = true;
      this.redraw();
      this.fitFew();
      $('m-status').textContent = `${this.ticker} · ${label(this.intervalMs)} · ${this.bars.size} bars, live`;
    } else if (m.type === 'lagged') {
      // the server skipped us ahead: candles may be missing, so refill
      if (!this.live.hello) this.reload('resumed');
    } else if (m.type === 'error') {
      $('m-status').textContent = `Server: ${String(m.message ?? m.code)}`;
    }
  }

  private applyTick(t: Tick, draw: boolean) {
    const b = fromRest(t);
    const had = this.bars.get(b.t);
    // A candle never loses trades, so one with fewer than the bar we have
    // is incomplete: partial (the server's aggregator started inside the
    // bucket) or built from trades redelivered after a server restart.
    // Keep our bar and refill the bucket from REST once it has settled.
    if (t.partial || (had && b.count < had.count)) {
      this.refetch(b.t);
      if (had && had.count >= b.count) return;
    }
    const how = this.bars.put(b);
    if (!draw) return;
    if (how === 'append') {
      this.candles.update(candle(b));
      this.volume.update(vol(b));
    } else {
      this.redraw();
    }
  }

  private async refetch(t: number) {
    // one at a time per bucket; a partial candle that comes meanwhile may
    // mean trades the running read missed, so it reads once more after
    if (this.refetching.has(t)) {
      this.refetchAgain.add(t);
      return;
    }
    this.refetching.add(t);
    const g = this.gen, iv = this.intervalMs;
    // the bucket's last trades may still be on their way through CDC
    await new Promise((r) => setTimeout(r, Math.min(5000, 1000 + 3 * (isFinite(this.lagMs) ? this.lagMs : 0))));
    try {
      const bars = await fetchBars(this.ticker, iv, t, t + iv, () => g === this.gen);
      if (g !== this.gen) return;
      for (const b of bars) if (b.t === t) this.bars.put(b);
      this.redraw();
    } catch {
      /* the bar stays as the server's candle had it */
    } finally {
      this.refetching.delete(t);
      if (this.refetchAgain.delete(t) && g === this.gen) this.refetch(t);
    }
  }

  // A short history (10 to 120 bars: a server that just started) fills the chart's width
  // instead of sitting in its right quarter; a long one keeps the default
  // spacing, scrolled to the newest bar.
  private fitFew() {
    if (this.bars.size >= 10 && this.bars.size < 120) this.chart.timeScale().fitContent();
  }

  private redraw() {
    const all = this.bars.all();
    this.candles.setData(all.map(candle));
    this.volume.setData(all.map(vol));
    this.drawMarkers();
  }

  setAnomalies(list: AnomalyLike[]) {
    this.anomalies = list;
    this.drawMarkers();
  }

  private drawMarkers() {
    const iv = this.intervalMs;
    const ms: SeriesMarker<Time>[] = [];
    for (const a of this.anomalies) {
      if (a.ticker !== this.ticker) continue;
      const t = Math.floor(Date.parse(a.event_time) / iv) * iv;
      ms.push({
        time: (t / 1000) as UTCTimestamp,
        position: 'aboveBar',
        color: a.severity === 'high' ? '#ef5350' : '#d29922',
        shape: 'arrowDown',
        text: a.type.replace(/_/g, ' ').toLowerCase(),
        id: a.id,
      });
    }
    ms.sort((x, y) => (x.time as number) - (y.time as number));
    this.markers = ms;
    this.markersApi.setMarkers(ms);
  }

  private onWatchTick(t: Tick) {
    const r = this.watch.get(t.ticker);
    if (r) r.last = num(t.close);
    else this.watch.set(t.ticker, { ticker: t.ticker, open: num(t.open), last: num(t.close) });
    this.wlDirty = true;
  }

  private tickUi() {
    if (this.wlDirty) this.renderWatch();
    if (this.tapeDirty) this.renderTape();
    const lag = $('lag');
    if (this.lives.tape.state !== 'open') lag.textContent = 'lag – (disconnected)';
    else if (this.lastTradeAt && Date.now() - this.lastTradeAt < 5000 && isFinite(this.lagMs))
      lag.textContent = `lag ${Math.max(0, Math.round(this.lagMs))} ms`;
    else lag.textContent = this.lastTradeAt ? 'lag – (no trades for 5 s)' : 'lag –';
  }

  private renderWatch() {
    this.wlDirty = false;
    const rows = [...this.watch.values()];
    const val = (r: WatchRow) => {
      const chg = r.last - r.open;
      return this.sortKey === 'ticker' ? r.ticker : this.sortKey === 'last' ? r.last : this.sortKey === 'chg' ? chg : chg / r.open;
    };
    rows.sort((a, b) => {
      const x = val(a), y = val(b);
      return (x < y ? -1 : x > y ? 1 : 0) * this.sortDir;
    });
    const tb = $('wl');
    tb.replaceChildren(
      ...rows.map((r) => {
        const chg = r.last - r.open;
        const pct = (chg / r.open) * 100;
        const cls = chg > 0 ? 'up' : chg < 0 ? 'down' : '';
        const tr = h('tr', { 'data-ticker': r.ticker, tabindex: '0', 'aria-label': `Chart ${r.ticker}` },
          h('td', {}, r.ticker), h('td', {}, fmtPrice(r.last)), h('td', { class: cls }, fmtSigned(chg)),
          h('td', { class: cls }, fmtSigned(pct) + '%'));
        if (r.ticker === this.ticker) tr.className = 'sel';
        tr.addEventListener('click', () => this.select(r.ticker, this.intervalMs));
        tr.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            this.select(r.ticker, this.intervalMs);
          }
        });
        return tr;
      }),
    );
  }

  private renderTape() {
    this.tapeDirty = false;
    $('tape').replaceChildren(
      ...this.tape.map((m) => {
        const side = String(m.trade_type);
        return h('tr', {}, h('td', {}, fmtTime(Date.parse(String(m.event_time)))),
          h('td', { class: side === 'BUY' ? 'up' : 'down' }, fmtPrice(num(String(m.price)))),
          h('td', {}, String(m.quantity)), h('td', {}, side === 'BUY' ? 'buy' : 'sell'));
      }),
    );
  }

  // For the browser test: the chart's own data, as the chart has it.
  snapshot() {
    return {
      ticker: this.ticker,
      intervalMs: this.intervalMs,
      loaded: this.loaded,
      bars: this.bars.all(),
      refetching: [...this.refetching, ...this.refetchAgain], // buckets being read again from REST
    };
  }
}

const candle = (b: Bar) => ({ time: (b.t / 1000) as UTCTimestamp, open: b.open, high: b.high, low: b.low, close: b.close });
const vol = (b: Bar) => ({
  time: (b.t / 1000) as UTCTimestamp,
  value: b.volume,
  color: b.close >= b.open ? 'rgba(38,166,154,0.45)' : 'rgba(239,83,80,0.45)',
});

export const label = (ms: number) => (ms >= 3600000 ? `${ms / 3600000}h` : ms >= 60000 ? `${ms / 60000}m` : `${ms / 1000}s`);
