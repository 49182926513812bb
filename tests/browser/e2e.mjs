// End-to-end test of the dashboard in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core from web/node_modules; no
// browser is downloaded). Driven by tests/integration/test_dashboard.py,
// which owns PostgreSQL and tickflow and restarts the server on request:
// this script prints "RESTART" and waits for "RESTARTED" on stdin.
//
// usage: node e2e.mjs BASE_URL ARTIFACT_DIR CONFIG_JSON
//   CONFIG_JSON: {"hist": {"ticker", "start", "end", "bars"}}
// Prints "CHECK ok|FAIL what detail" per assertion, "METRIC name value",
// and ends with "N passed, N failed".
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', '..', 'web', 'package.json'));
const { chromium } = require('playwright-core');

const [base, artDir, cfgJson] = process.argv.slice(2);
const cfg = JSON.parse(cfgJson || '{}');
fs.mkdirSync(artDir, { recursive: true });
let passed = 0, failed = 0;
function check(cond, what, detail = '') {
  if (cond) passed++;
  else failed++;
  console.log(`CHECK ${cond ? 'ok' : 'FAIL'} ${what}${cond ? '' : ' ' + detail}`);
  return cond;
}
const metric = (k, v) => console.log(`METRIC ${k} ${v}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(fn, ms, what) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${String(last)})`);
}

// stdin lines from the harness
const rl = readline.createInterface({ input: process.stdin });
const lines = [];
let lineWaiter = null;
rl.on('line', (l) => {
  lines.push(l.trim());
  if (lineWaiter) lineWaiter();
});
async function waitLine(want, ms) {
  const t0 = Date.now();
  while (!lines.includes(want)) {
    if (Date.now() - t0 > ms) throw new Error(`no "${want}" from the harness`);
    await new Promise((r) => {
      lineWaiter = r;
      setTimeout(r, 500);
    });
  }
}

// ---- independent oracle: REST raw trades / bars, aggregated here ----------
async function restAll(params) {
  const rows = [];
  let cursor = null;
  for (;;) {
    const q = new URLSearchParams({ ...params, limit: '10000' });
    if (cursor) q.set('cursor', cursor);
    const r = await fetch(`${base}/api/v1/stock?${q}`);
    if (!r.ok) throw new Error(`REST ${r.status}: ${await r.text()}`);
    const j = await r.json();
    rows.push(...j.data);
    cursor = j.next_cursor;
    if (!cursor) return rows;
  }
}
async function restBars(ticker, widthMs, startMs, endMs) {
  const p = { ticker, start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() };
  if (widthMs === 60000) {
    return (await restAll({ ...p, interval: '1m' })).map((b) => ({
      t: Date.parse(b.start), open: +b.open, high: +b.high, low: +b.low, close: +b.close, volume: b.volume, count: b.count,
    }));
  }
  const m = new Map();
  for (const tr of await restAll({ ...p, interval: 'raw' })) {
    // open/close are the trades with the least/greatest (event time, id) at
    // the microseconds the server keeps: two writers (the live generator and
    // a back-dated inject) put trades in one millisecond with ids the other
    // way round, so a millisecond key picks another close
    const us = eventUs(tr.event_time);
    const ts = Math.floor(us / 1000);
    const t = ts - (ts % widthMs);
    const px = +tr.price;
    let b = m.get(t);
    if (!b) m.set(t, (b = { t, first: [us, tr.id, px], last: [us, tr.id, px], lastMs: [ts, tr.id, px], high: px, low: px, volume: 0, count: 0 }));
    if (us < b.first[0] || (us === b.first[0] && tr.id < b.first[1])) b.first = [us, tr.id, px];
    if (us > b.last[0] || (us === b.last[0] && tr.id > b.last[1])) b.last = [us, tr.id, px];
    if (ts > b.lastMs[0] || (ts === b.lastMs[0] && tr.id > b.lastMs[1])) b.lastMs = [ts, tr.id, px];
    b.high = Math.max(b.high, px);
    b.low = Math.min(b.low, px);
    b.volume += tr.quantity;
    b.count++;
  }
  return [...m.values()].sort((a, b) => a.t - b.t)
    .map((b) => ({ t: b.t, open: b.first[2], high: b.high, low: b.low, close: b.last[2], volume: b.volume, count: b.count, closeMs: b.lastMs[2] }));
}
// "2026-12-01T18:18:59.123456Z" -> microseconds since the epoch (Date.parse
// stops at milliseconds).
function eventUs(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:?\d\d)$/.exec(s);
  if (!m) throw new Error(`unexpected event_time ${s}`);
  return Date.parse(m[1] + m[3]) * 1000 + Number((m[2] || '').padEnd(6, '0'));
}

