//! This org's job secrets, kept at its own node only: one file per secret
//! under `secrets/` in the data directory, 0600, written temp + fsync +
//! rename, each value sealed with AES-256-GCM under a key derived from the
//! org's X25519 secret and bound to its name (`crypto::seal_secret`). A
//! copy of the data directory (a backup, a stolen disk) without the key
//! file opens none of them, and a sealed value moved to another name fails
//! to open. Nothing here reaches the ledger, the network or a log; the API
//! lists names only, and the runner opens values for this org's own runs
//! (`leasehold_workflow::secrets`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use leasehold_workflow::secrets::{check_name, check_value, SecretEnv, MAX_SECRETS_PER_NODE};
use leasehold_workflow::WorkflowError;
use zeroize::Zeroizing;

use crate::crypto;
use crate::error::{NodeError, Result};

pub(crate) struct SecretStore {
    dir: PathBuf,
    key: Zeroizing<[u8; 32]>,
    /// Held while one is written or deleted, so the count stays in bounds.
    writing: Mutex<()>,
}

/// A field of the request at fault, as the API names it.
fn invalid(field: &str, why: String) -> NodeError {
    NodeError::Workflow(WorkflowError::new(None, field, why))
}

impl SecretStore {
    /// The store under `data_dir`, created (0700) if missing.
    pub(crate) fn open(data_dir: &Path, org_secret: &[u8; 32]) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = data_dir.join("secrets");
        leasehold_files::durable::create_dirs(&dir).map_err(|e| NodeError::file(&dir, e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| NodeError::file(&dir, e))?;
        Ok(Self { dir, key: Zeroizing::new(crypto::secrets_key(org_secret)), writing: Mutex::new(()) })
    }

    /// Stores `value` as `name`, replacing any value it had; `true` when
    /// the name is new.
    pub(crate) fn set(&self, name: &str, value: &str) -> Result<bool> {
        check_name("name", name)?;
        check_value(value)?;
        let _writing = self.writing.lock().expect("secrets lock");
        let path = self.dir.join(name);
        let new = !path.exists();
        if new && self.names()?.len() >= MAX_SECRETS_PER_NODE {
            return Err(NodeError::Conflict(format!(
                "this node holds {MAX_SECRETS_PER_NODE} secrets, the most it keeps: delete one first"
            )));
        }
        let sealed = crypto::seal_secret(&self.key, name, value.as_bytes());
        leasehold_files::durable::write_atomic(&path, &sealed, 0o600).map_err(|e| NodeError::file(&path, e))?;
        Ok(new)
    }

    pub(crate) fn delete(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        let _writing = self.writing.lock().expect("secrets lock");
        let path = self.dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => leasehold_files::durable::sync_dir(&self.dir).map_err(|e| NodeError::file(&self.dir, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(NodeError::NotFound(format!("no secret {name} is stored at this node")))
            }
            Err(e) => Err(NodeError::file(&path, e)),
        }
    }

    /// The names stored, sorted; the files a write left half-done (its
    /// temp files) are not secrets.
    pub(crate) fn names(&self) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| NodeError::file(&self.dir, e))?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_name("name", n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The values of `names`, for a run of this org's; a name not stored
    /// is the fault of the workflow's `secrets[i]`.
    pub(crate) fn values(&self, names: &[String]) -> Result<SecretEnv> {
        let mut pairs = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            check_name(&format!("secrets[{i}]"), name)?;
            let path = self.dir.join(name);
            let sealed = match std::fs::read(&path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let why =
                        format!("no secret {name} is stored at this node: set it with leasehold secret set {name}");
                    return Err(invalid(&format!("secrets[{i}]"), why));
                }
                Err(e) => return Err(NodeError::file(&path, e)),
            };
            let value = crypto::open_secret(&self.key, name, &sealed)
                .map(Zeroizing::new)
                .and_then(|v| String::from_utf8(v.to_vec()).ok())
                .filter(|v| check_value(v).is_ok())
                .ok_or_else(|| NodeError::file(&path, "does not open under this org's key: set the secret again"))?;
            pairs.push((name.clone(), Zeroizing::new(value)));
        }
        Ok(SecretEnv::new(pairs))
    }
}

/// This org's secrets, as the API and the CLI see them: names in, values
/// never out.
impl crate::NodeHandle {
    /// Stores `value` as `name`; `true` when the name is new.
    pub fn set_secret(&self, name: &str, value: &str) -> Result<bool> {
        self.inner.secrets.set(name, value)
    }

    pub fn delete_secret(&self, name: &str) -> Result<()> {
        self.inner.secrets.delete(name)
    }

    pub fn secret_names(&self) -> Result<Vec<String>> {
        self.inner.secrets.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_at_rest_bound_to_the_name_and_listed_by_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(dir.path(), &[7; 32]).unwrap();
        assert!(store.set("API_KEY", "hunter2-plaintext").unwrap());
        assert!(!store.set("API_KEY", "hunter2-plaintext").unwrap(), "replaced, not new");
        store.set("OTHER", "x").unwrap();
        assert_eq!(store.names().unwrap(), ["API_KEY", "OTHER"]);
        let opened = store.values(&["API_KEY".into()]).unwrap();
        assert_eq!(opened.pairs().collect::<Vec<_>>(), [("API_KEY", "hunter2-plaintext")]);
        let sealed = std::fs::read(dir.path().join("secrets/API_KEY")).unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "the value is not on disk in the clear");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets/API_KEY")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Moved to another name, or opened under another org's key: refused.
        std::fs::copy(dir.path().join("secrets/API_KEY"), dir.path().join("secrets/OTHER")).unwrap();
        assert!(store.values(&["OTHER".into()]).is_err());
        let stranger = SecretStore::open(dir.path(), &[8; 32]).unwrap();
        assert!(stranger.values(&["API_KEY".into()]).is_err());
        // Named but missing: the workflow's field.
        let e = store.values(&["API_KEY".into(), "MISSING".into()]).unwrap_err();
        assert!(matches!(&e, NodeError::Workflow(w) if w.field == "secrets[1]"), "{e}");
        store.delete("OTHER").unwrap();
        assert!(matches!(store.delete("OTHER"), Err(NodeError::NotFound(_))));
        assert!(matches!(store.set("bad name", "v"), Err(NodeError::Workflow(w)) if w.field == "name"));
        assert!(matches!(store.set("GOOD", "a\nb"), Err(NodeError::Workflow(w)) if w.field == "value"));
    }
}
