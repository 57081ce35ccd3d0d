//! Lock requests from clients, run against the lock manager; the grants they cause go out as
//! pushes to the sessions that were waiting.

use locks::{Grant, Kind, LockError, LockManager, LockReq, Owner, SessionId, WaitOutcome};
use protocol::codec::encode_frame;
use protocol::{LockKind, LockRange, Push, Request, Response, ServerMsg};
use volume::FsError;

use crate::listener::Shared;

fn kind(kind: LockKind) -> Result<Option<Kind>, FsError> {
    match kind {
        LockKind::Read => Ok(Some(Kind::Read)),
        LockKind::Write => Ok(Some(Kind::Write)),
        LockKind::Unlock => Ok(None),
        LockKind::Other(_) => Err(FsError::Invalid),
    }
}

fn lock_req(
    session: SessionId,
    owner: u64,
    lock: LockKind,
    range: LockRange,
    pid: u32,
) -> Result<LockReq, FsError> {
    Ok(LockReq {
        owner: Owner { session, owner },
        kind: kind(lock)?,
        start: range.start,
        end: range.end,
        pid,
    })
}

fn lock_err(e: LockError) -> FsError {
    match e {
        LockError::Conflict(_) => FsError::WouldBlock,
        LockError::Deadlock => FsError::Deadlock,
        LockError::BadRange => FsError::Invalid,
    }
}

/// True for the calls `execute` runs: on the lock manager, with no hold of the engine.
pub(crate) fn handles(req: &Request) -> bool {
    matches!(
        req,
        Request::ReclaimLock { .. }
            | Request::ReclaimDone
            | Request::Getlk { .. }
            | Request::Setlk { .. }
            | Request::CancelLock { .. }
            | Request::ReleaseLocks { .. }
    )
}

/// Run a lock request of `session` (call `id`); `None` if `req` is not a lock request.
pub(crate) fn execute(
    shared: &Shared,
    session: SessionId,
    id: u64,
    req: &Request,
) -> Option<Result<Response, FsError>> {
    let m: &LockManager = &shared.locks;
    // Until the locks held before a restart are reclaimed, no one else's lock is granted
    // (or reported free).
    let meta = req.meta();
    if meta.asks_lock {
        shared.grace.wait_out();
    }
    // What a session changed (under a lock, perhaps) is durable before it lets a lock go: a
    // crash then never makes the lock's next holder's changes (sent again by their client)
    // land before the ones made under it earlier.
    let unlocks = meta.unlocks;
    let pending = |id| {
        shared
            .sessions
            .get(&id)
            .is_some_and(|s| !s.unsafe_calls().is_empty())
    };
    if unlocks && pending(session) {
        if let Err(e) = shared.vol.commit() {
            return Some(Err(e));
        }
    }
    let r = match *req {
        Request::ReclaimLock {
            ino,
            owner,
            range,
            kind,
            pid,
        } => match shared.grace.active() {
            true => {
                lock_req(session, owner, kind, range, pid).and_then(|r| reclaim(shared, ino, r))
            }
            false => Err(FsError::NoLock),
        },
        Request::ReclaimDone => {
            shared.grace.done(session);
            Ok(Response::Empty)
        }
        Request::Getlk {
            ino,
            owner,
            range,
            kind,
            pid,
        } => lock_req(session, owner, kind, range, pid).map(|r| getlk(m, ino, r)),
        Request::Setlk {
            ino,
            owner,
            range,
            kind,
            pid,
            wait,
        } => lock_req(session, owner, kind, range, pid)
            .and_then(|r| setlk(shared, session, ino, id, r, wait)),
        Request::CancelLock { wait } => {
            let (cancelled, grants) = m.cancel(session, wait);
            deliver(shared, grants);
            Ok(Response::Cancelled(cancelled))
        }
        Request::ReleaseLocks { ino, owner } => {
            deliver(shared, m.release_owner(ino, Owner { session, owner }));
            Ok(Response::Empty)
        }
        _ => return None,
    };
    Some(r)
}

/// A lock held before a restart, taken again by its holder during the grace period.
fn reclaim(shared: &Shared, ino: u64, req: LockReq) -> Result<Response, FsError> {
    if req.kind.is_none() {
        return Err(FsError::Invalid);
    }
    // Reclaims match what was held before, so they cannot conflict; one that does (a client
    // claiming what it never held) is refused.
    let grants = shared.locks.set(ino, req).map_err(|_| FsError::NoLock)?;
    deliver(shared, grants);
    Ok(Response::Empty)
}

/// F_GETLK: the lock in the way of `req`, or none (kind Unlock over the range asked).
fn getlk(m: &LockManager, ino: u64, req: LockReq) -> Response {
    match m.test(ino, &req) {
        Some(h) => Response::Lock {
            range: LockRange {
                start: h.start,
                end: h.end,
            },
            kind: match h.kind {
                Kind::Read => LockKind::Read,
                Kind::Write => LockKind::Write,
            },
            pid: h.pid,
        },
        None => Response::Lock {
            range: LockRange {
                start: req.start,
                end: req.end,
            },
            kind: LockKind::Unlock,
            pid: 0,
        },
    }
}

/// F_SETLK, or F_SETLKW (`wait`: queued as wait `id` if it cannot be granted now).
fn setlk(
    shared: &Shared,
    session: SessionId,
    ino: u64,
    id: u64,
    req: LockReq,
    wait: bool,
) -> Result<Response, FsError> {
    let m = &shared.locks;
    // A storm of locks from one session stops at its limit.
    if req.kind.is_some() && m.held_by_session(session) >= shared.cfg.max_locks_per_session {
        tracing::warn!(
            session = session.get(),
            limit = shared.cfg.max_locks_per_session,
            "lock refused: the session holds as many as it may"
        );
        return Err(FsError::NoLock);
    }
    if !wait {
        deliver(shared, m.set(ino, req).map_err(lock_err)?);
        return Ok(Response::Empty);
    }
    let (outcome, grants) = m.set_wait(ino, id, req).map_err(lock_err)?;
    deliver(shared, grants);
    Ok(match outcome {
        WaitOutcome::Granted => Response::Empty,
        WaitOutcome::Queued => Response::LockQueued,
    })
}

/// Tell each granted waiter's session. A session with no connection right now hears of it
/// when its client resumes.
pub(crate) fn deliver(shared: &Shared, grants: Vec<Grant>) {
    for g in grants {
        let Some(session) = shared.sessions.get(&g.session).map(|s| s.clone()) else {
            continue;
        };
        session.granted(g.wait);
        let Some(tx) = session.sender() else {
            tracing::info!(
                session = g.session.get(),
                wait = g.wait,
                "lock granted to a detached session: pushed when it resumes"
            );
            continue;
        };
        let push = ServerMsg::Push(Push::LockGranted { wait: g.wait });
        if let Ok(frame) = encode_frame(&push, &[]) {
            crate::connection::deliver(&session, &tx, frame);
        }
    }
}
