// tickflow dashboard entry: tabs, the shared WebSocket and its status in
// words, and the views. window.__tickflow exposes the page's own data for
// the browser test (tests/browser/e2e.mjs).

import './style.css';
import { Anomalies } from './anomalies';
import { History } from './history';
import { Live } from './live';
import { label, Market } from './market';
import { Pipeline } from './pipeline';
import { Signals } from './signals';
import { TryIt } from './tryit';
import { $, banner } from './util';

// Nothing may fail silently or as a console error: say it in words.
window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  banner(`Something went wrong: ${String((e.reason as Error)?.message ?? e.reason)}`);
});
window.addEventListener('error', (e) => banner(`Something went wrong: ${e.message}`));

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/stock/real-time`;
const live = new Live(wsUrl);
const watchLive = new Live(wsUrl);
const tapeLive = new Live(wsUrl);
const market = new Market({ chart: live, watch: watchLive, tape: tapeLive });
const anomalies = new Anomalies((list) => market.setAnomalies(list));
const signals = new Signals();
const history = new History();
const pipeline = new Pipeline();
const tryit = new TryIt();

const conn = $('conn');
let downSince = 0;
live.onState((s, info) => {
  if (s === 'open') {
    conn.className = 'conn ok';
    conn.textContent = live.hello ? `Live (${live.server || 'server'})` : 'Live';
    if (info.resumed) {
      const gap = downSince ? Math.round((Date.now() - downSince) / 1000) : 0;
      banner(`Resumed: the server is back after ${gap} s; the chart is being filled in from history.`, 'info', 6000);
    } else banner(null);
    downSince = 0;
  } else if (s === 'down') {
    if (!downSince) downSince = Date.now();
    conn.className = 'conn bad';
    conn.textContent = 'Server down';
    banner(`The server cannot be reached: reconnecting (attempt ${info.attempt + 1})…`);
  } else {
    conn.className = downSince ? 'conn warn' : 'conn';
    conn.textContent = downSince ? 'Reconnecting…' : 'Connecting…';
  }
});

// ---- tabs (WAI-ARIA tabs pattern: arrows move, Home/End jump) ----
const tabs = [...document.querySelectorAll<HTMLButtonElement>('[role=tab]')];
function showTab(id: string, focus = false) {
  for (const t of tabs) {
    const on = t.id === id;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')!).hidden = !on;
    if (on && focus) t.focus();
  }
  const name = id.replace('tab-', '');
  if (location.hash.slice(1) !== name) history_replace(name);
  if (name === 'pipeline') pipeline.start();
  else pipeline.stop();
  if (name === 'signals') signals.refresh();
  if (name === 'try') tryit.refresh();
  if (name === 'history') {
    history.setTicker(market.ticker);
    history.shown();
  }
}
function history_replace(name: string) {
  window.history.replaceState(null, '', `${location.pathname}${location.search}#${name}`);
}
for (const t of tabs) {
  t.addEventListener('click', () => showTab(t.id));
  t.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(t);
    let n = -1;
    if (e.key === 'ArrowRight') n = (i + 1) % tabs.length;
    else if (e.key === 'ArrowLeft') n = (i + tabs.length - 1) % tabs.length;
    else if (e.key === 'Home') n = 0;
    else if (e.key === 'End') n = tabs.length - 1;
    if (n >= 0) {
      e.preventDefault();
      showTab(tabs[n].id, true);
    }
  });
}

const params = new URLSearchParams(location.search);
const iv = Number(params.get('interval_ms'));
if ([1000, 5000, 60000, 300000, 3600000].includes(iv)) market.intervalMs = iv;
live.start();
watchLive.start();
tapeLive.start();
market.init(params.get('ticker')?.toUpperCase() ?? null);
anomalies.start();
const hash = location.hash.slice(1);
showTab(tabs.some((t) => t.id === `tab-${hash}`) ? `tab-${hash}` : 'tab-market');

declare global {
  interface Window {
    __tickflow: unknown;
  }
}
window.__tickflow = {
  market: () => market.snapshot(),
  markers: () => market.markers,
  select: (t: string, ms: number) => market.select(t, ms),
  lastTick: () => market.lastTick,
  ticksSeen: () => market.ticksSeen,
  anomalies: () => anomalies.items,
  history: () => ({ done: history.done, rows: history.rows.length, pages: history.pages, bars: history.bars }),
  loadHistory: (p: Record<string, string>) => history.load(p),
  live: () => ({ state: live.state, hello: live.hello, received: live.received }),
  pipeline: () => (pipeline.last ? Object.fromEntries(pipeline.last) : null),
  pipelineState: () => ({ source: pipeline.source, ready: pipeline.ready, jobs: pipeline.jobs }),
  signals: () => ({ items: signals.items, perf: signals.perf, detail: signals.detail }),
  replays: () => tryit.replays,
  show: (name: string) => showTab(`tab-${name}`),
  label,
};
