//! The lock table: every byte-range lock the server has granted, and the queue of blocked
//! requests per file. Pure state, no threads and no I/O: callers (the server, the loom models,
//! the property tests) drive it and deliver the grants it returns.
//!
//! Invariants kept by every operation:
//! - no two owners hold overlapping ranges unless both are read locks;
//! - one owner's ranges on one file never overlap, and adjacent ranges of the same kind are
//!   merged (so a lock is split by a partial unlock and joined again by a re-lock);
//! - a queued request is granted in arrival order relative to the requests it conflicts with
//!   (no starvation of a writer by a stream of readers), as soon as nothing holds it back.
//!
//! Owners are (session, lock owner): POSIX locks are owned by a process's file table, flock
//! and OFD locks by an open file; the kernel tells them apart with the owner id it sends.

use std::collections::{HashMap, HashSet, VecDeque};

/// Who holds a lock: the session and the kernel's lock-owner id within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub session: u64,
    pub owner: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

/// A held lock: `start..=end` (end `u64::MAX` means to the end of the file, and beyond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub owner: Owner,
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    /// The process that took it, as its node knows it (reported by F_GETLK).
    pub pid: u32,
}

/// A request to lock, or with `kind: None` to unlock, a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockReq {
    pub owner: Owner,
    pub kind: Option<Kind>,
    pub start: u64,
    pub end: u64,
    pub pid: u32,
}

/// A blocked request that the table just granted: tell `session` that wait `wait` is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub session: u64,
    pub wait: u64,
    pub ino: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Granted at once.
    Granted,
    /// Queued; a `Grant` for it comes later (or it is cancelled).
    Queued,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// Held by someone else (F_SETLK): EAGAIN.
    Conflict(Held),
    /// Waiting would close a cycle of owners waiting for each other: EDEADLK.
    Deadlock,
    /// A range that ends before it starts: EINVAL.
    BadRange,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    wait: u64,
    req: LockReq,
}

#[derive(Debug, Default)]
struct FileLocks {
    held: Vec<Held>,
    queue: VecDeque<Waiter>,
}

#[derive(Debug, Default)]
pub struct LockTable {
    files: HashMap<u64, FileLocks>,
    /// Where each queued wait is: (session, wait) → inode.
    waiting: HashMap<(u64, u64), u64>,
}

