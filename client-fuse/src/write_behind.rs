//! Write-behind: a write is answered as soon as it is on its way to the server, so the
//! application's next write overlaps this one's trip, as NFS clients do. What keeps it honest:
//! - a write never overtakes an earlier one it overlaps (it waits for it first), so the server
//!   applies overlapping writes in the order the application made them;
//! - anything else that concerns the file — a read, getattr, truncate, fsync, close, a lock or
//!   unlock — first waits until the file's writes are on the server, so this mount never sees
//!   its own writes missing, and a lock's next holder (on any mount) sees everything written
//!   under it;
//! - a write the server refuses (ENOSPC, EIO...) is reported by the file's next write (the
//!   writes before that fail at once), and by every fsync and close of the file until its
//!   last close on the mount: a close of a copy of the descriptor (a forked child's exec)
//!   takes it from no one;
//! - at most `max_bytes` are in flight per mount.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct File {
    /// Writes on their way: (token, start, end exclusive).
    inflight: Vec<(u64, u64, u64)>,
    /// The first refusal, until the file's last close (`forget_error`).
    error: Option<i32>,
    /// A write reported it: the writes after that go.
    told_a_write: bool,
}

impl File {
    /// Nothing on its way and nothing to report: no need to keep.
    fn idle(&self) -> bool {
        self.inflight.is_empty() && self.error.is_none()
    }
}

#[derive(Default)]
struct State {
    files: HashMap<u64, File>,
    bytes: usize,
    next: u64,
}

/// Writes answered to the kernel before the server has them, per file, within a budget of bytes.
pub struct WriteBehind {
    state: Mutex<State>,
    cv: Condvar,
    max_bytes: usize,
}

