//! `SharedVolume`: one engine used by many threads at once. Operations take the engine's lock
//! for their in-memory work (and writes of file data, which land in the page cache); reads of
//! file data and commits do their disk I/O without it:
//! - a read plans under the lock (the block map says where its bytes are), then reads them
//!   with the lock released;
//! - a write maps its blocks under the lock, writes its data with the lock released, and sets
//!   the size under it again; a commit waits for data writes in flight before it takes its
//!   transaction, so no transaction maps a block whose data is not yet written;
//! - a commit holds it only to take the pending transaction and to end it; the journal write
//!   and its flushes happen outside, and commits are serialized among themselves.
//!
//! Commits are made here alone (`commit`): operations never start one inside the lock (one
//! could overlap the commit in flight); once half the journal is pending, the next caller of
//! `lock` commits before it goes on.
//!
//! A block freed by a truncate or unlink is not reused until the commit that frees it is
//! durable and ends; ending it first waits for reads in flight, so no read planned before the
//! free can land on a block that already holds another file's data.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::attr::Ino;
use crate::error::{FsError, FsResult};
use crate::fs::Volume;
use crate::store::BlockStore;

/// A `Volume` shared by threads, with the commit path that serves them all.
pub struct SharedVolume<S: BlockStore> {
    vol: Mutex<Volume<S>>,
    /// Held for a whole commit, taken before `vol`.
    committing: Mutex<()>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another thread must not take the volume down with it: the engine keeps its
    // own invariants per operation, and a poisoned lock would stop every later caller.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: BlockStore> SharedVolume<S> {
    /// Share `vol`: from now on only this commits it.
    pub fn new(mut vol: Volume<S>) -> SharedVolume<S> {
        vol.commit_outside();
        SharedVolume {
            vol: Mutex::new(vol),
            committing: Mutex::new(()),
        }
    }

    /// The engine to this caller alone until the guard drops; if a commit is due (half the
    /// journal pending), it is made first. Its failure is left to the next commit to report.
    pub fn lock(&self) -> MutexGuard<'_, Volume<S>> {
        let v = relock(&self.vol);
        if !v.commit_urgent() {
            return v;
        }
        drop(v);
        let _ = self.commit();
        relock(&self.vol)
    }

    /// Run one operation with the engine to itself.
    pub fn with<R>(&self, f: impl FnOnce(&mut Volume<S>) -> R) -> R {
        f(&mut self.lock())
    }

    /// Run `f` if nobody holds the engine right now (this thread included); `None` if
    /// someone does.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut Volume<S>) -> R) -> Option<R> {
        match self.vol.try_lock() {
            Ok(mut v) => Some(f(&mut v)),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(f(&mut e.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Run an operation that may be too large for one transaction (fallocate, truncate):
    /// each time it stops at a step boundary (`FsError::Again`), the steps so far are
    /// committed and it is called again, to go on from where it stopped.
    pub fn run<R>(&self, mut op: impl FnMut(&mut Volume<S>) -> FsResult<R>) -> FsResult<R> {
        loop {
            let r = op(&mut self.lock());
            match r {
                Err(FsError::Again) => self.commit()?,
                r => return r,
            }
        }
    }

    /// Everything done before this call is durable when it returns. Files whose blocks are
    /// freed in steps (`Volume::reap`) go on here, a step and a commit at a time, until none
    /// is left; other callers take the engine between steps.
    pub fn commit(&self) -> FsResult<()> {
        loop {
            self.commit_once()?;
            if !relock(&self.vol).reap()? {
                return Ok(());
            }
        }
    }

    fn commit_once(&self) -> FsResult<()> {
        let _serial = relock(&self.committing);
        let (p, hook) = {
            let mut v = relock(&self.vol);
            (v.prepare_commit()?, v.durability_hook())
        };
        let written = match hook {
            Some(hook) => hook().and_then(|_| p.write()),
            None => p.write(),
        };
        // Ending it waits for reads in flight before the blocks it frees become reusable.
        relock(&self.vol).finish_commit(p, written)
    }

    /// Read file data, the disk I/O without the engine's lock.
    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> FsResult<Vec<u8>> {
        self.read_checked(ino, offset, size, |_| Ok(()))
    }

    /// `read`, with `check` run first in the same hold of the engine that plans the read: what
    /// it allowed still holds when the read is planned.
    pub fn read_checked(
        &self,
        ino: Ino,
        offset: u64,
        size: usize,
        check: impl FnOnce(&mut Volume<S>) -> FsResult<()>,
    ) -> FsResult<Vec<u8>> {
        let (plan, store) = {
            let mut v = relock(&self.vol);
            check(&mut v)?;
            (v.plan_read(ino, offset, size)?, v.shared_store())
        };
        plan.execute(&*store)
    }

    /// Write file data, its disk I/O without the engine's lock: blocks are mapped under it,
    /// the data written outside, then the size and times set under it again, where `then`
    /// also runs (with the bytes written).
    pub fn write(
        &self,
        ino: Ino,
        offset: u64,
        data: &[u8],
        then: impl FnOnce(&mut Volume<S>, usize) -> FsResult<()>,
    ) -> FsResult<usize> {
        self.write_checked(ino, offset, data, |_| Ok(()), then)
    }

    /// `write`, with `check` run first in the same hold of the engine that maps the blocks:
    /// what it allowed still holds when the write is planned.
    pub fn write_checked(
        &self,
        ino: Ino,
        offset: u64,
        data: &[u8],
        check: impl FnOnce(&mut Volume<S>) -> FsResult<()>,
        then: impl FnOnce(&mut Volume<S>, usize) -> FsResult<()>,
    ) -> FsResult<usize> {
        let mut check = Some(check);
        let mut done = 0;
        // A write whose blocks would outgrow one transaction goes in parts, each planned
        // after the last one's transaction is committed (`lock` commits it first).
        loop {
            let (mut plan, store) = {
                let mut v = self.lock();
                if let Some(check) = check.take() {
                    check(&mut v)?;
                }
                match v.plan_write(ino, offset + done as u64, data.len() - done) {
                    Err(FsError::NoSpace | FsError::DiskQuota) if done > 0 => {
                        then(&mut v, done)?;
                        return Ok(done);
                    }
                    r => (r?, v.shared_store()),
                }
            };
            let more = plan.stopped_for_commit();
            let written = plan.execute(&*store, &data[done..]);
            let mut v = self.lock();
            done += v.finish_write(plan, written)?;
            if !more {
                then(&mut v, done)?;
                return Ok(done);
            }
        }
    }

    /// Commit if something is pending and the last commit is older than `interval`.
    pub fn commit_if_older(&self, interval: Duration) -> FsResult<bool> {
        if relock(&self.vol).commit_due(interval) {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// fsync: the file's data and all metadata durable.
    pub fn fsync(&self, ino: Ino) -> FsResult<()> {
        self.with(|v| v.getattr(ino))?;
        self.commit()
    }

    /// The engine back, for a caller alone.
    pub fn into_inner(self) -> Volume<S> {
        self.vol.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}
