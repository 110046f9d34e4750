// Small pieces every screen uses: links that route without a reload, a
// loader hook, error boxes that show the node's own words, buttons that
// ask before they write, and a countdown.

import { html, useState, useEffect, useCallback } from './vendor/htm-preact.js';

const listeners = new Set();

export function navigate(to) {
  if (to !== location.pathname + location.search) history.pushState(null, '', to);
  listeners.forEach((f) => f());
}

export function useLocation() {
  const [, bump] = useState(0);
  useEffect(() => {
    const f = () => bump((n) => n + 1);
    listeners.add(f);
    window.addEventListener('popstate', f);
    return () => {
      listeners.delete(f);
      window.removeEventListener('popstate', f);
    };
  }, []);
  return { path: location.pathname, params: new URLSearchParams(location.search) };
}

export function Link({ to, children, ...rest }) {
  const go = (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(to);
  };
  return html`<a href=${to} onClick=${go} ...${rest}>${children}</a>`;
}

/** Loads `fn()` now and whenever `deps` change; `reload` loads again. */
export function useLoad(fn, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fn().then(
      (data) => live && setState({ loading: false, data, error: null }),
      (error) => live && setState({ loading: false, data: null, error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">
    <strong>${error.title || 'Error'}</strong>${error.field ? html` (field <code>${error.field}</code>)` : ''}: ${error.message}
  </div>`;
}

export function Loaded({ state, children }) {
  if (state.error) return html`<${ErrorBox} error=${state.error} />`;
  if (state.loading && !state.data) return html`<p class="loading">Loading…</p>`;
  return children(state.data);
}

/**
 * A button that writes: it asks first (`confirm`), shows the node's answer
 * or error, and calls `done` after a success.
 */
export function Action({ label, confirm, run, done, kind }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const click = async () => {
    if (confirm && !window.confirm(confirm)) return;
    setBusy(true);
    setError(null);
    try {
      await run();
      if (done) done();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="action">
    <button class=${kind || ''} disabled=${busy} onClick=${click}>${busy ? '…' : label}</button>
    <${ErrorBox} error=${error} />
  </span>`;
}

/** Re-renders every `ms` milliseconds, and returns the time now. */
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export const ROLES = ['viewer', 'member', 'admin'];
export const atLeast = (me, role) => ROLES.indexOf(me.role) >= ROLES.indexOf(role);

export function Status({ value }) {
  return html`<span class=${`status s-${value}`}>${value}</span>`;
}

/**
 * Follows a server-sent event stream: `listeners` maps event names to
 * handlers. The stream is closed when the page is hidden (a page kept in
 * the back/forward cache would otherwise hold its connection, and a
 * browser opens only six to one node) and opened again, after `reset()`,
 * if the page comes back. Returns the function that closes it for good.
 */
export function follow(url, listeners, reset = () => {}) {
  let events = null;
  const open = () => {
    events = new EventSource(url);
    for (const [name, f] of Object.entries(listeners)) events.addEventListener(name, f);
  };
  const hide = () => events.close();
  const show = (e) => {
    if (!e.persisted) return;
    reset();
    open();
  };
  open();
  window.addEventListener('pagehide', hide);
  window.addEventListener('pageshow', show);
  return () => {
    events.close();
    window.removeEventListener('pagehide', hide);
    window.removeEventListener('pageshow', show);
  };
}