impl WriteBehind {
    /// Nothing on its way yet; at most `max_bytes` at once.
    pub fn new(max_bytes: usize) -> WriteBehind {
        WriteBehind {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// A write of `len` bytes at `offset` to `ino` is about to go: wait until it overlaps no
    /// write in flight and the mount's budget has room. Its token, or the file's unreported
    /// error (the write must not go).
    pub fn begin(&self, ino: u64, offset: u64, len: usize) -> Result<u64, i32> {
        let end = offset.saturating_add(len as u64);
        let mut g = self.lock();
        loop {
            let f = g.files.entry(ino).or_default();
            if let Some(e) = f.error.filter(|_| !f.told_a_write) {
                f.told_a_write = true;
                return Err(e);
            }
            let overlaps = f.inflight.iter().any(|&(_, s, e)| s < end && offset < e);
            let room = g.bytes == 0 || g.bytes + len <= self.max_bytes;
            if !overlaps && room {
                break;
            }
            g = self.wait(g);
        }
        g.next += 1;
        let token = g.next;
        g.bytes += len;
        g.files
            .entry(ino)
            .or_default()
            .inflight
            .push((token, offset, end));
        Ok(token)
    }

    /// The write `token` of `len` bytes is done: on the server, or refused with an errno.
    pub fn end(&self, ino: u64, token: u64, len: usize, result: Result<(), i32>) {
        let mut g = self.lock();
        g.bytes = g.bytes.saturating_sub(len);
        if let Some(f) = g.files.get_mut(&ino) {
            f.inflight.retain(|(t, _, _)| *t != token);
            if let Err(e) = result {
                f.error.get_or_insert(e);
            }
            if f.idle() {
                g.files.remove(&ino);
            }
        }
        drop(g);
        self.cv.notify_all();
    }

    /// True while `ino` has writes in flight.
    pub fn pending(&self, ino: u64) -> bool {
        self.lock()
            .files
            .get(&ino)
            .is_some_and(|f| !f.inflight.is_empty())
    }

    /// Wait until every write to `ino` is on the server.
    pub fn settle(&self, ino: u64) {
        let mut g = self.lock();
        while g.files.get(&ino).is_some_and(|f| !f.inflight.is_empty()) {
            g = self.wait(g);
        }
    }

    /// Wait until the writes to `ino` begun so far are on the server (not those begun
    /// meanwhile, which a busy writer would never let end).
    pub fn settle_begun(&self, ino: u64) {
        self.settle_upto(ino, self.mark());
    }

    /// The mark of the writes begun so far (`settle_upto`).
    pub fn mark(&self) -> u64 {
        self.lock().next
    }

    /// Wait until the writes to `ino` begun by `mark` are on the server.
    pub fn settle_upto(&self, ino: u64, mark: u64) {
        let mut g = self.lock();
        let waiting = |g: &State| {
            g.files
                .get(&ino)
                .is_some_and(|f| f.inflight.iter().any(|&(t, _, _)| t <= mark))
        };
        while waiting(&g) {
            g = self.wait(g);
        }
    }

    /// Wait until `ino`'s writes begun so far are on the server (not those begun meanwhile,
    /// which a busy writer would never let end: a flush or an fsync covers the writes
    /// answered before it); then its refusal, if any (reported at every call until
    /// `forget_error`).
    pub fn settle_and_report(&self, ino: u64) -> Result<(), i32> {
        self.settle_begun(ino);
        self.lock()
            .files
            .get(&ino)
            .and_then(|f| f.error)
            .map_or(Ok(()), Err)
    }

    /// The last open of `ino` on the mount was closed: its refusal was reported.
    pub fn forget_error(&self, ino: u64) {
        let mut g = self.lock();
        if let Some(f) = g.files.get_mut(&ino) {
            (f.error, f.told_a_write) = (None, false);
            if f.idle() {
                g.files.remove(&ino);
            }
        }
    }

    /// Wait until every write of the mount is on the server, or `limit` has passed; how
    /// many are still on their way.
    pub fn settle_all(&self, limit: std::time::Duration) -> usize {
        let until = std::time::Instant::now() + limit;
        let mut g = self.lock();
        loop {
            let left: usize = g.files.values().map(|f| f.inflight.len()).sum();
            let now = std::time::Instant::now();
            if left == 0 || now >= until {
                return left;
            }
            g = self
                .cv
                .wait_timeout(g, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn an_overlapping_write_waits_for_the_earlier_one() {
        let wb = Arc::new(WriteBehind::new(1 << 20));
        let t1 = wb.begin(1, 0, 100).unwrap();
        // Disjoint: goes at once.
        let t2 = wb.begin(1, 100, 100).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let w = wb.clone();
        let h = std::thread::spawn(move || {
            let t = w.begin(1, 50, 10).unwrap();
            tx.send(t).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        wb.end(1, t1, 100, Ok(()));
        let t3 = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        h.join().unwrap();
        wb.end(1, t2, 100, Ok(()));
        assert!(wb.pending(1));
        wb.end(1, t3, 10, Ok(()));
        assert!(!wb.pending(1));
        wb.settle(1);
    }

    #[test]
    fn settling_what_was_begun_does_not_wait_for_writes_begun_later() {
        let wb = Arc::new(WriteBehind::new(1 << 20));
        let first = wb.begin(3, 0, 10).unwrap();
        let mark = wb.mark();
        // A busy writer goes on while the settle waits.
        let later = wb.begin(3, 10, 10).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let w = wb.clone();
        let h = std::thread::spawn(move || {
            w.settle_upto(3, mark);
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        wb.end(3, first, 10, Ok(()));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the settle waited for a write begun after it");
        h.join().unwrap();
        assert!(wb.pending(3));
        wb.end(3, later, 10, Ok(()));
    }

    #[test]
    fn a_refusal_stops_the_next_write_and_is_reported_until_forgotten() {
        let wb = WriteBehind::new(1 << 20);
        let t = wb.begin(7, 0, 10).unwrap();
        wb.end(7, t, 10, Err(libc::ENOSPC));
        assert_eq!(wb.begin(7, 10, 10), Err(libc::ENOSPC));
        let t = wb.begin(7, 10, 10).unwrap();
        wb.end(7, t, 10, Err(libc::EIO));
        // The first refusal, at every settle until the file's last close.
        assert_eq!(wb.settle_and_report(7), Err(libc::ENOSPC));
        assert_eq!(wb.settle_and_report(7), Err(libc::ENOSPC));
        wb.forget_error(7);
        assert_eq!(wb.settle_and_report(7), Ok(()));
        let t = wb.begin(7, 20, 10).unwrap();
        wb.end(7, t, 10, Err(libc::EIO));
        assert_eq!(
            wb.begin(7, 30, 10),
            Err(libc::EIO),
            "a new refusal, reported anew"
        );
        assert_eq!(wb.settle_and_report(7), Err(libc::EIO));
    }

    #[test]
    fn the_budget_bounds_bytes_in_flight() {
        let wb = Arc::new(WriteBehind::new(100));
        let t1 = wb.begin(1, 0, 80).unwrap();
        let w = wb.clone();
        let h = std::thread::spawn(move || w.begin(2, 0, 80).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!h.is_finished());
        wb.end(1, t1, 80, Ok(()));
        let t2 = h.join().unwrap();
        wb.end(2, t2, 80, Ok(()));
        assert_eq!(wb.settle_all(Duration::from_secs(1)), 0);
        let _t3 = wb.begin(3, 0, 10).unwrap();
        assert_eq!(wb.settle_all(Duration::from_millis(50)), 1);
    }
}
