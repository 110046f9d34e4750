// Organisations (the roster and the changes waiting), this node's users
// (admins only), and operations: backups, metrics, the API's docs.

import { html, useState } from '../vendor/htm-preact.js';
import { api, get, post, enc, when } from '../api.js';
import { Action, ErrorBox, Link, Loaded, atLeast, useLoad } from '../ui.js';

export function Orgs() {
  const orgs = useLoad(() => get('/v1/orgs'), []);
  return html`<section><h1>Organisations</h1>
    <${Loaded} state=${orgs}>${(o) => html`
      <table><thead><tr><th>Org</th><th>Name</th><th>Node</th><th>Address</th><th>Member</th></tr></thead>
        <tbody>${o.members.map((m) => html`<tr><td>${m.org}</td><td>${m.name}</td><td>${m.node_id}</td>
          <td class="mono">${m.p2p_addr}</td><td>${m.left ? `left: ${m.left.reason || ''}` : 'yes'}</td></tr>`)}</tbody></table>
      <h2>Changes waiting (${o.pending.length})</h2>
      ${o.pending.length === 0 ? html`<p class="muted">None.</p>` : html`<table>
        <thead><tr><th>Change</th><th>Org</th><th>Proposed by</th><th>Approved by</th><th>Refused by</th></tr></thead>
        <tbody>${o.pending.map((c) => html`<tr><td>${c.kind} <span class="muted">${c.change_id}</span></td><td>${c.org}</td>
          <td>${c.proposed_by} ${when(c.proposed_at_ms)}</td><td>${c.approvals.join(', ')}</td><td>${c.denials.join(', ')}</td></tr>`)}</tbody>
      </table><p>Decide them in the <${Link} to="/inbox">inbox<//>.</p>`}`}<//>
  </section>`;
}

function AddUser({ done }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState('member');
  const [made, setMade] = useState(null);
  const [error, setError] = useState(null);
  const add = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      setMade(await post('/v1/users', { name, role }));
      setName('');
      done();
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="form" onSubmit=${add}>
    <label>Name <input value=${name} onInput=${(e) => setName(e.target.value)} /></label>
    <label>Role <select value=${role} onChange=${(e) => setRole(e.target.value)}>
      <option>viewer</option><option>member</option><option>admin</option></select></label>
    <button type="submit">Add user</button>
    <${ErrorBox} error=${error} />
    ${made && html`<p class="pane">Token for ${made.name}, shown once: <code class="token">${made.token}</code></p>`}
  </form>`;
}

export function Users({ me }) {
  const users = useLoad(() => get('/v1/users'), []);
  if (!atLeast(me, 'admin')) return html`<p>Only an admin sees this node's users.</p>`;
  return html`<section><h1>Users of ${me.org}'s node</h1>
    <${AddUser} done=${users.reload} />
    <${Loaded} state=${users}>${(list) => html`<table>
      <thead><tr><th>Name</th><th>Role</th><th>Since</th><th></th></tr></thead>
      <tbody>${list.map((u) => html`<tr><td>${u.name}</td><td>${u.role}</td><td>${u.created_at}</td>
        <td>${u.name !== me.user && html`<${Action} label="Revoke" kind="danger" confirm=${`Revoke ${u.name}? Their token and sessions stop working at once.`}
          run=${() => api('DELETE', `/v1/users/${enc(u.name)}`)} done=${users.reload} />`}</td></tr>`)}</tbody></table>`}<//>
  </section>`;
}

/** The node's own counters, read from /metrics: the families and their sums. */
function Metrics() {
  const text = useLoad(() => fetch('/metrics').then((r) => r.text()), []);
  return html`<${Loaded} state=${text}>${(t) => {
    const sums = {};
    for (const line of t.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+([-\d.e+]+|NaN)/);
      if (m) sums[m[1]] = (sums[m[1]] || 0) + Number(m[2]);
    }
    const names = Object.keys(sums).filter((n) => n.startsWith('leasehold_')).sort();
    return html`<table class="metrics"><tbody>${names.map((n) => html`<tr><td class="mono">${n}</td>
      <td>${Number.isInteger(sums[n]) ? sums[n] : sums[n].toFixed(3)}</td></tr>`)}</tbody></table>`;
  }}<//>`;
}

export function Operations({ me, status }) {
  const [backup, setBackup] = useState(null);
  return html`<section><h1>Operations</h1>
    ${status && html`<dl class="facts"><dt>Org</dt><dd>${status.org}</dd><dt>Raft applied</dt><dd>${status.raft_applied_index}</dd>
      <dt>State root</dt><dd class="mono">${status.state_root}</dd></dl>`}
    <p><a href="/v1/docs">The API's documentation</a> (served by this node) and its
      <a href="/v1/openapi.json">OpenAPI document</a>.</p>
    ${atLeast(me, 'admin') && html`<h2>Backup</h2>
      <${Action} label="Take a backup" confirm="Take a backup of this node now?" run=${async () => setBackup(await post('/v1/backups', {}))} />
      ${backup && html`<p class="pane">Backup at <code>${backup.path}</code>, height ${backup.height}.</p>`}`}
    ${atLeast(me, 'admin') && html`<h2>Configuration</h2><${Config} />`}
    <h2>Metrics</h2><${Metrics} />
  </section>`;
}

/** The node's configuration as it runs (no secret is in it). */
function Config() {
  const config = useLoad(() => get('/v1/config'), []);
  return html`<${Loaded} state=${config}>${(c) => html`<pre class="json" id="config">${JSON.stringify(c, null, 2)}</pre>`}<//>`;
}