// Chart bars vs REST over [from, to): same buckets, same values, no
// duplicate (times strictly increasing) and no gap (no REST bucket missing).
// A candle that missed a late trade is revised by the server half an
// interval later, so a mismatch is retried for settleMs before it counts.
async function seamDiff(page, from, to) {
  const snap = await page.evaluate(() => window.__tickflow.market());
  const chart = snap.bars.filter((b) => b.t >= from && b.t < to);
  const rest = await restBars(snap.ticker, snap.intervalMs, from, to);
  let dup = 0;
  for (let i = 1; i < snap.bars.length; i++) if (snap.bars[i].t <= snap.bars[i - 1].t) dup++;
  const cm = new Map(chart.map((b) => [b.t, b]));
  const missing = rest.filter((b) => !cm.has(b.t)).map((b) => new Date(b.t).toISOString());
  const rm = new Set(rest.map((b) => b.t));
  const extra = chart.filter((b) => !rm.has(b.t)).map((b) => new Date(b.t).toISOString());
  const diff = [];
  let msClose = 0; // buckets a millisecond-ordered close would get wrong
  for (const b of rest) {
    if (b.closeMs !== undefined && b.closeMs !== b.close) msClose++;
    const c = cm.get(b.t);
    if (!c) continue;
    for (const k of ['open', 'high', 'low', 'close', 'volume', 'count'])
      if (Math.abs(c[k] - b[k]) > 1e-6) diff.push(`${new Date(b.t).toISOString()} ${k} chart=${c[k]} rest=${b[k]}`);
  }
  return { dup, missing, extra, diff, chart: chart.length, rest: rest.length, msClose };
}
// What the page's sockets carried for bucket t (the init script below logs
// every message of the chart's kind), and the REST raw trades of the bucket
// with their full times and ids: printed when a seam check fails, so a
// flake leaves its own timeline behind.
async function seamDump(page, what, r) {
  const bad = [...r.diff, ...r.missing, ...r.extra].map((d) => Date.parse(d.split(' ')[0])).filter((t) => t > 0);
  const snap = await page.evaluate(() => window.__tickflow.market());
  for (const t of [...new Set(bad)].slice(0, 2)) {
    const iso = new Date(t).toISOString();
    console.log(`DUMP ${what} bucket ${iso} chart ${JSON.stringify(snap.bars.find((b) => b.t === t) ?? null)}`);
    const q = new URLSearchParams({ ticker: snap.ticker, interval: 'raw', start: iso, end: new Date(t + snap.intervalMs).toISOString(), limit: '10000' });
    const j = await (await fetch(`${base}/api/v1/stock?${q}`)).json();
    for (const tr of j.data) console.log(`DUMP   rest trade id=${tr.id} ${tr.event_time} ${tr.price} x${tr.quantity}`);
    const log = await page.evaluate(() => window.__wslog || []);
    for (const e of log) {
      if (e.d.includes(`"start":"${iso.slice(0, 19)}`) || /"type":"(hello|history_end|subscribed|lagged)"|"action":"subscribe"/.test(e.d))
        console.log(`DUMP   ws#${e.s} ${e.dir} ${new Date(e.at).toISOString()} ${e.d.slice(0, 400)}`);
    }
  }
}
// A bucket the page is reading again from REST (a partial candle came for
// it) is not final on the chart yet: wait for those reads to end (a
// condition; the limit only keeps a stuck page from hanging the run).
async function refetched(page, from, to) {
  await waitFor(() => page.evaluate(([f, t]) => !window.__tickflow.market().refetching.some((b) => b >= f && b < t), [from, to]),
    60000, 'the page to finish reading partial buckets again').catch((e) => console.log(`NOTE ${e.message}`));
}
async function compareSeam(page, what, from, to, minBars = 3, settleMs = 0) {
  await refetched(page, from, to);
  const t0 = Date.now();
  let r = await seamDiff(page, from, to);
  while (r.dup + r.missing.length + r.extra.length + r.diff.length > 0 && Date.now() - t0 < settleMs) {
    await sleep(1000);
    await refetched(page, from, to);
    r = await seamDiff(page, from, to);
  }
  if (r.dup + r.missing.length + r.extra.length + r.diff.length > 0) await seamDump(page, what, r).catch((e) => console.log(`DUMP failed ${e}`));
  if (Date.now() - t0 > 1000) metric(`${what.replace(/\W+/g, '_')}_settle_ms`, Date.now() - t0);
  if (r.msClose) console.log(`NOTE ${what}: ${r.msClose} bucket(s) whose close a millisecond (event time, id) order picks differently`);
  check(r.dup === 0, `${what}: chart bars strictly increasing (no duplicate)`, `${r.dup} out of order/duplicate`);
  check(r.rest >= minBars, `${what}: REST has bars in the window`, `only ${r.rest}`);
  check(r.missing.length === 0, `${what}: no gap (every REST bar is on the chart)`, r.missing.slice(0, 5).join(' '));
  check(r.extra.length === 0, `${what}: no bar the REST answer lacks`, r.extra.slice(0, 5).join(' '));
  check(r.diff.length === 0, `${what}: chart bars equal REST bars`, r.diff.slice(0, 5).join('; '));
  return r;
}

