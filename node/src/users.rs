//! The org's local users: a name, a role, and the sha256 of a bearer token.
//! Tokens are random, shown once, and never stored in the clear.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{NodeError, Result};

/// What a user may do. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the catalog and the ledger.
    Viewer,
    /// Requests leases, reads leased metadata, runs workflows.
    Member,
    /// Manages users and datasets, grants leases.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub token_sha256: String,
    pub created_at_ms: i64,
}

pub const USERS_FILE: &str = "users.json";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random bearer token.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("lh_{}", hex::encode(b))
}

/// Users in `<data_dir>/users.json`, re-read when the file changes so that
/// `leasehold user add` and `user revoke` take effect on a running node.
pub struct UserStore {
    path: PathBuf,
    /// The users as read, and the file's (mtime, inode) then: every write
    /// renames a new file into place, so a new inode shows a change that
    /// the clock's coarse mtime may not.
    cache: Mutex<(Option<FileStamp>, Vec<User>)>,
}

/// A file's modification time, inode, size and change time's nanoseconds:
/// together they tell one written users.json from the next.
type FileStamp = (SystemTime, u64, u64, i64);

impl UserStore {
    pub fn new(data_dir: &Path) -> Self {
        Self { path: data_dir.join(USERS_FILE), cache: Mutex::new((None, Vec::new())) }
    }

    fn load(&self) -> Result<Vec<User>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NodeError::file(&self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(NodeError::file(&self.path, e)),
        }
    }

    /// The user a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Option<User>> {
        self.by_token_hash(&hash(token))
    }

    /// The user whose token hashes to `token_sha256`: a browser session
    /// holds only that, so revoking the user ends the session too.
    pub fn by_token_hash(&self, token_sha256: &str) -> Result<Option<User>> {
        use std::os::unix::fs::MetadataExt;
        let mtime = fs::metadata(&self.path).and_then(|m| Ok((m.modified()?, m.ino(), m.size(), m.ctime_nsec()))).ok();
        let mut cache = self.cache.lock().expect("users lock");
        if cache.0 != mtime || mtime.is_none() {
            *cache = (mtime, self.load()?);
        }
        Ok(cache.1.iter().find(|u| u.token_sha256 == token_sha256).cloned())
    }

    /// Adds a user and returns its token, which is not stored anywhere.
    pub fn add(&self, name: &str, role: Role, now_ms: i64) -> Result<String> {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return Err(NodeError::Config("a user name is 1 to 64 of letters, digits, '.', '_', '-', '@'".into()));
        }
        let _lock = self.lock()?;
        let mut users = self.load()?;
        if users.iter().any(|u| u.name == name) {
            return Err(NodeError::Config(format!("user {name:?} already exists")));
        }
        let token = new_token();
        users.push(User { name: name.into(), role, token_sha256: hash(&token), created_at_ms: now_ms });
        self.write(&users)?;
        Ok(token)
    }

    /// Every user (their tokens' hashes included: not for the API).
    pub fn list(&self) -> Result<Vec<User>> {
        self.load()
    }

    /// Removes `name`; its token is refused from the next request on.
    /// Returns the user removed, if there was one.
    pub fn revoke(&self, name: &str) -> Result<Option<User>> {
        let _lock = self.lock()?;
        let mut users = self.load()?;
        let Some(at) = users.iter().position(|u| u.name == name) else { return Ok(None) };
        let user = users.remove(at);
        self.write(&users)?;
        // This process forgets it now; another sees the file change.
        *self.cache.lock().expect("users lock") = (None, Vec::new());
        Ok(Some(user))
    }

    /// A lock on a file beside users.json for a read-change-write: two
    /// writers at once (two requests, or the node and the CLI) would
    /// otherwise each drop the other's change. Released when dropped.
    fn lock(&self) -> Result<fs::File> {
        let lock_path = self.path.with_extension("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| NodeError::file(&lock_path, e))?;
        lock.lock().map_err(|e| NodeError::file(&lock_path, e))?;
        Ok(lock)
    }

    /// Whole or not at all: an empty or torn users.json would lock every user out.
    fn write(&self, users: &[User]) -> Result<()> {
        let json = serde_json::to_vec_pretty(users).expect("users serialise");
        leasehold_files::durable::write_atomic(&self.path, &json, 0o600).map_err(|e| NodeError::file(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::new(dir.path());
        let token = store.add("alice", Role::Member, 1).unwrap();
        assert_eq!(store.authenticate(&token).unwrap().unwrap().role, Role::Member);
        assert!(store.authenticate("lh_wrong").unwrap().is_none());
        let on_disk = fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(!on_disk.contains(&token), "token stored in the clear");
        assert!(store.add("alice", Role::Admin, 2).is_err(), "duplicate name accepted");
        // Revoked by another process's store (the CLI), refused here at once.
        let other = UserStore::new(dir.path());
        assert_eq!(other.revoke("alice").unwrap().map(|u| u.name), Some("alice".into()));
        assert!(store.authenticate(&token).unwrap().is_none(), "a revoked token still works");
        assert!(other.revoke("alice").unwrap().is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(dir.path().join(USERS_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
