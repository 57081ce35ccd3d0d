//! Per-file marks of the session epoch (`Backend::lock_epoch`) in which something happened
//! that only the server's memory of this mount's session vouches for: a lock granted. If the
//! epoch moved on (the server forgot the session), the mark says the file's locks are gone.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct EpochMarks(Mutex<HashMap<u64, u64>>);

impl EpochMarks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mark `ino` in `epoch`, unless it is marked already (the first mark counts).
    pub(super) fn mark(&self, ino: u64, epoch: u64) {
        self.map().entry(ino).or_insert(epoch);
    }

    /// True if `ino` was marked in an epoch other than `now`.
    pub(super) fn stale(&self, ino: u64, now: u64) -> bool {
        self.map().get(&ino).is_some_and(|e| *e != now)
    }

    /// True if `ino` carries a mark (of any epoch).
    pub(super) fn marked(&self, ino: u64) -> bool {
        self.map().contains_key(&ino)
    }

    pub(super) fn clear(&self, ino: u64) {
        self.map().remove(&ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_mark_counts_until_cleared() {
        let m = EpochMarks::default();
        m.mark(5, 0);
        m.mark(5, 1);
        assert!(!m.stale(5, 0));
        assert!(m.stale(5, 1));
        assert!(!m.stale(6, 1));
        m.clear(5);
        assert!(!m.stale(5, 1));
        m.mark(5, 1);
        assert!(!m.stale(5, 1));
        assert!(m.stale(5, 2));
    }
}
