// History from REST (GET /api/v1/stock), paged through next_cursor so a long
// range arrives whole; bars for any chart interval (raw trades aggregated
// here below 1 minute, 1m bars rolled up for 5 m).

import { aggregateTrades, Bar, fromRest, RestBar, RestTrade, rollup } from './bars';
import { api } from './util';

export interface Page<T> {
  data: T[];
  count: number;
  next_cursor: string | null;
}

export class RestError extends Error {
  constructor(message: string, public status: number) {
    super(message);
  }
}

// Every row of a query, page by page (limit 10000, the server's maximum).
// onPage sees the running total; maxRows stops early (returns truncated=true).
export async function fetchAll<T>(
  params: Record<string, string>,
  opts: { maxRows?: number; onPage?: (n: number) => void; signal?: () => boolean } = {},
): Promise<{ rows: T[]; pages: number; truncated: boolean }> {
  const rows: T[] = [];
  let cursor: string | null = null;
  let pages = 0;
  for (;;) {
    const q = new URLSearchParams({ ...params, limit: '10000' });
    if (cursor) q.set('cursor', cursor);
    const r = await api<Page<T>>(`/api/v1/stock?${q}`);
    if (!r.ok) throw new RestError(r.message, r.status);
    if (opts.signal && !opts.signal()) return { rows, pages, truncated: true };
    for (const x of r.data.data) rows.push(x);
    pages++;
    opts.onPage?.(rows.length);
    cursor = r.data.next_cursor;
    if (!cursor) return { rows, pages, truncated: false };
    if (opts.maxRows && rows.length >= opts.maxRows) return { rows, pages, truncated: true };
  }
}

// Bars of widthMs for ticker over [startMs, endMs) (endMs null = now).
export async function fetchBars(
  ticker: string,
  widthMs: number,
  startMs: number,
  endMs: number | null,
  alive?: () => boolean,
): Promise<Bar[]> {
  const p: Record<string, string> = { ticker, start: new Date(startMs).toISOString() };
  if (endMs !== null) p.end = new Date(endMs).toISOString();
  if (widthMs < 60000) {
    const { rows } = await fetchAll<RestTrade>({ ...p, interval: 'raw' }, { maxRows: 400000, signal: alive });
    return aggregateTrades(rows, widthMs);
  }
  const base = widthMs >= 3600000 ? '1h' : '1m';
  const { rows } = await fetchAll<RestBar>({ ...p, interval: base }, { signal: alive });
  const bars = rows.map(fromRest).sort((a, b) => a.t - b.t);
  return widthMs === 60000 || widthMs === 3600000 ? bars : rollup(bars, widthMs);
}
