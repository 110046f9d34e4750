// A dataset's lineage drawn as a graph you can walk: the version, the run
// that made it, the run's workflow, the leases it read under and the
// datasets they cover, and every org's recorded word on the way (a lease's
// grant, a compute release, an approval to publish). Each box is a link
// (to a dataset, a run, or the transaction that recorded the word), so
// Tab and Enter walk it as well as a mouse.

import { html } from '../vendor/htm-preact.js';
import { enc, short } from '../api.js';
import { navigate } from '../ui.js';

const W = 200, H = 46, GX = 24, GY = 40, MAX_LABEL = 27;

const WORDS = {
  lease_grant: (a) => `${a.org} granted the lease`,
  release: (a) => `${a.org} ${a.approved ? 'released' : 'refused'} the outputs`,
  publication: (a) => `${a.org} ${a.approved ? 'approved' : 'refused'} publishing`,
};

/** The boxes and arrows of a lineage, keyed so that a dataset read twice is one box. */
function graphOf(lineage) {
  const boxes = new Map();
  const edges = [];
  const box = (key, b) => (boxes.has(key) || boxes.set(key, { key, ...b }), key);
  for (const n of lineage) {
    const d = box(`d:${n.dataset}@${n.version}`, {
      kind: 'dataset', label: n.title, sub: `v${n.version} by ${n.owner}`, to: `/datasets/${enc(n.dataset)}`, title: n.dataset,
    });
    if (!n.run_id) continue;
    const r = box(`r:${n.run_id}`, { kind: 'run', label: 'Run', sub: n.run_id, to: `/runs/${enc(n.run_id)}` });
    edges.push([d, r]);
    edges.push([r, box(`w:${n.workflow_hash}`, { kind: 'workflow', label: 'Workflow', sub: short(n.workflow_hash), title: n.workflow_hash })]);
    const leaseOf = (id) => n.leases.find((l) => l.dataset.split('@')[0] === id);
    for (const l of n.leases) {
      const to = `/datasets/${enc(l.dataset.split('@')[0])}`;
      edges.push([r, box(`l:${l.id}`, { kind: 'lease', label: `Lease of ${l.dataset}`, sub: `${l.owner} → ${l.lessee}`, to, title: l.id })]);
    }
    for (const input of n.inputs) {
      const l = leaseOf(input.split('@')[0]);
      edges.push([l ? `l:${l.id}` : r, `d:${input}`]);
    }
    for (const a of n.approvals) {
      const key = box(`a:${a.tx_id}:${a.kind}:${a.org}`, {
        kind: a.approved ? 'approval' : 'refusal', label: WORDS[a.kind](a), sub: `block #${a.height}, ${a.at.slice(0, 16)}`,
        to: `/txs/${a.tx_id}`, title: a.reason,
      });
      edges.push([{ lease_grant: `l:${a.subject}`, release: r, publication: d }[a.kind], key]);
    }
  }
  // An input past the walk's bound has no box of its own.
  return { boxes, edges: edges.filter(([a, b]) => boxes.has(a) && boxes.has(b)) };
}

/** Each box one row below the first box that points at it. */
function layout({ boxes, edges }) {
  const depth = new Map([[boxes.keys().next().value, 0]]);
  for (let changed = true; changed;) {
    changed = false;
    for (const [a, b] of edges) {
      if (depth.has(a) && !depth.has(b)) {
        depth.set(b, depth.get(a) + 1);
        changed = true;
      }
    }
  }
  const rows = [];
  for (const [key, b] of boxes) {
    const y = depth.get(key) ?? 0;
    rows[y] = rows[y] || [];
    b.x = rows[y].length * (W + GX) + 10;
    b.y = y * (H + GY) + 10;
    rows[y].push(b);
  }
  return { width: Math.max(...rows.map((r) => r.length)) * (W + GX) + 20, height: rows.length * (H + GY) + 20 };
}

const clip = (s) => (s.length > MAX_LABEL ? `${s.slice(0, MAX_LABEL - 1)}…` : s);

function Box({ b }) {
  const inner = html`<title>${b.label}${b.title ? `: ${b.title}` : ''}</title>
    <rect width=${W} height=${H} rx="6" />
    <text x="8" y="18">${clip(b.label)}</text>
    <text x="8" y="36" class="small">${clip(b.sub)}</text>`;
  const go = (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(b.to);
  };
  const at = `translate(${b.x},${b.y})`;
  return b.to
    ? html`<a href=${b.to} onClick=${go} class=${`box ${b.kind}`} transform=${at} aria-label=${`${b.label}, ${b.sub}`}>${inner}</a>`
    : html`<g class=${`box ${b.kind}`} transform=${at}>${inner}</g>`;
}

export function LineageGraph({ lineage }) {
  if (!lineage.some((n) => n.run_id)) return html`<p class="muted">Not derived from any run.</p>`;
  const g = graphOf(lineage);
  const { width, height } = layout(g);
  const at = (k) => g.boxes.get(k);
  return html`<div class="graph"><svg class="lineage" width=${width} height=${height} role="group"
      aria-label="where this dataset came from: its run, workflow, leases, inputs and the approvals on the way">
    <defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" markerHeight="8" orient="auto">
      <path d="M0,0 L8,4 L0,8 z" class="head" /></marker></defs>
    ${g.edges.map(([a, b]) => html`<line class="edge" marker-end="url(#arrow)"
      x1=${at(a).x + W / 2} y1=${at(a).y + H} x2=${at(b).x + W / 2} y2=${at(b).y} />`)}
    ${[...g.boxes.values()].map((b) => html`<${Box} b=${b} />`)}
  </svg></div>`;
}
