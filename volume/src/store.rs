//! Where blocks live: an image file or block device (positional I/O), or memory for tests.
//! Reads past the end of the store return zeros, as a sparse image would.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::layout::BLOCK_SIZE;

pub trait BlockStore: Send + Sync {
    /// Fill `buf` from `offset`; bytes past the end read as zeros.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make every completed write durable (a barrier: nothing written later overtakes it).
    fn flush(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Make sure `len` bytes at `offset` have space under them (a sparse image file gets its
    /// blocks allocated), so writing there later cannot fail for want of space.
    fn reserve(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

impl<T: BlockStore + ?Sized> BlockStore for Arc<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        (**self).flush()
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        (**self).reserve(offset, len)
    }
}

/// An image file or block device.
pub struct FileStore {
    file: File,
}

impl FileStore {
    pub fn open(path: &Path) -> io::Result<FileStore> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(FileStore { file })
    }

    pub fn open_read_only(path: &Path) -> io::Result<FileStore> {
        let file = OpenOptions::new().read(true).open(path)?;
        Ok(FileStore { file })
    }

    pub fn from_file(file: File) -> FileStore {
        FileStore { file }
    }

    fn device_len(&self) -> io::Result<u64> {
        use std::io::{Seek, SeekFrom};
        let mut f = &self.file;
        f.seek(SeekFrom::End(0))
    }
}

impl BlockStore for FileStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.file.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                buf[done..].fill(0);
                break;
            }
            done += n;
        }
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> u64 {
        self.device_len().unwrap_or(0)
    }
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if !self.file.metadata()?.is_file() {
            return Ok(()); // a block device has its space already
        }
        // SAFETY: plain syscall on an open descriptor; it writes nothing to memory.
        let r = unsafe {
            libc::posix_fallocate(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        match r {
            0 => Ok(()),
            // The file system cannot preallocate: stay sparse.
            libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// A sparse in-memory store. Shared through `Arc` it plays one disk attached to several engines.
pub struct MemStore {
    blocks: Mutex<HashMap<u64, Box<[u8]>>>,
    len: u64,
}

impl MemStore {
    pub fn new(len: u64) -> MemStore {
        MemStore {
            blocks: Mutex::new(HashMap::new()),
            len,
        }
    }

    /// A copy of the current contents (a snapshot of the disk).
    pub fn snapshot(&self) -> MemStore {
        let blocks = self
            .blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        MemStore {
            blocks: Mutex::new(blocks),
            len: self.len,
        }
    }
}

impl BlockStore for MemStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let mut pos = 0usize;
        while pos < buf.len() {
            let abs = offset + pos as u64;
            let bno = abs / BLOCK_SIZE as u64;
            let within = (abs % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(buf.len() - pos);
            match blocks.get(&bno) {
                Some(b) if abs < self.len => {
                    buf[pos..pos + n].copy_from_slice(&b[within..within + n])
                }
                _ => buf[pos..pos + n].fill(0),
            }
            pos += n;
        }
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset + buf.len() as u64 > self.len {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let mut pos = 0usize;
        while pos < buf.len() {
            let abs = offset + pos as u64;
            let bno = abs / BLOCK_SIZE as u64;
            let within = (abs % BLOCK_SIZE as u64) as usize;
            let n = (BLOCK_SIZE - within).min(buf.len() - pos);
            let b = blocks
                .entry(bno)
                .or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
            b[within..within + n].copy_from_slice(&buf[pos..pos + n]);
            pos += n;
        }
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

/// Test store that plays a power cut: every write after the first `limit` is silently dropped.
/// Writes reach the inner store in issue order, so what survives is a prefix of them.
pub struct CrashStore<S: BlockStore> {
    inner: S,
    writes: AtomicU64,
    limit: AtomicU64,
}

impl<S: BlockStore> CrashStore<S> {
    pub fn new(inner: S, limit: u64) -> CrashStore<S> {
        CrashStore {
            inner,
            writes: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        }
    }
    /// Writes issued so far (dropped ones included).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: BlockStore> BlockStore for CrashStore<S> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if n < self.limit.load(Ordering::SeqCst) {
            self.inner.write_at(buf, offset)
        } else {
            Ok(())
        }
    }
    fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}
