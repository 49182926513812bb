// The one WebSocket to /api/v1/stock/real-time (DESIGN.md sections 4 and 9),
// with reconnect and re-subscription. The server's first message,
// {"type":"hello"}, switches on seq checking (a gap reconnects) and lets
// subscribers ask for history/since in the subscribe: on a reconnect each
// subscription resumes with since, so nothing is missed. Without hello (an
// older server) subscriptions are sent plain after a second.

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
    let resumed = false;
    // (Re)subscribes once per connection: on hello (a section 9 server says
    // it first, so the subscribe can carry history/since), or after a short
    // wait when an older server says nothing first.
    let subscribed = false;
    const subscribeAll = () => {
      if (this.ws !== ws || subscribed) return;
      subscribed = true;
      for (const s of this.subs.values()) this.sendSub(s, resumed);
      this.setState('open', resumed);
    };
    ws.onopen = () => {
      resumed = this.everOpen;
      this.everOpen = true;
      this.attempt = 0;
      setTimeout(subscribeAll, 1000);
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
        subscribeAll();
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
