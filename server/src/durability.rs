//! Which of a session's calls that changed the volume are durable, told to its client
//! (`Push::Durable { below }`) so that it stops keeping them to send again after a crash.
//!
//! Each call that may change the volume is noted when it starts, tagged with the journal
//! transaction its changes went into when it ran, and forgotten once that transaction is
//! durable (or at once if it changed nothing). `below` is then the lowest id still noted, or
//! one past the highest id seen: every call below it that reached the server is durable. A
//! call that has not reached the server yet is not covered, since its client has no reply
//! to it: the client forgets only calls it has the reply to.

use locks::SessionId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use protocol::codec::encode_frame;
use protocol::{Push, Request, ServerMsg};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::listener::Shared;
use crate::session::Session;
use volume::Ino;

/// One session's calls whose changes may not be durable yet.
#[derive(Debug, Default)]
pub struct Unsafe {
    /// Call id → the transaction its changes went into (`None` while it runs).
    calls: BTreeMap<u64, Option<u64>>,
    /// The highest call id seen.
    seen: u64,
}

impl Unsafe {
    /// Call `id` starts running.
    pub fn begin(&mut self, id: u64) {
        self.calls.insert(id, None);
        self.seen = self.seen.max(id);
    }

    /// Call `id` put its changes into transaction `seq`.
    pub fn ran(&mut self, id: u64, seq: u64) {
        if let Some(s) = self.calls.get_mut(&id) {
            *s = Some(seq);
        }
    }

    /// Call `id` is over; if it changed nothing, nothing of it needs keeping.
    pub fn end(&mut self, id: u64) {
        if let Some(None) = self.calls.get(&id) {
            self.calls.remove(&id);
        }
    }

    /// Call `id` was answered from kept replies: it ran before, durably or still noted.
    pub fn seen(&mut self, id: u64) {
        self.seen = self.seen.max(id);
    }

    /// Transactions up to `upto` are durable.
    pub fn durable(&mut self, upto: u64) {
        self.calls
            .retain(|_, s| !matches!(s, Some(seq) if *seq <= upto));
    }

    /// True if every call that reached the server is durable.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every call below this id that reached the server is durable.
    pub fn below(&self) -> u64 {
        self.calls
            .keys()
            .next()
            .copied()
            .unwrap_or(self.seen.saturating_add(1))
    }
}

/// The newest durable transaction, as the volume's commits report it.
#[derive(Default)]
pub struct Commits {
    upto: AtomicU64,
    wake: Notify,
}

