//! `LockManager`: the lock table shared by the server's request threads. Each operation takes
//! the table for a moment and returns the grants it caused; delivering them (a push to the
//! waiting client) happens outside, so no lock is held across the network.

use crate::sync::{Mutex, MutexGuard};
use crate::table::{Grant, Held, LockError, LockReq, LockTable, Owner, WaitOutcome};

#[derive(Default)]
pub struct LockManager {
    table: Mutex<LockTable>,
}

impl LockManager {
    pub fn new() -> LockManager {
        LockManager::default()
    }

    fn t(&self) -> MutexGuard<'_, LockTable> {
        // A panic elsewhere must not wedge every later lock call.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn test(&self, ino: u64, req: &LockReq) -> Option<Held> {
        self.t().test(ino, req)
    }

    pub fn set(&self, ino: u64, req: LockReq) -> Result<Vec<Grant>, LockError> {
        self.t().set(ino, req)
    }

    pub fn set_wait(
        &self,
        ino: u64,
        wait: u64,
        req: LockReq,
    ) -> Result<(WaitOutcome, Vec<Grant>), LockError> {
        self.t().set_wait(ino, wait, req)
    }

    pub fn cancel(&self, session: u64, wait: u64) -> (bool, Vec<Grant>) {
        self.t().cancel(session, wait)
    }

    pub fn release_owner(&self, ino: u64, owner: Owner) -> Vec<Grant> {
        self.t().release_owner(ino, owner)
    }

    pub fn drop_session(&self, session: u64) -> Vec<Grant> {
        self.t().drop_session(session)
    }

    pub fn held_by_session(&self, session: u64) -> usize {
        self.t().held_by_session(session)
    }

    /// Run `f` on the table itself (status, tests, invariant checks).
    pub fn inspect<R>(&self, f: impl FnOnce(&LockTable) -> R) -> R {
        f(&self.t())
    }
}
