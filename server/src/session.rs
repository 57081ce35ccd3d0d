//! A session: one mount's standing with the server. It outlives any one connection: if the
//! connection drops, the session waits out its lease for the client to come back (`Resume`)
//! with its open files and the replies it may have missed; after the lease it ends and its
//! open files are released. A clean unmount (`Goodbye`) ends it at once.

use locks::SessionId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::reply_cache::ReplyCache;

/// What a session is, as its mount said in `Hello`: fixed for its life.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The node its mount runs on: access modes that allow one node count by it.
    pub node_id: String,
    /// Its mount on that node.
    pub mount_id: u64,
    /// The mount only reads (asked so, or the export is read-only): its changes are refused.
    pub read_only: bool,
    /// When the session began (or was restored), for status.
    pub started: Instant,
    /// Only this session's client holds it: needed to resume the session.
    pub secret: protocol::auth::SessionSecret,
    /// The root (inode number) of the export it mounts, confined to it; 0 for the whole
    /// volume.
    pub export: u64,
}

/// The connection a session currently answers on.
#[derive(Default)]
struct Link {
    /// Reply frames go here, to the connection's writer task; `None` while detached.
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Counts attachments: a connection may only detach the session it attached.
    epoch: u64,
    /// Cancels the attached connection (when another one resumes the session).
    cancel: Option<CancellationToken>,
    addr: Option<SocketAddr>,
    last_heard: Option<Instant>,
}

/// One mount's state on the server, outliving its connections by its lease: the connection
/// it answers on, its opens, its kept replies, what it may cache, its calls not yet durable.
pub struct Session {
    /// The session's number, as `Welcome` gave it.
    pub id: SessionId,
    /// What it is.
    pub info: SessionInfo,
    link: Mutex<Link>,
    /// Files this session holds open: how many opens of each inode.
    opens: Mutex<HashMap<u64, u32>>,
    /// Opens restored from the session log that the client has not opened again yet.
    restored: Mutex<HashMap<u64, u32>>,
    /// Replies to its calls that must not run twice, for repeats after a reconnect.
    pub replies: Mutex<ReplyCache>,
    /// Inodes whose attributes this session has been sent, and so may cache: other
    /// sessions' changes to them are pushed to it as invalidations.
    cache: Mutex<HashSet<u64>>,
    /// Lock waits granted lately: pushed again whenever the client resumes, since a push
    /// sent while the connection was failing may never have arrived (the client ignores
    /// grants of waits it no longer has).
    granted: Mutex<VecDeque<u64>>,
    /// Its calls whose changes may not be durable yet (`durability`).
    unsafe_calls: Mutex<crate::durability::Unsafe>,
}

/// Grants remembered per session for pushing again on resume.
const RECENT_GRANTS: usize = 256;

