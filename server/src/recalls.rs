//! Layout recalls (direct mode): before a call frees or moves blocks of a file that other
//! sessions hold layouts on — a truncate, a punched hole, the last name of the file removed
//! or renamed over — the server pushes each holder a `LayoutRecall` and waits, outside the
//! engine's hold, until it has given them back (after committing what it wrote through
//! them), so the call comes after those writes. Every holder is asked first, then all are
//! waited for together: a holder that has not answered a lease after that has
//! them taken (`Volume::layout_revoke`): what it wrote through them never appears. A call
//! the caller may not make is refused before any of this, and recalls nothing. A layout
//! asked for that conflicts with another holder's is refused as before (the asker writes
//! through the server this time) and recalled from that holder, without waiting.
//!
//!
//! From before its holders are looked up until it has run, the call marks the files it
//! cuts (`Cutting`), and no layout of them is given meanwhile (`WouldBlock`: the asker reads
//! or writes through the server): one given between the recalls and the cut would go on
//! showing the blocks cut away, and nothing would recall it.
//!
//! The engine's metadata code knows nothing of this: the call runs through the table as
//! any other once its recalls are done.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use locks::SessionId;
use protocol::codec::encode_frame;
use protocol::{Push, Request, ServerMsg};
use volume::{FileKind, FsResult, Ino};

use crate::listener::Shared;
use crate::permissions::Caller;

/// How often a recall not yet answered is pushed again (the holder may have reconnected).
const PUSH_AGAIN: Duration = Duration::from_secs(1);
/// How often a waiting call looks at the holders again (a session that ended left them).
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// Returns of recalled layouts, for the calls waiting for them.
#[derive(Default)]
pub(crate) struct Recalls {
    /// (holder, inode) recalled → (calls waiting for it, returns seen since).
    waiting: Mutex<HashMap<(u64, u64), (u32, u64)>>,
    returned: Condvar,
    /// Files a call is cutting blocks from (`Cutting`) → how many such calls.
    cutting: Mutex<HashMap<u64, u32>>,
}

/// The files a call frees or moves blocks of, marked from before their holders are looked
/// up until the call has run (dropped): no layout of them is given meanwhile.
pub(crate) struct Cutting<'a> {
    recalls: &'a Recalls,
    inos: Vec<u64>,
}

