//! The synchronization types the lock manager uses: std's, or loom's under `cfg(loom)` so
//! that its models explore every interleaving.

#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};