impl Commits {
    /// The volume's commit hook: called with the engine held, so only notes and wakes.
    pub fn committed(&self, upto: u64) {
        self.upto.fetch_max(upto, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Files restored sessions hold open that do not exist yet: a crash lost their creation,
/// which another session's replay may bring back. Opened for them when it does, so that an
/// unlink replayed after it does not free a file still open.
#[derive(Default)]
pub struct Reopens(std::sync::Mutex<HashMap<u64, Vec<SessionId>>>);

impl Reopens {
    fn relock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<SessionId>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Session `session` holds `ino` open, which is not there (yet).
    pub fn wait_for(&self, ino: u64, session: SessionId) {
        self.relock().entry(ino).or_default().push(session);
    }

    /// A replay made `ino` again: open it for the sessions that hold it.
    pub(crate) fn made(&self, shared: &Shared, ino: u64) {
        let waiting = self.relock().remove(&ino).unwrap_or_default();
        for id in waiting {
            if let Some(s) = shared.sessions.get(&id) {
                if shared.vol.with(|v| v.open_file(Ino::new(ino))).is_ok() {
                    s.opened(ino);
                }
            }
        }
    }
}

/// What calls not yet durable made and renamed, with their session and transaction: the
/// inodes they made, and the directory entries they made, removed or renamed. A call of
/// another session that builds on one of them (creates in a directory it made, writes a file
/// it made, takes a name it freed, renames a name it made...) first commits: replays after a
/// crash run session by session, and its own could otherwise land before the one it depends
/// on (and fail there, or be undone by it).
#[derive(Default)]
pub struct Made(std::sync::Mutex<Changed>);

#[derive(Default)]
struct Changed {
    /// Inode → (session, transaction) of the call that made it.
    inodes: HashMap<u64, (SessionId, u64)>,
    /// (directory, name) → (session, transaction) of the last call that changed it.
    entries: HashMap<(u64, Vec<u8>), (SessionId, u64)>,
}

impl Made {
    fn relock(&self) -> std::sync::MutexGuard<'_, Changed> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Session `session` made `ino` in transaction `seq`.
    pub fn made(&self, ino: u64, session: SessionId, seq: u64) {
        self.relock().inodes.insert(ino, (session, seq));
    }

    /// Session `session` ran `req`, which changed the volume, in transaction `seq`: the
    /// entries it names are changed (made, removed or renamed) by it.
    pub fn changed(&self, req: &Request, session: SessionId, seq: u64) {
        let meta = req.meta();
        if meta.entries.is_empty() {
            return;
        }
        let mut c = self.relock();
        for (dir, name) in meta.entries.iter() {
            c.entries.insert((*dir, name.to_vec()), (session, seq));
        }
    }

    /// Transactions up to `upto` are durable.
    pub fn durable(&self, upto: u64) {
        let mut c = self.relock();
        c.inodes.retain(|_, (_, seq)| *seq > upto);
        c.entries.retain(|_, (_, seq)| *seq > upto);
    }

    /// True if `req` of `session` builds on an inode another session made, not yet durable.
    pub fn depends(&self, session: SessionId, req: &Request) -> bool {
        let c = self.relock();
        !c.inodes.is_empty()
            && refs(req)
                .iter()
                .any(|i| c.inodes.get(i).is_some_and(|(s, _)| *s != session))
    }

    /// True if `req` of `session`, which changes the volume, names a directory entry another
    /// session changed, not yet durable. Asked in the hold that runs `req`, so no change of
    /// another session lands between the question and the call.
    pub fn depends_by_name(&self, session: SessionId, req: &Request) -> bool {
        let c = self.relock();
        if c.entries.is_empty() {
            return false;
        }
        let meta = req.meta();
        meta.mutates
            && meta.entries.iter().any(|(dir, name)| {
                c.entries
                    .get(&(*dir, name.to_vec()))
                    .is_some_and(|(s, _)| *s != session)
            })
    }
}

/// The inodes a call that changes the volume acts on or in.
fn refs(req: &Request) -> Vec<u64> {
    let m = req.meta();
    match m.mutates {
        true => m.inodes().collect(),
        false => Vec::new(),
    }
}

/// The frame telling a client which of its calls are durable.
pub(crate) fn notice(session: &Session) -> Option<Vec<u8>> {
    let below = session.unsafe_calls().below();
    encode_frame(&ServerMsg::Push(Push::Durable { below }), &[]).ok()
}

/// After every commit, tell each connected session which of its calls are now durable.
pub(crate) async fn tell_clients(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.commits.wake.notified() => {}
        }
        let upto = shared.commits.upto.load(Ordering::SeqCst);
        let sessions: Vec<Arc<Session>> = shared.sessions.iter().map(|s| s.clone()).collect();
        for s in sessions {
            s.unsafe_calls().durable(upto);
            if let (Some(tx), Some(frame)) = (s.sender(), notice(&s)) {
                // A full queue drops this notice; the next one says as much and more.
                let _ = tx.try_send(frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stops_at_the_first_call_not_yet_durable() {
        let mut u = Unsafe::default();
        assert_eq!(u.below(), 1);
        for id in 1..=4 {
            u.begin(id);
        }
        u.ran(1, 10);
        u.ran(2, 11);
        u.end(1);
        u.end(2);
        // 3 changed nothing; 4 still runs.
        u.end(3);
        assert_eq!(u.below(), 1);
        u.durable(10);
        assert_eq!(u.below(), 2);
        u.durable(11);
        assert_eq!(u.below(), 4);
        u.ran(4, 12);
        u.end(4);
        u.seen(7);
        assert_eq!(u.below(), 4);
        u.durable(12);
        assert_eq!(u.below(), 8);
    }
}
