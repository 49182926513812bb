// The one WebSocket to /api/v1/stock/real-time (DESIGN.md section 4), with
// reconnect and re-subscription. Works with today's protocol (subscribe /
// unsubscribe, tick and trade messages) and uses the section 9 additions when
// the server has them: a first {"type":"hello"} message switches on seq
// checking, and lets subscribers ask for history/since in the subscribe.

export type ConnState = 'connecting' | 'open' | 'down';

export interface Msg {
  type: string;
  seq?: number;
  ticker?: string;
  interval_ms?: number;
  [k: string]: unknown;
}

interface Sub {
  tickers: string[];
  interval_ms: number;
  // extra subscribe fields, asked each time the subscription is (re)sent:
  // history/since when the server said hello.
  extra?: (resume: boolean) => Record<string, unknown>;
}

export class Live {
  private ws: WebSocket | null = null;
  private subs = new Map<string, Sub>();
  private msgFns = new Set<(m: Msg) => void>();
  private stateFns = new Set<(s: ConnState, info: { resumed: boolean; attempt: number }) => void>();
  private attempt = 0;
  private everOpen = false;
  private lastSeq = -1;
  state: ConnState = 'connecting';
  hello = false; // the server speaks the section 9 protocol
  server = '';
  received = 0;

  constructor(private url: string) {}

  onMessage(fn: (m: Msg) => void) {
    this.msgFns.add(fn);
  }
  onState(fn: (s: ConnState, info: { resumed: boolean; attempt: number }) => void) {
    this.stateFns.add(fn);
  }

  start() {
    this.connect();
  }

  private setState(s: ConnState, resumed = false) {
    this.state = s;
    for (const f of this.stateFns) f(s, { resumed, attempt: this.attempt });
  }

  private connect() {
    this.setState('connecting');
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    this.hello = false;
    this.lastSeq = -1;
    ws.onopen = () => {
      const resumed = this.everOpen;
      this.everOpen = true;
      this.attempt = 0;
      // Give a section-9 server a moment to say hello before subscribing, so
      // the subscribe can carry history/since; today's server sends nothing
      // first, and a short wait costs nothing visible.
      setTimeout(() => {
        if (this.ws !== ws) return;
        for (const s of this.subs.values()) this.sendSub(s, resumed);
        this.setState('open', resumed);
      }, 60);
    };
    ws.onmessage = (ev) => {
      let m: Msg;
      try {
        m = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
      } catch {
        return;
      }
      this.received++;
      if (m.type === 'hello') {
        this.hello = true;
        this.server = String(m.server ?? '');
        this.lastSeq = typeof m.seq === 'number' ? m.seq : 0;
        return;
      }
      if (this.hello && typeof m.seq === 'number') {
        if (this.lastSeq >= 0 && m.seq !== this.lastSeq + 1) {
          // a gap: resubscribe everything with since (the subscribers'
          // extra() knows where they stand)
          this.lastSeq = m.seq;
          ws.close();
          return;
        }
        this.lastSeq = m.seq;
      }
      for (const f of this.msgFns) f(m);
    };
    ws.onerror = () => {
      /* onclose follows and handles it */
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setState('down');
      this.retry();
    };
  }

  private retry() {
    this.attempt++;
    const delay = Math.min(5000, 250 * 2 ** Math.min(this.attempt, 5));
    setTimeout(() => this.connect(), delay);
  }

  private send(o: unknown) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(o));
  }

  private sendSub(s: Sub, resume: boolean) {
    const extra = this.hello && s.extra ? s.extra(resume) : {};
    this.send({ action: 'subscribe', tickers: s.tickers, interval_ms: s.interval_ms, ...extra });
  }

  subscribe(key: string, tickers: string[], interval_ms: number, extra?: Sub['extra']) {
    const old = this.subs.get(key);
    if (old) this.unsubscribe(key);
    const s = { tickers, interval_ms, extra };
    this.subs.set(key, s);
    if (this.state === 'open') this.sendSub(s, false);
  }

  unsubscribe(key: string) {
    const s = this.subs.get(key);
    if (!s) return;
    this.subs.delete(key);
    // keep a pair another subscription still needs (the server counts pairs)
    const still = (t: string) =>
      [...this.subs.values()].some((o) => o.interval_ms === s.interval_ms && o.tickers.includes(t));
    const drop = s.tickers.filter((t) => !still(t));
    if (drop.length && this.state === 'open')
      this.send({ action: 'unsubscribe', tickers: drop, interval_ms: s.interval_ms });
  }
}
