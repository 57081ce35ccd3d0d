//! Recovery: when the connection breaks, a thread dials again with backoff and takes the
//! session back (`Resume`). If the server forgot the session, the files this mount holds open
//! are opened again and its locks count as lost. If the server restarted and kept it (its
//! session log), the kept calls it had answered go out first, in order (`replay`), then the
//! locks are reclaimed within the grace period. Then every pending call is sent again, and
//! lock waits the server forgot are queued again under their ids. Recovery calls are made on
//! the new socket before its reader starts, one at a time.

use std::collections::HashSet;
use std::io::Write;
use std::sync::mpsc::channel;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, ErrorCode, Push, Request, Response, ServerMsg};

use super::dial::{dial, Greeted};
use super::state::{relock, Opener, Pending, Shared, Sink};
use super::{DialError, Reply};
use crate::transport::Stream;

/// Calls sent again to a restarted server before their replies are read.
const REPLAY_WINDOW: usize = 32;
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a replay or reclaim may be held by the grace period while others replay.
const GRACE_WAIT: Duration = Duration::from_secs(120);

/// Start the thread that takes the connection back whenever it breaks.
pub(super) fn spawn(shared: &Arc<Shared>) -> Result<(), DialError> {
    let weak = Arc::downgrade(shared);
    thread::Builder::new()
        .name("rwxfs-reconnect".into())
        .spawn(move || reconnect_loop(weak))
        .map(|_| ())
        .map_err(DialError::Thread)
}

