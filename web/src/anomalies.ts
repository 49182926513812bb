// Anomalies view: the persisted ones (GET /api/v1/stock/anomalies), then the
// live feed (SSE /api/v1/stock/anomaly via EventSource, which resends
// Last-Event-ID itself when it reconnects; after a hard failure a new
// EventSource carries last_event_id). Each item in words with its evidence;
// the market chart gets a marker at each one's bar.

import { $, api, fmtTime, h } from './util';

export interface Anomaly {
  id: string;
  type: string;
  ticker: string;
  market_code?: string;
  event_time: string;
  detected_at?: string;
  severity: string;
  evidence?: {
    metric?: string;
    value?: number;
    threshold?: number;
    window_s?: number;
    baseline?: { mean?: number; stddev?: number; samples?: number };
    trade_ids?: number[];
    [k: string]: unknown;
  };
}

const WORDS: Record<string, string> = {
  PRICE_SPIKE: 'price spike',
  VOLUME_SPIKE: 'volume spike',
  LARGE_TRADE: 'unusually large trade',
  RAPID_FIRE: 'burst of trades',
  WASH_TRADE: 'possible wash trading',
  PRICE_GAP: 'price gap',
};

export function describe(a: Anomaly): string {
  const what = WORDS[a.type] ?? a.type.replace(/_/g, ' ').toLowerCase();
  const ev = a.evidence ?? {};
  let s = `${a.severity[0]?.toUpperCase() ?? ''}${a.severity.slice(1)} ${what} in ${a.ticker}`;
  if (a.market_code) s += ` (${a.market_code})`;
  s += ` at ${fmtTime(Date.parse(a.event_time), true)} UTC`;
  if (ev.metric && typeof ev.value === 'number') {
    s += `: ${ev.metric.replace(/_/g, ' ')} was ${round(ev.value)}`;
    if (typeof ev.threshold === 'number') s += ` against a threshold of ${round(ev.threshold)}`;
    if (ev.window_s) s += ` over ${ev.window_s} s`;
  }
  const b = ev.baseline;
  if (b && typeof b.mean === 'number')
    s += `; baseline mean ${round(b.mean)}, σ ${round(b.stddev ?? NaN)} from ${b.samples ?? '?'} samples`;
  return s + '.';
}

const round = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));

export class Anomalies {
  readonly items: Anomaly[] = [];
  private ids = new Set<string>();
  private es: EventSource | null = null;
  private lastId = '';
  private types = new Set<string>();
  connected = false;

  constructor(private onChange: (list: Anomaly[]) => void) {
    for (const id of ['a-type', 'a-ticker', 'a-sev']) $(id).addEventListener('input', () => this.render());
  }

  async start() {
    const r = await api<{ data: Anomaly[] }>('/api/v1/stock/anomalies?limit=200');
    if (r.ok) {
      // newest first from the server; keep oldest-first internally
      const rows = [...r.data.data].reverse();
      for (const a of rows) this.add(a, false);
      this.render();
      this.onChange(this.items);
    } else {
      this.status(`Stored anomalies: ${r.message}.`);
    }
    this.open();
  }

  private open() {
    const q = this.lastId ? `?last_event_id=${encodeURIComponent(this.lastId)}` : '';
    const es = new EventSource(`/api/v1/stock/anomaly${q}`);
    this.es = es;
    es.addEventListener('open', () => {
      this.connected = true;
      this.status('Live: new anomalies appear here as they are detected.');
    });
    es.addEventListener('anomaly', (ev) => {
      const me = ev as MessageEvent;
      if (me.lastEventId) this.lastId = me.lastEventId;
      try {
        this.add(JSON.parse(me.data) as Anomaly, true);
      } catch {
        /* a malformed event is skipped */
      }
    });
    es.addEventListener('status', (ev) => {
      try {
        const s = JSON.parse((ev as MessageEvent).data) as { message?: string; state?: string };
        this.status(`Pipeline: ${s.message ?? s.state ?? 'status changed'}.`);
      } catch {
        /* ignore */
      }
    });
    es.addEventListener('error', () => {
      this.connected = false;
      if (es.readyState === EventSource.CLOSED) {
        // the browser gave up (e.g. a non-stream answer): retry ourselves
        this.status('Anomaly feed lost: reconnecting…');
        es.close();
        setTimeout(() => this.open(), 3000);
      } else {
        this.status('Anomaly feed interrupted: reconnecting (missed anomalies are replayed)…');
      }
    });
  }

  private status(t: string) {
    $('a-status').textContent = t;
  }

  private add(a: Anomaly, live: boolean) {
    if (!a || !a.id || this.ids.has(a.id)) return;
    this.ids.add(a.id);
    this.items.push(a);
    if (this.items.length > 2000) this.ids.delete(this.items.shift()!.id);
    if (!this.lastId || live) this.lastId = a.id;
    if (!this.types.has(a.type)) {
      this.types.add(a.type);
      $('a-type').append(h('option', { value: a.type }, WORDS[a.type] ?? a.type));
    }
    if (live) {
      this.render();
      this.onChange(this.items);
    }
  }

  private render() {
    const type = $<HTMLSelectElement>('a-type').value;
    const tk = $<HTMLInputElement>('a-ticker').value.trim().toUpperCase();
    const sev = $<HTMLSelectElement>('a-sev').value;
    const shown = this.items
      .filter((a) => (!type || a.type === type) && (!tk || a.ticker === tk) && (!sev || a.severity === sev))
      .slice(-300)
      .reverse();
    const list = $('a-list');
    if (!shown.length) {
      list.replaceChildren(h('li', { class: 'low' }, this.items.length ? 'No anomaly matches these filters.' : 'No anomalies yet. Inject some in "Try it".'));
      return;
    }
    list.replaceChildren(
      ...shown.map((a) => {
        const ids = a.evidence?.trade_ids?.length ? ` · trades ${a.evidence.trade_ids.slice(0, 5).join(', ')}` : '';
        return h('li', { class: a.severity, 'data-id': a.id }, h('div', {}, describe(a)), h('div', { class: 'ev' }, `${a.id} · ${a.type}${ids}`));
      }),
    );
  }
}
