// The catalog and a dataset's page: public metadata, versions by content
// hash, the policy in plain words, its files with their sizes (to the owner
// and an active lessee), lineage, this org's leases of it, a lease request,
// and the private metadata pane for an active lessee.

import { html, useState } from '../vendor/htm-preact.js';
import { get, post, query, enc, bytes, duration, short, when } from '../api.js';
import { Action, ErrorBox, Link, Loaded, Status, atLeast, useLoad, useNow } from '../ui.js';
import { Register } from './register.js';
import { LineageGraph } from './lineage.js';

const PAGE = 50;

export function Catalog({ me }) {
  const [q, setQ] = useState('');
  const [applied, setApplied] = useState('');
  const [pages, setPages] = useState([undefined]);
  const after = pages[pages.length - 1];
  const list = useLoad(() => get(`/v1/datasets${query({ q: applied, after, limit: PAGE })}`), [applied, after]);
  const find = (e) => {
    e.preventDefault();
    setPages([undefined]);
    setApplied(q.trim());
  };
  return html`<section>
    <h1>Catalog</h1>
    ${atLeast(me, 'admin') && html`<${Register} me=${me} />`}
    <form class="inline" onSubmit=${find}>
      <input aria-label="Search the catalog" placeholder="title, description or tag" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <button type="submit">Search</button>
    </form>
    <${Loaded} state=${list}>${(page) => html`
      <table class="datasets">
        <thead><tr><th>Dataset</th><th>Owner</th><th>Access</th><th>Size</th><th>Tags</th></tr></thead>
        <tbody>${page.items.map((d) => html`<tr>
          <td><${Link} to=${`/datasets/${enc(d.id)}`}>${d.title}<//> <span class="muted">${d.id} v${d.version}</span></td>
          <td>${d.owner}</td><td>${d.policy.access}</td><td>${bytes(d.size_bytes)}</td><td>${d.tags.join(', ')}</td>
        </tr>`)}</tbody>
      </table>
      ${page.items.length === 0 && html`<p class="muted">No dataset matches.</p>`}
      <div class="pager">
        ${pages.length > 1 && html`<button class="quiet" onClick=${() => setPages(pages.slice(0, -1))}>Previous</button>`}
        ${page.next && html`<button class="quiet" onClick=${() => setPages([...pages, page.next])}>Next</button>`}
      </div>`}<//>
  </section>`;
}

/** The policy as sentences a data scientist can act on. */
export function PolicyWords({ policy }) {
  const derived = {
    allow: 'Results derived from it may be published.',
    owner_approval: 'A result derived from it is published only once the owner approves it.',
    deny: 'Only its owner may publish what is derived from it.',
  }[policy.derived];
  const r = policy.release;
  return html`<ul class="policy">
    <li>Who may lease it: ${policy.allowed_orgs.join(', ')}.</li>
    <li>For at most ${duration(policy.max_lease_ms)} a lease${policy.exclusive ? ', one lessee at a time' : ''}.</li>
    <li>${policy.approval === 'automatic' ? 'Requests are granted automatically.' : 'The owner grants or denies each request.'}</li>
    ${policy.access === 'compute'
      ? html`<li>The files never leave the owner's node: lessees' workflows run there (compute-to-data).
          ${r.approval ? ' The owner approves each release of outputs.' : ''}
          Outputs up to ${bytes(r.max_output_bytes)}; logs: ${r.logs}.</li>`
      : html`<li>A lessee's node fetches the files, verified against the ledger.</li>`}
    ${policy.require_tests && html`<li>Workflows that read it must declare QC tests, which must pass first.</li>`}
    <li>${derived}</li>
  </ul>`;
}

/** The private metadata, asked of the owner's node at the moment of reading. */
export function PrivatePane({ lease }) {
  const now = useNow();
  const [read, setRead] = useState(null);
  const [error, setError] = useState(null);
  const left = (lease.expires_at_ms || 0) - now;
  if (left <= 0) {
    return html`<div class="pane ended" id="private-pane">
      <h3>Private metadata</h3><p>The lease ended: the owner's node discloses nothing more.</p></div>`;
  }
  const load = async () => {
    setError(null);
    try {
      setRead(await get(`/v1/leases/${enc(lease.id)}/metadata`));
    } catch (e) {
      setError(e);
    }
  };
  return html`<div class="pane" id="private-pane">
    <h3>Private metadata</h3>
    <p>Lease <code>${lease.id}</code> ends in <strong class="countdown">${duration(left)}</strong>.</p>
    ${read
      ? html`<pre class="json">${JSON.stringify(read.private_metadata, null, 2)}</pre>
          <p class="muted">Disclosed by ${lease.owner} at ${read.decided_at}; audited as tx ${short(read.audit_tx_id)}.</p>`
      : html`<button onClick=${load}>Read it from ${lease.owner}'s node</button>`}
    <${ErrorBox} error=${error} />
  </div>`;
}

/** Its files and sizes: the owner's list, asked through the lease when this org is the lessee. */
function Files({ id, lease }) {
  const files = useLoad(() => get(`/v1/datasets/${enc(id)}/files`), [id, lease]);
  return html`<${Loaded} state=${files}>${(f) => html`
    <table class="files"><thead><tr><th>File</th><th>Size</th></tr></thead>
      <tbody>${f.files.map((x) => html`<tr><td class="mono">${x.path}</td><td>${bytes(x.size_bytes)}</td></tr>`)}</tbody></table>
    <p class="muted">Version ${f.version}: ${f.files.length} files, ${bytes(f.total_bytes)} in all.</p>`}<//>`;
}