fn overlaps(a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> bool {
    a_start <= b_end && b_start <= a_end
}

fn conflicts(h: &Held, req: &LockReq) -> bool {
    h.owner != req.owner
        && overlaps(h.start, h.end, req.start, req.end)
        && (h.kind == Kind::Write || req.kind == Some(Kind::Write))
}

/// Two requests from different owners that could not both be held.
fn reqs_conflict(a: &LockReq, b: &LockReq) -> bool {
    a.owner != b.owner
        && overlaps(a.start, a.end, b.start, b.end)
        && (a.kind == Some(Kind::Write) || b.kind == Some(Kind::Write))
}

impl FileLocks {
    fn first_conflict(&self, req: &LockReq) -> Option<Held> {
        self.held.iter().find(|h| conflicts(h, req)).copied()
    }

    /// Apply `req` for its owner: cut the owner's ranges out of `start..=end`, then add the
    /// new one (unless unlocking) and merge it with adjacent ranges of the same kind.
    fn apply(&mut self, req: &LockReq) {
        let mut kept = Vec::with_capacity(self.held.len() + 2);
        for h in self.held.drain(..) {
            if h.owner != req.owner || !overlaps(h.start, h.end, req.start, req.end) {
                kept.push(h);
                continue;
            }
            if h.start < req.start {
                kept.push(Held {
                    end: req.start - 1,
                    ..h
                });
            }
            if h.end > req.end {
                kept.push(Held {
                    start: req.end + 1,
                    ..h
                });
            }
        }
        self.held = kept;
        let Some(kind) = req.kind else { return };
        let mut new = Held {
            owner: req.owner,
            kind,
            start: req.start,
            end: req.end,
            pid: req.pid,
        };
        // Merge with the owner's adjacent ranges of the same kind.
        self.held.retain(|h| {
            let adjacent = h.owner == new.owner
                && h.kind == new.kind
                && (h.end.checked_add(1) == Some(new.start)
                    || new.end.checked_add(1) == Some(h.start));
            if adjacent {
                new.start = new.start.min(h.start);
                new.end = new.end.max(h.end);
            }
            !adjacent
        });
        self.held.push(new);
    }

    /// Grant queued requests that nothing holds back any more, in order.
    fn grant_ready(&mut self, ino: u64, grants: &mut Vec<Grant>) {
        let mut still: VecDeque<Waiter> = VecDeque::with_capacity(self.queue.len());
        while let Some(w) = self.queue.pop_front() {
            let blocked = self.first_conflict(&w.req).is_some()
                || still.iter().any(|e| reqs_conflict(&e.req, &w.req));
            if blocked {
                still.push_back(w);
            } else {
                self.apply(&w.req);
                grants.push(Grant {
                    session: w.req.owner.session,
                    wait: w.wait,
                    ino,
                });
            }
        }
        self.queue = still;
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty() && self.queue.is_empty()
    }
}

fn check_range(req: &LockReq) -> Result<(), LockError> {
    if req.end < req.start {
        Err(LockError::BadRange)
    } else {
        Ok(())
    }
}

impl LockTable {
    /// F_GETLK: the first lock that would stop `req`, if any.
    pub fn test(&self, ino: u64, req: &LockReq) -> Option<Held> {
        self.files.get(&ino)?.first_conflict(req)
    }

    /// F_SETLK: lock or unlock at once, or fail with the conflicting lock. Unlocking (or
    /// downgrading) may let queued requests through: their grants are returned.
    pub fn set(&mut self, ino: u64, req: LockReq) -> Result<Vec<Grant>, LockError> {
        check_range(&req)?;
        let f = self.files.entry(ino).or_default();
        if req.kind.is_some() {
            if let Some(h) = f.first_conflict(&req) {
                return Err(LockError::Conflict(h));
            }
        }
        f.apply(&req);
        let mut grants = Vec::new();
        f.grant_ready(ino, &mut grants);
        self.after_grants(ino, &grants);
        Ok(grants)
    }

    /// F_SETLKW: lock now if nothing holds it back (a held conflict, or an earlier queued
    /// request it conflicts with), else queue it as wait `wait` of its session. Granting it
    /// may let others through (a downgrade): their grants come back too.
    pub fn set_wait(
        &mut self,
        ino: u64,
        wait: u64,
        req: LockReq,
    ) -> Result<(WaitOutcome, Vec<Grant>), LockError> {
        check_range(&req)?;
        if req.kind.is_none() {
            return Ok((WaitOutcome::Granted, self.set(ino, req)?));
        }
        let f = self.files.entry(ino).or_default();
        let held_back =
            f.first_conflict(&req).is_some() || f.queue.iter().any(|w| reqs_conflict(&w.req, &req));
        if !held_back {
            f.apply(&req);
            let mut grants = Vec::new();
            f.grant_ready(ino, &mut grants);
            self.after_grants(ino, &grants);
            return Ok((WaitOutcome::Granted, grants));
        }
        if self.would_deadlock(ino, &req) {
            if self.files.get(&ino).is_some_and(FileLocks::is_empty) {
                self.files.remove(&ino);
            }
            return Err(LockError::Deadlock);
        }
        let f = self.files.entry(ino).or_default();
        f.queue.push_back(Waiter { wait, req });
        self.waiting.insert((req.owner.session, wait), ino);
        Ok((WaitOutcome::Queued, Vec::new()))
    }

    /// The waiting process was interrupted (or went away): drop its queued request. True if
    /// it was still queued; false if it was granted meanwhile (or never existed). Requests
    /// queued behind it may now be granted.
    pub fn cancel(&mut self, session: u64, wait: u64) -> (bool, Vec<Grant>) {
        let Some(ino) = self.waiting.remove(&(session, wait)) else {
            return (false, Vec::new());
        };
        let mut grants = Vec::new();
        if let Some(f) = self.files.get_mut(&ino) {
            f.queue
                .retain(|w| !(w.req.owner.session == session && w.wait == wait));
            f.grant_ready(ino, &mut grants);
        }
        self.after_grants(ino, &grants);
        (true, grants)
    }

    /// Close: drop every lock `owner` holds on `ino` (POSIX: any close by the process).
    pub fn release_owner(&mut self, ino: u64, owner: Owner) -> Vec<Grant> {
        let mut grants = Vec::new();
        if let Some(f) = self.files.get_mut(&ino) {
            let before = f.held.len();
            f.held.retain(|h| h.owner != owner);
            if f.held.len() != before {
                f.grant_ready(ino, &mut grants);
            }
        }
        self.after_grants(ino, &grants);
        grants
    }

    /// The session is gone (unmounted, or its lease ran out): drop all it holds and awaits.
    pub fn drop_session(&mut self, session: u64) -> Vec<Grant> {
        self.waiting.retain(|(s, _), _| *s != session);
        let inos: Vec<u64> = self.files.keys().copied().collect();
        let mut grants = Vec::new();
        for ino in inos {
            let mut g = Vec::new();
            if let Some(f) = self.files.get_mut(&ino) {
                f.held.retain(|h| h.owner.session != session);
                f.queue.retain(|w| w.req.owner.session != session);
                f.grant_ready(ino, &mut g);
            }
            self.after_grants(ino, &g);
            grants.extend(g);
        }
        grants
    }

    /// Locks held on `ino`, for status and tests.
    pub fn held(&self, ino: u64) -> Vec<Held> {
        self.files
            .get(&ino)
            .map(|f| f.held.clone())
            .unwrap_or_default()
    }

    /// Every lock held, over all files.
    pub fn all_held(&self) -> Vec<(u64, Held)> {
        let mut out: Vec<(u64, Held)> = self
            .files
            .iter()
            .flat_map(|(ino, f)| f.held.iter().map(move |h| (*ino, *h)))
            .collect();
        out.sort_by_key(|(ino, h)| (*ino, h.start));
        out
    }

    /// Locks a session holds, over all files.
    pub fn held_by_session(&self, session: u64) -> usize {
        self.files
            .values()
            .flat_map(|f| &f.held)
            .filter(|h| h.owner.session == session)
            .count()
    }

    /// Requests queued on `ino`.
    pub fn queued(&self, ino: u64) -> usize {
        self.files.get(&ino).map_or(0, |f| f.queue.len())
    }

    /// Check the invariants the module promises; a description of the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut queued = 0;
        for (ino, f) in &self.files {
            for (i, a) in f.held.iter().enumerate() {
                if a.end < a.start {
                    return Err(format!("file {ino}: backwards range {a:?}"));
                }
                for b in &f.held[i + 1..] {
                    let touch = overlaps(a.start, a.end, b.start, b.end);
                    if a.owner != b.owner
                        && touch
                        && (a.kind == Kind::Write || b.kind == Kind::Write)
                    {
                        return Err(format!("file {ino}: {a:?} and {b:?} conflict"));
                    }
                    let adjacent = a.end.checked_add(1) == Some(b.start)
                        || b.end.checked_add(1) == Some(a.start);
                    if a.owner == b.owner && (touch || (adjacent && a.kind == b.kind)) {
                        return Err(format!("file {ino}: {a:?} and {b:?} not merged"));
                    }
                }
            }
            for w in &f.queue {
                queued += 1;
                if self.waiting.get(&(w.req.owner.session, w.wait)) != Some(ino) {
                    return Err(format!("file {ino}: wait {} not indexed", w.wait));
                }
            }
        }
        if queued != self.waiting.len() {
            return Err(format!(
                "{} waits indexed, {queued} queued",
                self.waiting.len()
            ));
        }
        Ok(())
    }

    fn after_grants(&mut self, ino: u64, grants: &[Grant]) {
        for g in grants {
            self.waiting.remove(&(g.session, g.wait));
        }
        if self.files.get(&ino).is_some_and(FileLocks::is_empty) {
            self.files.remove(&ino);
        }
    }

    /// Would queueing `req` on `ino` close a cycle? Its owner would wait for the owners of
    /// the conflicting locks; follow what each of them waits for, across files.
    fn would_deadlock(&self, ino: u64, req: &LockReq) -> bool {
        let me = req.owner;
        let blockers = |ino: u64, req: &LockReq| -> Vec<Owner> {
            self.files
                .get(&ino)
                .map(|f| {
                    f.held
                        .iter()
                        .filter(|h| conflicts(h, req))
                        .map(|h| h.owner)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut seen: HashSet<Owner> = HashSet::new();
        let mut stack = blockers(ino, req);
        while let Some(o) = stack.pop() {
            if o == me {
                return true;
            }
            if !seen.insert(o) {
                continue;
            }
            for (i, f) in &self.files {
                for w in f.queue.iter().filter(|w| w.req.owner == o) {
                    stack.extend(blockers(*i, &w.req));
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Owner = Owner {
        session: 1,
        owner: 10,
    };
    const B: Owner = Owner {
        session: 2,
        owner: 20,
    };
    const C: Owner = Owner {
        session: 3,
        owner: 30,
    };

    fn req(owner: Owner, kind: Option<Kind>, start: u64, end: u64) -> LockReq {
        LockReq {
            owner,
            kind,
            start,
            end,
            pid: owner.owner as u32,
        }
    }
    const W: Option<Kind> = Some(Kind::Write);
    const R: Option<Kind> = Some(Kind::Read);
    const U: Option<Kind> = None;

    #[test]
    fn write_locks_exclude_and_read_locks_share() {
        let mut t = LockTable::default();
        t.set(1, req(A, R, 0, 99)).unwrap();
        t.set(1, req(B, R, 50, 149)).unwrap();
        assert!(matches!(
            t.set(1, req(C, W, 90, 95)),
            Err(LockError::Conflict(h)) if h.kind == Kind::Read
        ));
        t.set(1, req(C, W, 150, 200)).unwrap();
        assert_eq!(t.test(1, &req(A, W, 140, 160)).map(|h| h.owner), Some(B));
        assert_eq!(t.test(1, &req(A, R, 0, 10)), None);
    }

    #[test]
    fn unlock_in_the_middle_splits_and_relock_merges() {
        let mut t = LockTable::default();
        t.set(1, req(A, W, 0, 99)).unwrap();
        t.set(1, req(A, U, 40, 59)).unwrap();
        let mut h = t.held(1);
        h.sort_by_key(|h| h.start);
        assert_eq!(
            h.iter().map(|h| (h.start, h.end)).collect::<Vec<_>>(),
            vec![(0, 39), (60, 99)]
        );
        t.set(1, req(B, W, 40, 59)).unwrap();
        t.set(1, req(B, U, 40, 59)).unwrap();
        t.set(1, req(A, W, 40, 59)).unwrap();
        assert_eq!(
            t.held(1)
                .iter()
                .map(|h| (h.start, h.end))
                .collect::<Vec<_>>(),
            vec![(0, 99)]
        );
    }

    #[test]
    fn upgrade_and_downgrade() {
        let mut t = LockTable::default();
        t.set(1, req(A, R, 0, u64::MAX)).unwrap();
        t.set(1, req(A, W, 10, 19)).unwrap();
        assert_eq!(t.held(1).len(), 3);
        assert!(t.set(1, req(B, R, 15, 15)).is_err());
        t.set(1, req(B, R, 25, 25)).unwrap();
        assert!(t.set(1, req(A, W, 20, 30)).is_err(), "B reads 25");
        t.set(1, req(A, R, 10, 19)).unwrap();
        assert_eq!(t.held(1).iter().filter(|h| h.owner == A).count(), 1);
        t.set(1, req(B, R, 15, 15)).unwrap();
    }

    #[test]
    fn waiters_are_granted_in_order_and_a_writer_is_not_starved() {
        let mut t = LockTable::default();
        t.set(1, req(A, R, 0, 9)).unwrap();
        assert_eq!(
            t.set_wait(1, 100, req(B, W, 0, 9)),
            Ok((WaitOutcome::Queued, vec![]))
        );
        // A reader compatible with A still queues behind the waiting writer.
        assert_eq!(
            t.set_wait(1, 200, req(C, R, 0, 9)),
            Ok((WaitOutcome::Queued, vec![]))
        );
        let g = t.set(1, req(A, U, 0, 9)).unwrap();
        assert_eq!(
            g,
            vec![Grant {
                session: 2,
                wait: 100,
                ino: 1
            }]
        );
        let g = t.release_owner(1, B);
        assert_eq!(
            g,
            vec![Grant {
                session: 3,
                wait: 200,
                ino: 1
            }]
        );
        assert_eq!(t.queued(1), 0);
    }

    #[test]
    fn cancel_drops_the_wait_and_lets_those_behind_it_through() {
        let mut t = LockTable::default();
        t.set(1, req(A, R, 0, 9)).unwrap();
        t.set_wait(1, 1, req(B, W, 0, 9)).unwrap();
        t.set_wait(1, 2, req(C, R, 5, 5)).unwrap();
        let (was_queued, g) = t.cancel(2, 1);
        assert!(was_queued);
        assert_eq!(
            g,
            vec![Grant {
                session: 3,
                wait: 2,
                ino: 1
            }]
        );
        assert_eq!(t.cancel(2, 1), (false, vec![]));
    }

    #[test]
    fn a_two_client_cycle_is_a_deadlock() {
        let mut t = LockTable::default();
        t.set(1, req(A, W, 0, 0)).unwrap();
        t.set(2, req(B, W, 0, 0)).unwrap();
        assert_eq!(
            t.set_wait(2, 1, req(A, W, 0, 0)),
            Ok((WaitOutcome::Queued, vec![]))
        );
        assert_eq!(t.set_wait(1, 2, req(B, W, 0, 0)), Err(LockError::Deadlock));
    }

    #[test]
    fn a_gone_session_loses_its_locks_and_waits() {
        let mut t = LockTable::default();
        t.set(1, req(A, W, 0, 99)).unwrap();
        t.set_wait(1, 7, req(B, W, 0, 0)).unwrap();
        t.set_wait(1, 8, req(A, W, 200, 300)).unwrap();
        let g = t.drop_session(1);
        assert_eq!(
            g,
            vec![Grant {
                session: 2,
                wait: 7,
                ino: 1
            }]
        );
        assert_eq!(t.held_by_session(1), 0);
        t.drop_session(2);
        assert!(t.files.is_empty() && t.waiting.is_empty());
    }

    #[test]
    fn a_downgrade_lets_waiting_readers_in() {
        let mut t = LockTable::default();
        t.set(1, req(A, W, 0, 9)).unwrap();
        t.set_wait(1, 5, req(B, R, 0, 9)).unwrap();
        let (o, g) = t.set_wait(1, 6, req(A, R, 0, 9)).unwrap();
        assert_eq!(o, WaitOutcome::Granted);
        assert_eq!(
            g,
            vec![Grant {
                session: 2,
                wait: 5,
                ino: 1
            }]
        );
    }

    #[test]
    fn a_backwards_range_is_refused() {
        let mut t = LockTable::default();
        assert_eq!(t.set(1, req(A, W, 9, 3)), Err(LockError::BadRange));
    }
}
