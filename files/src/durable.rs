//! Files outside RocksDB, written so that a crash or a power loss leaves the
//! old version or the new one, whole: never a torn, empty or half-renamed
//! file. Write a temporary file beside the target, fsync it, rename it over
//! the target, then fsync the directory, since a rename is durable only once
//! its directory is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes`, created with `mode`. Each writer has a
/// temporary file of its own, so two writers at once leave one whole file
/// or the other, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = parent(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// `create_dir_all`, made durable: each directory it creates is synced into
/// its parent, so a file renamed into `dir` cannot vanish with it.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        sync_dir(parent(d))?;
    }
    Ok(())
}

/// Renames `from` to `to` and makes the rename durable.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(parent(to))?;
    if parent(from) != parent(to) {
        sync_dir(parent(from))?;
    }
    Ok(())
}

/// Fsyncs every file and directory under `dir`, for a tree about to be
/// renamed into place: after a crash it is whole or absent. Links are not
/// followed.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a tree the node wrote readable by every user (directories 0755,
/// files 0644), whatever the umask: jobs run as their own uid and mount
/// verified data read-only. Nothing in it may be a link.
pub fn readable_by_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            readable_by_all(&entry.path())?;
        } else {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_write_replaces_the_file_whole_with_its_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        write_atomic(&path, b"old", 0o600).unwrap();
        write_atomic(&path, b"new contents", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["users.json"], "no temporary file is left");
    }

    #[test]
    fn two_writers_at_once_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let (a, b) = (vec![b'a'; 1 << 20], vec![b'b'; 1 << 10]);
        std::thread::scope(|s| {
            for bytes in [&a, &b] {
                let path = &path;
                s.spawn(move || (0..50).for_each(|_| write_atomic(path, bytes, 0o644).unwrap()));
            }
        });
        let got = fs::read(&path).unwrap();
        assert!(got == a || got == b, "a torn file of {} bytes", got.len());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }

    #[test]
    fn created_directories_hold_what_is_renamed_into_them() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("datasets/iris/v1");
        create_dirs(&deep).unwrap();
        write_atomic(&deep.join("m.json"), b"{}", 0o644).unwrap();
        assert_eq!(fs::read(deep.join("m.json")).unwrap(), b"{}");
    }

    #[test]
    fn a_tree_is_synced_and_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("partial");
        fs::create_dir_all(partial.join("a")).unwrap();
        fs::write(partial.join("a/x.csv"), b"1,2\n").unwrap();
        sync_tree(&partial).unwrap();
        rename(&partial, &dir.path().join("files")).unwrap();
        assert_eq!(fs::read(dir.path().join("files/a/x.csv")).unwrap(), b"1,2\n");
        assert!(!partial.exists());
    }
}
