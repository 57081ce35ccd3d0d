//! The client's connection to the server, kept up across failures.
//!
//! Many calls are in flight at once: each caller sends its frame and waits on its own channel,
//! and a reader thread routes replies by call id. Every call stays in `pending`, with its
//! frame, until its reply arrives. When the connection breaks, callers keep waiting while a
//! reconnect thread dials again with backoff, resumes the session (`Resume`), and sends every
//! pending frame again in id order; the server answers a repeat of a call that changes the
//! volume from its reply cache, so it takes effect once. If the server no longer knows the
//! session (the lease ran out), the files this mount holds open are opened again before the
//! pending calls go out, and its locks are lost. If the server restarted and kept the session
//! (its state log), the mount reclaims the locks it holds within the server's grace period.
//! Either way, lock waits the server forgot are sent again.
//!
//! Calls that changed the volume are kept (`kept`) until the server says they are durable.
//! After a restart that kept the session, they go out first, in order, before the locks are
//! reclaimed and before anything else: the server runs again only those the crash lost, and
//! holds every other session's calls until each restored session has done so. At most
//! `KEPT_BYTES` are kept: past it, new calls that change the volume wait for a commit (and
//! ask for one).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, encode_frame_head, read_frame};
use protocol::{ClientMsg, Push, Request, Response, ServerMsg, PROTOCOL_VERSION};

use crate::kept::Kept;
use crate::transport::Stream;

/// A reply: the response or an errno, and the bulk bytes that came with it.
pub type Reply = (Result<Response, i32>, Vec<u8>);

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkError {
    /// The link is closed (unmounting) or the server refused to take the mount back.
    Closed,
    /// The request could not be encoded.
    Encode,
}

/// Acknowledge replies to the server after this many calls (and with every heartbeat).
const ACK_EVERY: u64 = 512;
/// Most bytes of calls kept until the server makes them durable (the write-behind budget).
pub const KEPT_BYTES: usize = 32 << 20;
/// Calls sent again to a restarted server before their replies are read.
const REPLAY_WINDOW: usize = 32;
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where a queued lock wait hears how it ended: granted, or an errno.
pub type WaitOutcome = std::sync::mpsc::Receiver<Result<(), i32>>;

/// A lock wait the server queued: told its outcome (granted, or an errno if the wait had
/// to be sent again and failed).
struct Wait {
    tx: Sender<Result<(), i32>>,
    req: Request,
}

/// Where a call's reply goes: a caller waiting on a channel, or a callback (a call nobody
/// waits for, such as a write-behind write).
enum Sink {
    Chan(Sender<Reply>),
    Callback(Box<dyn FnOnce(Reply) + Send>),
}

impl Sink {
    fn deliver(self, reply: Reply) {
        match self {
            Sink::Chan(tx) => {
                let _ = tx.send(reply);
            }
            Sink::Callback(f) => f(reply),
        }
    }
}

struct Pending {
    tx: Sink,
    /// Fails instead of being sent again if the session's locks are lost meanwhile.
    bound: bool,
    /// `None` between the id's allocation and the frame's first write.
    frame: Option<Arc<Vec<u8>>>,
}

/// The socket calls are written to, and which connection it is.
struct Writer {
    stream: Option<Stream>,
    epoch: u64,
}

