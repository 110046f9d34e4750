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
    pub fn mount(at: &Path, size_mib: u64) -> Result<SmallDisk, String> {
        let was = at.with_extension("before-mount");
        std::fs::rename(at, &was).map_err(|e| e.to_string())?;
        std::fs::create_dir(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0755"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("mount: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let disk = SmallDisk { at: at.to_path_buf() };
        for e in std::fs::read_dir(&was).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            std::fs::copy(e.path(), at.join(e.file_name())).map_err(|e| e.to_string())?;
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
