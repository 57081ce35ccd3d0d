//! Whether this server may still answer as its volume's owner. A server whose volume lives in
//! a shared store (RADOS) owns it by a lease that it renews; the gate stays open until the
//! end of the last lease it knows it holds. Every reply and every admission checks it first,
//! so a server paused past its lease (SIGSTOP, a stalled VM) answers nothing when it wakes,
//! before its renewal has even run: by then a standby may have taken the volume over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Open until a deadline that the lease's renewals push forward; closed by `close` until a
/// renewal opens it again (a server whose lock was taken exits rather than renew).
pub struct OwnerGate {
    base: Instant,
    /// Microseconds after `base` until which the server owns the volume.
    until: AtomicU64,
}

impl Default for OwnerGate {
    fn default() -> Self {
        OwnerGate::new()
    }
}

impl OwnerGate {
    /// A closed gate.
    pub fn new() -> OwnerGate {
        OwnerGate {
            base: Instant::now(),
            until: AtomicU64::new(0),
        }
    }

    /// The server owns the volume until `deadline` (never moves the gate backwards).
    pub fn open_until(&self, deadline: Instant) {
        let us = deadline.saturating_duration_since(self.base).as_micros() as u64;
        self.until.fetch_max(us, Ordering::SeqCst);
    }

    /// The server no longer owns the volume.
    pub fn close(&self) {
        self.until.store(0, Ordering::SeqCst);
    }

    /// True while the server owns the volume.
    pub fn is_open(&self) -> bool {
        let now = self.base.elapsed().as_micros() as u64;
        now < self.until.load(Ordering::SeqCst)
    }

    /// How long it stays open from now, if nothing renews it.
    pub fn left(&self) -> Duration {
        let now = self.base.elapsed().as_micros() as u64;
        Duration::from_micros(self.until.load(Ordering::SeqCst).saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_until_its_deadline_and_never_moved_back() {
        let g = OwnerGate::new();
        assert!(!g.is_open());
        g.open_until(Instant::now() + Duration::from_secs(60));
        assert!(g.is_open());
        g.open_until(Instant::now());
        assert!(g.is_open(), "an older deadline does not shorten the lease");
        g.close();
        assert!(!g.is_open());
        g.open_until(Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!g.is_open(), "a lease not renewed ends");
    }
}
