//! The one state of a mount's link, shared by the callers, the reader, the heartbeat and
//! the recovery: the socket, the calls waiting for replies, the session the server knows
//! this mount by (with what it holds in it), and the calls kept until durable.
//!
//! Lock order: `wire` → `session` → `calls` → `kept`. A thread holding one may take only
//! those after it; `reader` (the live reader's handle) is taken alone or after `wire`.
//! `wire` is held across a socket write, so frames never interleave and a reconnect finds
//! every call either pending or written on the new socket; no lock is held while waiting
//! for a reply, and replies are delivered with no lock held (a callback may call the link
//! again). `closed` is the one flag read without a lock.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use protocol::codec::encode_frame;
use protocol::{ClientMsg, Request, Response};

use super::dial::Hello;
use super::Reply;
use crate::backend::Invalidate;
use crate::kept::Kept;
use crate::transport::Stream;

pub(super) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a call's reply goes: a caller waiting on a channel, or a callback (a call nobody
/// waits for, such as a write-behind write).
pub(super) enum Sink {
    Chan(Sender<Reply>),
    Callback(Box<dyn FnOnce(Reply) + Send>),
}

impl Sink {
    pub(super) fn deliver(self, reply: Reply) {
        match self {
            Sink::Chan(tx) => {
                let _ = tx.send(reply);
            }
            Sink::Callback(f) => f(reply),
        }
    }
}

/// A call waiting for its reply.
pub(super) struct Pending {
    pub tx: Sink,
    /// Fails instead of being sent again if the session's locks are lost meanwhile.
    pub bound: bool,
    /// `None` between the id's allocation and the frame's first write.
    pub frame: Option<Arc<Vec<u8>>>,
    /// What its reply changes in the files this mount holds open: noted where the reply
    /// arrives, before anything else (a recovery, its caller) can see it.
    pub opens: Option<OpenChange>,
    /// When it was made (`Shared::now_ms`), no later than its first write: its reply says
    /// the server had this mount's session at some moment after that (`Shared::renewed_by`).
    pub made: u64,
}

impl Pending {
    /// Fail the call: the link closed, or the locks it was made under are gone.
    pub(super) fn fail(self) {
        self.tx.deliver((Err(libc::EIO), Vec::new()));
    }
}

/// A lock wait the server queued: told its outcome (granted, or an errno if the wait had
/// to be sent again and failed).
pub(super) struct Wait {
    pub tx: Sender<Result<(), i32>>,
    pub req: Request,
}

/// The socket calls are written to.
pub(super) struct Wire {
    /// `None` while the connection is down.
    pub stream: Option<Stream>,
    /// Which connection it is: a reader of an older one does not mark this one broken.
    pub epoch: u64,
    /// Set when the connection breaks; the recovery waits for it on `Shared::broken`.
    pub broken: bool,
}

/// The calls waiting for their reply, by id.
#[derive(Default)]
pub(super) struct Calls {
    /// The next call id. Allocated under this lock, so every id below the lowest pending
    /// one has its reply (`acked_below`).
    pub next_id: u64,
    pub pending: BTreeMap<u64, Pending>,
}

/// Who made one open of a file this mount holds: it is made again on a new session as that
/// caller (whose permissions the server checks), with its access mode (a create's is the
/// one its FUSE request asked for: `caller::creating_with`).
#[derive(Clone, Debug)]
pub(super) struct Opener {
    pub cred: Option<protocol::Cred>,
    /// `O_RDONLY`, `O_WRONLY` or `O_RDWR`.
    pub access: i32,
}

/// An open or a close a call makes, if it succeeds.
#[derive(Debug)]
pub(super) enum OpenChange {
    /// One more open of the file the reply names, by this opener.
    Opens(Opener),
    /// One open fewer of this inode.
    Releases(u64),
}

impl OpenChange {
    /// What `req`, made by the caller this thread serves, opens or closes.
    pub(super) fn of(req: &Request) -> Option<OpenChange> {
        Some(match req.meta().opens? {
            protocol::Opens::Opens => OpenChange::Opens(Opener {
                cred: crate::caller::current(),
                access: match req {
                    Request::Open { flags, .. } | Request::Reopen { flags, .. } => {
                        flags & libc::O_ACCMODE
                    }
                    _ => crate::caller::create_access(),
                },
            }),
            protocol::Opens::Releases(ino) => OpenChange::Releases(ino),
        })
    }
}

