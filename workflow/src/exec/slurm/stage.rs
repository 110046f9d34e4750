//! What the node puts in the shared directory for the cluster: each step's
//! files (the batch script, the chain, the seccomp filter), and copies of
//! the run's volumes, checked against their verified source and read-only.
//! It also reads each job's output back as the job writes it.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use leasehold_files::{durable, Manifest};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::sandbox::RemoteStep;

/// One step's files in the shared directory.
pub(super) struct StepFiles {
    pub dir: PathBuf,
    pub script: PathBuf,
    pub chain: PathBuf,
    pub filter: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// Writes the step's files under `dir` (each temp + fsync + rename), and
/// clears any output an earlier attempt left.
pub(super) fn step_files(dir: &Path, step: &RemoteStep) -> std::io::Result<StepFiles> {
    durable::create_dirs(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let files = StepFiles {
        dir: dir.to_path_buf(),
        script: dir.join("step.sh"),
        chain: dir.join("chain"),
        filter: dir.join("seccomp.bpf"),
        stdout: dir.join("stdout"),
        stderr: dir.join("stderr"),
    };
    durable::write_atomic(&files.script, step.script.as_bytes(), 0o500)?;
    durable::write_atomic(&files.chain, &step.chain, 0o400)?;
    durable::write_atomic(&files.filter, step.filter, 0o400)?;
    for out in [&files.stdout, &files.stderr] {
        match fs::remove_file(out) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(files)
}

/// Copies a verified volume into `volumes/`, checks that the copy's
/// manifest is the source's (a shared filesystem that stored something
/// else is refused), makes it read-only, and returns where it is. `place`
/// renames the finished copy into place, or refuses to.
pub(super) fn copy_verified(
    from: &Path,
    volumes: &Path,
    place: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let digest = Sha256::digest(from.as_os_str().as_encoded_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let to = volumes.join(&name);
    let partial = volumes.join(format!(".{name}.partial"));
    remove(&partial);
    remove(&to);
    durable::create_dirs(&partial)?;
    copy_tree(from, &partial)?;
    durable::sync_tree(&partial)?;
    let (source, copy) = (Manifest::of_dir(from).map_err(other)?, Manifest::of_dir(&partial).map_err(other)?);
    if source != copy {
        remove(&partial);
        return Err(std::io::Error::other("the copy in the shared directory does not match the verified volume"));
    }
    read_only(&partial)?;
    if let Err(e) = place(&partial, &to) {
        remove(&partial);
        let _ = fs::remove_dir(volumes);
        return Err(e);
    }
    Ok(to)
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Regular files and directories; a volume holds nothing else.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            fs::create_dir(&dest)?;
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Files 0444 and directories 0555, deepest first.
fn read_only(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            read_only(&entry.path())?;
        } else {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o444))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o555))
}

/// Removes a tree made read-only by `read_only`, which a node that is not
/// root could not empty as it is.
pub(super) fn remove(dir: &Path) {
    fn writable(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                writable(&entry.path());
            }
        }
    }
    if dir.exists() {
        writable(dir);
        let _ = fs::remove_dir_all(dir);
    }
}

/// Copies what the job writes to `path` into `to` as it grows, until `done`
/// turns true; then copies the rest and closes `to`.
pub(super) async fn tail(
    path: PathBuf,
    mut to: tokio::io::DuplexStream,
    mut done: watch::Receiver<bool>,
    poll: Duration,
) {
    let mut offset = 0u64;
    loop {
        // A dropped sender (the step was dropped) ends the tail as well.
        let last = *done.borrow_and_update() || done.has_changed().is_err();
        let (p, from) = (path.clone(), offset);
        let chunk = tokio::task::spawn_blocking(move || read_from(&p, from)).await.unwrap_or_default();
        if !chunk.is_empty() {
            offset += chunk.len() as u64;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            // More may be there already.
            continue;
        }
        if last {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = done.changed() => {}
        }
        // `changed` returns at once once the sender is gone: `last` sees it.
    }
}

/// Up to 1 MiB of `path` from `offset`; nothing if it is not there yet.
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    let Ok(mut f) = fs::File::open(path) else { return Vec::new() };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(1 << 20).read_to_end(&mut buf);
    buf
}
