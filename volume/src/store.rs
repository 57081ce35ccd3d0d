//! Where blocks live: an image file or block device (positional I/O), or memory for tests.
//! Reads past the end of the store return zeros, as a sparse image would.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::layout::BLOCK_SIZE;

/// Where an image's bytes live: a file, memory, or a wrapper that injects faults.
pub trait BlockStore: Send + Sync {
    /// Fill `buf` from `offset`; bytes past the end read as zeros.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make every completed write durable (a barrier: nothing written later overtakes it).
    fn flush(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> u64;
    /// True if the store holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Make sure `len` bytes at `offset` have space under them (a sparse image file gets its
    /// blocks allocated), so writing there later cannot fail for want of space.
    fn reserve(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Wait until every write issued so far to the `len` bytes at `offset` has landed where
    /// every other client of the store sees it, so that another client's write to them from
    /// now on lands after it (a direct mount's write over the zeros a layout put in place).
    /// A store whose writes land once made (a file, memory) has nothing to wait for.
    fn applied(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

impl<T: BlockStore + ?Sized> BlockStore for Arc<T> {
    fn applied(&self, offset: u64, len: u64) -> io::Result<()> {
        (**self).applied(offset, len)
    }
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

impl<T: BlockStore + ?Sized> BlockStore for Box<T> {
    fn applied(&self, offset: u64, len: u64) -> io::Result<()> {
        (**self).applied(offset, len)
    }
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
    /// Open an image file for reading and writing.
    pub fn open(path: &Path) -> io::Result<FileStore> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(FileStore { file })
    }

    /// Open an image file for reading only.
    pub fn open_read_only(path: &Path) -> io::Result<FileStore> {
        let file = OpenOptions::new().read(true).open(path)?;
        Ok(FileStore { file })
    }

    /// A store over a file already open.
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
    /// A zeroed in-memory store of `len` bytes.
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
            let piece = &buf[pos..pos + n];
            pos += n;
            if !blocks.contains_key(&bno) && piece.iter().all(|&x| x == 0) {
                continue; // zeros over a hole: the hole already reads as zeros
            }
            let b = blocks
                .entry(bno)
                .or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
            b[within..within + n].copy_from_slice(piece);
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

/// A store over `beside` whose writes land only later (at a flush, at `applied`, or before
/// a read of its own), as a RADOS client's asynchronous writes do; `beside` is the disk as
/// another client sees it meanwhile (a direct mount). For tests of what must wait for them.
pub struct LateStore {
    beside: Arc<MemStore>,
    queued: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl LateStore {
    /// Writes to `beside` that land late.
    pub fn over(beside: Arc<MemStore>) -> LateStore {
        LateStore {
            beside,
            queued: Mutex::default(),
        }
    }

    fn land(&self) -> io::Result<()> {
        let queued = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()));
        queued
            .iter()
            .try_for_each(|(at, d)| self.beside.write_at(d, *at))
    }
}

impl BlockStore for LateStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.land()?;
        self.beside.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.push((offset, buf.to_vec()));
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        self.land()
    }
    fn len(&self) -> u64 {
        self.beside.len()
    }
    fn applied(&self, _offset: u64, _len: u64) -> io::Result<()> {
        self.land()
    }
}

/// Which of the writes made since the last flush a power cut keeps (`CrashStore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivors {
    /// All of them, in issue order: what survives is a prefix of the writes.
    All,
    /// None: only what a flush made durable.
    Nothing,
    /// A subset chosen by the seed, block by block (a write of several blocks may tear),
    /// landing in an order chosen by the seed: a disk's cache reorders and drops at will.
    /// Each piece survives with a probability (1/8 to 7/8) the seed also chooses.
    Seeded(u64),
}

/// Test store that plays a power cut. Writes go to a volatile cache (reads see them); a
/// flush makes the cache durable, in issue order, on the inner store. Writes and flushes are
/// counted as events; at the `limit`th the power goes: of the writes since the last flush,
/// those `Survivors` says reach the inner store, and nothing after reaches it (the engine
/// goes on, seeing its own writes, as a process would until it notices).
pub struct CrashStore<S: BlockStore> {
    inner: S,
    state: Mutex<CrashState>,
}

struct CrashState {
    events: u64,
    /// The events that were flushes.
    flushes: Vec<u64>,
    limit: u64,
    survivors: Survivors,
    crashed: bool,
    /// Block-sized pieces written since the last flush: (offset, bytes), in issue order.
    pending: Vec<(u64, Vec<u8>)>,
    /// What reads see that the inner store does not hold: block number to its image.
    volatile: HashMap<u64, Box<[u8]>>,
}

impl<S: BlockStore> CrashStore<S> {
    /// A power cut at event `limit` that keeps every write issued before it.
    pub fn new(inner: S, limit: u64) -> CrashStore<S> {
        CrashStore::with_survivors(inner, limit, Survivors::All)
    }

