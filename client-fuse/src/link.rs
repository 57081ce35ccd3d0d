//! The client's connection to the server, kept up across failures.
//!
//! Many calls are in flight at once: each caller sends its frame and waits on its own channel,
//! and a reader thread (`reader`) routes replies by call id. Every call stays pending, with its
//! frame, until its reply arrives. When the connection breaks, callers keep waiting while the
//! recovery (`recovery`) dials again (`dial`), takes the session back, and sends every pending
//! frame again in id order; the server answers a repeat of a call that changes the volume from
//! its reply cache, so it takes effect once. What the link knows of its session — open files,
//! held locks, lock waits, the server's restarts — is one state (`state`), with its lock order.
//!
//! Calls that changed the volume are kept (`kept`) until the server says they are durable, and
//! replayed to a server that restarted before making them so. At most `KEPT_BYTES` are kept
//! (frames and bookkeeping): past it, new calls that change the volume wait for a commit
//! (and ask for one).

mod dial;
mod error;
mod reader;
mod recovery;
mod state;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use protocol::codec::encode_frame_head;
use protocol::{ClientMsg, Request, Response};

pub use dial::{administer, query_status, volume_space, ServerStatus};
pub use error::{DialError, LinkError};

use crate::kept::Redo;
use dial::{dial, Hello};
use state::{relock, OpenChange, Pending, Session, Shared, Sink, Wait};

/// A reply: the response or an errno, and the bulk bytes that came with it.
pub type Reply = (Result<Response, i32>, Vec<u8>);

/// A recall of this mount's layouts on a file (direct mode), as it came.
#[derive(Debug, Clone, Copy)]
pub struct Recall {
    /// The file.
    pub ino: u64,
    /// No later than the server's start of the recall, by this mount's clock: the server
    /// takes the layouts a lease after its start, however late the recall came. It is the
    /// moment the newest call answered before the recall on its connection was made,
    /// less how long the server says it had waited when it sent it.
    pub since: std::time::Instant,
}

/// Where a queued lock wait hears how it ended: granted, or an errno.
pub type WaitOutcome = Receiver<Result<(), i32>>;

/// Acknowledge replies to the server after this many calls (and with every heartbeat).
const ACK_EVERY: u64 = 512;
/// Most bytes of calls kept until the server makes them durable (the write-behind budget).
pub const KEPT_BYTES: usize = 32 << 20;

/// How a mount connects: its identity, what it asks for, and how it waits.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// This node's name, as the server counts nodes for its access mode.
    pub node_id: String,
    /// Ask for a read-only mount.
    pub read_only: bool,
    /// The export mounted (`HOST:PORT/NAME`); empty for the whole volume.
    pub export: String,
    /// The export's token, if it asks for one.
    pub token: Option<Vec<u8>>,
    /// Refuse at once instead of waiting when the server says the mount must wait.
    pub no_wait: bool,
    /// TLS (`transport::client_config`), if the server speaks it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A mount's connection to the server: many calls in flight on one socket, carried across
/// reconnects and server restarts.
pub struct Link {
    shared: Arc<Shared>,
}

