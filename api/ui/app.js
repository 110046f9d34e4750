// The explorer's shell: sign-in, the header and its navigation, the live
// status every screen may show, and the routes to the screens.

import { html, render, useState, useEffect } from './vendor/htm-preact.js';
import { api, get, onSignedOut, setCsrf } from './api.js';
import { ErrorBox, Link, follow, navigate, useLocation } from './ui.js';
import { Overview } from './screens/overview.js';
import { Catalog, DatasetPage } from './screens/catalog.js';
import { Leases, Inbox } from './screens/leases.js';
import { Runs, RunPage } from './screens/runs.js';
import { Ledger, BlockPage, TxPage, Search } from './screens/ledger.js';
import { Orgs, Users, Operations } from './screens/admin.js';

function SignIn({ onIn }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      const me = await api('POST', '/v1/session', { token });
      setToken('');
      onIn(me);
    } catch (err) {
      setError(err);
    }
  };
  return html`<main class="signin">
    <h1>leasehold</h1>
    <form onSubmit=${submit}>
      <label for="token">Your token</label>
      <input id="token" type="password" autocomplete="off" value=${token} onInput=${(e) => setToken(e.target.value)} />
      <button type="submit">Sign in</button>
      <p class="hint">Paste the token your node's admin gave you (<code>leasehold user add</code>). It is sent once;
      the node keeps you signed in with a cookie this page cannot read.</p>
    </form>
    <${ErrorBox} error=${error} />
  </main>`;
}

/** Follows the node's status as it changes (server-sent events). */
function useStatus() {
  const [status, setStatus] = useState(null);
  useEffect(() => follow('/v1/status/events', { status: (e) => setStatus(JSON.parse(e.data)) }), []);
  return status;
}

const NAV = [
  ['/', 'Overview'],
  ['/datasets', 'Catalog'],
  ['/leases', 'Leases'],
  ['/inbox', 'Inbox'],
  ['/runs', 'Runs'],
  ['/ledger', 'Ledger'],
  ['/orgs', 'Organisations'],
  ['/operations', 'Operations'],
];

function Header({ me, status, onOut }) {
  const { path } = useLocation();
  const [q, setQ] = useState('');
  const search = (e) => {
    e.preventDefault();
    navigate(`/search?q=${encodeURIComponent(q.trim())}`);
  };
  const out = async () => {
    try {
      await api('DELETE', '/v1/session');
    } finally {
      onOut();
    }
  };
  const here = (to) => (to === '/' ? path === '/' : path.startsWith(to));
  return html`<header>
    <div class="brand">leasehold <span class="org">${me.org}</span>
      ${status && html`<span class="height" title="ledger height">#${status.height}</span>`}</div>
    <nav>${NAV.map(([to, label]) => html`<${Link} to=${to} class=${here(to) ? 'here' : ''}>${label}<//>`)}
      ${me.role === 'admin' && html`<${Link} to="/users" class=${here('/users') ? 'here' : ''}>Users<//>`}</nav>
    <form class="search" onSubmit=${search} role="search">
      <input aria-label="Search" placeholder="dataset, lease, run, tx or block" value=${q} onInput=${(e) => setQ(e.target.value)} />
    </form>
    <div class="me"><span>${me.user}</span> <span class="role">${me.role}</span>
      <button class="quiet" onClick=${out}>Sign out</button></div>
  </header>`;
}

function route(path, params, me, status) {
  const m = (re) => path.match(re);
  let r;
  if (path === '/') return html`<${Overview} me=${me} status=${status} />`;
  if (path === '/datasets') return html`<${Catalog} me=${me} />`;
  if ((r = m(/^\/datasets\/([^/]+)$/))) return html`<${DatasetPage} me=${me} id=${decodeURIComponent(r[1])} />`;
  if (path === '/leases') return html`<${Leases} me=${me} />`;
  if (path === '/inbox') return html`<${Inbox} me=${me} />`;
  if (path === '/runs') return html`<${Runs} me=${me} />`;
  if ((r = m(/^\/runs\/([^/]+)$/))) return html`<${RunPage} me=${me} id=${decodeURIComponent(r[1])} />`;
  if (path === '/ledger') return html`<${Ledger} status=${status} params=${params} />`;
  if ((r = m(/^\/ledger\/(\d+)$/))) return html`<${BlockPage} height=${r[1]} />`;
  if ((r = m(/^\/txs\/([0-9a-f]+)$/))) return html`<${TxPage} id=${r[1]} />`;
  if (path === '/search') return html`<${Search} q=${params.get('q') || ''} />`;
  if (path === '/orgs') return html`<${Orgs} me=${me} />`;
  if (path === '/users') return html`<${Users} me=${me} />`;
  if (path === '/operations') return html`<${Operations} me=${me} status=${status} />`;
  return html`<p>Nothing here. <${Link} to="/">Overview<//></p>`;
}

function Signed({ me, onOut }) {
  const status = useStatus();
  const { path, params } = useLocation();
  return html`<${Header} me=${me} status=${status} onOut=${onOut} />
    <main>${route(path, params, me, status)}</main>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    onSignedOut(() => {
      setCsrf(null);
      setMe(null);
    });
    get('/v1/session').then(
      (s) => {
        setCsrf(s.csrf);
        setMe(s);
      },
      () => setMe(null),
    );
  }, []);
  if (me === undefined) return html`<p class="loading">Loading…</p>`;
  if (me === null) {
    return html`<${SignIn} onIn=${(s) => {
      setCsrf(s.csrf);
      setMe(s);
    }} />`;
  }
  return html`<${Signed} me=${me} onOut=${() => {
    setCsrf(null);
    setMe(null);
  }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
