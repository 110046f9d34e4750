// Registering a dataset from the page: its files are staged one by one on
// this node (PUT .../files/{path}), then the dataset is registered; the
// node hashes the staged files into the version's content hash. Or its
// files stay in the org's object store (`from`: s3://bucket/prefix), where
// the node lists and hashes them.

import { html, useState } from '../vendor/htm-preact.js';
import { post, send, enc } from '../api.js';
import { ErrorBox, navigate } from '../ui.js';

const slug = (t) => t.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 64);

function parse(field, text) {
  try {
    return text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    const err = new Error(`is not JSON: ${e.message}`);
    err.field = field;
    err.title = 'Invalid';
    throw err;
  }
}

export function Register({ me }) {
  const [f, setF] = useState({ title: '', id: null, description: '', tags: '', orgs: '', hours: 24, approval: 'owner',
    access: 'files', pub: '{}', priv: '{}', from: '' });
  const [files, setFiles] = useState([]);
  const [progress, setProgress] = useState('');
  const [error, setError] = useState(null);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  // The id follows the title until the user edits it (even to empty).
  const id = f.id === null ? slug(f.title) : f.id;
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      if (!id) throw Object.assign(new Error('is empty: give the dataset an id, or a title to make one from'), { field: 'id', title: 'Invalid' });
      const body = {
        id,
        title: f.title,
        description: f.description,
        tags: f.tags.split(',').map((t) => t.trim()).filter(Boolean),
        policy: {
          allowed_orgs: f.orgs.split(',').map((o) => o.trim()).filter(Boolean),
          max_lease_ms: Math.round(Number(f.hours) * 3600000),
          approval: f.approval,
          access: f.access,
        },
        public_metadata: parse('public_metadata', f.pub),
        private_metadata: parse('private_metadata', f.priv),
      };
      if (f.from.trim()) {
        if (files.length) throw Object.assign(new Error('files come from the bucket or from this page, not both'), { field: 'from', title: 'Invalid' });
        body.from = f.from.trim();
      }
      let i = 0;
      for (const file of files) {
        i += 1;
        const rel = (file.webkitRelativePath || file.name).split('/').slice(file.webkitRelativePath ? 1 : 0).join('/');
        setProgress(`staging ${i} of ${files.length}: ${rel}`);
        await send('PUT', `/v1/datasets/${enc(id)}/files/${rel.split('/').map(enc).join('/')}`, file, 'application/octet-stream');
      }
      setProgress(body.from ? `listing and hashing ${body.from}` : 'registering');
      await post('/v1/datasets', body);
      navigate(`/datasets/${enc(id)}`);
    } catch (err) {
      setError(err);
      setProgress('');
    }
  };
  return html`<details class="pane" id="register"><summary>Register a dataset of ${me.org}</summary>
    <form class="form" onSubmit=${submit}>
      <label>Title <input name="title" value=${f.title} onInput=${set('title')} required /></label>
      <label>Id <input name="id" value=${id} onInput=${set('id')} /></label>
      <label>Description <textarea name="description" value=${f.description} onInput=${set('description')}></textarea></label>
      <label>Tags <input name="tags" value=${f.tags} onInput=${set('tags')} placeholder="comma, separated" /></label>
      <label>Who may lease it <input name="orgs" value=${f.orgs} onInput=${set('orgs')} placeholder="org2, org3" /></label>
      <label>Longest lease, hours <input name="hours" type="number" min="0" step="any" value=${f.hours} onInput=${set('hours')} /></label>
      <label>Requests <select name="approval" value=${f.approval} onChange=${set('approval')}>
        <option value="owner">granted by us</option><option value="automatic">granted automatically</option></select></label>
      <label>Access <select name="access" value=${f.access} onChange=${set('access')}>
        <option value="files">files: lessees fetch them</option><option value="compute">compute: workflows run here</option></select></label>
      <label>Public metadata (JSON) <textarea name="public" value=${f.pub} onInput=${set('pub')}></textarea></label>
      <label>Private metadata (JSON, sealed: only active lessees read it) <textarea name="private" value=${f.priv} onInput=${set('priv')}></textarea></label>
      <label>Files <input name="files" type="file" multiple onChange=${(e) => setFiles([...e.target.files])} /></label>
      <label>Or from this org's object store <input name="from" value=${f.from} onInput=${set('from')} placeholder="s3://bucket/prefix" /></label>
      <button type="submit">Register</button> <span class="muted">${progress}</span>
      <${ErrorBox} error=${error} />
    </form>
  </details>`;
}
