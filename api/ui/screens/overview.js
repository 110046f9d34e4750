// Overview: this org, the ledger's height and the age of its last block,
// the leader and term, the peers, and the certificates of the last blocks.
// Live: the status comes over server-sent events (see app.js).

import { html, useEffect } from '../vendor/htm-preact.js';
import { get, query, short, duration } from '../api.js';
import { Link, Loaded, useLoad, useNow } from '../ui.js';

const RECENT_BLOCKS = 5;

function Peers({ status, orgs }) {
  const others = orgs.members.filter((m) => m.org !== status.org);
  return html`<table class="peers">
    <thead><tr><th>Organisation</th><th>Node</th><th>Connection</th><th>Role</th></tr></thead>
    <tbody>${others.map((m) => {
      const up = status.peers.includes(m.org);
      const state = m.left ? 'left' : up ? 'connected' : 'unreachable';
      return html`<tr>
        <td>${m.org} <span class="muted">${m.name}</span></td>
        <td class="muted">${m.p2p_addr}</td>
        <td><span class=${`status s-${state}`}>${state}</span></td>
        <td>${status.leader === m.org ? 'leader' : ''}</td>
      </tr>`;
    })}</tbody>
  </table>`;
}

function Certificates({ height }) {
  const from = Math.max(1, height - RECENT_BLOCKS + 1);
  const blocks = useLoad(() => get(`/v1/blocks${query({ from, limit: RECENT_BLOCKS })}`), [from]);
  return html`<${Loaded} state=${blocks}>${(list) => html`<table>
    <thead><tr><th>Block</th><th>Proposer</th><th>Txs</th><th>Signed by</th><th>Certified</th></tr></thead>
    <tbody>${list.slice().reverse().map((b) => html`<tr>
      <td><${Link} to=${`/ledger/${b.height}`}>#${b.height}<//> <span class="muted">${short(b.hash)}</span></td>
      <td>${b.proposer}</td>
      <td>${b.txs.length}</td>
      <td>${b.certificate.map((c) => c.org).join(', ')}</td>
      <td>${b.certified ? 'yes' : 'not yet'}${b.conflicting.length ? html` <strong class="bad">divergence</strong>` : ''}</td>
    </tr>`)}</tbody>
  </table>`}<//>`;
}

export function Overview({ status }) {
  const now = useNow();
  const orgs = useLoad(() => get('/v1/orgs'), []);
  // Marks the first render with the ledger height, for the browser test's
  // measure of how soon the overview is on screen.
  useEffect(() => {
    if (status && !performance.getEntriesByName('overview').length) performance.mark('overview');
  }, [status !== null]);
  if (!status) return html`<p class="loading">Waiting for the node's status…</p>`;
  return html`<section>
    <h1>${status.org}</h1>
    <dl class="facts">
      <dt>Network</dt><dd>${status.network_id}</dd>
      <dt>Ledger height</dt><dd id="height">${status.height}</dd>
      <dt>Last block</dt><dd>${status.height ? `${duration(now - status.block_time_ms)} ago` : 'none yet'}</dd>
      <dt>Leader</dt><dd>${status.leader || 'none: an election is under way'}</dd>
      <dt>Raft term</dt><dd>${status.raft_term}</dd>
      <dt>Head</dt><dd class="mono">${short(status.head_hash)}</dd>
      ${status.restore_fence && html`<dt>Restored</dt><dd class="bad">${status.restore_fence}</dd>`}
    </dl>
    <h2>Peers</h2>
    <${Loaded} state=${orgs}>${(o) => html`<${Peers} status=${status} orgs=${o} />`}<//>
    <h2>Certificates of the last blocks</h2>
    ${status.height ? html`<${Certificates} height=${status.height} />` : html`<p class="muted">No block yet.</p>`}
  </section>`;
}