    /// A power cut at event `limit`; `survivors` says which writes not yet flushed outlive it.
    pub fn with_survivors(inner: S, limit: u64, survivors: Survivors) -> CrashStore<S> {
        CrashStore {
            inner,
            state: Mutex::new(CrashState {
                events: 0,
                flushes: Vec::new(),
                limit,
                survivors,
                crashed: false,
                pending: Vec::new(),
                volatile: HashMap::new(),
            }),
        }
    }

    /// Events (writes and flushes) issued so far, those after the power cut included.
    pub fn writes(&self) -> u64 {
        self.lock().events
    }

    /// The event numbers of the flushes issued so far: where power cuts hurt most.
    pub fn flushes(&self) -> Vec<u64> {
        self.lock().flushes.clone()
    }

    /// The wrapped store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CrashState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one event; true if the power is still on for it.
    fn event(&self, st: &mut CrashState) -> io::Result<bool> {
        let n = st.events;
        st.events += 1;
        if !st.crashed && n >= st.limit {
            st.crashed = true;
            let pending = std::mem::take(&mut st.pending);
            for (off, buf) in survivors(pending, st.survivors) {
                self.inner.write_at(&buf, off)?;
            }
        }
        Ok(!st.crashed)
    }
}

/// The pieces a power cut keeps, in the order they land.
fn survivors(mut pending: Vec<(u64, Vec<u8>)>, which: Survivors) -> Vec<(u64, Vec<u8>)> {
    let seed = match which {
        Survivors::All => return pending,
        Survivors::Nothing => return Vec::new(),
        Survivors::Seeded(seed) => seed,
    };
    // xorshift64*: deterministic for a seed, no dependency.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for i in (1..pending.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        pending.swap(i, j);
    }
    let keep = 1 + seed % 7;
    pending.retain(|_| next() % 8 < keep);
    pending
}

impl<S: BlockStore> BlockStore for CrashStore<S> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let st = self.lock();
        self.inner.read_at(buf, offset)?;
        let bs = BLOCK_SIZE as u64;
        let mut pos = 0usize;
        while pos < buf.len() {
            let abs = offset + pos as u64;
            let within = (abs % bs) as usize;
            let n = (BLOCK_SIZE - within).min(buf.len() - pos);
            if let Some(img) = st.volatile.get(&(abs / bs)) {
                buf[pos..pos + n].copy_from_slice(&img[within..within + n]);
            }
            pos += n;
        }
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset + buf.len() as u64 > self.inner.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut st = self.lock();
        let on = self.event(&mut st)?;
        let bs = BLOCK_SIZE as u64;
        let mut pos = 0usize;
        while pos < buf.len() {
            let abs = offset + pos as u64;
            let bno = abs / bs;
            let within = (abs % bs) as usize;
            let n = (BLOCK_SIZE - within).min(buf.len() - pos);
            if buf[pos..pos + n].iter().all(|&x| x == 0) && !st.volatile.contains_key(&bno) {
                let mut cur = vec![0u8; n];
                self.inner.read_at(&mut cur, abs)?;
                if cur.iter().all(|&x| x == 0) {
                    pos += n;
                    continue; // zeros over zeros, kept or lost alike
                }
            }
            let img = match st.volatile.entry(bno) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let mut img = vec![0u8; BLOCK_SIZE].into_boxed_slice();
                    self.inner.read_at(&mut img, bno * bs)?;
                    e.insert(img)
                }
            };
            img[within..within + n].copy_from_slice(&buf[pos..pos + n]);
            if on {
                st.pending.push((abs, buf[pos..pos + n].to_vec()));
            }
            pos += n;
        }
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        let mut st = self.lock();
        let n = st.events;
        st.flushes.push(n);
        if !self.event(&mut st)? {
            return Ok(());
        }
        for (off, buf) in std::mem::take(&mut st.pending) {
            self.inner.write_at(&buf, off)?;
        }
        st.volatile.clear();
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}
