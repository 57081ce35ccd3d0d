//! `LockManager`: the lock table shared by the server's request threads. Each operation takes
//! the table for a moment and returns the grants it caused; delivering them (a push to the
//! waiting client) happens outside, so no lock is held across the network.

use crate::sync::{Mutex, MutexGuard};
use crate::table::{Grant, Held, LockError, LockReq, LockTable, Owner, WaitOutcome};
use crate::SessionId;

/// The lock table behind a mutex, for the server's threads; each call is the table's
/// method of the same name (`LockTable`), taken for its duration only.
#[derive(Default)]
pub struct LockManager {
    table: Mutex<LockTable>,
}

impl LockManager {
    /// An empty table: no locks, no waits.
    pub fn new() -> LockManager {
        LockManager::default()
    }

    fn t(&self) -> MutexGuard<'_, LockTable> {
        // A panic elsewhere must not wedge every later lock call.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// F_GETLK: the first lock that would stop `req` on `ino`.
    pub fn test(&self, ino: u64, req: &LockReq) -> Option<Held> {
        self.t().test(ino, req)
    }

    /// F_SETLK: lock or unlock now, or the conflicting lock; the waits it let through.
    pub fn set(&self, ino: u64, req: LockReq) -> Result<Vec<Grant>, LockError> {
        self.t().set(ino, req)
    }

    /// F_SETLKW: lock now or queue as wait `wait`; the waits a grant let through.
    pub fn set_wait(
        &self,
        ino: u64,
        wait: u64,
        req: LockReq,
    ) -> Result<(WaitOutcome, Vec<Grant>), LockError> {
        self.t().set_wait(ino, wait, req)
    }

    /// An interrupted wait dropped: whether it was still queued, and the waits behind it
    /// that it let through.
    pub fn cancel(&self, session: SessionId, wait: u64) -> (bool, Vec<Grant>) {
        self.t().cancel(session, wait)
    }

    /// A close: every lock `owner` holds on `ino` let go; the waits that lets through.
    pub fn release_owner(&self, ino: u64, owner: Owner) -> Vec<Grant> {
        self.t().release_owner(ino, owner)
    }

    /// A session gone: everything it holds and awaits dropped; the waits that lets through.
    pub fn drop_session(&self, session: SessionId) -> Vec<Grant> {
        self.t().drop_session(session)
    }

    /// Locks a session holds, over all files: its count against the per-session limit.
    pub fn held_by_session(&self, session: SessionId) -> usize {
        self.t().held_by_session(session)
    }

    /// Run `f` on the table itself (status, tests, invariant checks).
    pub fn inspect<R>(&self, f: impl FnOnce(&LockTable) -> R) -> R {
        f(&self.t())
    }
}