function RequestLease({ ds, done }) {
  const [hours, setHours] = useState(Math.min(24, ds.policy.max_lease_ms / 3600000));
  const [purpose, setPurpose] = useState('');
  const run = () => post(`/v1/datasets/${enc(ds.id)}/leases`, { duration_ms: Math.round(hours * 3600000), purpose });
  return html`<div class="form">
    <label>Hours <input type="number" min="0" step="any" value=${hours} onInput=${(e) => setHours(Number(e.target.value))} /></label>
    <label>Purpose <input value=${purpose} onInput=${(e) => setPurpose(e.target.value)} /></label>
    <${Action} label="Request a lease" confirm=${`Ask ${ds.owner} for a lease of ${ds.id} for ${hours} h?`} run=${run} done=${done} />
  </div>`;
}

export function DatasetPage({ me, id }) {
  const detail = useLoad(() => get(`/v1/datasets/${enc(id)}`), [id]);
  const leases = useLoad(() => get(`/v1/leases${query({ dataset: id })}`), [id]);
  // The dataset's own fields come flattened, next to its versions and lineage.
  return html`<${Loaded} state=${detail}>${(ds) => {
    const { versions, lineage } = ds;
    const mine = (leases.data || []).filter((l) => l.lessee === me.org);
    const active = mine.find((l) => l.status === 'active');
    const canRequest = atLeast(me, 'member') && ds.owner !== me.org && !ds.retired && ds.policy.allowed_orgs.includes(me.org);
    return html`<section>
      <h1>${ds.title} ${ds.retired && html`<span class="status s-retired">retired</span>`}</h1>
      <p>${ds.description}</p>
      <dl class="facts">
        <dt>Id</dt><dd>${ds.id}</dd><dt>Owner</dt><dd>${ds.owner}</dd>
        <dt>Version</dt><dd>${ds.version}, content ${short(ds.content_hash)}</dd>
        <dt>Size</dt><dd>${bytes(ds.size_bytes)}</dd><dt>Tags</dt><dd>${ds.tags.join(', ')}</dd>
        <dt>Updated</dt><dd>${ds.updated_at}</dd>
      </dl>
      <h2>Public metadata</h2><pre class="json">${JSON.stringify(ds.public_metadata, null, 2)}</pre>
      <h2>Policy</h2><${PolicyWords} policy=${ds.policy} />
      <h2>Versions</h2>
      <table><thead><tr><th>Version</th><th>Title</th><th>Content hash</th><th>Updated</th></tr></thead>
        <tbody>${versions.map((v) => html`<tr><td>${v.version}</td><td>${v.title}</td><td class="mono">${short(v.content_hash)}</td><td>${v.updated_at}</td></tr>`)}</tbody></table>
      <h2>Files</h2>
      ${ds.owner === me.org || (active && ds.policy.access !== 'compute')
        ? html`<${Files} id=${ds.id} lease=${active && active.id} />`
        : html`<p class="muted">Listed to the owner and to an organisation with an active lease.</p>`}
      <h2>Lineage</h2><${LineageGraph} lineage=${lineage} />
      ${active && ds.policy.access !== 'compute' && html`<${PrivatePane} lease=${active} />`}
      ${canRequest && !active && html`<h2>Lease it</h2><${RequestLease} ds=${ds} done=${leases.reload} />`}
      <h2>Leases ${ds.owner === me.org ? 'of it' : 'your organisation holds'}</h2>
      <${Loaded} state=${leases}>${(list) => html`<${LeaseTable} leases=${list} />`}<//>
    </section>`;
  }}<//>`;
}

export function LeaseTable({ leases, actions }) {
  if (!leases.length) return html`<p class="muted">None.</p>`;
  return html`<table class="leases">
    <thead><tr><th>Lease</th><th>Dataset</th><th>Lessee</th><th>Status</th><th>Ends</th><th>Purpose</th>${actions && html`<th></th>`}</tr></thead>
    <tbody>${leases.map((l) => html`<tr data-lease=${l.id}>
      <td class="mono">${l.id}</td>
      <td><${Link} to=${`/datasets/${enc(l.dataset_id)}`}>${l.dataset_id}<//></td>
      <td>${l.lessee}</td>
      <td><${Status} value=${l.status} />${l.reason && html` <span class="muted">${l.reason}</span>`}</td>
      <td>${l.expires_at_ms ? when(l.expires_at_ms) : `asks ${duration(l.requested_ms)}`}</td>
      <td>${l.purpose}</td>
      ${actions && html`<td>${actions(l)}</td>`}
    </tr>`)}</tbody>
  </table>`;
}
