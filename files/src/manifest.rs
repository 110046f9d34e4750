//! The canonical manifest of a directory of plain files, whose hash is a
//! dataset version's `content_hash` on the ledger, and the rules every
//! file path in it keeps. Links and special files are never followed.

use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use leasehold_chaincode::Hash32;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{FileError, ManifestError, PathError, Result};

/// Upper bounds on one dataset's content.
pub const MAX_FILES: usize = 100_000;
pub const MAX_PATH_BYTES: usize = 1024;

/// One file of a dataset: its path relative to the dataset root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size_bytes: u64,
    pub sha256: Hash32,
}

/// Every file of a dataset, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The content hash: sha256 over a versioned header and one line per
    /// file, `<sha256 hex> <size> <path>\n`, in path order. Paths cannot
    /// hold a newline (see [`check_rel_path`]), so the encoding is unambiguous.
    pub fn hash(&self) -> Hash32 {
        let mut h = Sha256::new();
        h.update(b"leasehold-manifest-v1\n");
        for f in &self.files {
            h.update(format!("{} {} {}\n", hex::encode(f.sha256), f.size_bytes, f.path).as_bytes());
        }
        h.finalize().into()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().fold(0u64, |t, f| t.saturating_add(f.size_bytes))
    }

    /// What a lessee requires of a manifest before writing any file of it
    /// (the owner is not trusted either): at most [`MAX_FILES`] entries,
    /// each a path that stays inside, in strictly increasing order, and no
    /// file where another entry needs a directory.
    pub fn check(&self) -> std::result::Result<(), ManifestError> {
        if self.files.len() > MAX_FILES {
            return Err(ManifestError::TooManyFiles);
        }
        for (i, f) in self.files.iter().enumerate() {
            check_rel_path(&f.path)?;
            if let Some(next) = self.files.get(i + 1) {
                if next.path <= f.path {
                    return Err(ManifestError::OutOfOrder(next.path.clone()));
                }
            }
        }
        let dirs: std::collections::HashSet<&str> =
            self.files.iter().flat_map(|f| f.path.match_indices('/').map(move |(i, _)| &f.path[..i])).collect();
        match self.files.iter().find(|f| dirs.contains(f.path.as_str())) {
            Some(f) => Err(ManifestError::FileAndDirectory(f.path.clone())),
            None => Ok(()),
        }
    }

    /// Hashes every regular file under `dir`. Symlinks and special files are
    /// refused: a dataset is plain files, and a link could point anywhere.
    pub fn of_dir(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self { files })
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| FileError::new(dir, e))? {
        let entry = entry.map_err(|e| FileError::new(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| FileError::new(&path, e))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            if out.len() == MAX_FILES {
                return Err(FileError::new(root, format!("more than {MAX_FILES} files")));
            }
            let rel = path.strip_prefix(root).expect("walk stays under root").to_string_lossy().into_owned();
            check_rel_path(&rel).map_err(|e| FileError::new(&path, e))?;
            let (size_bytes, sha256) = hash_file(&path)?;
            out.push(FileEntry { path: rel, size_bytes, sha256 });
        } else {
            return Err(FileError::new(&path, "is neither a regular file nor a directory"));
        }
    }
    Ok(())
}

/// Opens a regular file for reading without following a link: a link or a
/// special file put in its place is refused, never read through.
pub fn open_plain(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_plain =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}, not a regular file"));
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;
    let f = match fs::OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Err(not_plain("a link")),
        other => other?,
    };
    if !f.metadata()?.is_file() {
        return Err(not_plain("a special file or directory"));
    }
    Ok(f)
}

/// Copies plain files and directories; anything else (a link left in the
/// outputs, a device) is refused, never followed.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| FileError::new(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| FileError::new(from, e))? {
        let entry = entry.map_err(|e| FileError::new(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| FileError::new(&src, e))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            let mut input = open_plain(&src).map_err(|e| FileError::new(&src, e))?;
            let mut output = fs::File::create(&dst).map_err(|e| FileError::new(&dst, e))?;
            std::io::copy(&mut input, &mut output).map_err(|e| FileError::new(&dst, e))?;
        }
    }
    Ok(())
}

/// Size and sha256 of a file, read in bounded chunks.
pub fn hash_file(path: &Path) -> Result<(u64, Hash32)> {
    let mut f = open_plain(path).map_err(|e| FileError::new(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| FileError::new(path, e))?;
        if n == 0 {
            return Ok((size, h.finalize().into()));
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
}

/// A file path inside a dataset: relative, `/`-separated, no `..`, no
/// empty or dot components, no control characters.
pub fn check_rel_path(path: &str) -> std::result::Result<(), PathError> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(PathError::Length);
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::Character(path.into()));
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(PathError::NotRelative(path.into()));
    }
    debug_assert!(Path::new(path).components().all(|c| matches!(c, Component::Normal(_))));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_hash_covers_paths_sizes_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/x.csv"), b"1,2\n").unwrap();
        fs::write(dir.path().join("top.txt"), b"hello").unwrap();
        let m = Manifest::of_dir(dir.path()).unwrap();
        assert_eq!(m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a/b/x.csv", "top.txt"]);
        assert_eq!(m.total_bytes(), 9);
        let before = m.hash();
        fs::write(dir.path().join("top.txt"), b"hellO").unwrap();
        assert_ne!(Manifest::of_dir(dir.path()).unwrap().hash(), before, "content change");
        fs::write(dir.path().join("top.txt"), b"hello").unwrap();
        fs::rename(dir.path().join("top.txt"), dir.path().join("top2.txt")).unwrap();
        assert_ne!(Manifest::of_dir(dir.path()).unwrap().hash(), before, "rename");
        assert_ne!(Manifest::default().hash(), before);
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        assert!(Manifest::of_dir(dir.path()).is_err());
    }

    #[test]
    fn a_link_put_in_place_of_a_file_is_not_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, b"host secret").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("data.csv")).unwrap();
        assert!(hash_file(&dir.path().join("data.csv")).is_err());
        assert!(open_plain(&dir.path().join("data.csv")).is_err());
        assert!(open_plain(Path::new("/dev/null")).is_err(), "a device is not a plain file");
        assert!(open_plain(&secret).is_ok());
    }

    #[test]
    fn a_lessee_refuses_manifests_that_could_escape_or_collide() {
        let entry = |p: &str| FileEntry { path: p.into(), size_bytes: 1, sha256: [0; 32] };
        let m = |paths: &[&str]| Manifest { files: paths.iter().map(|p| entry(p)).collect() };
        assert!(m(&["a/b.csv", "a/c.csv", "b"]).check().is_ok());
        for (bad, why) in [
            (m(&["../etc/passwd"]), "escapes"),
            (m(&["/etc/passwd"]), "absolute"),
            (m(&["a", "a"]), "twice"),
            (m(&["b", "a"]), "out of order"),
            (m(&["a", "a/b"]), "a file and a directory"),
        ] {
            assert!(bad.check().is_err(), "{why}: {:?}", bad.files);
        }
        let too_many = Manifest { files: (0..=MAX_FILES).map(|i| entry(&format!("f{i:07}"))).collect() };
        assert_eq!(too_many.check().unwrap_err(), ManifestError::TooManyFiles);
    }

    #[test]
    fn relative_paths_must_stay_inside() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\nb", "a\\b"] {
            assert!(check_rel_path(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["a", "a/b.csv", "dir/sub/file-1_2.txt", "..a", "a.."] {
            assert!(check_rel_path(good).is_ok(), "{good:?} should be accepted");
        }
    }
}