impl Link {
    /// Connect and say hello. `pending` hears why the server makes the mount wait, if it does.
    pub fn connect(
        addr: &str,
        opts: &ConnectOptions,
        pending: &dyn Fn(&str),
    ) -> Result<Link, DialError> {
        let mount_id = std::process::id() as u64
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64);
        let hello = Hello {
            addrs: dial::addresses(addr)?,
            current: Default::default(),
            node_id: opts.node_id.clone(),
            mount_id,
            read_only: opts.read_only,
            export: opts.export.clone(),
            token: opts.token.clone(),
            tls: opts.tls.clone(),
        };
        let g = dial(&hello, None, false, opts.no_wait, pending)?;
        let reader = g.stream.try_clone()?;
        let session = Session::new(g.session, g.secret, g.lease_secs, g.boot);
        let shared = Arc::new(Shared::new(hello, g.stream, session));
        // Dialled before `born`, its first `now_ms`: no recall can come on this first
        // connection before a layout was asked for, after it.
        reader::spawn(&shared, reader, 1, 0)?;
        recovery::spawn(&shared)?;
        spawn_heartbeat(&shared)?;
        Ok(Link { shared })
    }

    /// Times the server forgot this mount's session (and with it its locks).
    pub fn sessions_lost(&self) -> u64 {
        relock(&self.shared.session).lost
    }

    /// Opens of `ino` this mount holds (as made again on a new session).
    pub fn open_count(&self, ino: u64) -> usize {
        relock(&self.shared.session)
            .opens
            .get(&ino)
            .map_or(0, Vec::len)
    }

    /// How long ago the latest call that got its reply was made (see `Shared::renewed`).
    pub fn renewed_ago(&self) -> Duration {
        self.shared.renewed_ago()
    }

    /// The connection to the server while it is up (a number no other connection of this
    /// link has), `None` while it is broken.
    pub fn connection(&self) -> Option<u64> {
        match self.shared.up.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }

    /// The session's lease, as the server said.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(relock(&self.shared.session).lease_secs.max(1))
    }

    /// Times the server restarted under this mount.
    pub fn restarts(&self) -> u64 {
        relock(&self.shared.session).restarts
    }

    /// True if a server restart lost changes this mount made to `ino` (until `forget_lost`),
    /// or with `names`, to the volume's names (once), and nothing could bring them back.
    pub fn lost(&self, ino: u64, names: bool) -> bool {
        relock(&self.shared.kept).lost(ino, names)
    }

    /// The last open of `ino` on this mount was closed: its loss was reported.
    pub fn forget_lost(&self, ino: u64) {
        relock(&self.shared.kept).forget_lost(ino);
    }

    /// Calls kept for a replay, and their bytes.
    pub fn kept(&self) -> (usize, usize) {
        let k = relock(&self.shared.kept);
        (k.len(), k.bytes())
    }

    /// Before a call that changes the volume: wait while the kept calls fill the budget,
    /// asking the server for a commit (which makes them durable).
    fn room_for(&self, req: &Request, len: usize) {
        if !req.mutates() {
            return;
        }
        let shared = &self.shared;
        let full = |bytes: usize| bytes > 0 && bytes + len > KEPT_BYTES;
        let mut k = relock(&shared.kept);
        while full(k.bytes()) && !shared.closed() {
            drop(k);
            let commit = Request::Fsync {
                ino: volume::layout::ROOT_INO,
            };
            let _ = self.call_async(commit, &[], Box::new(|_| {}), false);
            k = relock(&shared.kept);
            if full(k.bytes()) {
                k = shared
                    .kept_cv
                    .wait_timeout(k, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }

    /// The server granted (or, with type F_UNLCK, released) `lock` on `ino`: remember it for
    /// reclaiming. The lock goes whole, by its named fields: its owner, range, type and pid
    /// as numbers in a row could be passed in each other's places.
    pub fn note_lock(&self, ino: u64, lock: &crate::backend::LockArgs) {
        let crate::backend::LockArgs {
            owner,
            start,
            end,
            typ,
            pid,
        } = *lock;
        let kind = match protocol::LockKind::from_raw(typ) {
            protocol::LockKind::Read => Some(locks::Kind::Read),
            protocol::LockKind::Write => Some(locks::Kind::Write),
            _ => None,
        };
        let req = locks::LockReq {
            owner: locks::Owner {
                session: locks::SessionId::new(0),
                owner,
            },
            kind,
            start,
            end,
            pid,
        };
        let _ = relock(&self.shared.session).held.set(ino, req);
    }

    /// A close dropped every lock `owner` held on `ino`.
    pub fn note_release(&self, ino: u64, owner: u64) {
        let owner = locks::Owner {
            session: locks::SessionId::new(0),
            owner,
        };
        relock(&self.shared.session).held.release_owner(ino, owner);
    }

    /// Send one call and wait for its reply, across reconnects.
    pub fn call(&self, req: Request, bulk: &[u8]) -> Result<Reply, LinkError> {
        self.call_or_redo(req, bulk, None)
    }

    /// `call`, with the calls to make in its place if a restarted server cannot make it
    /// again (`kept::Redo`): kept with it until the server says it is durable.
    pub(crate) fn call_or_redo(
        &self,
        req: Request,
        bulk: &[u8],
        redo: Option<Redo>,
    ) -> Result<Reply, LinkError> {
        self.room_for(&req, bulk.len());
        let (tx, rx) = channel();
        let id = self.shared.allocate(Sink::Chan(tx), false);
        self.send_call(id, req, bulk, redo)?;
        rx.recv().map_err(|_| LinkError::Closed)
    }

    /// A call whose id doubles as a lock wait id: the receiver hears when the server grants
    /// the wait (a `LockGranted` push), which may come before or after the reply.
    pub fn call_lock_wait(&self, req: Request) -> Result<(Reply, u64, WaitOutcome), LinkError> {
        let (tx, rx) = channel();
        let id = self.shared.allocate(Sink::Chan(tx), false);
        let (gtx, grx) = channel();
        let wait = Wait {
            tx: gtx,
            req: req.clone(),
        };
        relock(&self.shared.session).waits.insert(id, wait);
        match self.call_as(id, rx, req, &[]) {
            Ok(reply) => Ok((reply, id, grx)),
            Err(e) => {
                self.forget_wait(id);
                Err(e)
            }
        }
    }

    /// Send invalidation pushes from the server to `sink` (the first sink given).
    pub fn on_invalidate(&self, sink: Sender<crate::backend::Invalidate>) {
        let _ = self.shared.invalidations.set(sink);
    }

    /// Give layout recalls from the server (direct mode) to `sink` (the first sink given).
    /// It is called on the link's reader thread as each recall comes, before any reply the
    /// server sent after it is handed out: it must note the recall and pass it on at once
    /// (answered there, a recall's commit would wait for the reader for ever).
    pub fn on_recall(&self, sink: impl Fn(Recall) + Send + Sync + 'static) {
        let _ = self.shared.recalls.set(Box::new(sink));
    }

    /// Make `req` first on every new session and after every server restart, before
    /// anything else goes out (the first `req` given; the caller makes it on this session).
    pub fn on_new_session(&self, req: Request) {
        let _ = self.shared.preface.set(req);
    }

    /// The lock wait `id` is over (granted, refused or cancelled): stop listening for it.
    pub fn forget_wait(&self, id: u64) {
        relock(&self.shared.session).waits.remove(&id);
    }

    fn call_as(
        &self,
        id: u64,
        rx: Receiver<Reply>,
        req: Request,
        bulk: &[u8],
    ) -> Result<Reply, LinkError> {
        self.send_call(id, req, bulk, None)?;
        rx.recv().map_err(|_| LinkError::Closed)
    }

    /// Send a call nobody waits for: `done` gets its reply (on the link's reader thread: it
    /// must be quick), or EIO if the link closes first — or, for a `bound` call, if this
    /// mount's locks are lost before it got its reply (it is not sent again then).
    pub fn call_async(
        &self,
        req: Request,
        bulk: &[u8],
        done: Box<dyn FnOnce(Reply) + Send>,
        bound: bool,
    ) -> Result<(), LinkError> {
        self.room_for(&req, bulk.len());
        let id = self.shared.allocate(Sink::Callback(done), bound);
        self.send_call(id, req, bulk, None)
    }

    /// Write call `id` (allocated, pending) to the connection, or leave it pending for the
    /// recovery to send.
    fn send_call(
        &self,
        id: u64,
        req: Request,
        bulk: &[u8],
        redo: Option<Redo>,
    ) -> Result<(), LinkError> {
        let shared = &self.shared;
        if shared.closed() {
            if let Some(p) = shared.take(id) {
                p.fail();
            }
            return Err(LinkError::Closed);
        }
        let keep = req.mutates().then(|| req.clone());
        // Which files this mount holds open, and as whom, for reopening on a new session:
        // noted by the reader as the reply arrives.
        let opens = OpenChange::of(&req);
        // Made for the FUSE request this thread serves, if any; otherwise anonymous.
        let msg = match crate::caller::current() {
            Some(cred) => ClientMsg::CallAs { id, req, cred },
            None => ClientMsg::Call { id, req },
        };
        let frame = encode_frame_head(&msg, bulk.len()).map(|mut f| {
            f.extend_from_slice(bulk);
            Arc::new(f)
        });
        let Ok(frame) = frame else {
            shared.take(id);
            return Err(LinkError::Encode);
        };
        {
            // Written under the wire's lock: a reconnect either finds the frame pending
            // (and sends it) or runs before this, and this goes out on the new socket.
            let mut w = relock(&shared.wire);
            let bound = match relock(&shared.calls).pending.get_mut(&id) {
                Some(p) => {
                    p.frame = Some(frame.clone());
                    p.opens = opens;
                    p.bound
                }
                None => return Err(LinkError::Closed),
            };
            if let Some(req) = &keep {
                relock(&shared.kept).keep(id, req, &frame, (bound, redo));
            }
            shared.write_or_break(&mut w, &frame);
        }
        if id.is_multiple_of(ACK_EVERY) {
            shared.send_control(&ClientMsg::Ack {
                below: shared.acked_below(),
            });
        }
        Ok(())
    }

    /// Unmounting: tell the server (it ends the session at once), close, and fail any call
    /// still waiting.
    pub fn close(&self) {
        let shared = &self.shared;
        if shared.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        shared.send_control(&ClientMsg::Goodbye);
        shared.mark_broken(&mut relock(&shared.wire));
        let left = std::mem::take(&mut relock(&shared.calls).pending);
        left.into_values().for_each(Pending::fail);
        relock(&shared.session).waits.clear();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

/// Start the thread that keeps the session's lease alive (three heartbeats a lease), each
/// with an acknowledgement of the replies received. The server answers each: a mount with
/// several servers that hears nothing from its server for a whole lease takes it for gone
/// (paused, cut off, fenced) and moves to the next, where a standby may have taken over.
fn spawn_heartbeat(shared: &Arc<Shared>) -> Result<(), DialError> {
    let weak = Arc::downgrade(shared);
    thread::Builder::new()
        .name("rwxfs-heartbeat".into())
        .spawn(move || loop {
            let every = {
                let Some(s) = weak.upgrade() else { return };
                let lease = relock(&s.session).lease_secs;
                Duration::from_secs((lease / 3).max(1))
            };
            thread::sleep(every);
            let Some(s) = weak.upgrade() else { return };
            if s.closed() {
                return;
            }
            let lease = Duration::from_secs(relock(&s.session).lease_secs.max(1));
            if s.hello.addrs.len() > 1 && s.silent_for() > lease {
                let mut w = relock(&s.wire);
                if w.stream.is_some() {
                    tracing::warn!(
                        "the server at {} has been silent for {:?}: trying the others",
                        s.hello.addr(),
                        s.silent_for()
                    );
                    s.mark_broken(&mut w);
                }
                continue;
            }
            s.send_control(&ClientMsg::Heartbeat);
            s.send_control(&ClientMsg::Ack {
                below: s.acked_below(),
            });
        })
        .map(|_| ())
        .map_err(DialError::Thread)
}
