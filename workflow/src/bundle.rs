//! A workflow's directory, sent with it as a tar: its `workflow.yaml` and
//! the scripts beside it, which become the run's working directory. The
//! tar is hostile input: only plain files and directories are taken, each
//! at a relative path that stays inside, within a size and a count, and
//! nothing is written outside the directory being filled.
//!
//! A bundle is named by the content hash of its files (a dataset
//! [`Manifest`]), not of the tar's bytes, which carry times and owners: the
//! same files give the same hash, and it goes into the workflow hash on
//! the ledger, so a run's provenance names exactly the code that ran.
//! Every file is written 0644: an executable bit would be code outside
//! the hash (run scripts as `sh x.sh` or `python x.py`).

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{err, WorkflowError};
use leasehold_files::{check_rel_path, FileEntry, Manifest, MAX_FILES};

/// What a bundle held: its workflow.yaml and the hash of all its files.
pub struct Bundle {
    pub yaml: String,
    pub hash: [u8; 32],
}

fn bad(reason: impl Into<String>) -> WorkflowError {
    err(None, "bundle", reason.into())
}

/// Unpacks `tar` into the empty directory `to`; at most `max_bytes` of
/// file content. `workflow.yaml` must be at the top.
pub fn unpack(tar: &[u8], to: &Path, max_bytes: u64) -> Result<Bundle, WorkflowError> {
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(|e| bad(format!("not a tar archive: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let raw = entry.path().map_err(|e| bad(format!("an entry's path is unreadable: {e}")))?;
        let path = raw.to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        check_rel_path(&path).map_err(|why| bad(why.to_string()))?;
        let dest = to.join(&path);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&dest).map_err(|e| bad(format!("{path:?}: {e}")))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if files.len() >= MAX_FILES {
                    return Err(bad(format!("a bundle holds at most {MAX_FILES} files")));
                }
                total = total.saturating_add(entry.size());
                if total > max_bytes {
                    return Err(bad(format!("a bundle holds at most {max_bytes} bytes of files")));
                }
                let (size_bytes, sha256) = write_new(&mut entry, &dest).map_err(|e| bad(format!("{path:?}: {e}")))?;
                files.push(FileEntry { path, size_bytes, sha256 });
            }
            other => return Err(bad(format!("{path:?} is a {other:?}; a bundle holds only files and directories"))),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let yaml = std::fs::read(to.join("workflow.yaml"))
        .map_err(|_| bad("the bundle has no workflow.yaml at its top"))
        .and_then(|b| String::from_utf8(b).map_err(|_| bad("workflow.yaml is not UTF-8 text")))?;
    Ok(Bundle { yaml, hash: Manifest { files }.hash() })
}

/// A new file, never one already there (a second entry of one path, or a
/// link a first entry could not have made): `create_new` refuses both.
fn write_new(from: &mut impl Read, dest: &Path) -> std::io::Result<(u64, [u8; 32])> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(dest)?;
    let (mut hasher, mut size, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 16]);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((size, hasher.finalize().into()))
}

/// The workflow hash on the ledger: of the YAML alone, or with the bundle's
/// files, and the Python environment's key when it has one.
pub fn workflow_hash(yaml: &str, bundle: Option<&[u8; 32]>, env: Option<&[u8; 32]>) -> [u8; 32] {
    let yaml_hash: [u8; 32] = Sha256::digest(yaml.as_bytes()).into();
    let code = match bundle {
        None => yaml_hash,
        Some(b) => Sha256::new()
            .chain_update(b"leasehold-workflow-bundle-v1\n")
            .chain_update(yaml_hash)
            .chain_update(b)
            .finalize()
            .into(),
    };
    match env {
        None => code,
        Some(e) => Sha256::new()
            .chain_update(b"leasehold-workflow-env-v1\n")
            .chain_update(code)
            .chain_update(e)
            .finalize()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &str)], mtime: u64) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_mtime(mtime);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn hash(files: &[(&str, &str)], mtime: u64) -> [u8; 32] {
        let dir = tempfile::tempdir().unwrap();
        unpack(&tar_of(files, mtime), dir.path(), 1 << 20).unwrap().hash
    }

    #[test]
    fn the_hash_names_the_files_not_the_tar() {
        let a = [("workflow.yaml", "jobs: [ls]\n"), ("job.py", "print(1)\n")];
        let reordered = [("job.py", "print(1)\n"), ("workflow.yaml", "jobs: [ls]\n")];
        assert_eq!(hash(&a, 1), hash(&reordered, 2), "order and times do not count");
        let changed = [("workflow.yaml", "jobs: [ls]\n"), ("job.py", "print(2)\n")];
        assert_ne!(hash(&a, 1), hash(&changed, 1), "a changed script changes the hash");
        let h = hash(&a, 1);
        let (yaml, env) = ("jobs: [ls]\n", [7u8; 32]);
        assert_ne!(workflow_hash(yaml, Some(&h), None), workflow_hash(yaml, None, None));
        assert_ne!(
            workflow_hash(yaml, Some(&h), Some(&env)),
            workflow_hash(yaml, Some(&h), None),
            "nor the environment"
        );
    }

    #[test]
    fn a_bundle_over_its_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = "x".repeat(2048);
        let e = unpack(&tar_of(&[("workflow.yaml", "jobs: [ls]\n"), ("big", &big)], 1), dir.path(), 1024);
        assert!(e.err().unwrap().reason.contains("at most 1024 bytes"));
    }
}
