// Runs: the list, starting one (a pasted workflow.yaml or a directory),
// and a run's page: its DAG with each job's state, the live log (only the
// lines in view are drawn), cancel, publish, and why it waits or failed.

import { html, useState, useEffect, useRef } from '../vendor/htm-preact.js';
import { get, post, send, query, enc, short } from '../api.js';
import { Action, ErrorBox, Link, Loaded, Status, atLeast, follow, navigate, useLoad } from '../ui.js';
import { tarOf } from '../tar.js';

const PAGE = 50;

function StartRun() {
  const [yaml, setYaml] = useState('');
  const [error, setError] = useState(null);
  const go = async (body, type) => {
    setError(null);
    try {
      const run = await send('POST', '/v1/runs', body, type);
      navigate(`/runs/${enc(run.id)}`);
    } catch (e) {
      setError(e);
    }
  };
  const pick = async (e) => {
    if (e.target.files.length) go(await tarOf(e.target.files), 'application/x-tar');
  };
  return html`<details class="pane"><summary>Start a run</summary>
    <label>Upload a workflow directory (its <code>workflow.yaml</code> and files)
      <input type="file" webkitdirectory multiple onChange=${pick} /></label>
    <label>Or paste a <code>workflow.yaml</code>
      <textarea rows="10" value=${yaml} onInput=${(e) => setYaml(e.target.value)}></textarea></label>
    <button onClick=${() => go(yaml, 'application/yaml')}>Run it</button>
    <${ErrorBox} error=${error} />
  </details>`;
}

export function Runs({ me }) {
  const [pages, setPages] = useState([undefined]);
  const after = pages[pages.length - 1];
  const list = useLoad(() => get(`/v1/runs${query({ after, limit: PAGE })}`), [after]);
  return html`<section><h1>Runs</h1>
    ${atLeast(me, 'member') && html`<${StartRun} />`}
    <${Loaded} state=${list}>${(runs) => html`<table>
      <thead><tr><th>Run</th><th>Name</th><th>By</th><th>Status</th><th>Started</th><th>Where</th></tr></thead>
      <tbody>${runs.map((r) => html`<tr>
        <td><${Link} to=${`/runs/${enc(r.id)}`}>${r.id}<//></td><td>${r.name}</td><td>${r.org}/${r.submitted_by}</td>
        <td><${Status} value=${r.status} /></td><td>${r.created_at}</td><td>${r.executor || 'here'}</td>
      </tr>`)}</tbody></table>
      <div class="pager">
        ${pages.length > 1 && html`<button class="quiet" onClick=${() => setPages(pages.slice(0, -1))}>Previous</button>`}
        ${runs.length === PAGE && html`<button class="quiet" onClick=${() => setPages([...pages, runs[runs.length - 1].id])}>Next</button>`}
      </div>`}<//>
  </section>`;
}

/** The jobs as a layered graph: each job one layer below its deepest dependency. */
function Dag({ jobs }) {
  const depth = {};
  const at = (j) => {
    if (depth[j.number] === undefined) {
      depth[j.number] = 0;
      const deps = j.depends_on.map((n) => jobs.find((x) => x.number === n)).filter(Boolean);
      depth[j.number] = deps.length ? 1 + Math.max(...deps.map(at)) : 0;
    }
    return depth[j.number];
  };
  jobs.forEach(at);
  const layers = [];
  jobs.forEach((j) => (layers[depth[j.number]] = [...(layers[depth[j.number]] || []), j]));
  const W = 150, H = 44, GX = 30, GY = 36;
  const pos = {};
  layers.forEach((layer, y) => layer.forEach((j, x) => (pos[j.number] = { x: x * (W + GX) + 10, y: y * (H + GY) + 10 })));
  const width = Math.max(...layers.map((l) => l.length)) * (W + GX) + 20;
  const height = layers.length * (H + GY) + 20;
  return html`<svg class="dag" width=${width} height=${height} role="img" aria-label="the run's jobs and their dependencies">
    ${jobs.flatMap((j) => j.depends_on.filter((d) => pos[d]).map((d) => html`<line
      x1=${pos[d].x + W / 2} y1=${pos[d].y + H} x2=${pos[j.number].x + W / 2} y2=${pos[j.number].y} class="edge" />`))}
    ${jobs.map((j) => html`<g class=${`job s-${j.status}`} transform=${`translate(${pos[j.number].x},${pos[j.number].y})`}>
      <title>${j.command}</title>
      <rect width=${W} height=${H} rx="6" />
      <text x="8" y="18">job ${j.number}</text>
      <text x="8" y="35" class="small">${j.status}${j.exit_code !== null && j.exit_code !== undefined ? ` (${j.exit_code})` : ''}</text>
    </g>`)}
  </svg>`;
}

const LINE_PX = 18;
const VIEW_LINES = 30;
const MAX_LINES = 100000;

