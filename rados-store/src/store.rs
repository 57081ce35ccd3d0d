//! `RadosStore`: a `BlockStore` over a RADOS image. Writes go out asynchronously, split at
//! object boundaries; a RADOS write is durable once acknowledged, so `flush` (the barrier)
//! waits until every write issued before it is acknowledged, and reports the first that
//! failed — then and at every later flush: the image no longer holds what the engine wrote.
//! A read waits first for writes in flight to the objects it reads. Objects never written
//! read as zeros, as holes of a sparse file do.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use volume::BlockStore;

use crate::cluster::{CephOptions, Cluster, Pending, Pool};
use crate::image::{read_header, Header};
use crate::name::ImageName;
use crate::RadosError;

/// Writes in flight beyond which a writer waits for the oldest: memory and OSD queues stay
/// bounded under a long stream of writes with no flush.
const MAX_IN_FLIGHT: usize = 128;

/// A RADOS image as a block store.
pub struct RadosStore {
    pool: Pool,
    name: ImageName,
    header: Header,
    read_only: bool,
    state: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    /// Writes not yet reaped, oldest first, with the object each goes to.
    writes: Vec<(u64, Arc<Pending>)>,
    /// The first write that failed: every flush from then on fails with it.
    failed: Option<(io::ErrorKind, Option<i32>)>,
}

impl RadosStore {
    /// Connect and open the image `name`.
    pub fn open(
        name: &ImageName,
        ceph: &CephOptions,
        read_only: bool,
    ) -> Result<RadosStore, RadosError> {
        let pool = Cluster::connect(ceph)?.pool(&name.pool)?;
        RadosStore::open_in(pool, name, read_only)
    }

    /// Open the image `name` in a pool already reached.
    pub fn open_in(
        pool: Pool,
        name: &ImageName,
        read_only: bool,
    ) -> Result<RadosStore, RadosError> {
        let header = read_header(&pool, name)?.ok_or_else(|| RadosError::NoImage(name.clone()))?;
        Ok(RadosStore {
            pool,
            name: name.clone(),
            header,
            read_only,
            state: Mutex::new(InFlight::default()),
        })
    }

    /// The pool the image lives in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The image's name.
    pub fn name(&self) -> &ImageName {
        &self.name
    }

    /// The image's header: size and object size.
    pub fn header(&self) -> Header {
        self.header
    }

    fn lock(&self) -> MutexGuard<'_, InFlight> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pieces of `len` bytes at `offset`: (object index, offset in it, offset in the
    /// caller's buffer, length).
    fn pieces(&self, offset: u64, len: usize) -> impl Iterator<Item = (u64, u64, usize, usize)> {
        let os = self.header.object_size;
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            if pos >= len {
                return None;
            }
            let abs = offset + pos as u64;
            let within = abs % os;
            let n = ((os - within) as usize).min(len - pos);
            let piece = (abs / os, within, pos, n);
            pos += n;
            Some(piece)
        })
    }

    /// Wait for the writes in flight that `pick` selects, then drop from the list every
    /// write acknowledged by now, keeping the first failure.
    fn settle(&self, pick: impl Fn(u64) -> bool) {
        let waits: Vec<Arc<Pending>> = {
            let st = self.lock();
            st.writes
                .iter()
                .filter(|(o, _)| pick(*o))
                .map(|(_, p)| p.clone())
                .collect()
        };
        for p in &waits {
            let _ = p.wait(); // the result is read again below, with the others
        }
        let mut st = self.lock();
        let mut failed = st.failed;
        st.writes.retain(|(_, p)| {
            if !p.is_complete() {
                return true;
            }
            if let (Err(e), None) = (p.wait(), failed) {
                failed = Some((e.kind(), e.raw_os_error()));
            }
            false
        });
        st.failed = failed;
    }

    fn sticky_error(&self) -> io::Result<()> {
        match self.lock().failed {
            None => Ok(()),
            Some((_, Some(code))) => Err(io::Error::from_raw_os_error(code)),
            Some((kind, None)) => Err(io::Error::new(kind, "a RADOS write failed")),
        }
    }
}

impl BlockStore for RadosStore {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let size = self.header.size;
        let first = offset / self.header.object_size;
        let last = (offset + buf.len() as u64).saturating_sub(1) / self.header.object_size;
        self.settle(|o| (first..=last).contains(&o));
        for (index, within, pos, n) in self.pieces(offset, buf.len()) {
            let piece = &mut buf[pos..pos + n];
            let abs = offset + pos as u64;
            let got = if abs >= size {
                0
            } else {
                let n = piece.len().min((size - abs) as usize);
                self.pool
                    .read(&self.name.data_object(index), &mut piece[..n], within)?
            };
            piece[got..].fill(0);
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        if offset + buf.len() as u64 > self.header.size {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut backlog = 0;
        for (index, within, pos, n) in self.pieces(offset, buf.len()) {
            let oid = self.name.data_object(index);
            let p = self.pool.aio_write(&oid, &buf[pos..pos + n], within)?;
            let mut st = self.lock();
            st.writes.push((index, Arc::new(p)));
            backlog = st.writes.len();
        }
        if backlog > MAX_IN_FLIGHT {
            let oldest = self.lock().writes.first().map(|(o, _)| *o);
            self.settle(|o| Some(o) == oldest);
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.settle(|_| true);
        self.sticky_error()
    }

    /// Acknowledged means applied on the OSDs: another client's write to the bytes from
    /// now on lands after it.
    fn applied(&self, offset: u64, len: u64) -> io::Result<()> {
        let first = offset / self.header.object_size;
        let last = (offset + len).saturating_sub(1) / self.header.object_size;
        self.settle(|o| (first..=last).contains(&o));
        self.sticky_error()
    }

    fn len(&self) -> u64 {
        self.header.size
    }
}

impl Drop for RadosStore {
    fn drop(&mut self) {
        self.settle(|_| true);
    }
}
