// /v1/docs: the node's OpenAPI document drawn in the page, from the node
// itself, so the docs work on a network without internet.

import { html, render, useState, useEffect } from './vendor/htm-preact.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const refName = (s) => (s && s.$ref ? s.$ref.split('/').pop() : null);

function Schema({ schema }) {
  if (!schema) return null;
  const name = refName(schema) || refName(schema.items);
  if (name) return html`<a href=${`#schema-${name}`}>${schema.items ? `[${name}]` : name}</a>`;
  return html`<code>${schema.type || 'object'}</code>`;
}

function Operation({ path, method, op }) {
  const body = op.requestBody && Object.entries(op.requestBody.content || {})[0];
  const roles = (op.security || []).flatMap((s) => Object.values(s).flat());
  return html`<section id=${op.operationId}>
    <div><span class="method">${method}</span> <code>${path}</code>
      ${roles.length ? html` <span class="muted">role: ${roles.join(', ')}</span>` : html` <span class="muted">no token</span>`}</div>
    ${(op.summary || op.description) && html`<p>${op.summary || ''} ${op.description || ''}</p>`}
    ${op.parameters && op.parameters.length > 0 && html`<p>Parameters: ${op.parameters.map((p) => html`<code>${p.name}</code> (${p.in}${p.required ? ', required' : ''}) `)}</p>`}
    ${body && html`<p>Body: <code>${body[0]}</code> <${Schema} schema=${body[1].schema} /></p>`}
    <p>Answers: ${Object.entries(op.responses || {}).map(([code, r]) => {
      const c = Object.values(r.content || {})[0];
      return html`<span><strong>${code}</strong> ${c ? html`<${Schema} schema=${c.schema} />` : ''} </span>`;
    })}</p>
  </section>`;
}

function Docs() {
  const [doc, setDoc] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    fetch('/v1/openapi.json').then((r) => r.json()).then(setDoc, setError);
  }, []);
  if (error) return html`<p class="error">${String(error)}</p>`;
  if (!doc) return html`<p class="loading">Loading…</p>`;
  const ops = Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ path, method: m, op: item[m] })));
  const schemas = Object.entries((doc.components && doc.components.schemas) || {});
  return html`<h1>${doc.info.title} ${doc.info.version}</h1>
    <p>${doc.info.description || ''} Every error is <code>application/problem+json</code>. Send
      <code>Authorization: Bearer TOKEN</code>; a browser signed in at <a href="/">the explorer</a> uses its session.</p>
    <h2 id="operations">Operations (${ops.length})</h2>
    ${ops.map((o) => html`<${Operation} ...${o} />`)}
    <h2>Schemas</h2>
    ${schemas.map(([name, s]) => html`<section id=${`schema-${name}`}><strong>${name}</strong>
      ${s.properties && html`<ul>${Object.entries(s.properties).map(([k, v]) => html`<li><code>${k}</code>
        ${(s.required || []).includes(k) ? '' : html`<span class="muted">optional</span>`} <${Schema} schema=${v} />
        ${v.description && html` <span class="muted">${v.description}</span>`}</li>`)}</ul>`}</section>`)}`;
}

render(html`<${Docs} />`, document.getElementById('docs'));
