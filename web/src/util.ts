// Small helpers shared by the views: DOM, formatting, fetch that never throws
// past its caller and says in words what went wrong.

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e as T;
};

export function h(tag: string, attrs: Record<string, string> = {}, ...kids: (Node | string)[]): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

export type Result<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number; missing: boolean; message: string };

// GET/POST returning parsed JSON. status 0 = the server could not be reached.
// missing = 404 (an endpoint this server does not have yet).
export async function api<T>(path: string, init?: RequestInit): Promise<Result<T>> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, missing: false, message: 'the server cannot be reached' };
  }
  let body: unknown = null;
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (res.ok) return { ok: true, status: res.status, data: body as T };
  const err = (body as { error?: { message?: string; param?: string } } | null)?.error;
  let message = err?.message ?? `HTTP ${res.status}`;
  if (err?.param) message += ` (${err.param})`;
  if (res.status === 404) message = 'not available on this server';
  if (res.status === 503 && !err) message = 'the server is not ready (a dependency is down)';
  return { ok: false, status: res.status, missing: res.status === 404, message };
}

export const num = (s: string | number | null | undefined): number =>
  typeof s === 'number' ? s : s == null ? NaN : parseFloat(s);

export function fmtPrice(v: number): string {
  if (!isFinite(v)) return '–';
  return v >= 1000 ? v.toFixed(2) : v >= 1 ? v.toFixed(2) : v.toPrecision(4);
}

export function fmtInt(v: number): string {
  return isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–';
}

export function fmtTime(ms: number, withDate = false): string {
  const d = new Date(ms);
  const iso = d.toISOString();
  return withDate ? iso.slice(0, 19).replace('T', ' ') : iso.slice(11, 19);
}

export function fmtSigned(v: number, digits = 2): string {
  if (!isFinite(v)) return '–';
  return (v > 0 ? '+' : '') + v.toFixed(digits);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function debounce<A extends unknown[]>(fn: (...a: A) => void, ms: number) {
  let t: ReturnType<typeof setTimeout> | undefined;
  return (...a: A) => {
    if (t) clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

// The banner under the header: errors in words, never a blank page.
let bannerTimer: ReturnType<typeof setTimeout> | undefined;
export function banner(text: string | null, kind: 'error' | 'info' = 'error', ttlMs = 0) {
  const b = $('banner');
  if (bannerTimer) clearTimeout(bannerTimer);
  if (!text) {
    b.hidden = true;
    return;
  }
  b.textContent = text;
  b.className = kind === 'info' ? 'banner info' : 'banner';
  b.hidden = false;
  if (ttlMs) bannerTimer = setTimeout(() => (b.hidden = true), ttlMs);
}
