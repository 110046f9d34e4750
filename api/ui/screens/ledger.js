// The ledger: blocks newest first, a page at a time from the node; a block
// with its transactions and certificates; a transaction; and search by
// dataset, lease, run, tx id or block height.

import { html, useEffect, useState } from '../vendor/htm-preact.js';
import { get, query, enc, short, when } from '../api.js';
import { Link, Loaded, navigate, useLoad } from '../ui.js';

const PAGE = 20;

export function Ledger({ status, params }) {
  if (!status && !params.get('to')) return html`<p class="loading">Waiting for the node's status…</p>`;
  return html`<${Blocks} head=${status ? status.height : Number(params.get('to'))} params=${params} />`;
}

function Blocks({ head, params }) {
  const upTo = Number(params.get('to')) || head;
  const from = Math.max(1, upTo - PAGE + 1);
  const blocks = useLoad(() => (upTo ? get(`/v1/blocks${query({ from, limit: upTo - from + 1 })}`) : Promise.resolve([])), [from, upTo]);
  return html`<section><h1>Ledger</h1>
    <${Loaded} state=${blocks}>${(list) => html`<table>
      <thead><tr><th>Height</th><th>Time</th><th>Proposer</th><th>Txs</th><th>Certified</th><th>Hash</th></tr></thead>
      <tbody>${list.slice().reverse().map((b) => html`<tr>
        <td><${Link} to=${`/ledger/${b.height}`}>#${b.height}<//></td><td>${when(b.time_ms)}</td><td>${b.proposer}</td>
        <td>${b.txs.length}</td><td>${b.certified ? 'yes' : 'not yet'}</td><td class="mono">${short(b.hash)}</td>
      </tr>`)}</tbody></table>`}<//>
    <div class="pager">
      ${upTo < head && html`<${Link} to=${`/ledger?to=${Math.min(head, upTo + PAGE)}`}>Newer<//>`}
      ${from > 1 && html`<${Link} to=${`/ledger?to=${from - 1}`}>Older<//>`}
    </div>
  </section>`;
}

export function BlockPage({ height }) {
  const block = useLoad(() => get(`/v1/blocks/${height}`), [height]);
  return html`<${Loaded} state=${block}>${(b) => html`<section>
    <h1>Block #${b.height}</h1>
    <dl class="facts">
      <dt>Hash</dt><dd class="mono">${b.hash}</dd><dt>Previous</dt><dd class="mono">${b.prev_hash}</dd>
      <dt>Time</dt><dd>${when(b.time_ms)}</dd><dt>Proposer</dt><dd>${b.proposer}</dd>
      <dt>State root</dt><dd class="mono">${b.state_root}</dd>
      <dt>Certified</dt><dd>${b.certified ? 'by a majority' : 'not yet'}</dd>
    </dl>
    <h2>Certificate</h2>
    <table><thead><tr><th>Org</th><th>Signed hash</th><th>Signature</th></tr></thead>
      <tbody>${b.certificate.map((c) => html`<tr><td>${c.org}</td><td class="mono">${short(c.hash)}</td><td class="mono">${short(c.signature)}</td></tr>`)}</tbody></table>
    ${b.conflicting.length > 0 && html`<h2 class="bad">Signatures on another block at this height</h2>
      <pre class="json">${JSON.stringify(b.conflicting, null, 2)}</pre>`}
    <h2>Transactions</h2>
    <table><thead><tr><th>Tx</th><th>Signer</th><th>Kind</th><th>Verdict</th></tr></thead>
      <tbody>${b.txs.map((t) => html`<tr>
        <td>${t.valid ? html`<${Link} to=${`/txs/${t.tx_id}`}>${short(t.tx_id)}<//>` : html`<span class="mono">${short(t.tx_id)}</span>`}</td>
        <td>${t.org}</td><td>${t.kind}</td><td>${t.valid ? 'valid' : `rejected: ${t.reason}`}</td></tr>`)}</tbody></table>
    <div class="pager">${b.height > 1 && html`<${Link} to=${`/ledger/${b.height - 1}`}>Previous block<//>`}
      <${Link} to=${`/ledger/${b.height + 1}`}>Next block<//></div>
  </section>`}<//>`;
}

export function TxPage({ id }) {
  const tx = useLoad(() => get(`/v1/txs/${enc(id)}`), [id]);
  return html`<${Loaded} state=${tx}>${(t) => html`<section>
    <h1>Transaction ${short(t.tx_id)}</h1>
    <dl class="facts"><dt>Id</dt><dd class="mono sig">${t.tx_id}</dd><dt>Signer</dt><dd>${t.org}</dd><dt>Kind</dt><dd>${t.kind}</dd>
      <dt>Block</dt><dd><${Link} to=${`/ledger/${t.height}`}>#${t.height}<//>, position ${t.index}</dd>
      <dt>Created</dt><dd>${when(t.created_at_ms)}</dd></dl>
    <h2>As signed</h2>
    <p class="muted">The body ${t.org} signed; its canonical bytes hash to the tx id. Hashes and keys are in hex;
      sealed metadata is shown by its size only.</p>
    <pre class="json" id="tx-body">${JSON.stringify({ network_id: t.network_id, org: t.org, nonce: t.nonce,
      created_at_ms: t.created_at_ms, payload: t.payload }, null, 2)}</pre>
    <dl class="facts"><dt>Signature</dt><dd class="mono sig">${t.signature}</dd></dl>
  </section>`}<//>`;
}

/** Tries what the text could name, in order, and goes to the first found. */
async function resolve(q) {
  const tries = [];
  if (/^\d+$/.test(q)) tries.push([`/v1/blocks/${q}`, () => `/ledger/${q}`]);
  if (/^[0-9a-f]{64}$/i.test(q)) tries.push([`/v1/txs/${q.toLowerCase()}`, () => `/txs/${q.toLowerCase()}`]);
  tries.push([`/v1/datasets/${enc(q)}`, () => `/datasets/${enc(q)}`]);
  // A lease is shown on its dataset's page, beside the others.
  tries.push([`/v1/leases/${enc(q)}`, (l) => `/datasets/${enc(l.dataset_id)}`]);
  tries.push([`/v1/runs/${enc(q)}`, () => `/runs/${enc(q)}`]);
  for (const [api, page] of tries) {
    try {
      return page(await get(api));
    } catch (e) {
      if (![400, 403, 404, 422].includes(e.status)) throw e;
    }
  }
  return null;
}

export function Search({ q }) {
  const [none, setNone] = useState(false);
  useEffect(() => {
    setNone(false);
    if (!q) return;
    resolve(q).then((page) => (page ? navigate(page) : setNone(true)), () => setNone(true));
  }, [q]);
  if (!q) return html`<p>Type a dataset id, lease id, run id, tx id or block height in the search box.</p>`;
  if (!none) return html`<p class="loading">Looking for ${q}…</p>`;
  return html`<${Matches} q=${q} />`;
}

/** No id matched: the datasets whose title, description or tags do. */
function Matches({ q }) {
  const found = useLoad(() => get(`/v1/datasets${query({ q, limit: 50 })}`), [q]);
  return html`<section><h1>Datasets matching “${q}”</h1>
    <p class="muted">No block, transaction, dataset, lease or run has this id; these datasets mention it.</p>
    <${Loaded} state=${found}>${(page) => (page.items.length === 0
      ? html`<p class="muted">None.</p>`
      : html`<ul class="matches">${page.items.map((d) => html`<li>
          <${Link} to=${`/datasets/${enc(d.id)}`}>${d.title}<//> <span class="muted">${d.id} by ${d.owner}</span></li>`)}</ul>`)}<//>
  </section>`;
}