/** The run's log as it comes; only the lines in view are in the page. */
function Log({ id, onEnd }) {
  const [lines, setLines] = useState([]);
  const [top, setTop] = useState(0);
  const box = useRef(null);
  const atBottom = useRef(true);
  useEffect(() => {
    let pending = [];
    const flush = setInterval(() => {
      if (!pending.length) return;
      const add = pending;
      pending = [];
      setLines((old) => old.concat(add).slice(-MAX_LINES));
    }, 200);
    // The stream starts from the log's first line: a page that comes back
    // from the back/forward cache starts over.
    const restart = () => {
      pending = [];
      setLines([]);
    };
    const close = follow(`/v1/runs/${enc(id)}/logs`, {
      log: (e) => pending.push(JSON.parse(e.data)),
      end: (e) => {
        close();
        onEnd(JSON.parse(e.data));
      },
    }, restart);
    return () => {
      clearInterval(flush);
      close();
    };
  }, [id]);
  useEffect(() => {
    if (atBottom.current && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines.length]);
  const scrolled = (e) => {
    const el = e.target;
    atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - LINE_PX;
    setTop(el.scrollTop);
  };
  const first = Math.max(0, Math.floor(top / LINE_PX) - 5);
  const shown = lines.slice(first, first + VIEW_LINES + 10);
  return html`<div class="log" ref=${box} onScroll=${scrolled} style=${`height:${VIEW_LINES * LINE_PX}px`}>
    <div style=${`height:${lines.length * LINE_PX}px;position:relative`}>
      ${shown.map((l, i) => html`<div class=${`line ${l.stream}`} style=${`top:${(first + i) * LINE_PX}px`}>
        <span class="muted">${l.job === null || l.job === undefined ? '' : `[${l.job}] `}</span>${l.text}</div>`)}
    </div>
  </div>`;
}

function Publish({ run, done }) {
  const [title, setTitle] = useState(`Results of ${run.name}`);
  const [orgs, setOrgs] = useState(run.org);
  const body = () => ({
    title,
    policy: { allowed_orgs: orgs.split(',').map((o) => o.trim()).filter(Boolean), max_lease_ms: 86400000 },
    private_metadata: {},
  });
  return html`<div class="form">
    <label>Title <input value=${title} onInput=${(e) => setTitle(e.target.value)} /></label>
    <label>Who may lease it <input value=${orgs} onInput=${(e) => setOrgs(e.target.value)} /></label>
    <${Action} label="Publish the outputs" confirm="Publish these outputs as a dataset on the ledger?"
      run=${() => post(`/v1/runs/${enc(run.id)}/publish`, body())} done=${done} />
  </div>`;
}

export function RunPage({ me, id }) {
  const run = useLoad(() => get(`/v1/runs/${enc(id)}`), [id]);
  return html`<${Loaded} state=${run}>${(r) => {
    const live = !['succeeded', 'failed', 'cancelled', 'expired', 'revoked'].includes(r.status);
    return html`<section>
      <h1>Run ${r.name} <${Status} value=${r.status} /></h1>
      ${r.reason && html`<p class="reason">${r.status === 'queued' ? 'Waiting: ' : 'Why: '}${r.reason}</p>`}
      <dl class="facts">
        <dt>Id</dt><dd>${r.id}</dd><dt>By</dt><dd>${r.org}/${r.submitted_by}</dd>
        <dt>Workflow</dt><dd class="mono">${short(r.workflow_hash)}</dd>
        <dt>Leases</dt><dd>${r.leases.join(', ') || 'none'}</dd>
        <dt>Ran at</dt><dd>${r.executor || 'this node'}</dd>
        ${r.release && html`<dt>Release</dt><dd>${r.release}</dd>`}
        ${r.published_as && html`<dt>Published as</dt><dd><${Link} to=${`/datasets/${enc(r.published_as)}`}>${r.published_as}<//></dd>`}
      </dl>
      ${live && atLeast(me, 'member') && r.org === me.org && html`<${Action} label="Cancel" kind="danger"
        confirm="Cancel this run? Its running jobs are killed." run=${() => post(`/v1/runs/${enc(r.id)}/cancel`, {})} done=${run.reload} />`}
      <h2>Jobs</h2>
      ${r.jobs.length ? html`<${Dag} jobs=${r.jobs} />` : html`<p class="muted">No job detail is released for this run.</p>`}
      <table><thead><tr><th>Job</th><th>Command</th><th>Status</th><th>Error</th></tr></thead>
        <tbody>${r.jobs.map((j) => html`<tr><td>${j.number}</td><td class="mono">${j.command}</td>
          <td><${Status} value=${j.status} /></td><td>${j.error || ''}</td></tr>`)}</tbody></table>
      <h2>Log</h2>
      <${Log} id=${r.id} onEnd=${run.reload} />
      ${r.status === 'succeeded' && !r.published_as && atLeast(me, 'admin') && r.org === me.org &&
        html`<h2>Publish</h2><${Publish} run=${r} done=${run.reload} />`}
    </section>`;
  }}<//>`;
}