/// The server's session for this mount and what this mount holds in it.
pub(super) struct Session {
    /// The server's id for it: resumed on every reconnect.
    pub id: u64,
    /// Its secret, issued with it: proves a resume.
    pub secret: Vec<u8>,
    /// Its lease: heartbeats go three times a lease.
    pub lease_secs: u64,
    /// The server start this session is known to (`Welcome::boot`): another means a restart.
    pub boot: u64,
    /// Server restarts seen: each may have lost writes not yet made durable.
    pub restarts: u64,
    /// Times the server forgot the session or refused a reclaim: each time, every lock this
    /// mount held was lost (the lock epoch).
    pub lost: u64,
    /// Files this mount holds open (inode → who made each open), to open again on a new
    /// session.
    pub opens: HashMap<u64, Vec<Opener>>,
    /// The locks this mount holds, as the server granted them: reclaimed after a restart.
    pub held: locks::LockTable,
    /// Blocked lock requests, by wait id (their call id): told when the server grants them.
    pub waits: HashMap<u64, Wait>,
}

impl Session {
    pub(super) fn new(id: u64, secret: Vec<u8>, lease_secs: u32, boot: u64) -> Session {
        Session {
            id,
            secret,
            lease_secs: lease_secs as u64,
            boot,
            restarts: 0,
            lost: 0,
            opens: HashMap::new(),
            held: locks::LockTable::default(),
            waits: HashMap::new(),
        }
    }

    /// A call that opens or closes a file was answered `result`.
    fn note(&mut self, change: OpenChange, result: &Result<Response, i32>) {
        match (change, result) {
            (OpenChange::Opens(opener), Ok(Response::Attr(a))) => self.opened(a.ino, opener),
            (OpenChange::Releases(ino), Ok(_)) => self.closed(ino),
            _ => {}
        }
    }

    /// `ino` was opened (once more) by `opener`.
    fn opened(&mut self, ino: u64, opener: Opener) {
        self.opens.entry(ino).or_default().push(opener);
    }

    /// One open of `ino` was closed.
    fn closed(&mut self, ino: u64) {
        if let Some(o) = self.opens.get_mut(&ino) {
            o.pop();
            if o.is_empty() {
                self.opens.remove(&ino);
            }
        }
    }

    /// The server forgot the locks this mount held.
    pub(super) fn locks_lost(&mut self) {
        self.held = locks::LockTable::default();
        self.lost += 1;
    }
}

pub(super) struct Shared {
    /// Who this mount is and where the server is: the same on every connection.
    pub hello: Hello,
    pub wire: Mutex<Wire>,
    /// Signalled with `wire.broken` set: the recovery waits on it.
    pub broken: Condvar,
    pub session: Mutex<Session>,
    pub calls: Mutex<Calls>,
    /// Calls that changed the volume, until the server says they are durable.
    pub kept: Mutex<Kept>,
    /// Signalled when kept calls are forgotten (room for more).
    pub kept_cv: Condvar,
    /// Unmounting: nothing more is sent, no reconnect is tried.
    pub closed: AtomicBool,
    /// Where invalidation pushes go, once the mount says.
    pub invalidations: OnceLock<Sender<Invalidate>>,
    /// Where layout recalls go (direct mode), once the mount says: called on the reader.
    pub recalls: OnceLock<Box<dyn Fn(super::Recall) + Send + Sync>>,
    /// The reader of the current connection: a recovery waits for it to end, so that every
    /// reply it took in is noted (opens, closes) before the recovery looks.
    pub reader: Mutex<Option<JoinHandle<()>>>,
    /// A call made first on every new session and after every server restart, before
    /// anything else (a direct mount's `StoreClient`), once the mount says.
    pub preface: OnceLock<protocol::Request>,
    /// When the server was last heard from (any frame), in milliseconds since `born`.
    pub heard: AtomicU64,
    /// When the latest call that got its reply was made, in milliseconds since `born`: the
    /// server cannot have ended this mount's session less than a lease after it.
    pub renewed: AtomicU64,
    pub born: Instant,
    /// The connection's `Wire::epoch` while it is up (its session and the server's restarts
    /// as they are on it), 0 while it is broken.
    pub up: AtomicU64,
}

impl Shared {
    pub(super) fn new(hello: Hello, stream: Stream, session: Session) -> Shared {
        Shared {
            hello,
            wire: Mutex::new(Wire {
                stream: Some(stream),
                epoch: 1,
                broken: false,
            }),
            broken: Condvar::new(),
            session: Mutex::new(session),
            calls: Mutex::new(Calls {
                next_id: 1,
                pending: BTreeMap::new(),
            }),
            kept: Mutex::new(Kept::default()),
            kept_cv: Condvar::new(),
            closed: AtomicBool::new(false),
            preface: OnceLock::new(),
            invalidations: OnceLock::new(),
            recalls: OnceLock::new(),
            reader: Mutex::new(None),
            heard: AtomicU64::new(0),
            renewed: AtomicU64::new(0),
            born: Instant::now(),
            up: AtomicU64::new(1),
        }
    }

    /// The server was heard from just now.
    pub(super) fn heard_now(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.heard.store(ms, Ordering::Relaxed);
    }

