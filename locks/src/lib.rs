//! The lock manager: which client holds which byte ranges of which file, who waits for what,
//! and who is granted next. A synchronous core with no I/O and no async runtime — the server
//! drives it and delivers its grants as pushes — so loom can model-check it (`cfg(loom)`
//! swaps the `sync` facade to loom's types).

#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod manager;
pub mod sync;
mod table;

pub use manager::LockManager;
pub use table::{Grant, Held, Kind, LockError, LockReq, LockTable, Owner, WaitOutcome};

/// A server session, as the lock table and the server name it: a type of its own, so that a
/// session cannot be passed where an inode, a wait or a call id goes, nor one of those where
/// the session goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SessionId(u64);

impl SessionId {
    /// The session numbered `raw` (as the wire, the session log or a test numbers it).
    pub const fn new(raw: u64) -> SessionId {
        SessionId(raw)
    }

    /// The number, for the wire and the session log.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