// ---- browser ---------------------------------------------------------------
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-chromium-'));
const ctx = await chromium.launchPersistentContext(userDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 800 },
  timezoneId: 'UTC',
  acceptDownloads: true,
});
const page = ctx.pages()[0] || (await ctx.newPage());
// Every WebSocket message in and out, with the wall clock, for seamDump.
await page.addInitScript(() => {
  const W = window.WebSocket;
  const log = (window.__wslog = []);
  let n = 0;
  const add = (s, dir, d) => {
    log.push({ s, dir, at: Date.now(), d: String(d) });
    if (log.length > 200000) log.splice(0, 50000);
  };
  window.WebSocket = class extends W {
    constructor(...a) {
      super(...a);
      const s = ++n;
      this.addEventListener('message', (ev) => add(s, 'in', ev.data));
      this.addEventListener('open', () => add(s, 'open', ''));
      this.addEventListener('close', () => add(s, 'close', ''));
      const send = this.send.bind(this);
      this.send = (d) => { add(s, 'out', d); send(d); };
    }
  };
});
const consoleErrors = [];
const pageErrors = [];
let outage = null; // [t0, t1]: network errors are expected while the server is down
// endpoints that other issues are building: a 404 from them is handled by the page
const maybeMissing = ['/api/v1/symbols', '/api/v1/signals', '/api/v1/jobs'];
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const url = m.location()?.url || '';
  const t = Date.now();
  const inOutage = outage && t >= outage[0] && (!outage[1] || t <= outage[1] + 15000);
  if (/status of 404/.test(m.text()) && maybeMissing.some((p) => url.includes(p))) return;
  if (inOutage && /(net::ERR_|WebSocket connection|Failed to load resource|EventSource)/.test(m.text())) return;
  consoleErrors.push(`${m.text()} @ ${url}`);
});
page.on('pageerror', (e) => pageErrors.push(e.message));
const shot = (name) => page.screenshot({ path: path.join(artDir, `${name}.png`) });
const tf = (fn, arg) => page.evaluate(fn, arg);

