//! One file's locks: the ranges held and the queue of blocked requests, and the rules that
//! apply a request to them (split, merge) and grant the queue in order.

use std::collections::VecDeque;

use super::{Grant, Held, Kind, LockReq};

/// A blocked request, queued as wait `wait` of its session.
#[derive(Debug, Clone, Copy)]
pub(super) struct Waiter {
    pub(super) wait: u64,
    pub(super) req: LockReq,
}

/// One file's locks: the ranges held, and the requests waiting in arrival order.
#[derive(Debug, Default)]
pub(super) struct FileLocks {
    pub(super) held: Vec<Held>,
    pub(super) queue: VecDeque<Waiter>,
}

pub(super) fn overlaps(a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> bool {
    a_start <= b_end && b_start <= a_end
}

/// `h` stops `req`: another owner's overlapping range, and one of them writes.
pub(super) fn conflicts(h: &Held, req: &LockReq) -> bool {
    h.owner != req.owner
        && overlaps(h.start, h.end, req.start, req.end)
        && (h.kind == Kind::Write || req.kind == Some(Kind::Write))
}

/// Two requests from different owners that could not both be held.
pub(super) fn reqs_conflict(a: &LockReq, b: &LockReq) -> bool {
    a.owner != b.owner
        && overlaps(a.start, a.end, b.start, b.end)
        && (a.kind == Some(Kind::Write) || b.kind == Some(Kind::Write))
}

impl FileLocks {
    pub(super) fn first_conflict(&self, req: &LockReq) -> Option<Held> {
        self.held.iter().find(|h| conflicts(h, req)).copied()
    }

    /// Apply `req` for its owner: cut the owner's ranges out of `start..=end`, then add the
    /// new one (unless unlocking) and merge it with adjacent ranges of the same kind.
    pub(super) fn apply(&mut self, req: &LockReq) {
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
    pub(super) fn grant_ready(&mut self, ino: u64, grants: &mut Vec<Grant>) {
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

    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty() && self.queue.is_empty()
    }
}
