//! Where a session log lives: a file beside a local image (`FileLog`), or anything else that
//! can hold a few MiB, replace them whole atomically and append durably (a RADOS object, so
//! that a standby server on another host reads the log its predecessor wrote).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log's storage: the whole log read at open, replaced whole at compaction, appended to
/// between. `append` and `replace` are durable when they return.
pub trait LogPlace: Send + Sync {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// Everything in the log; empty if there is none yet.
    fn read(&self) -> std::io::Result<Vec<u8>>;
    /// Replace the whole log with `data`, atomically: a crash leaves the old or the new.
    fn replace(&self, data: &[u8]) -> std::io::Result<()>;
    /// Add `data` at the end.
    fn append(&self, data: &[u8]) -> std::io::Result<()>;
}

/// A session log in a local file: rewritten through a temporary file and a rename, appended
/// to with a data sync.
pub struct FileLog {
    path: PathBuf,
    /// The file open for appending, once it was written whole.
    file: Mutex<Option<File>>,
}

/// Past this size the log is rewritten with only what is still live.
pub(super) const COMPACT_AT: u64 = 8 << 20;
/// Disk space taken for the log up front, so a disk that fills up with the volume's data
/// (a sparse image on the same disk) leaves the log room to grow to its compaction size.
const RESERVE: u64 = COMPACT_AT + (1 << 20);

impl FileLog {
    /// The log at `path`.
    pub fn new(path: &Path) -> FileLog {
        FileLog {
            path: path.to_path_buf(),
            file: Mutex::new(None),
        }
    }
}

impl LogPlace for FileLog {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn read(&self) -> std::io::Result<Vec<u8>> {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if !m.file_type().is_file() {
                return Err(std::io::Error::other(
                    "exists and is not a regular file (the session log is rewritten in place)",
                ));
            }
        }
        let mut data = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => f.read_to_end(&mut data).map(|_| data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(data),
            Err(e) => Err(e),
        }
    }

    fn replace(&self, data: &[u8]) -> std::io::Result<()> {
        let path = &self.path;
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        reserve(&file);
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
        Ok(())
    }

    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let f = f
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the session log was never written whole"))?;
        f.write_all(data)?;
        f.sync_data()
    }
}

/// Take the log's disk space up front (without changing its size); best effort.
fn reserve(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on an open descriptor with plain integer arguments.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            0,
            RESERVE as libc::off_t,
        )
    };
    if r != 0 {
        tracing::debug!(
            "session log: space not reserved: {}",
            std::io::Error::last_os_error()
        );
    }
}
