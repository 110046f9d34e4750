// Leases, incoming and outgoing, with what this user may do to each, and
// the inbox: everything that waits for this org's word.

import { html, useState } from '../vendor/htm-preact.js';
import { get, post, query, enc, bytes, when } from '../api.js';
import { Action, Link, Loaded, atLeast, useLoad } from '../ui.js';
import { LeaseTable } from './catalog.js';

/** Asks for the words a refusal must carry; null when the user gives up. */
const why = (what) => {
  const r = window.prompt(`Why ${what}? The other organisation reads this on the ledger.`);
  return r && r.trim() ? r.trim() : null;
};

function leaseActions(me, reload) {
  return (l) => {
    const owner = l.owner === me.org && atLeast(me, 'admin');
    const lessee = l.lessee === me.org && atLeast(me, 'member');
    const a = [];
    if (owner && l.status === 'requested') {
      a.push(html`<${Action} label="Grant" confirm=${`Grant ${l.lessee} lease ${l.id}?`} run=${() => post(`/v1/leases/${enc(l.id)}/grant`, {})} done=${reload} />`);
      a.push(html`<${Action} label="Deny" kind="danger" run=${() => {
        const reason = why('deny it');
        return reason ? post(`/v1/leases/${enc(l.id)}/deny`, { reason }) : Promise.resolve();
      }} done=${reload} />`);
    }
    if (owner && l.status === 'active') {
      a.push(html`<${Action} label="Extend" run=${() => {
        const h = Number(window.prompt('Extend by how many hours?', '1'));
        return h > 0 ? post(`/v1/leases/${enc(l.id)}/extend`, { extra_ms: Math.round(h * 3600000) }) : Promise.resolve();
      }} done=${reload} />`);
      a.push(html`<${Action} label="Revoke" kind="danger" run=${() => {
        const reason = why('revoke it');
        return reason ? post(`/v1/leases/${enc(l.id)}/revoke`, { reason }) : Promise.resolve();
      }} done=${reload} />`);
    }
    if (lessee && l.status === 'active') {
      a.push(html`<${Action} label="Release" confirm=${`Give lease ${l.id} back now? Its data is deleted from this node.`}
        run=${() => post(`/v1/leases/${enc(l.id)}/release`, {})} done=${reload} />`);
    }
    return a;
  };
}

function AccessLog({ id }) {
  const log = useLoad(() => get(`/v1/leases/${enc(id)}/access-log`), [id]);
  return html`<div class="pane"><h3>Access log of ${id}</h3>
    <${Loaded} state=${log}>${(entries) => html`<pre class="json">${JSON.stringify(entries, null, 2)}</pre>`}<//></div>`;
}

function LeaseList({ me, role, title }) {
  const list = useLoad(() => get(`/v1/leases${query({ role })}`), [role]);
  const [shown, setShown] = useState(null);
  const actions = (l) => [
    ...leaseActions(me, list.reload)(l),
    html`<button class="quiet" onClick=${() => setShown(shown === l.id ? null : l.id)}>Access log</button>`,
  ];
  return html`<h2>${title}</h2>
    <${Loaded} state=${list}>${(leases) => html`<${LeaseTable} leases=${leases} actions=${actions} />`}<//>
    ${shown && html`<${AccessLog} id=${shown} />`}`;
}

export function Leases({ me }) {
  return html`<section><h1>Leases</h1>
    <${LeaseList} me=${me} role="owner" title="Incoming: leases of this organisation's datasets" />
    <${LeaseList} me=${me} role="lessee" title="Outgoing: leases this organisation holds" />
  </section>`;
}

async function inbox(me) {
  const [requests, publications, runs, orgs] = await Promise.all([
    get(`/v1/leases${query({ role: 'owner', status: 'requested' })}`),
    get('/v1/publications'),
    get('/v1/runs'),
    get('/v1/orgs'),
  ]);
  return {
    requests,
    publications: publications.filter((p) => p.awaiting.includes(me.org)),
    releases: runs.filter((r) => r.executor === me.org && r.org !== me.org && !r.release && r.status === 'succeeded'),
    changes: orgs.pending.filter((c) => !c.approvals.includes(me.org) && !c.denials.includes(me.org)),
  };
}

function Decide({ me, path, what, reload }) {
  if (!atLeast(me, 'admin')) return null;
  return html`<${Action} label="Approve" confirm=${`Approve ${what}?`} run=${() => post(`${path}/approve`, { reason: '' })} done=${reload} />
    <${Action} label="Deny" kind="danger" run=${() => {
      const reason = why(`deny ${what}`);
      return reason ? post(`${path}/deny`, { reason }) : Promise.resolve();
    }} done=${reload} />`;
}

export function Inbox({ me }) {
  const box = useLoad(() => inbox(me), [me.org]);
  return html`<section><h1>Inbox</h1>
    <${Loaded} state=${box}>${(b) => html`
      <h2>Lease requests (${b.requests.length})</h2>
      <${LeaseTable} leases=${b.requests} actions=${leaseActions(me, box.reload)} />
      <h2>Compute releases (${b.releases.length})</h2>
      ${b.releases.length === 0 ? html`<p class="muted">None.</p>` : html`<table><thead><tr><th>Run</th><th>For</th><th>Leases</th><th></th></tr></thead>
        <tbody>${b.releases.map((r) => html`<tr data-run=${r.id}>
          <td><${Link} to=${`/runs/${enc(r.id)}`}>${r.id}<//></td><td>${r.org}</td><td>${r.leases.join(', ')}</td>
          <td><${Decide} me=${me} path=${`/v1/releases/${enc(r.id)}`} what=${`releasing run ${r.id}'s outputs to ${r.org}`} reload=${box.reload} /></td>
        </tr>`)}</tbody></table>`}
      <h2>Publications (${b.publications.length})</h2>
      ${b.publications.length === 0 ? html`<p class="muted">None.</p>` : html`<table><thead><tr><th>Dataset</th><th>By</th><th>Run</th><th>Size</th><th></th></tr></thead>
        <tbody>${b.publications.map((p) => html`<tr>
          <td>${p.title} <span class="muted">${p.id}</span></td><td>${p.publisher}</td>
          <td><${Link} to=${`/runs/${enc(p.run_id)}`}>${p.run_id}<//></td><td>${bytes(p.size_bytes)}</td>
          <td><${Decide} me=${me} path=${`/v1/publications/${enc(p.id)}`} what=${`publishing ${p.id}`} reload=${box.reload} /></td>
        </tr>`)}</tbody></table>`}
      <h2>Organisation changes (${b.changes.length})</h2>
      ${b.changes.length === 0 ? html`<p class="muted">None.</p>` : html`<table><thead><tr><th>Change</th><th>Org</th><th>Proposed by</th><th>Approved by</th><th></th></tr></thead>
        <tbody>${b.changes.map((c) => html`<tr>
          <td>${c.kind} <span class="muted">${c.change_id}</span></td><td>${c.org}</td><td>${c.proposed_by} ${when(c.proposed_at_ms)}</td>
          <td>${c.approvals.join(', ')}</td>
          <td><${Decide} me=${me} path=${`/v1/orgs/changes/${enc(c.change_id)}`} what=${`the ${c.kind} of ${c.org}`} reload=${box.reload} /></td>
        </tr>`)}</tbody></table>`}
    `}<//>
  </section>`;
}