/// Most inodes remembered per session; past it the set starts over (the client's TTL still
/// bounds how stale a forgotten entry can get).
const MAX_CACHED: usize = 1 << 20;

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// A new session, detached, holding nothing.
    pub fn new(id: SessionId, info: SessionInfo) -> Arc<Session> {
        Arc::new(Session {
            id,
            info,
            link: Mutex::new(Link::default()),
            opens: Mutex::new(HashMap::new()),
            restored: Mutex::new(HashMap::new()),
            replies: Mutex::new(ReplyCache::default()),
            cache: Mutex::new(HashSet::new()),
            granted: Mutex::new(VecDeque::new()),
            unsafe_calls: Mutex::default(),
        })
    }

    /// A session the server's state log brought back after a restart, with its kept replies.
    pub fn restored(
        id: SessionId,
        info: SessionInfo,
        replies: impl IntoIterator<Item = (u64, Arc<Vec<u8>>)>,
    ) -> Arc<Session> {
        let s = Session::new(id, info);
        *relock(&s.replies) = ReplyCache::restored(replies);
        s
    }

    /// Its calls whose changes may not be durable yet, held for the caller's use.
    pub fn unsafe_calls(&self) -> MutexGuard<'_, crate::durability::Unsafe> {
        relock(&self.unsafe_calls)
    }

    /// Lock wait `wait` was granted.
    pub fn granted(&self, wait: u64) {
        let mut g = relock(&self.granted);
        if g.len() == RECENT_GRANTS {
            g.pop_front();
        }
        g.push_back(wait);
    }

    /// The lock waits granted lately, oldest first: pushed again when the client resumes.
    pub fn recent_grants(&self) -> Vec<u64> {
        relock(&self.granted).iter().copied().collect()
    }

    /// Answer on this connection from now on; the one before, if any, is cancelled.
    /// Returns the attachment's epoch.
    pub fn attach(
        &self,
        tx: mpsc::Sender<Vec<u8>>,
        cancel: CancellationToken,
        addr: SocketAddr,
    ) -> u64 {
        let mut l = relock(&self.link);
        if let Some(old) = l.cancel.take() {
            old.cancel();
        }
        l.epoch += 1;
        l.tx = Some(tx);
        l.cancel = Some(cancel);
        l.addr = Some(addr);
        l.last_heard = Some(Instant::now());
        l.epoch
    }

    /// Close the connection the session answers on (its client stopped reading replies);
    /// the session stays, for its client to resume.
    pub fn cut(&self) {
        if let Some(c) = &relock(&self.link).cancel {
            c.cancel();
        }
    }

    /// The connection of attachment `epoch` is gone. False if another one took over since.
    pub fn detach(&self, epoch: u64) -> bool {
        let mut l = relock(&self.link);
        if l.epoch != epoch {
            return false;
        }
        l.tx = None;
        l.cancel = None;
        true
    }

    /// True while attachment `epoch` is the latest and no connection has come since: the
    /// session is still waiting for its client.
    pub fn detached_since(&self, epoch: u64) -> bool {
        let l = relock(&self.link);
        l.epoch == epoch && l.tx.is_none()
    }

    /// Its client was heard from just now (any frame): the lease starts over.
    pub fn heard(&self) {
        relock(&self.link).last_heard = Some(Instant::now());
    }

    /// When its client was last heard from, if ever.
    pub fn last_heard(&self) -> Option<Instant> {
        relock(&self.link).last_heard
    }

    /// The address of the latest connection it answered on.
    pub fn addr(&self) -> Option<SocketAddr> {
        relock(&self.link).addr
    }

    /// The sender of the attached connection's writer, if one is attached.
    pub fn sender(&self) -> Option<mpsc::Sender<Vec<u8>>> {
        relock(&self.link).tx.clone()
    }

    /// The session was sent these inodes' attributes: it may cache them, so other sessions'
    /// changes to them are pushed to it.
    pub fn cached(&self, inos: &[u64]) {
        let mut c = relock(&self.cache);
        if c.len() + inos.len() > MAX_CACHED {
            c.clear();
        }
        c.extend(inos);
    }

    /// True if the session may hold `ino`'s attributes or data in a cache.
    pub fn may_cache(&self, ino: u64) -> bool {
        relock(&self.cache).contains(&ino)
    }

    /// The session opened `ino` once more.
    pub fn opened(&self, ino: u64) {
        *relock(&self.opens).entry(ino).or_insert(0) += 1;
    }

    /// The session log restored `n` opens of `ino` for this session.
    pub fn restore_open(&self, ino: u64) {
        self.opened(ino);
        *relock(&self.restored).entry(ino).or_insert(0) += 1;
    }

    /// True (once per restored open) if an open of `ino` is its client opening again what
    /// it held before the restart: the restored open stands for it.
    pub fn take_restored(&self, ino: u64) -> bool {
        let mut r = relock(&self.restored);
        let Some(n) = r.get_mut(&ino) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            r.remove(&ino);
        }
        true
    }

    /// One of this session's opens of `ino` is closed. False if it held none: a release
    /// by one session never drops another's open.
    pub fn released(&self, ino: u64) -> bool {
        let mut o = relock(&self.opens);
        let Some(n) = o.get_mut(&ino) else {
            return false;
        };
        *n -= 1;
        let left = *n;
        if left == 0 {
            o.remove(&ino);
        }
        // No more opens restored than are held.
        let mut r = relock(&self.restored);
        if r.get(&ino).is_some_and(|k| *k > left) {
            if left == 0 {
                r.remove(&ino);
            } else {
                r.insert(ino, left);
            }
        }
        true
    }

    /// Everything this session holds open, forgotten by it: the caller releases them.
    pub fn take_opens(&self) -> Vec<(u64, u32)> {
        relock(&self.opens).drain().collect()
    }

    /// Opens the session holds (a file opened twice counts twice), for status.
    pub fn open_count(&self) -> usize {
        relock(&self.opens).values().map(|n| *n as usize).sum()
    }
}
