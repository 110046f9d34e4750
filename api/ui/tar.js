// A directory the user picked, as the tar (ustar) the node's bundle reader
// takes: regular files only, each path relative to the picked directory.
// The node treats it as hostile input anyway (workflow/src/bundle.rs).

const BLOCK = 512;
const text = new TextEncoder();

function header(path, size, mtimeS) {
  const h = new Uint8Array(BLOCK);
  const put = (at, len, s) => h.set(text.encode(s).subarray(0, len), at);
  const octal = (at, len, n) => put(at, len, n.toString(8).padStart(len - 1, '0'));
  const name = text.encode(path);
  if (name.length > 100) {
    const cut = path.lastIndexOf('/');
    const prefix = path.slice(0, cut);
    if (cut < 0 || text.encode(prefix).length > 155 || text.encode(path.slice(cut + 1)).length > 100) {
      throw new Error(`the path ${path} is too long for a bundle`);
    }
    put(0, 100, path.slice(cut + 1));
    put(345, 155, prefix);
  } else {
    put(0, 100, path);
  }
  octal(100, 8, 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, mtimeS);
  h.fill(32, 148, 156);
  put(156, 1, '0');
  put(257, 6, 'ustar');
  put(263, 2, '00');
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, 7, sum.toString(8).padStart(6, '0') + '\0');
  return h;
}

/** `files`: a FileList from `<input webkitdirectory>`; returns a Blob. */
export async function tarOf(files) {
  const parts = [];
  for (const f of files) {
    // "dir/workflow.yaml" → "workflow.yaml": the bundle's root is the directory.
    const rel = (f.webkitRelativePath || f.name).split('/').slice(1).join('/') || f.name;
    const data = new Uint8Array(await f.arrayBuffer());
    parts.push(header(rel, data.length, Math.floor(f.lastModified / 1000)), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return new Blob(parts, { type: 'application/x-tar' });
}
