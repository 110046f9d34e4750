// The page's one way to the node: same-origin fetches of the /v1 routes,
// with the session cookie (HttpOnly: this script never sees it) and, on a
// write, the session's CSRF token, which lives only in this module.

let csrf = null;
let signedOut = () => {};

export function setCsrf(token) {
  csrf = token;
}

/** Called when the node no longer knows the session (it ended, or the user was revoked). */
export function onSignedOut(f) {
  signedOut = f;
}

async function answer(res) {
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json() : await res.text();
  if (res.status === 401) signedOut();
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** An error answer: the problem+json's words as they came. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = typeof problem === 'object' && problem ? problem.detail : String(problem || '');
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.field = problem && problem.field;
    this.title = (problem && problem.title) || `HTTP ${status}`;
  }
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(res);
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);

/** A query string from the parameters that are set. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;

// Formatting: units in names, plain words.

export function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}

export const short = (hash) => (hash ? `${hash.slice(0, 12)}…` : '');
export const when = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '');

/** Sends `body` as it is (a file, a tar, a YAML text) with its type. */
export async function send(method, path, body, type) {
  const headers = { 'content-type': type };
  if (csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body });
  return answer(res);
}