try {
  // ---- first paint ----
  await page.goto(`${base}/?ticker=AAPL`, { waitUntil: 'load' });
  const fcp = await waitFor(() => tf(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime), 10000, 'first contentful paint');
  metric('first_contentful_paint_ms', fcp.toFixed(0));
  check(fcp < 3000, 'first contentful paint under 3 s (target 500 ms; printed above)', `${fcp}`);

  // ---- candles move ----
  await waitFor(() => tf(() => { const m = window.__tickflow.market(); return m.loaded && m.bars.length >= 3 && window.__tickflow.ticksSeen() >= 2; }), 60000, 'AAPL 1s chart loaded and live');
  const t1 = await tf(() => window.__tickflow.market().bars.at(-1).t);
  const moved = await waitFor(() => tf((t) => window.__tickflow.market().bars.at(-1).t > t + 1000, t1), 20000, 'a newer bar').catch(() => false);
  check(moved, 'candles move while the generator runs');
  const loadedAt = Date.now();
  await sleep(6000);
  check(await tf(() => document.querySelectorAll('#wl tr').length >= 2), 'watch list shows tickers');
  check(await tf(() => document.querySelectorAll('#tape tr').length >= 3), 'time-and-sales tape shows trades');
  check(await tf(() => /^lag \d+ ms$/.test(document.getElementById('lag').textContent)), 'feed-lag indicator shows a value',
    await tf(() => document.getElementById('lag').textContent));
  await shot('market');
  // seam, 1 s: history (REST raw aggregated by the page) then live ticks;
  // the last 2 s may still be open or revised
  {
    const bars = await tf(() => window.__tickflow.market().bars);
    const from = bars[0].t, to = Math.floor((Date.now() - 2500) / 1000) * 1000;
    check(from < loadedAt - 10000 && to > loadedAt, '1s window spans the history/live seam', `${from} ${loadedAt} ${to}`);
    const r = await compareSeam(page, '1s AAPL', from, to, 3, 3000);
    metric('seam_1s_bars', r.chart);
    // the harness wrote two trades in one millisecond of this window, the
    // later one (microseconds) with the lower id: the close is the later
    if (cfg.same_ms) {
      const t = Date.parse(cfg.same_ms);
      check(t >= from && t < to, '1s AAPL: the same-millisecond pair is inside the compared window', `${cfg.same_ms} ${from} ${to}`);
      check(r.msClose >= 1, '1s AAPL: the pair orders by microseconds, not milliseconds (compared above)', `${r.msClose}`);
    }
  }

  // ---- ticker and interval change in place (through the UI) ----
  await page.fill('#m-ticker', 'MSFT');
  await page.press('#m-ticker', 'Enter');
  await page.click('#m-intervals button[data-ms="5000"]');
  await waitFor(() => tf(() => { const t = window.__tickflow.lastTick(); const m = window.__tickflow.market(); return m.loaded && t && t.ticker === 'MSFT' && t.interval_ms === 5000; }), 30000, 'MSFT 5s ticks');
  const s5 = await tf(() => window.__tickflow.market());
  check(s5.ticker === 'MSFT' && s5.intervalMs === 5000 && s5.bars.length > 0 && s5.bars.every((b) => b.t % 5000 === 0),
    'after switching, 5 s MSFT bars arrive', JSON.stringify(s5.bars.slice(-2)));
  check(await tf(() => window.__tickflow.live().received > 0 && document.querySelector('#m-intervals [aria-checked=true]').textContent === '5s'), 'interval control reflects the choice');

  // ---- 1 m: REST 1m bars, then live across a minute boundary ----
  await page.click('#m-intervals button[data-ms="60000"]');
  await waitFor(() => tf(() => window.__tickflow.market().loaded && window.__tickflow.market().intervalMs === 60000), 30000, '1m chart loaded');
  // the bar in progress when REST answered is the seam: wait for its live
  // candle (at the minute's end), then compare through it
  const m0 = await tf(() => window.__tickflow.market().bars.at(-1).t);
  await waitFor(() => tf((t) => { const k = window.__tickflow.lastTick(); return k && k.interval_ms === 60000 && Date.parse(k.start) >= t; }, m0), 75000, 'the live 1m candle of the seam bar');
  await sleep(1500);
  {
    const bars = await tf(() => window.__tickflow.market().bars);
    const r = await compareSeam(page, '1m MSFT', bars[0].t, m0 + 60000, 20, 40000);
    metric('seam_1m_bars', r.chart);
  }

  // ---- 1 h from REST 1h bars (today's server has only minutes of data) ----
  await page.click('#m-intervals button[data-ms="3600000"]');
  await waitFor(() => tf(() => window.__tickflow.market().loaded && window.__tickflow.market().intervalMs === 3600000), 30000, '1h chart loaded');
  const s1h = await tf(() => window.__tickflow.market());
  check(s1h.bars.length >= 1 && s1h.bars.every((b) => b.t % 3600000 === 0), '1h bars are hour buckets', JSON.stringify(s1h.bars.slice(-2)));

  // ---- anomalies: inject from "Try it", see them in the feed and on the chart ----
  await tf(() => window.__tickflow.show('try'));
  await page.fill('#t-count', '3000');
  await page.fill('#t-p', '0.02');
  const nBefore = await tf(() => window.__tickflow.anomalies().length);
  const injectAt = Date.now();
  console.log(`NOTE inject at ${new Date(injectAt).toISOString()}`);
  await page.click('#t-inject button[type=submit]');
  await waitFor(() => tf(() => /Wrote/.test(document.getElementById('t-status').textContent)), 30000, 'inject answered');
  // replay a stored span (the first minute of MSFT's back-filled half hour)
  // at max speed: it runs to its end with every stored trade written again
  if (cfg.replay) {
    const rp = cfg.replay;
    await page.fill('#t-r-from', rp.from.slice(0, 19));
    await page.fill('#t-r-to', rp.to.slice(0, 19));
    await page.fill('#t-r-tickers', rp.ticker.toLowerCase());
    await page.fill('#t-r-speed', 'max');
    await page.click('#t-replay button[type=submit]');
    await waitFor(() => tf(() => /^Replay \d+ started/.test(document.getElementById('t-status').textContent)), 15000, 'replay started').then(
      () => check(true, 'Try it starts a replay of stored trades'), async () => check(false, 'Try it starts a replay of stored trades', await tf(() => document.getElementById('t-status').textContent)));
    const rj = await waitFor(async () => { await tf(() => window.__tickflow.show('try')); const r = await tf(() => window.__tickflow.replays()); const j = r.at(-1); return j && j.status !== 'running' ? j : null; }, 30000, 'replay finished').catch(() => null);
    check(rj && rj.status === 'finished' && rj.total === rp.count && rj.inserted === rp.count && rj.tickers?.[0] === rp.ticker && Date.parse(rj.from) === Date.parse(rp.from) && Date.parse(rj.to) === Date.parse(rp.to),
      'the replay ran to its end: every stored trade of the span written again', `${JSON.stringify(rj)} want ${rp.count}`);
    check(await tf((id) => { const tr = document.querySelector(`#t-replays tr[data-replay="${id}"]`); return !!tr && tr.textContent.includes('finished'); }, rj?.id), 'the replay is listed, finished');
  }
  await shot('try');
  const an = await waitFor(() => tf((n) => { const a = window.__tickflow.anomalies(); return a.length > n ? a.at(-1) : null; }, nBefore), 45000, 'an injected anomaly on the SSE feed');
  check(Date.parse(an.event_time) > injectAt - 60000, 'the anomaly is from the injected trades', an.event_time);
  await tf(() => window.__tickflow.show('anomalies'));
  check(await tf((id) => !!document.querySelector(`#a-list li[data-id="${id}"]`) && document.querySelector(`#a-list li[data-id="${id}"]`).textContent.includes(' in '), an.id),
    'the anomaly is listed in words');
  await shot('anomalies');
  await tf(() => window.__tickflow.show('market'));
  await tf((t) => window.__tickflow.select(t, 60000), an.ticker);
  await waitFor(() => tf(() => window.__tickflow.market().loaded), 30000, 'chart of the anomaly ticker');
  const mk = await tf((id) => window.__tickflow.markers().find((m) => m.id === id), an.id);
  const bucket = Math.floor(Date.parse(an.event_time) / 60000) * 60;
  check(mk && mk.time === bucket, 'a marker at the anomaly bar', JSON.stringify(mk));
  await shot('market-anomaly');

  // ---- signals: a stored signal appears with its track record ----
  // (the harness stored one day of HIST signals with `signals backtest --store`)
  await tf(() => window.__tickflow.show('signals'));
  if (cfg.signals) {
    const sg = cfg.signals;
    await page.fill('#s-ticker', sg.ticker);
    await waitFor(() => tf((tk) => { const s = window.__tickflow.signals(); return s.items.length > 0 && s.items.every((x) => x.ticker === tk) && s.perf.length > 0 && document.querySelectorAll('#s-list li[data-id]').length > 0; }, sg.ticker), 20000, 'stored signals listed');
    const sv = await tf(() => { const s = window.__tickflow.signals(); return { n: s.items.length, li: document.querySelectorAll('#s-list li[data-id]').length, first: document.querySelector('#s-list li[data-id]').textContent, status: document.getElementById('s-status').textContent, perfRows: document.querySelectorAll('#s-perf tbody tr').length, perf: s.perf }; });
    check(sv.n === Math.min(sg.count, 100) && sv.li === sv.n, 'the stored signals are listed (ticker filter, first page)', `${sv.n} listed, ${sg.count} stored`);
    check(new RegExp(` on ${sg.ticker} \\((long|short)\\) at \\d`).test(sv.first), 'a signal is described in words', sv.first);
    const perfCount = sv.perf.reduce((a, r) => a + (r.count || 0), 0);
    check(sv.perfRows >= 1 && perfCount === sg.final_1h, 'track record table: per rule, counts of finished 1h horizons', `${sv.perfRows} rows, count ${perfCount} vs ${sg.final_1h}`);
    check(sv.perf.every((r) => typeof r.hit_rate === 'number' && Array.isArray(r.hit_rate_ci95) && 'mean_mfe_pct' in r), 'track record has hit rate, its interval and MFE/MAE', JSON.stringify(sv.perf[0]));
    await page.selectOption('#s-group', 'ticker');
    await waitFor(() => tf((tk) => { const p = window.__tickflow.signals().perf; return p.length === 1 && p[0].ticker === tk; }, sg.ticker), 10000, 'track record by ticker').then(() => check(true, 'track record regroups by ticker'), (e) => check(false, 'track record regroups by ticker', String(e)));
    // click a signal: its horizons and the price path after it
    const id0 = await tf(() => document.querySelector('#s-list li[data-id]').getAttribute('data-id'));
    await page.click(`#s-list li[data-id="${id0}"]`);
    const d0 = await waitFor(() => tf((id) => { const d = window.__tickflow.signals().detail; return d && d.id === id && d.path > 0 ? d : null; }, id0), 20000, 'signal detail with price path');
    const rows = await tf(() => [...document.querySelectorAll('#s-detail tr[data-h]')].map((r) => [...r.children].map((c) => c.textContent)));
    const want = sg.returns[id0] || {};
    const bad = rows.filter((r) => !want[r[0]] || want[r[0]][0] !== r[1] || (want[r[0]][1] === null ? r[2] !== '–' : Math.abs(parseFloat(r[2]) - want[r[0]][1]) > 0.0011));
    check(!!sg.returns[id0] && rows.length === Object.keys(want).length && rows.length === sg.horizons && bad.length === 0,
      'the chosen signal shows every stored horizon with its status and return (SQL)', `${JSON.stringify(rows)} want ${JSON.stringify(want)}`);
    check(d0.path >= 2, 'the chosen signal shows its price path after the trigger', `${d0.path} bars`);
    // keyboard: Tab to the next signal, Enter opens it
    const id1 = await tf(() => document.querySelectorAll('#s-list li[data-id]')[1]?.getAttribute('data-id'));
    if (id1) {
      await page.focus(`#s-list li[data-id="${id0}"]`);
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      const ok = await waitFor(() => tf((id) => window.__tickflow.signals().detail?.id === id, id1), 10000, 'keyboard opens a signal').catch(() => false);
      check(ok, 'a signal opens from the keyboard (Tab, Enter)');
    }
    await shot('signals');
  } else {
    await waitFor(() => tf(() => document.getElementById('s-status').textContent.length > 0), 10000, 'signals status');
    await shot('signals');
  }

  // ---- pipeline ----
  await tf(() => window.__tickflow.show('pipeline'));
  await waitFor(() => tf(() => { const m = window.__tickflow.pipeline(); return m && document.querySelectorAll('#p-tiles .tile').length > 5 && /^(Ready|Not ready)/.test(document.getElementById('p-ready').textContent); }), 15000, 'pipeline tiles');
  await sleep(2500);
  const rate = await tf(() => document.querySelector('#p-tiles .tile .v').textContent);
  check(Number(rate.replace(/,/g, '')) > 0, 'pipeline shows a live ingest rate', rate);
  const rdy = await tf(() => ({ text: document.getElementById('p-ready').textContent, checks: [...document.querySelectorAll('#p-checks li')].map((l) => l.textContent) }));
  check(/^Ready: .*postgres/.test(rdy.text) && rdy.checks.some((c) => /^✓ postgres/.test(c)), '/ready at a glance, per check', JSON.stringify(rdy));
  const src = await tf(() => document.getElementById('p-source').textContent);
  check(/^Market data source: (generator|not configured|\w+)/.test(src), 'the market-data source is named', src);
  // jobs with their last runs, and one run from its button
  await waitFor(() => tf(() => document.querySelectorAll('#p-jobs tr[data-job]').length > 0), 15000, 'jobs table');
  const jobs = await tf(() => ({ rows: [...document.querySelectorAll('#p-jobs tr[data-job]')].map((r) => r.getAttribute('data-job')), api: window.__tickflow.pipelineState().jobs.map((j) => j.name) }));
  const apiJobs = await (await fetch(`${base}/api/v1/jobs`)).json();
  check(jobs.rows.length > 0 && JSON.stringify(jobs.rows) === JSON.stringify(apiJobs.data.map((j) => j.name)), 'every job of /api/v1/jobs is listed', JSON.stringify(jobs.rows));
  const runJob = jobs.rows.includes('signal_performance') ? 'signal_performance' : jobs.rows.at(-1);
  const runAt = new Date(Date.now() - 1000).toISOString();
  await page.click(`#p-jobs tr[data-job="${runJob}"] button`);
  await waitFor(() => tf(() => /queued for \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/.test(document.getElementById('p-jobs-status').textContent)), 10000, 'job queued').then(
    () => check(true, 'the run button queues the job'), async () => check(false, 'the run button queues the job', await tf(() => document.getElementById('p-jobs-status').textContent)));
  const lr = await waitFor(() => tf(([name, t]) => { const j = (window.__tickflow.pipelineState().jobs || []).find((x) => x.name === name); return j && j.last_run && j.last_run.finished_at && j.last_run.started_at >= t ? j.last_run : null; }, [runJob, runAt]), 60000, 'the job run finished').catch(() => null);
  const lrText = await tf((n) => document.querySelector(`#p-jobs tr[data-job="${n}"] td.last`)?.textContent ?? '', runJob);
  check(lr && lr.status === 'succeeded' && lrText.startsWith('succeeded'), `the job's run (${runJob}) shows as its last run`, `${JSON.stringify(lr)} | ${lrText}`);
  await shot('pipeline');

  // ---- history explorer: 30 days of 1m bars, whole ----
  if (cfg.hist) {
    await tf(() => window.__tickflow.show('history'));
    await page.fill('#h-ticker', cfg.hist.ticker);
    await page.fill('#h-start', cfg.hist.start.slice(0, 19));
    await page.fill('#h-end', cfg.hist.end.slice(0, 19));
    await page.selectOption('#h-interval', '1m');
    const h0 = Date.now();
    await page.click('#h-form button[type=submit]');
    await waitFor(() => tf(() => window.__tickflow.history().done), 120000, 'history loaded');
    metric('history_30d_1m_load_ms', Date.now() - h0);
    const hs = await tf(() => { const x = window.__tickflow.history(); let steps = 0; for (let i = 1; i < x.bars.length; i++) if (x.bars[i].t - x.bars[i - 1].t !== 60000) steps++; return { rows: x.rows, pages: x.pages, n: x.bars.length, steps, first: x.bars[0]?.t, last: x.bars.at(-1)?.t }; });
    check(hs.rows === cfg.hist.bars && hs.n === cfg.hist.bars, 'history explorer shows every 1m bar of 30 days', JSON.stringify(hs));
    check(hs.steps === 0 && hs.first === Date.parse(cfg.hist.start), 'history bars are contiguous from the start (no page lost)', JSON.stringify(hs));
    check(hs.pages >= 5, 'history came in several pages via next_cursor', `${hs.pages}`);
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click('#h-csv')]);
    const csvPath = path.join(artDir, 'history.csv');
    await dl.saveAs(csvPath);
    const csvLines = fs.readFileSync(csvPath, 'utf8').split('\n').filter((l) => l && !/^ticker,/.test(l));
    check(csvLines.length === cfg.hist.bars, 'CSV download has every bar', `${csvLines.length}`);
    await shot('history');
  }

  // ---- server restart: words while down, then no gap afterwards ----
  await tf(() => window.__tickflow.show('market'));
  await tf(() => window.__tickflow.select('AAPL', 1000));
  await waitFor(() => tf(() => window.__tickflow.market().loaded && window.__tickflow.market().ticker === 'AAPL'), 30000, 'AAPL 1s before restart');
  await sleep(3000);
  outage = [Date.now(), 0];
  console.log(`NOTE outage at ${new Date(outage[0]).toISOString()}`);
  console.log('RESTART');
  await waitFor(() => tf(() => window.__tickflow.live().state !== 'open'), 30000, 'page notices the server is down');
  await sleep(800);
  const downText = await tf(() => document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent);
  check(/cannot be reached.*reconnecting/i.test(downText), 'page says the server is down and that it is reconnecting, in words', downText);
  await shot('server-down');
  await waitLine('RESTARTED', 90000);
  outage[1] = Date.now();
  await waitFor(() => tf(() => window.__tickflow.live().state === 'open'), 30000, 'page reconnects');
  const upText = await tf(() => document.getElementById('banner').textContent);
  check(/Resumed/.test(upText), 'page says it resumed', upText);
  await waitFor(() => tf(() => window.__tickflow.market().loaded), 30000, 'chart refilled');
  const r0 = Date.now();
  await waitFor(() => tf((t) => window.__tickflow.market().bars.at(-1).t > t + 2000, r0), 30000, 'live bars after the restart');
  await sleep(4000);
  {
    const bars = await tf(() => window.__tickflow.market().bars);
    const from = Math.max(bars[0].t, outage[0] - 30000 - ((outage[0] - 30000) % 1000));
    const to = Math.floor((Date.now() - 2500) / 1000) * 1000;
    await compareSeam(page, '1s AAPL across the restart', from, to, 3, 3000);
  }
  await shot('market-after-restart');
  // a phone: one column, the chart still drawn
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(500);
  const phone = await tf(() => { const r = document.getElementById('m-chart').getBoundingClientRect(); return { w: r.width, h: r.height, sw: document.documentElement.scrollWidth }; });
  check(phone.w > 300 && phone.h > 200 && phone.sw <= 400, 'market view fits a phone screen', JSON.stringify(phone));
  await shot('market-phone');
  await page.setViewportSize({ width: 1280, height: 800 });
} catch (e) {
  check(false, 'e2e script ran to the end', String(e && e.stack || e));
  await shot('failure').catch(() => {});
}

check(pageErrors.length === 0, 'no uncaught page errors', pageErrors.slice(0, 5).join(' | '));
check(consoleErrors.length === 0, 'no console errors', consoleErrors.slice(0, 8).join(' | '));
await ctx.close();
fs.rmSync(userDir, { recursive: true, force: true });
rl.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
