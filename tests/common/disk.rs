//! A small disk of its own under a node's data directory (a tmpfs), that a
//! test can fill and free. Needs root, as mounting does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted over a directory, its former files copied in; unmounted
/// on drop.
pub struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    /// `Err` (the test skips, saying so) only when this is not root.
    pub fn mount(at: &Path, size_mib: u64) -> Result<SmallDisk, String> {
        if !super::hosts::is_root() {
            return super::skip_unless_required("a tmpfs mount needs root");
        }
        let was = at.with_extension("before-mount");
        std::fs::rename(at, &was).unwrap();
        std::fs::create_dir(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0755"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", String::from_utf8_lossy(&out.stderr).trim());
        let disk = SmallDisk { at: at.to_path_buf() };
        for e in std::fs::read_dir(&was).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), at.join(e.file_name())).unwrap();
        }
        Ok(disk)
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }

    /// Fills the disk until `leave_mib` is free.
    pub fn fill_leaving(&self, leave_mib: u64) {
        use std::io::Write;
        let free = leasehold_node::disk::free_bytes(&self.at).unwrap();
        let mut todo = free.saturating_sub(leave_mib << 20);
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0xA5u8; 1 << 20];
        while todo > 0 {
            let n = todo.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n]).unwrap();
            todo -= n as u64;
        }
        f.sync_all().unwrap();
    }

    pub fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}
