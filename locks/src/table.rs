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

use crate::SessionId;
use std::collections::{HashMap, HashSet};

use file::{conflicts, reqs_conflict, FileLocks, Waiter};

mod file;
mod invariants;

/// Who holds a lock: the session and the kernel's lock-owner id within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The server's session of the mount.
    pub session: SessionId,
    /// The kernel's lock-owner id on that mount (a process's file table, or an open file).
    pub owner: u64,
}

/// A lock's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Shared: other read locks may cover the same bytes.
    Read,
    /// Exclusive: no other owner's lock may cover the same bytes.
    Write,
}

/// A held lock: `start..=end` (end `u64::MAX` means to the end of the file, and beyond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Who holds it.
    pub owner: Owner,
    /// Shared or exclusive.
    pub kind: Kind,
    /// First byte covered.
    pub start: u64,
    /// Last byte covered (inclusive).
    pub end: u64,
    /// The process that took it, as its node knows it (reported by F_GETLK).
    pub pid: u32,
}

/// A request to lock, or with `kind: None` to unlock, a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockReq {
    /// Who asks.
    pub owner: Owner,
    /// The lock wanted, or `None` to unlock.
    pub kind: Option<Kind>,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive; `u64::MAX` for to the end of the file).
    pub end: u64,
    /// The asking process, as its node numbers it: what the lock reports once held.
    pub pid: u32,
}

/// A blocked request that the table just granted: tell `session` that wait `wait` is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The session whose wait is over.
    pub session: SessionId,
    /// Its wait, as numbered by `set_wait`.
    pub wait: u64,
    /// The file the lock is on.
    pub ino: u64,
}

/// What `set_wait` did with a request that may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Granted at once.
    Granted,
    /// Queued; a `Grant` for it comes later (or it is cancelled).
    Queued,
}

/// Why a lock request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// Held by someone else (F_SETLK): EAGAIN.
    Conflict(Held),
    /// Waiting would close a cycle of owners waiting for each other: EDEADLK.
    Deadlock,
    /// A range that ends before it starts: EINVAL.
    BadRange,
}

/// Every lock held and every request waiting, over all files (see the module's invariants).
#[derive(Debug, Default)]
pub struct LockTable {
    files: HashMap<u64, FileLocks>,
    /// Where each queued wait is: (session, wait) → inode.
    waiting: HashMap<(SessionId, u64), u64>,
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
    pub fn cancel(&mut self, session: SessionId, wait: u64) -> (bool, Vec<Grant>) {
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
    pub fn drop_session(&mut self, session: SessionId) -> Vec<Grant> {
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
    pub fn held_by_session(&self, session: SessionId) -> usize {
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
mod tests;
