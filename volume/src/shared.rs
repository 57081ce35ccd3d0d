//! `SharedVolume`: one engine used by many threads at once. Operations take the engine's lock
//! for their in-memory work and the page-cache reads and writes of file data; a commit holds
//! it only to take the pending transaction and to end it. The journal write and its flushes to
//! disk, the slow part, happen outside it, so other operations proceed meanwhile. Commits are
//! serialized among themselves.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::error::FsResult;
use crate::fs::Volume;
use crate::store::BlockStore;

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
    pub fn new(vol: Volume<S>) -> SharedVolume<S> {
        SharedVolume {
            vol: Mutex::new(vol),
            committing: Mutex::new(()),
        }
    }

    /// The engine to this caller alone until the guard drops.
    pub fn lock(&self) -> MutexGuard<'_, Volume<S>> {
        relock(&self.vol)
    }

    /// Run one operation with the engine to itself.
    pub fn with<R>(&self, f: impl FnOnce(&mut Volume<S>) -> R) -> R {
        f(&mut relock(&self.vol))
    }

    /// Everything done before this call is durable when it returns.
    pub fn commit(&self) -> FsResult<()> {
        let _serial = relock(&self.committing);
        let p = relock(&self.vol).prepare_commit();
        let written = p.write();
        relock(&self.vol).finish_commit(p, written)
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
    pub fn fsync(&self, ino: u64) -> FsResult<()> {
        self.with(|v| v.getattr(ino))?;
        self.commit()
    }

    pub fn into_inner(self) -> Volume<S> {
        self.vol.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}