fn reconnect_loop(weak: Weak<Shared>) {
    while wait_broken(&weak) {
        // Every reply the broken connection brought is dispatched first: an open answered
        // on it is then noted, and opened again if the session is new.
        match weak.upgrade() {
            Some(shared) => shared.reader_done(),
            None => return,
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(shared) = weak.upgrade() else { return };
            if shared.closed() {
                return;
            }
            match reestablish(&shared) {
                Ok(()) => break,
                Err(e) => {
                    tracing::info!("reconnect failed: {e}; next try in {backoff:?}");
                    drop(shared);
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Wait until the connection breaks (true), or the link closes or goes away (false).
fn wait_broken(weak: &Weak<Shared>) -> bool {
    let Some(shared) = weak.upgrade() else {
        return false;
    };
    let mut w = relock(&shared.wire);
    while !w.broken {
        w = shared
            .broken
            .wait_timeout(w, Duration::from_secs(1))
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if shared.closed() {
            return false;
        }
    }
    w.broken = false;
    true
}

/// Dial, resume (or start again and reopen what was open), replay and reclaim after a
/// server restart, then send every pending call again.
fn reestablish(shared: &Arc<Shared>) -> Result<(), DialError> {
    // Nothing on the new connection was sent before it was dialled.
    let dialled = shared.now_ms();
    let (old, secret, boot, lost_before) = {
        let s = relock(&shared.session);
        (s.id, s.secret.clone(), s.boot, s.lost)
    };
    let mut g = dial(&shared.hello, Some((old, secret)), true, false, &|why| {
        tracing::warn!("reconnecting: pending: {why}")
    })?;
    let restarted = g.boot != boot;
    let forgotten = g.session != old;
    if restarted || forgotten {
        preface(shared, &mut g.stream)?;
    }
    if forgotten {
        tracing::warn!(
            "the server no longer knew session {old} (lease over, or restarted without it): \
             new session {}; reopening files; locks held before are lost",
            g.session
        );
        reopen(shared, &mut g.stream)?;
        // Without the session, nothing can be sent again exactly once. The calls it had
        // answered ran on the server: if that is this one, a commit makes them durable; a
        // server stopped cleanly made them so; a crash lost them.
        let lost = match restarted {
            false => {
                g.stream.set_read_timeout(Some(GRACE_WAIT));
                let made = call_on(shared, &mut g.stream, commit(), None);
                g.stream.set_read_timeout(None);
                made?.is_err()
            }
            true => !g.clean_restart,
        };
        relock(&shared.session).locks_lost();
        relock(&shared.kept).forget_answered(lost);
        shared.kept_cv.notify_all();
    } else if restarted {
        // The open files the restart forgot (before any replayed unlink could free one;
        // the server opens those a replay brings back then), the locks (before the writes
        // made under them are sent again), what the crash lost.
        reopen(shared, &mut g.stream)?;
        reclaim(shared, &mut g.stream)?;
        replay(shared, &mut g.stream)?;
        reclaim_done(shared, &mut g.stream)?;
    }
    if relock(&shared.session).lost != lost_before {
        fail_bound(shared);
    }
    if restarted {
        // Counted before any call is sent again: a reply from the new server must never be
        // taken for one from the old (an fsync answered by it vouches only for what it has).
        let mut s = relock(&shared.session);
        s.boot = g.boot;
        s.restarts += 1;
    }
    resume_calls(shared, g, restarted || forgotten, dialled)
}

/// Writes made under locks now lost must not reach the server unprotected: they fail, and
/// are no longer kept for a replay (kept, they would hold back the mark below which this
/// mount has every reply, and their budget, for good).
fn fail_bound(shared: &Shared) {
    let bound: Vec<Pending> = {
        let mut c = relock(&shared.calls);
        let ids: Vec<u64> = c
            .pending
            .iter()
            .filter(|(_, p)| p.bound)
            .map(|(id, _)| *id)
            .collect();
        let mut k = relock(&shared.kept);
        ids.iter().for_each(|id| k.failed(*id));
        ids.iter().filter_map(|id| c.pending.remove(id)).collect()
    };
    shared.kept_cv.notify_all();
    // Delivered outside the lock: a callback may call the link again.
    bound.into_iter().for_each(Pending::fail);
}

/// Send every pending call again on the new connection (and, if the server forgot them,
/// the lock waits), then make it the link's connection and start its reader (`dialled`
/// when the connection was).
fn resume_calls(
    shared: &Arc<Shared>,
    g: Greeted,
    requeue: bool,
    dialled: u64,
) -> Result<(), DialError> {
    let Greeted {
        mut stream,
        session,
        lease_secs,
        secret,
        ..
    } = g;
    let reader = stream.try_clone()?;
    let mut w = relock(&shared.wire);
    let mut frames: Vec<Arc<Vec<u8>>> = relock(&shared.calls)
        .pending
        .values()
        .filter_map(|p| p.frame.clone())
        .collect();
    if requeue {
        frames.extend(requeue_waits(shared));
    }
    for f in &frames {
        stream.write_all(f)?;
    }
    w.epoch += 1;
    w.stream = Some(stream);
    super::reader::spawn(shared, reader, w.epoch, dialled)?;
    {
        // A new session's id and secret are taken together, once recovery on it is done:
        // a recovery that fails before resumes the old session next time, with its own
        // secret (a server may still know it, while the new one is abandoned).
        let mut s = relock(&shared.session);
        s.id = session;
        if !secret.is_empty() {
            s.secret = secret;
        }
        s.lease_secs = lease_secs as u64;
    }
    // Up once the session and the server's restarts are as they are on it.
    shared
        .up
        .store(w.epoch, std::sync::atomic::Ordering::SeqCst);
    tracing::info!(
        session,
        resent = frames.len(),
        requeue,
        "reconnected to {}",
        shared.hello.addr()
    );
    Ok(())
}

/// The call that asks the server for a commit of everything it holds.
fn commit() -> Request {
    Request::Fsync {
        ino: volume::layout::ROOT_INO,
    }
}

/// One call on `stream` before anything else goes out on it, made for `cred` (if given);
/// its reply.
fn call_on(
    shared: &Shared,
    stream: &mut Stream,
    req: Request,
    cred: Option<protocol::Cred>,
) -> Result<Result<Response, i32>, DialError> {
    call_with_bulk_on(shared, stream, (req, &[]), cred)
}

/// `call_on`, with bulk bytes (a write's data).
fn call_with_bulk_on(
    shared: &Shared,
    stream: &mut Stream,
    (req, bulk): (Request, &[u8]),
    cred: Option<protocol::Cred>,
) -> Result<Result<Response, i32>, DialError> {
    let id = shared.next_id();
    let msg = match cred {
        Some(cred) => ClientMsg::CallAs { id, req, cred },
        None => ClientMsg::Call { id, req },
    };
    stream.write_all(&encode_frame(&msg, bulk)?)?;
    loop {
        let body = read_frame(stream)?;
        match decode_body::<ServerMsg>(&body)?.0 {
            ServerMsg::Reply { id: got, result } if got == id => {
                return Ok(result.map_err(ErrorCode::errno))
            }
            ServerMsg::Push(Push::Durable { below }) => shared.durable(below),
            _ => {}
        }
    }
}

/// After a restart that kept the session: send every kept call answered before again, in
/// order, a window at a time, before anything else goes out (calls still waiting for their
/// reply follow with the rest, once the locks are reclaimed). The server answers those it
/// had made durable from its session log and runs the others again. A call that succeeded
/// before and fails now is lost (its next fsync or close says so), unless it has calls to
/// make in its place (`kept::Redo`): those are made then, before the next window. A commit
/// then makes the replays durable.
fn replay(shared: &Shared, stream: &mut Stream) -> Result<(), DialError> {
    let runs = {
        let k = relock(&shared.kept);
        if k.is_empty() {
            return Ok(());
        }
        k.runs(REPLAY_WINDOW)
    };
    if runs.is_empty() {
        return Ok(());
    }
    let total: usize = runs.iter().map(|r| r.len()).sum();
    stream.set_read_timeout(Some(GRACE_WAIT));
    let mut failed = 0usize;
    for window in &runs {
        for (_, f) in window {
            stream.write_all(f)?;
        }
        let mut waiting: HashSet<u64> = window.iter().map(|(id, _)| *id).collect();
        let mut redo = Vec::new();
        while !waiting.is_empty() {
            let body = read_frame(stream)?;
            let (msg, bulk) = decode_body::<ServerMsg>(&body)?;
            match msg {
                ServerMsg::Reply { id, result } if waiting.remove(&id) => {
                    let result = result.map_err(ErrorCode::errno);
                    let pending = shared.answered(id, &result);
                    let mut k = relock(&shared.kept);
                    if let (Err(errno), None) = (&result, &pending) {
                        match k.failed_or_redo(id) {
                            Some(r) => redo.push(r),
                            None => {
                                tracing::warn!("call {id} could not be made again: errno {errno}");
                                failed += 1;
                            }
                        }
                    } else {
                        k.answered(id, &result);
                    }
                    drop(k);
                    if let Some(p) = pending {
                        p.tx.deliver((result, bulk.to_vec()));
                    }
                }
                ServerMsg::Push(Push::Durable { below }) => shared.durable(below),
                _ => {}
            }
        }
        for (calls, cred) in redo {
            failed += make_instead(shared, stream, calls, cred)?;
        }
    }
    let commit = call_on(shared, stream, commit(), None);
    stream.set_read_timeout(None);
    commit?.map_err(|errno| DialError::Recovery {
        during: "commit after the replay",
        errno,
    })?;
    tracing::info!("server restarted: {total} calls sent again, {failed} lost");
    Ok(())
}

/// Make `calls` (for `cred`) in place of a kept call the restarted server could not make
/// again: 1 if one of them failed (what they change is then lost), else 0.
fn make_instead(
    shared: &Shared,
    stream: &mut Stream,
    calls: crate::kept::Redo,
    cred: Option<protocol::Cred>,
) -> Result<usize, DialError> {
    let n = calls.len();
    for (req, bulk) in calls {
        let ino = req.meta().inode;
        if let Err(errno) = call_with_bulk_on(shared, stream, (req, &bulk[..]), cred.clone())? {
            tracing::warn!("a call made in place of one the restart lost failed: errno {errno}");
            if let Some(ino) = ino {
                relock(&shared.kept).lose(ino);
            }
            return Ok(1);
        }
    }
    tracing::info!("{n} calls made in place of one the restart lost");
    Ok(0)
}

/// After a server restart that kept the session, before any kept call is sent again: take
/// again every lock this mount holds. If any is refused (the grace period was over), the
/// mount's locks count as lost: files locked before answer EIO, as after a lost session, and
/// the kept writes made under them are lost, not replayed.
fn reclaim(shared: &Shared, stream: &mut Stream) -> Result<(), DialError> {
    let held = relock(&shared.session).held.all_held();
    stream.set_read_timeout(Some(GRACE_WAIT));
    let mut refused = 0usize;
    for (ino, h) in &held {
        let req = Request::ReclaimLock {
            ino: *ino,
            owner: h.owner.owner,
            range: protocol::LockRange {
                start: h.start,
                end: h.end,
            },
            kind: match h.kind {
                locks::Kind::Read => protocol::LockKind::Read,
                locks::Kind::Write => protocol::LockKind::Write,
            },
            pid: h.pid,
        };
        if let Err(errno) = call_on(shared, stream, req, None)? {
            tracing::warn!("lock on file {ino} could not be reclaimed: errno {errno}");
            refused += 1;
        }
    }
    stream.set_read_timeout(None);
    if refused > 0 {
        relock(&shared.session).locks_lost();
        // Writes made under the locks, kept for a replay, must not be sent again: another
        // mount may hold the lock by now and have written since.
        relock(&shared.kept).fail_bound();
    } else {
        tracing::info!("server restarted: {} locks reclaimed", held.len());
    }
    Ok(())
}

/// Tell the server this mount has taken back its locks and sent again what the crash lost:
/// once every restored session has, the grace period is over.
fn reclaim_done(shared: &Shared, stream: &mut Stream) -> Result<(), DialError> {
    stream.set_read_timeout(Some(GRACE_WAIT));
    let done = call_on(shared, stream, Request::ReclaimDone, None);
    stream.set_read_timeout(None);
    done?.map_err(|errno| DialError::Recovery {
        during: "reclaim not confirmed",
        errno,
    })?;
    Ok(())
}

/// Frames asking again for every queued lock wait; their replies are routed by a thread per
/// wait: granted at once, queued again (a push follows), or failed.
fn requeue_waits(shared: &Arc<Shared>) -> Vec<Arc<Vec<u8>>> {
    let waits: Vec<(u64, Request)> = relock(&shared.session)
        .waits
        .iter()
        .map(|(id, w)| (*id, w.req.clone()))
        .collect();
    let mut frames = Vec::new();
    for (id, req) in waits {
        let Ok(f) = encode_frame(&ClientMsg::Call { id, req }, &[]) else {
            continue;
        };
        let f = Arc::new(f);
        let (tx, rx) = channel::<Reply>();
        let pending = Pending {
            tx: Sink::Chan(tx),
            bound: false,
            frame: Some(f.clone()),
            opens: None,
            made: shared.now_ms(),
        };
        relock(&shared.calls).pending.insert(id, pending);
        let weak = Arc::downgrade(shared);
        let _ = thread::Builder::new()
            .name("rwxfs-lock-requeue".into())
            .spawn(move || {
                let Ok((result, _)) = rx.recv() else { return };
                let Some(shared) = weak.upgrade() else { return };
                let outcome = match result {
                    Ok(Response::LockQueued) => return,
                    Ok(_) => Ok(()),
                    Err(errno) => Err(errno),
                };
                let w = relock(&shared.session).waits.remove(&id);
                if let Some(w) = w {
                    let _ = w.tx.send(outcome);
                }
            });
        frames.push(f);
    }
    frames
}

/// The mount's preface call (`Link::on_new_session`), if it has one. One the server refuses
/// is logged and the session goes on without it (a direct mount whose store address the
/// server refuses reads and writes through it): tried again on every reconnect, a refusal
/// would keep the mount from ever reaching the server again.
fn preface(shared: &Shared, stream: &mut Stream) -> Result<(), DialError> {
    let Some(req) = shared.preface.get() else {
        return Ok(());
    };
    stream.set_read_timeout(Some(Duration::from_secs(30)));
    let r = call_on(shared, stream, req.clone(), None);
    stream.set_read_timeout(None);
    if let Err(errno) = r? {
        tracing::error!(
            "the server refused this mount's first call on its new session ({}): going on \
             without it",
            std::io::Error::from_raw_os_error(errno)
        );
    }
    Ok(())
}

/// Open again, on a new session, every file this mount holds open, each open as the caller
/// who made it and with its access mode, one call at a time on the new connection before
/// anything else goes out on it.
fn reopen(shared: &Shared, stream: &mut Stream) -> Result<(), DialError> {
    let opens: Vec<(u64, Vec<Opener>)> = relock(&shared.session)
        .opens
        .iter()
        .map(|(i, o)| (*i, o.clone()))
        .collect();
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    for (ino, openers) in opens {
        for o in openers {
            // Marked as made again: the owner keeps the access it had (a file created with
            // mode 0200 and written through its creator's descriptor refuses a new open).
            let req = Request::Reopen {
                ino,
                flags: o.access,
            };
            if let Err(errno) = call_on(shared, stream, req, o.cred)? {
                tracing::info!("file {ino} not opened again (yet): errno {errno}");
            }
        }
    }
    stream.set_read_timeout(None);
    Ok(())
}