struct Hello {
    addr: String,
    node_id: String,
    mount_id: u64,
    read_only: bool,
    /// The export's shared secret, proven on every (re)connection.
    token: Option<Vec<u8>>,
    /// TLS, if the server speaks it.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// How a mount connects: its identity, what it asks for, and how it waits.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    pub node_id: String,
    pub read_only: bool,
    pub token: Option<Vec<u8>>,
    /// Refuse at once instead of waiting when the server says the mount must wait.
    pub no_wait: bool,
    /// TLS (`transport::client_config`), if the server speaks it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

struct Inner {
    hello: Hello,
    writer: Mutex<Writer>,
    pending: Mutex<BTreeMap<u64, Pending>>,
    next_id: AtomicU64,
    session: AtomicU64,
    /// The session's secret, issued by the server with it: needed to resume it.
    secret: Mutex<Vec<u8>>,
    lease_secs: AtomicU64,
    /// Set when the connection breaks; the reconnect thread waits on `broken_cv`.
    broken: Mutex<bool>,
    broken_cv: Condvar,
    closed: AtomicBool,
    /// Files this mount holds open (inode → opens), to open again on a new session.
    opens: Mutex<HashMap<u64, u32>>,
    /// Times the server had forgotten the session (its lease ran out, or the server
    /// restarted): each time, every lock this mount held was lost.
    sessions_lost: AtomicU64,
    /// Blocked lock requests, by wait id (their call id): told when the server grants them.
    grants: Mutex<HashMap<u64, Wait>>,
    /// The locks this mount holds, as the server granted them: reclaimed after a restart.
    held: Mutex<locks::LockTable>,
    /// The server's start this connection is to (`Welcome::boot`).
    boot: AtomicU64,
    /// Server restarts seen: each may have lost writes not yet fsynced.
    restarts: AtomicU64,
    /// Where invalidation pushes go.
    invalidations: Mutex<Option<Sender<crate::backend::Invalidate>>>,
    /// Calls that changed the volume, until the server says they are durable.
    kept: Mutex<Kept>,
    /// Signalled when kept calls are forgotten (room for more).
    kept_cv: Condvar,
}

pub struct Link {
    inner: Arc<Inner>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn send_msg(stream: &mut Stream, msg: &ClientMsg) -> Result<(), String> {
    stream
        .write_all(&encode_frame(msg, &[]).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}

/// The next handshake message from the server (waiting at most `timeout`, or forever).
fn recv_msg(stream: &mut Stream, timeout: Option<Duration>) -> Result<ServerMsg, String> {
    stream.set_read_timeout(timeout);
    let body = read_frame(stream).map_err(|e| format!("no answer from the server: {e}"))?;
    stream.set_read_timeout(None);
    decode_body::<ServerMsg>(&body)
        .map(|(m, _)| m)
        .map_err(|e| e.to_string())
}

/// Answer a challenge, if that is what `msg` is; returns the message after it. With a
/// token, the server must first prove it holds it too (over `my_nonce`, the client's nonce
/// in its first message): a server that does not is refused before the client proves
/// anything.
fn answer_challenge(
    stream: &mut Stream,
    msg: ServerMsg,
    token: Option<&[u8]>,
    my_nonce: &[u8],
    node_id: &str,
    mount_id: u64,
) -> Result<ServerMsg, String> {
    let ServerMsg::Challenge { nonce, mac } = msg else {
        if token.is_some() && !matches!(msg, ServerMsg::Refused { .. }) {
            return Err("refusing the server: it did not prove it holds the token \
                 (it has none, or it is not the server it claims to be)"
                .into());
        }
        return Ok(msg);
    };
    let Some(token) = token else {
        return Err(
            "the server requires a token: give the export's token file (--token-file)".into(),
        );
    };
    let binding = stream.binding()?;
    if !protocol::auth::verify_server(token, my_nonce, &nonce, &binding, &mac) {
        return Err("refusing the server: its proof of the token is wrong \
             (a different token, or not the server it claims to be)"
            .into());
    }
    send_msg(
        stream,
        &ClientMsg::Proof {
            mac: protocol::auth::proof(token, &nonce, node_id, mount_id, &binding),
        },
    )?;
    recv_msg(stream, Some(Duration::from_secs(10)))
}

/// What a greeting brings back: the stream, the session, its lease, the server's start, and
/// the session's secret if the session is new (empty if resumed).
type Greeted = (Stream, u64, u32, u64, Vec<u8>);

/// Dial and greet (resuming `resume`, a session and its secret); returns the stream, the
/// server's session and lease. While the server says the mount must wait, `pending` hears
/// why (once) and the wait goes on, unless `no_wait`.
fn dial(
    h: &Hello,
    resume: Option<(u64, Vec<u8>)>,
    no_wait: bool,
    pending: &dyn Fn(&str),
) -> Result<Greeted, String> {
    let addr = &h.addr;
    let mut stream = Stream::connect(addr, h.tls.as_ref())?;
    let nonce = protocol::auth::random_bytes(protocol::auth::NONCE_LEN)?;
    let hello = match resume {
        None => ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            node_id: h.node_id.clone(),
            mount_id: h.mount_id,
            read_only: h.read_only,
            nonce: nonce.clone(),
        },
        Some((session, secret)) => ClientMsg::Resume {
            version: PROTOCOL_VERSION,
            node_id: h.node_id.clone(),
            mount_id: h.mount_id,
            read_only: h.read_only,
            session,
            secret,
            nonce: nonce.clone(),
        },
    };
    send_msg(&mut stream, &hello).map_err(|e| format!("{addr}: {e}"))?;
    let first = recv_msg(&mut stream, Some(Duration::from_secs(10))).map_err(|e| {
        if h.tls.is_none() && e.contains("exceeds") {
            format!(
                "{addr}: the server does not answer in plain rwxfs \
                 (does it use TLS? then give --tls-ca)"
            )
        } else {
            format!("{addr}: {e}")
        }
    })?;
    let mut msg = answer_challenge(
        &mut stream,
        first,
        h.token.as_deref(),
        &nonce,
        &h.node_id,
        h.mount_id,
    )?;
    loop {
        match msg {
            ServerMsg::Welcome {
                session,
                lease_secs,
                boot,
                secret,
                ..
            } => return Ok((stream, session, lease_secs, boot, secret)),
            ServerMsg::Refused { reason } => {
                return Err(format!("the server refused the mount: {reason}"))
            }
            ServerMsg::Pending { reason } if no_wait => {
                return Err(format!(
                    "the server refused the mount (--no-wait): {reason}"
                ))
            }
            ServerMsg::Pending { reason } => {
                pending(&reason);
                msg = recv_msg(&mut stream, None).map_err(|e| format!("{addr}: {e}"))?;
            }
            other => return Err(format!("{addr}: unexpected answer to hello: {other:?}")),
        }
    }
}

/// `rwxfs status`: the server's sessions.
pub fn query_status(
    addr: &str,
    token: Option<&[u8]>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Vec<protocol::SessionStatus>, String> {
    let mut stream = Stream::connect(addr, tls)?;
    let nonce = protocol::auth::random_bytes(protocol::auth::NONCE_LEN)?;
    send_msg(
        &mut stream,
        &ClientMsg::Status {
            version: PROTOCOL_VERSION,
            nonce: nonce.clone(),
        },
    )?;
    let first = recv_msg(&mut stream, Some(Duration::from_secs(10)))?;
    match answer_challenge(&mut stream, first, token, &nonce, "", 0)? {
        ServerMsg::Status(list) => Ok(list),
        ServerMsg::Refused { reason } => Err(format!("the server refused: {reason}")),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

impl Link {
    /// Connect and say hello; a refusal comes back as its reason. `pending` hears why the
    /// server makes the mount wait, if it does.
    pub fn connect(
        addr: &str,
        opts: &ConnectOptions,
        pending: &dyn Fn(&str),
    ) -> Result<Link, String> {
        let mount_id = std::process::id() as u64
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64);
        let hello = Hello {
            addr: addr.to_string(),
            node_id: opts.node_id.clone(),
            mount_id,
            read_only: opts.read_only,
            token: opts.token.clone(),
            tls: opts.tls.clone(),
        };
        let (stream, session, lease, boot, secret) = dial(&hello, None, opts.no_wait, pending)?;
        let reader = stream.try_clone().map_err(|e| e.to_string())?;
        let inner = Arc::new(Inner {
            hello,
            writer: Mutex::new(Writer {
                stream: Some(stream),
                epoch: 1,
            }),
            pending: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            session: AtomicU64::new(session),
            secret: Mutex::new(secret),
            lease_secs: AtomicU64::new(lease as u64),
            broken: Mutex::new(false),
            broken_cv: Condvar::new(),
            closed: AtomicBool::new(false),
            opens: Mutex::new(HashMap::new()),
            sessions_lost: AtomicU64::new(0),
            grants: Mutex::new(HashMap::new()),
            held: Mutex::new(locks::LockTable::default()),
            boot: AtomicU64::new(boot),
            restarts: AtomicU64::new(0),
            invalidations: Mutex::new(None),
            kept: Mutex::new(Kept::default()),
            kept_cv: Condvar::new(),
        });
        spawn_reader(&inner, reader, 1)?;
        let weak = Arc::downgrade(&inner);
        thread::Builder::new()
            .name("rwxfs-reconnect".into())
            .spawn(move || reconnect_loop(weak))
            .map_err(|e| e.to_string())?;
        let weak = Arc::downgrade(&inner);
        thread::Builder::new()
            .name("rwxfs-heartbeat".into())
            .spawn(move || loop {
                let every = {
                    let Some(i) = weak.upgrade() else { return };
                    Duration::from_secs((i.lease_secs.load(Ordering::Relaxed) / 3).max(1))
                };
                thread::sleep(every);
                let Some(i) = weak.upgrade() else { return };
                if i.closed.load(Ordering::Relaxed) {
                    return;
                }
                i.send_control(&ClientMsg::Heartbeat);
                i.send_control(&ClientMsg::Ack {
                    below: i.acked_below(),
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(Link { inner })
    }

    /// Times the server forgot this mount's session (and with it its locks).
    pub fn sessions_lost(&self) -> u64 {
        self.inner.sessions_lost.load(Ordering::Relaxed)
    }

    /// Times the server restarted under this mount.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::SeqCst)
    }

    /// True (once) if a server restart lost changes this mount made to `ino` (with `names`,
    /// or to the volume's names) and nothing could bring them back.
    pub fn take_lost(&self, ino: u64, names: bool) -> bool {
        relock(&self.inner.kept).take_lost(ino, names)
    }

    /// Calls kept for a replay, and their bytes.
    pub fn kept(&self) -> (usize, usize) {
        let k = relock(&self.inner.kept);
        (k.len(), k.bytes())
    }

    /// Before a call that changes the volume: wait while the kept calls fill the budget,
    /// asking the server for a commit (which makes them durable).
    fn room_for(&self, req: &Request, len: usize) {
        if !req.mutates() {
            return;
        }
        let inner = &self.inner;
        let mut k = relock(&inner.kept);
        while k.bytes() > 0 && k.bytes() + len > KEPT_BYTES && !inner.closed.load(Ordering::Relaxed)
        {
            drop(k);
            let commit = Request::Fsync {
                ino: volume::layout::ROOT_INO,
            };
            let _ = self.call_async(commit, &[], Box::new(|_| {}), false);
            k = relock(&inner.kept);
            if k.bytes() > 0 && k.bytes() + len > KEPT_BYTES {
                k = inner
                    .kept_cv
                    .wait_timeout(k, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }

    /// The server granted (or, `typ` F_UNLCK, released) a lock: remember it for reclaiming.
    pub fn note_lock(&self, ino: u64, owner: u64, typ: i32, start: u64, end: u64, pid: u32) {
        let kind = match protocol::LockKind::from_raw(typ) {
            protocol::LockKind::Read => Some(locks::Kind::Read),
            protocol::LockKind::Write => Some(locks::Kind::Write),
            _ => None,
        };
        let req = locks::LockReq {
            owner: locks::Owner { session: 0, owner },
            kind,
            start,
            end,
            pid,
        };
        let _ = relock(&self.inner.held).set(ino, req);
    }

    /// A close dropped every lock `owner` held on `ino`.
    pub fn note_release(&self, ino: u64, owner: u64) {
        let owner = locks::Owner { session: 0, owner };
        relock(&self.inner.held).release_owner(ino, owner);
    }

    /// Send one call and wait for its reply, across reconnects.
    pub fn call(&self, req: Request, bulk: &[u8]) -> Result<Reply, LinkError> {
        self.room_for(&req, bulk.len());
        let (tx, rx) = channel();
        let id = self.inner.allocate(Sink::Chan(tx), false);
        self.call_as(id, rx, req, bulk)
    }

    /// A call whose id doubles as a lock wait id: the receiver hears when the server grants
    /// the wait (a `LockGranted` push), which may come before or after the reply.
    pub fn call_lock_wait(&self, req: Request) -> Result<(Reply, u64, WaitOutcome), LinkError> {
        let (tx, rx) = channel();
        let id = self.inner.allocate(Sink::Chan(tx), false);
        let (gtx, grx) = channel();
        relock(&self.inner.grants).insert(
            id,
            Wait {
                tx: gtx,
                req: req.clone(),
            },
        );
        match self.call_as(id, rx, req, &[]) {
            Ok(reply) => Ok((reply, id, grx)),
            Err(e) => {
                self.forget_wait(id);
                Err(e)
            }
        }
    }

    /// Send invalidation pushes from the server to `sink`.
    pub fn on_invalidate(&self, sink: Sender<crate::backend::Invalidate>) {
        *relock(&self.inner.invalidations) = Some(sink);
    }

    /// The lock wait `id` is over (granted, refused or cancelled): stop listening for it.
    pub fn forget_wait(&self, id: u64) {
        relock(&self.inner.grants).remove(&id);
    }

    fn call_as(
        &self,
        id: u64,
        rx: std::sync::mpsc::Receiver<Reply>,
        req: Request,
        bulk: &[u8],
    ) -> Result<Reply, LinkError> {
        let inner = &self.inner;
        // Which files this mount holds open, kept for reopening on a new session.
        let opens_change = match &req {
            Request::Open { .. } | Request::Create { .. } => Some(None),
            Request::Release { ino } => Some(Some(*ino)),
            _ => None,
        };
        self.send_call(id, req, bulk)?;
        let reply = rx.recv().map_err(|_| LinkError::Closed)?;
        if let (Some(change), Ok(r)) = (opens_change, &reply.0) {
            let mut o = relock(&inner.opens);
            match (change, r) {
                (None, Response::Attr(a)) => *o.entry(a.ino).or_insert(0) += 1,
                (Some(ino), _) => {
                    if let Some(n) = o.get_mut(&ino) {
                        *n -= 1;
                        if *n == 0 {
                            o.remove(&ino);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(reply)
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
        let id = self.inner.allocate(Sink::Callback(done), bound);
        self.send_call(id, req, bulk)
    }

    /// Write call `id` (allocated, pending) to the connection, or leave it pending for the
    /// reconnect to send.
    fn send_call(&self, id: u64, req: Request, bulk: &[u8]) -> Result<(), LinkError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            if let Some(p) = relock(&inner.pending).remove(&id) {
                p.tx.deliver((Err(libc::EIO), Vec::new()));
            }
            return Err(LinkError::Closed);
        }
        let keep = req.mutates().then(|| req.clone());
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
            relock(&inner.pending).remove(&id);
            return Err(LinkError::Encode);
        };
        {
            // Written under the writer's lock: a reconnect either finds the frame pending
            // (and sends it) or runs before this, and this goes out on the new socket.
            let mut w = relock(&inner.writer);
            match relock(&inner.pending).get_mut(&id) {
                Some(p) => p.frame = Some(frame.clone()),
                None => return Err(LinkError::Closed),
            }
            if let Some(req) = &keep {
                relock(&inner.kept).keep(id, req, &frame);
            }
            if let Some(s) = w.stream.as_mut() {
                if s.write_all(&frame).is_err() {
                    s.shutdown();
                    w.stream = None;
                    inner.mark_broken();
                }
            }
        }
        if id.is_multiple_of(ACK_EVERY) {
            inner.send_control(&ClientMsg::Ack {
                below: inner.acked_below(),
            });
        }
        Ok(())
    }

    /// Unmounting: tell the server (it ends the session at once), close, and fail any call
    /// still waiting.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        inner.send_control(&ClientMsg::Goodbye);
        {
            let mut w = relock(&inner.writer);
            if let Some(s) = w.stream.take() {
                s.shutdown();
            }
        }
        let left: Vec<Pending> = std::mem::take(&mut *relock(&inner.pending))
            .into_values()
            .collect();
        for p in left {
            p.tx.deliver((Err(libc::EIO), Vec::new()));
        }
        relock(&inner.grants).clear();
        inner.mark_broken();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// A new call id, pending from this moment: allocated under the pending map's lock, so
    /// `acked_below` never counts an id whose call has not been registered yet.
    fn allocate(&self, tx: Sink, bound: bool) -> u64 {
        let mut p = relock(&self.pending);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        p.insert(
            id,
            Pending {
                tx,
                frame: None,
                bound,
            },
        );
        id
    }

    fn invalidate(&self, i: crate::backend::Invalidate) {
        if let Some(tx) = relock(&self.invalidations).as_ref() {
            let _ = tx.send(i);
        }
    }

    fn mark_broken(&self) {
        *relock(&self.broken) = true;
        self.broken_cv.notify_all();
    }

    /// The lowest call id still waiting for its reply (or the next id if none). Ids are
    /// allocated under the same lock, so every id below this one has its reply.
    /// Calls kept for a replay count as unacknowledged: the server keeps their replies, so
    /// that a replay of one it made durable is answered, not run again.
    fn acked_below(&self) -> u64 {
        let p = relock(&self.pending);
        let below = p
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.next_id.load(Ordering::Relaxed));
        relock(&self.kept).first().map_or(below, |k| k.min(below))
    }

    /// The server says every call below `below` that reached it is durable.
    fn durable(&self, below: u64) {
        if relock(&self.kept).durable(below) {
            self.kept_cv.notify_all();
        }
    }

    /// A message that expects no reply, if connected.
    fn send_control(&self, msg: &ClientMsg) {
        let Ok(f) = encode_frame(msg, &[]) else {
            return;
        };
        let mut w = relock(&self.writer);
        if let Some(s) = w.stream.as_mut() {
            if s.write_all(&f).is_err() {
                s.shutdown();
                w.stream = None;
                self.mark_broken();
            }
        }
    }
}

fn spawn_reader(inner: &Arc<Inner>, stream: Stream, epoch: u64) -> Result<(), String> {
    let weak = Arc::downgrade(inner);
    thread::Builder::new()
        .name("rwxfs-reader".into())
        .spawn(move || reader_loop(stream, weak, epoch))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn reader_loop(stream: Stream, inner: std::sync::Weak<Inner>, epoch: u64) {
    // Buffered: a small reply (and often several) comes in one read from the socket.
    let mut stream = std::io::BufReader::with_capacity(64 * 1024, stream);
    let why = loop {
        let mut body = match read_frame(&mut stream) {
            Ok(b) => b,
            Err(e) => break format!("{e}"),
        };
        let (msg, bulk_start) = match decode_body::<ServerMsg>(&body) {
            Ok((m, bulk)) => (m, body.len() - bulk.len()),
            Err(e) => break format!("malformed message from the server: {e}"),
        };
        let Some(inner) = inner.upgrade() else { return };
        match msg {
            ServerMsg::Reply { id, result } => {
                relock(&inner.kept).answered(id, &result);
                let p = relock(&inner.pending).remove(&id);
                if let Some(p) = p {
                    // Read data is handed over in the frame's own buffer, not copied out.
                    body.drain(..bulk_start);
                    p.tx.deliver((result, body));
                }
            }
            ServerMsg::Push(Push::LockGranted { wait }) => {
                if let Some(w) = relock(&inner.grants).remove(&wait) {
                    let _ = w.tx.send(Ok(()));
                }
            }
            ServerMsg::Push(Push::InvalInode { ino }) => {
                inner.invalidate(crate::backend::Invalidate::Inode(ino))
            }
            ServerMsg::Push(Push::InvalEntry { parent, name }) => {
                inner.invalidate(crate::backend::Invalidate::Entry { parent, name })
            }
            ServerMsg::Push(Push::Durable { below }) => inner.durable(below),
            ServerMsg::Push(p) => tracing::debug!("push: {p:?}"),
            other => tracing::warn!("unexpected message: {other:?}"),
        }
    };
    let Some(inner) = inner.upgrade() else { return };
    if inner.closed.load(Ordering::Relaxed) {
        return;
    }
    let mut w = relock(&inner.writer);
    if w.epoch == epoch {
        tracing::warn!("connection to the server lost: {why}; reconnecting");
        if let Some(s) = w.stream.take() {
            s.shutdown();
        }
        inner.mark_broken();
    }
}

fn reconnect_loop(weak: std::sync::Weak<Inner>) {
    loop {
        // Wait until the connection breaks.
        {
            let Some(inner) = weak.upgrade() else { return };
            let mut b = relock(&inner.broken);
            while !*b {
                let (g, _) = inner
                    .broken_cv
                    .wait_timeout(b, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner());
                b = g;
                if inner.closed.load(Ordering::Relaxed) {
                    return;
                }
            }
            *b = false;
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Relaxed) {
                return;
            }
            match reestablish(&inner) {
                Ok(()) => break,
                Err(e) => {
                    tracing::info!("reconnect failed: {e}; next try in {backoff:?}");
                    drop(inner);
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Dial, resume (or start again and reopen what was open), reclaim locks after a server
/// restart, then send every pending call again.
fn reestablish(inner: &Arc<Inner>) -> Result<(), String> {
    let old = inner.session.load(Ordering::Relaxed);
    let lost_before = inner.sessions_lost.load(Ordering::Relaxed);
    let resume = (old, relock(&inner.secret).clone());
    let (mut stream, session, lease, boot, secret) =
        dial(&inner.hello, Some(resume), false, &|why| {
            tracing::warn!("reconnecting: pending: {why}")
        })?;
    if !secret.is_empty() {
        *relock(&inner.secret) = secret;
    }
    let restarted = boot != inner.boot.load(Ordering::Relaxed);
    if session != old {
        tracing::warn!(
            "the server no longer knew session {old} (lease over, or restarted without it): \
             new session {session}; reopening files; locks held before are lost"
        );
        reopen(inner, &mut stream)?;
        *relock(&inner.held) = locks::LockTable::default();
        inner.sessions_lost.fetch_add(1, Ordering::Relaxed);
        // Without the session, nothing can be sent again exactly once.
        relock(&inner.kept).forget_answered(restarted);
        inner.kept_cv.notify_all();
    } else if restarted {
        // The open files the restart forgot (before any replayed unlink could free one;
        // the server opens those a replay brings back then), what the crash lost, the locks.
        reopen(inner, &mut stream)?;
        replay(inner, &mut stream)?;
        reclaim(inner, &mut stream)?;
    }
    if inner.sessions_lost.load(Ordering::Relaxed) != lost_before {
        // Writes made under locks now lost must not reach the server unprotected.
        let bound: Vec<Pending> = {
            let mut pending = relock(&inner.pending);
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.bound)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        // Delivered outside the lock: a callback may call the link again.
        for p in bound {
            p.tx.deliver((Err(libc::EIO), Vec::new()));
        }
    }
    if restarted {
        // Counted before any call is sent again: a reply from the new server must never be
        // taken for one from the old (an fsync answered by it vouches only for what it has).
        inner.boot.store(boot, Ordering::Relaxed);
        inner.restarts.fetch_add(1, Ordering::SeqCst);
    }
    let reader = stream.try_clone().map_err(|e| e.to_string())?;
    let mut w = relock(&inner.writer);
    let mut frames: Vec<Arc<Vec<u8>>> = relock(&inner.pending)
        .values()
        .filter_map(|p| p.frame.clone())
        .collect();
    if restarted || session != old {
        // The server forgot the lock waits it had queued: ask again, under the same ids.
        frames.extend(requeue_waits(inner));
    }
    for f in &frames {
        stream.write_all(f).map_err(|e| e.to_string())?;
    }
    w.epoch += 1;
    w.stream = Some(stream);
    spawn_reader(inner, reader, w.epoch)?;
    inner.session.store(session, Ordering::Relaxed);
    inner.lease_secs.store(lease as u64, Ordering::Relaxed);
    tracing::info!(
        session,
        resent = frames.len(),
        restarted,
        "reconnected to {}",
        inner.hello.addr
    );
    Ok(())
}

/// One call on `stream` before anything else goes out on it; its reply.
fn call_on(
    inner: &Inner,
    stream: &mut Stream,
    req: Request,
) -> Result<Result<Response, i32>, String> {
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let f = encode_frame(&ClientMsg::Call { id, req }, &[]).map_err(|e| e.to_string())?;
    stream.write_all(&f).map_err(|e| e.to_string())?;
    loop {
        let body = read_frame(stream).map_err(|e| e.to_string())?;
        let (msg, _) = decode_body::<ServerMsg>(&body).map_err(|e| e.to_string())?;
        match msg {
            ServerMsg::Reply { id: got, result } if got == id => return Ok(result),
            ServerMsg::Push(Push::Durable { below }) => inner.durable(below),
            _ => {}
        }
    }
}

/// After a restart that kept the session: send every kept call answered before again, in
/// order, a window at a time, before anything else goes out (calls still waiting for their
/// reply follow with the rest, once the locks are reclaimed). The server answers those it
/// had made durable from its session log and runs the others again. A call that succeeded
/// before and fails now is lost (its next fsync or close says so). A
/// commit then makes the replays durable.
fn replay(inner: &Arc<Inner>, stream: &mut Stream) -> Result<(), String> {
    if relock(&inner.kept).is_empty() {
        return Ok(());
    }
    let runs = relock(&inner.kept).runs(REPLAY_WINDOW);
    if runs.is_empty() {
        return Ok(());
    }
    let total: usize = runs.iter().map(|r| r.len()).sum();
    // The grace period may hold our calls while others replay; wait as long as it lasts.
    stream.set_read_timeout(Some(Duration::from_secs(120)));
    let mut failed = 0usize;
    for window in &runs {
        let mut waiting: std::collections::HashSet<u64> =
            window.iter().map(|(id, _)| *id).collect();
        for (_, f) in window {
            stream.write_all(f).map_err(|e| e.to_string())?;
        }
        while !waiting.is_empty() {
            let body = read_frame(stream).map_err(|e| e.to_string())?;
            let (msg, bulk) = decode_body::<ServerMsg>(&body).map_err(|e| e.to_string())?;
            match msg {
                ServerMsg::Reply { id, result } if waiting.remove(&id) => {
                    let pending = relock(&inner.pending).remove(&id);
                    let mut k = relock(&inner.kept);
                    if let (Err(errno), None) = (&result, &pending) {
                        tracing::warn!("call {id} could not be made again: errno {errno}");
                        k.failed(id);
                        failed += 1;
                    } else {
                        k.answered(id, &result);
                    }
                    drop(k);
                    if let Some(p) = pending {
                        p.tx.deliver((result, bulk.to_vec()));
                    }
                }
                ServerMsg::Push(Push::Durable { below }) => inner.durable(below),
                _ => {}
            }
        }
    }
    let commit = call_on(
        inner,
        stream,
        Request::Fsync {
            ino: volume::layout::ROOT_INO,
        },
    );
    stream.set_read_timeout(None);
    commit?.map_err(|e| format!("commit after the replay: errno {e}"))?;
    tracing::info!("server restarted: {total} calls sent again, {failed} lost");
    Ok(())
}

/// After a server restart that kept the session: take again every lock this mount holds.
/// If any is refused (the grace period was over), the mount's locks count as lost: files
/// locked before answer EIO, as after a lost session.
fn reclaim(inner: &Arc<Inner>, stream: &mut Stream) -> Result<(), String> {
    let held = relock(&inner.held).all_held();
    // The grace period may hold our calls while others reclaim; wait as long as it lasts.
    stream.set_read_timeout(Some(Duration::from_secs(120)));
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
        if let Err(errno) = call_on(inner, stream, req)? {
            tracing::warn!("lock on file {ino} could not be reclaimed: errno {errno}");
            refused += 1;
        }
    }
    let done = call_on(inner, stream, Request::ReclaimDone);
    stream.set_read_timeout(None);
    done?.map_err(|e| format!("reclaim not confirmed: errno {e}"))?;
    if refused > 0 {
        *relock(&inner.held) = locks::LockTable::default();
        inner.sessions_lost.fetch_add(1, Ordering::Relaxed);
    } else {
        tracing::info!("server restarted: {} locks reclaimed", held.len());
    }
    Ok(())
}

/// Frames asking again for every queued lock wait; their replies are routed by a thread per
/// wait: granted at once, queued again (a push follows), or failed.
fn requeue_waits(inner: &Arc<Inner>) -> Vec<Arc<Vec<u8>>> {
    let waits: Vec<(u64, Request)> = relock(&inner.grants)
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
        relock(&inner.pending).insert(
            id,
            Pending {
                tx: Sink::Chan(tx),
                bound: false,
                frame: Some(f.clone()),
            },
        );
        let weak = Arc::downgrade(inner);
        let _ = thread::Builder::new()
            .name("rwxfs-lock-requeue".into())
            .spawn(move || {
                let Ok((result, _)) = rx.recv() else { return };
                let Some(inner) = weak.upgrade() else { return };
                let outcome = match result {
                    Ok(Response::LockQueued) => return,
                    Ok(_) => Ok(()),
                    Err(errno) => Err(errno),
                };
                let w = relock(&inner.grants).remove(&id);
                if let Some(w) = w {
                    let _ = w.tx.send(outcome);
                }
            });
        frames.push(f);
    }
    frames
}

/// Open again, on a new session, every file this mount holds open, one call at a time on the
/// new connection before anything else goes out on it.
fn reopen(inner: &Arc<Inner>, stream: &mut Stream) -> Result<(), String> {
    let opens: Vec<(u64, u32)> = relock(&inner.opens).iter().map(|(i, n)| (*i, *n)).collect();
    stream.set_read_timeout(Some(Duration::from_secs(10)));
    for (ino, n) in opens {
        for _ in 0..n {
            let req = Request::Open {
                ino,
                flags: libc::O_RDONLY,
            };
            if let Err(errno) = call_on(inner, stream, req)? {
                tracing::info!("file {ino} not opened again (yet): errno {errno}");
            }
        }
    }
    stream.set_read_timeout(None);
    Ok(())
}