    /// Milliseconds since `born`.
    pub(super) fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// A reply came to a call made at `made` (`now_ms`).
    pub(super) fn renewed_by(&self, made: u64) {
        self.renewed.fetch_max(made, Ordering::Relaxed);
    }

    /// How long ago the latest call that got its reply was made: no answer, no push proves
    /// the server kept this mount's session longer than a lease past that moment.
    pub(super) fn renewed_ago(&self) -> std::time::Duration {
        let renewed = self.renewed.load(Ordering::Relaxed);
        std::time::Duration::from_millis(self.now_ms().saturating_sub(renewed))
    }

    /// How long ago the server was last heard from.
    pub(super) fn silent_for(&self) -> std::time::Duration {
        let ms = self.born.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(ms.saturating_sub(self.heard.load(Ordering::Relaxed)))
    }

    pub(super) fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A new call id, pending from this moment.
    pub(super) fn allocate(&self, tx: Sink, bound: bool) -> u64 {
        let mut c = relock(&self.calls);
        let id = c.next_id;
        c.next_id += 1;
        let (frame, opens) = (None, None);
        let made = self.now_ms();
        let p = Pending {
            tx,
            bound,
            frame,
            opens,
            made,
        };
        c.pending.insert(id, p);
        id
    }

    /// A call id for a call answered on the spot (during recovery), never pending.
    pub(super) fn next_id(&self) -> u64 {
        let mut c = relock(&self.calls);
        c.next_id += 1;
        c.next_id - 1
    }

    /// Take call `id` out of the pending calls (it failed, or is answered elsewhere).
    pub(super) fn take(&self, id: u64) -> Option<Pending> {
        relock(&self.calls).pending.remove(&id)
    }

    /// Call `id` was answered `result`: take it out of the pending calls, noting the open or
    /// close it made in the same step (a recovery finds it either pending, to send again,
    /// or noted).
    pub(super) fn answered(&self, id: u64, result: &Result<Response, i32>) -> Option<Pending> {
        let mut s = relock(&self.session);
        let mut p = relock(&self.calls).pending.remove(&id)?;
        if let Some(change) = p.opens.take() {
            s.note(change, result);
        }
        Some(p)
    }

    /// Wait for the reader of the broken connection to end, having dispatched every reply
    /// it took in. Called with no lock held (the reader takes `wire` as it ends).
    pub(super) fn reader_done(&self) {
        let handle = relock(&self.reader).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    pub(super) fn invalidate(&self, i: Invalidate) {
        if let Some(tx) = self.invalidations.get() {
            let _ = tx.send(i);
        }
    }

    /// A recall of this mount's layouts on `ino` came, which the server had been waiting
    /// `waited_ms` for when it sent it, after the replies to calls made up to `after`
    /// (`now_ms`): hand it to whoever answers them (nobody on a mount that holds none).
    /// The server sent it after those replies, so it began no sooner than `waited_ms`
    /// before `after`: the moment its lease runs from, for all this mount can tell.
    pub(super) fn recall(&self, ino: u64, waited_ms: u64, after: u64) {
        let Some(sink) = self.recalls.get() else {
            return;
        };
        let since = self.born + std::time::Duration::from_millis(after.saturating_sub(waited_ms));
        sink(super::Recall { ino, since });
    }

    /// The lowest call id still waiting for its reply (or the next id if none). Calls kept
    /// for a replay count as unacknowledged: the server keeps their replies, so that a
    /// replay of one it made durable is answered, not run again.
    pub(super) fn acked_below(&self) -> u64 {
        let c = relock(&self.calls);
        let below = c.pending.keys().next().copied().unwrap_or(c.next_id);
        relock(&self.kept).first().map_or(below, |k| k.min(below))
    }

    /// The server says every call below `below` that reached it is durable.
    pub(super) fn durable(&self, below: u64) {
        if relock(&self.kept).durable(below) {
            self.kept_cv.notify_all();
        }
    }

    /// A message that expects no reply, if connected.
    pub(super) fn send_control(&self, msg: &ClientMsg) {
        let Ok(f) = encode_frame(msg, &[]) else {
            return;
        };
        self.write_or_break(&mut relock(&self.wire), &f);
    }

    /// Write `frame` on the connection, if up; a failed write breaks it.
    pub(super) fn write_or_break(&self, w: &mut Wire, frame: &[u8]) {
        let Some(s) = w.stream.as_mut() else { return };
        if s.write_all(frame).is_err() {
            self.mark_broken(w);
        }
    }

    /// Mark the connection broken (its socket shut) for the recovery to take over.
    pub(super) fn mark_broken(&self, w: &mut Wire) {
        if let Some(s) = w.stream.take() {
            s.shutdown();
        }
        self.up.store(0, Ordering::SeqCst);
        w.broken = true;
        self.broken.notify_all();
    }
}