impl Drop for Cutting<'_> {
    fn drop(&mut self) {
        let mut c = lock(&self.recalls.cutting);
        for ino in &self.inos {
            if let Some(n) = c.get_mut(ino) {
                *n -= 1;
                if *n == 0 {
                    c.remove(ino);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recalls {
    /// Mark `inos` as being cut until the guard drops.
    fn cut(&self, inos: Vec<u64>) -> Cutting<'_> {
        let mut c = lock(&self.cutting);
        for &ino in &inos {
            *c.entry(ino).or_insert(0) += 1;
        }
        Cutting {
            recalls: self,
            inos,
        }
    }

    /// True while a call cuts blocks from `ino`: no layout of it may be given (asked in
    /// the engine hold that would give it).
    pub(crate) fn being_cut(&self, ino: u64) -> bool {
        lock(&self.cutting).contains_key(&ino)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), (u32, u64)>> {
        lock(&self.waiting)
    }

    /// `holder` gave back its layouts on `ino` (`LayoutReturn`).
    pub(crate) fn returned(&self, holder: u64, ino: u64) {
        if let Some((_, seen)) = self.lock().get_mut(&(holder, ino)) {
            *seen += 1;
            self.returned.notify_all();
        }
    }
}

/// Before `req` of session `origin` runs: the layouts other sessions hold on blocks it
/// frees or moves are recalled and given back, or taken after the lease; the files are
/// marked as being cut until the guard returned drops (once the call has run). A call
/// `caller` may not make recalls nothing: its refusal is the error, as the check in the
/// hold that runs it would have answered (answered here, so a chmod after this check
/// cannot let it run without the recalls). `None`, with nothing done, if it would wait and
/// `may_wait` is false (it runs on a connection's task, which the holders' answers may
/// need).
pub(crate) fn before<'a>(
    shared: &'a Shared,
    origin: SessionId,
    caller: &Caller,
    req: &Request,
    may_wait: bool,
) -> FsResult<Option<Cutting<'a>>> {
    let inos = at_risk(shared, req);
    // Marked before the holders are looked up: a layout given after that is refused, one
    // given before it is among them.
    let cutting = shared.recalls.cut(inos.clone());
    let mut recalled = Vec::new();
    for ino in inos {
        let holders = shared.vol.with(|v| v.layout_holders(Ino::new(ino)));
        let others = holders.into_iter().filter(|&h| h != origin.get());
        recalled.extend(others.map(|holder| (holder, ino)));
    }
    if recalled.is_empty() {
        return Ok(Some(cutting));
    }
    let root = shared.sessions.get(&origin).map_or(0, |s| s.info.export);
    shared
        .vol
        .with(|v| crate::call::allowed(v, root, caller, &mut req.clone()))?;
    if !may_wait {
        return Ok(None);
    }
    recall(shared, recalled);
    Ok(Some(cutting))
}

/// After a write layout was refused for another holder's blocks in the range: recall
/// theirs, without waiting (the asker writes through the server meanwhile).
pub(crate) fn conflict(shared: &Shared, origin: SessionId, ino: u64) {
    let holders = shared.vol.with(|v| v.layout_holders(Ino::new(ino)));
    for holder in holders.into_iter().filter(|&h| h != origin.get()) {
        push(shared, holder, ino, Duration::ZERO);
    }
}

/// True if `req` may have to wait for recalls: it may free blocks of a file while layouts
/// are out. Such a call runs on the blocking pool, never on a connection's task, which the
/// holders' returns may need.
/// One handed out after this is seen where the call runs (`before`, `call::answer_now`).
pub(crate) fn may_wait(shared: &Shared, req: &Request) -> bool {
    frees(req) && shared.vol.with(|v| v.layouts_out())
}

/// True if `req` is a kind of call that may free or move a file's blocks, or give it what a
/// writer without CAP_FSETID must drop (`arms`): the holders of its layouts are recalled first.
pub(crate) fn frees(req: &Request) -> bool {
    match req {
        Request::Setattr { set, .. } if set.size.is_some() => true,
        Request::Fallocate { mode, .. } => *mode & !libc::FALLOC_FL_KEEP_SIZE as u32 != 0,
        Request::Unlink { .. } | Request::Rename { .. } => true,
        _ => arms(req).is_some(),
    }
}

/// The file `req` gives what a write by a caller without CAP_FSETID must drop (setuid,
/// setgid with group execute, file capabilities). Write layouts given before it may be in
/// use by such writers, whose data must not be seen under it: they are recalled (and
/// committed, dropping nothing yet) first, and from then on such writers are refused a
/// layout and write through the server, which drops it before their data appears.
fn arms(req: &Request) -> Option<u64> {
    match req {
        Request::Setattr { ino, set } => {
            let m = set.mode?;
            let setgid_exec = m & libc::S_ISGID != 0 && m & libc::S_IXGRP != 0;
            (m & libc::S_ISUID != 0 || setgid_exec).then_some(*ino)
        }
        Request::Setxattr { ino, name, .. } => (name == b"security.capability").then_some(*ino),
        _ => None,
    }
}

/// Files whose blocks `req` may free or move: the file truncated or punched, the file
/// whose last name it removes or renames over.
fn at_risk(shared: &Shared, req: &Request) -> Vec<u64> {
    let named = |parent: u64, name: &[u8]| {
        let found = shared.vol.with(|v| v.lookup(Ino::new(parent), name));
        match found {
            Ok(a) if a.kind == FileKind::RegularFile && a.nlink <= 1 => vec![a.ino.get()],
            _ => Vec::new(),
        }
    };
    match req {
        Request::Setattr { ino, set } if set.size.is_some() => vec![*ino],
        Request::Fallocate { ino, mode, .. } if *mode & !libc::FALLOC_FL_KEEP_SIZE as u32 != 0 => {
            vec![*ino]
        }
        Request::Unlink { parent, name } => named(*parent, name),
        Request::Rename {
            newparent, newname, ..
        } => named(*newparent, newname),
        _ => arms(req).into_iter().collect(),
    }
}

/// Recall each `(holder, ino)`'s layouts and wait until each holder gives them back (or
/// holds none any more: its session ended), all together: every recall is pushed first, and
/// one lease from then, the layouts of those that have not answered are taken.
fn recall(shared: &Shared, wanted: Vec<(u64, u64)>) {
    let r = &shared.recalls;
    let mut out: Vec<((u64, u64), u64)> = {
        let mut w = r.lock();
        let mut seen = Vec::with_capacity(wanted.len());
        for &key in &wanted {
            let e = w.entry(key).or_insert((0, 0));
            e.0 += 1;
            seen.push((key, e.1));
        }
        seen
    };
    let start = Instant::now();
    let mut pushed: Option<Instant> = None;
    loop {
        if pushed.is_none_or(|t| t.elapsed() >= PUSH_AGAIN) {
            for &((holder, ino), _) in &out {
                push(shared, holder, ino, start.elapsed());
            }
            pushed = Some(Instant::now());
        }
        {
            let w = r.lock();
            let any_back = |w: &HashMap<(u64, u64), (u32, u64)>| {
                out.iter()
                    .any(|(key, seen)| w.get(key).is_some_and(|e| e.1 != *seen))
            };
            let (w, _) = r
                .returned
                .wait_timeout_while(w, LOOK_AGAIN, |w| !any_back(w))
                .unwrap_or_else(|e| e.into_inner());
            out.retain(|(key, seen)| w.get(key).is_some_and(|e| e.1 == *seen));
        }
        out.retain(|&((holder, ino), _)| {
            shared
                .vol
                .with(|v| v.layout_holders(Ino::new(ino)))
                .contains(&holder)
        });
        if out.is_empty() || start.elapsed() >= shared.cfg.lease {
            break;
        }
    }
    {
        // This call waits no more for any of them, given back or not.
        let mut w = r.lock();
        for key in &wanted {
            if let Some(e) = w.get_mut(key) {
                e.0 -= 1;
                if e.0 == 0 {
                    w.remove(key);
                }
            }
        }
    }
    for ((holder, ino), _) in out {
        tracing::warn!(
            session = holder,
            ino,
            "layouts recalled and not given back within the lease: taken"
        );
        take(shared, holder, Some(ino));
    }
}

/// Take `holder`'s layouts, on `ino` or (`None`: its session ended) all: where the store
/// can fence, the holder is fenced first and all its layouts are taken (`fencing`).
pub(crate) fn take(shared: &Shared, holder: u64, ino: Option<u64>) {
    let fenced = shared
        .cfg
        .fence
        .as_ref()
        .is_some_and(|f| shared.fencing.fence(f, holder));
    shared.vol.with(|v| match (ino, fenced) {
        (Some(ino), false) => v.layout_revoke(holder, Ino::new(ino)),
        (Some(_), true) => v.layout_revoke_all(holder),
        (None, _) => v.layout_return_all(holder),
    });
}

/// Push a recall of its layouts on `ino` to session `holder`, if it is connected, saying how
/// long it has `waited` for them so far: the holder times its lease from the recall's
/// start, which a push dropped (a full queue) or delayed on its way no longer shows.
fn push(shared: &Shared, holder: u64, ino: u64, waited: Duration) {
    let Some(s) = shared
        .sessions
        .get(&SessionId::new(holder))
        .map(|s| s.clone())
    else {
        return;
    };
    let Some(tx) = s.sender() else { return };
    let ino = crate::exports::shown(s.info.export, ino);
    let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
    let recall = Push::LayoutRecall { ino, waited_ms };
    if let Ok(f) = encode_frame(&ServerMsg::Push(recall), &[]) {
        let _ = tx.try_send(f);
    }
}
