//! Where a direct mount's file data lives: the volume's blocks, read and written at byte
//! addresses the server's layouts give, and made durable before a commit names them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The shared volume as a direct mount reads and writes it.
pub(super) trait DataStore: Send + Sync {
    /// Fill `buf` from the volume's bytes at `at`.
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
    /// Write `data` to the volume at `at`.
    fn write_at(&self, data: &[u8], at: u64) -> io::Result<()>;
    /// Every write made so far durable on the volume.
    fn make_durable(&self) -> io::Result<()>;
    /// The address the store knows this mount by, for the server to fence it there; `None`
    /// for a store that cannot fence (a local image).
    fn client_address(&self) -> Option<&str> {
        None
    }
}

/// A volume in a local image file (a block device or a file on a shared file system).
pub(super) struct LocalImage {
    file: File,
}

impl LocalImage {
    /// The image at `path`, opened for reading, and writing unless `read_only`.
    pub(super) fn open(path: &Path, read_only: bool) -> Result<LocalImage, String> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(LocalImage { file })
    }
}

impl DataStore for LocalImage {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, at)
    }

    fn write_at(&self, data: &[u8], at: u64) -> io::Result<()> {
        self.file.write_all_at(data, at)
    }

    fn make_durable(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
