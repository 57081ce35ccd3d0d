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
