// Bars (candles): the one shape every source is turned into (REST bars, REST
// raw trades aggregated here, WebSocket ticks), keyed by start time so
// history and live merge without a duplicate: the same bucket from two
// sources is one bar, the later (more complete) one wins.

import { num } from './util';

export interface Bar {
  t: number; // bucket start, ms since the epoch (UTC)
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  count: number;
}

export interface RestBar {
  ticker: string;
  start: string;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: number;
  count: number;
}

export interface RestTrade {
  id: number;
  ticker: string;
  price: string;
  quantity: number;
  trade_type: string;
  event_time: string;
}

export interface Tick extends RestBar {
  type: 'tick';
  end: string;
  interval_ms: number;
  partial?: boolean;
  revised?: boolean;
  history?: boolean;
  seq?: number;
}

export const fromRest = (b: RestBar): Bar => ({
  t: Date.parse(b.start),
  open: num(b.open),
  high: num(b.high),
  low: num(b.low),
  close: num(b.close),
  volume: b.volume,
  count: b.count,
});

// Aggregates raw trades into buckets of widthMs aligned to the epoch (as the
// server's candles are: start inclusive, end exclusive). Trades must be in
// event-time order for open/close to be right; REST raw rows are.
export function aggregateTrades(trades: RestTrade[], widthMs: number): Bar[] {
  const out: Bar[] = [];
  let cur: Bar | null = null;
  for (const tr of trades) {
    const ts = Date.parse(tr.event_time);
    const t = Math.floor(ts / widthMs) * widthMs;
    const p = num(tr.price);
    if (!cur || cur.t !== t) {
      if (cur && t < cur.t) continue; // out of order: ignore rather than corrupt
      cur = { t, open: p, high: p, low: p, close: p, volume: 0, count: 0 };
      out.push(cur);
    }
    cur.high = Math.max(cur.high, p);
    cur.low = Math.min(cur.low, p);
    cur.close = p;
    cur.volume += tr.quantity;
    cur.count += 1;
  }
  return out;
}

// Rolls finer bars (sorted) into coarser buckets of widthMs.
export function rollup(bars: Bar[], widthMs: number): Bar[] {
  const out: Bar[] = [];
  let cur: Bar | null = null;
  for (const b of bars) {
    const t = Math.floor(b.t / widthMs) * widthMs;
    if (!cur || cur.t !== t) {
      cur = { ...b, t };
      out.push(cur);
      continue;
    }
    cur.high = Math.max(cur.high, b.high);
    cur.low = Math.min(cur.low, b.low);
    cur.close = b.close;
    cur.volume += b.volume;
    cur.count += b.count;
  }
  return out;
}

// Sorted, unique-by-start bar set.
export class BarSet {
  private m = new Map<number, Bar>();
  private sorted: Bar[] | null = [];

  clear() {
    this.m.clear();
    this.sorted = [];
  }
  get size() {
    return this.m.size;
  }
  // Returns 'append' when b is at or after the last bar (cheap chart update),
  // 'insert' otherwise (the chart needs its whole data again).
  put(b: Bar): 'append' | 'insert' {
    const last = this.last();
    this.m.set(b.t, b);
    if (last && b.t < last.t) {
      this.sorted = null;
      return 'insert';
    }
    if (this.sorted) {
      if (last && b.t === last.t) this.sorted[this.sorted.length - 1] = b;
      else this.sorted.push(b);
    }
    return 'append';
  }
  get(t: number) {
    return this.m.get(t);
  }
  all(): Bar[] {
    if (!this.sorted) this.sorted = [...this.m.values()].sort((a, b) => a.t - b.t);
    return this.sorted;
  }
  last(): Bar | undefined {
    const a = this.all();
    return a[a.length - 1];
  }
}
