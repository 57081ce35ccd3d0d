//! One client connection, frames only: `Hello` (a new session) or `Resume` (the session
//! continues), then frames until the connection closes, falls silent past the lease, or the
//! server shuts down (`Handler::run`). A malformed frame closes that one connection; everyone
//! else is unaffected.
//!
//! Each call goes through the call pipeline (`call`): quick ones on the connection's task,
//! the rest on the blocking pool, tracked for shutdown. A call waits for its permit to run
//! (the connection's limit of calls in flight) on a task of its own, so the connection's
//! frames go on being read while its calls in flight wait (on recalls, say). Its reply frame goes to the session's
//! current writer, so calls complete in any order and a reply outlives the connection its
//! call came on. Replies to calls that change the volume are kept in the session's reply
//! cache until the client acknowledges them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use protocol::codec::{decode_body, encode_frame};
use protocol::{ClientMsg, Request, ServerMsg, MAX_FRAME, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::call::{self, Dedupe};
use crate::handshake::{Frames, Reader, Writer};
use crate::listener::Shared;
use crate::permissions::Caller;
use crate::session::Session;
use volume::Ino;

/// How a connection ended, which decides what becomes of its session.
enum End {
    /// The client unmounted: end the session now.
    Final,
    /// The server is stopping: end the session here, but keep it in the state log so its
    /// client can resume it (and reclaim its locks) when the server is back.
    Shutdown,
    /// Lost (closed, broken, malformed, silent): the session waits out its lease.
    Lost(String),
    /// Another connection resumed the session.
    Replaced,
}

pub(crate) async fn handle(
    stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    stream.set_nodelay(true).ok();
    if !owns(&shared) {
        return Err("this server no longer owns the volume: connection dropped".into());
    }
    let Ok(handshaking) = shared.handshakes.clone().try_acquire_owned() else {
        let why = format!(
            "too many connections in their handshake (the server's limit is {})",
            shared.cfg.max_handshakes
        );
        tracing::warn!(%addr, "refused: {why}");
        crate::handshake::refuse_early(stream, why.clone()).await;
        return Err(why);
    };
    let (rd, mut wr, binding) = open(stream, &shared).await?;
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    let mut frames = FramedRead::new(rd, codec);
    let Some(admitted) =
        crate::handshake::admit(&shared, addr, &binding, &shutdown, &mut frames, &mut wr).await?
    else {
        // A status query, answered.
        return Ok(());
    };
    drop(handshaking);
    let session = admitted.session;
    if !owns(&shared) {
        return Err("this server no longer owns the volume: connection dropped".into());
    }
    welcome(&shared, &session, admitted.new, &mut wr).await?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(2 * shared.cfg.max_in_flight);
    let writer = tokio::spawn(write_replies(wr, rx, shared.cfg.owner_gate.clone()));
    let replaced = CancellationToken::new();
    let epoch = session.attach(tx.clone(), replaced.clone(), addr);
    catch_up(&session, tx).await;
    let mut handler = Handler {
        limit: Arc::new(Semaphore::new(shared.cfg.max_in_flight)),
        layouts: Arc::new(Semaphore::new(shared.cfg.max_in_flight)),
        queued: Arc::new(Semaphore::new(QUEUED_KIB as usize)),
        lease: shared.cfg.lease,
        shared,
        session,
        frames,
        shutdown,
        replaced,
    };
    let end = handler.run().await;
    handler.close(end, addr, epoch, writer).await
}

/// KiB of calls one connection may have read and waiting for a permit to run (past it, its
/// reader waits for room): above what a mount has on its way at once (its write-behind's
/// 32 MiB, a call or two per thread), so its calls waiting on recalls do not stop its
/// frames being read, and what one connection holds stays bounded.
const QUEUED_KIB: u32 = 64 << 10;

/// A waiting call's share of `QUEUED_KIB`: its bulk bytes in KiB, and one for the call.
fn weight(bulk: &[u8]) -> u32 {
    u32::try_from(bulk.len() / 1024 + 1).map_or(QUEUED_KIB, |w| w.min(QUEUED_KIB))
}

/// True while this server owns its volume (always, unless it holds it by a lease).
fn owns(shared: &Shared) -> bool {
    shared.cfg.owner_gate.as_ref().is_none_or(|g| g.is_open())
}

/// The connection's byte streams, through TLS when the server uses it, and the TLS
/// session's binding for the token proof (empty without TLS).
async fn open(stream: TcpStream, shared: &Shared) -> Result<(Reader, Writer, Vec<u8>), String> {
    let Some(acceptor) = &shared.cfg.tls else {
        let (r, w) = stream.into_split();
        return Ok((Box::new(r), Box::new(w), Vec::new()));
    };
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let binding = crate::tls::binding(tls.get_ref().1)?;
    let (r, w) = tokio::io::split(tls);
    Ok((Box::new(r), Box::new(w), binding))
}

async fn welcome(
    shared: &Shared,
    session: &Session,
    new: bool,
    wr: &mut Writer,
) -> Result<(), String> {
    let welcome = ServerMsg::Welcome {
        version: PROTOCOL_VERSION,
        session: session.id.get(),
        lease_secs: shared.cfg.lease.as_secs() as u32,
        boot: shared.boot,
        secret: match new {
            true => session.info.secret.as_bytes().to_vec(),
            false => Vec::new(),
        },
        clean_restart: shared.clean_start,
    };
    wr.write_all(&encode_frame(&welcome, &[]).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())
}

/// Replies go through one writer task so calls complete in any order; those that queued up
/// meanwhile go out in one write. The queue is bounded: a client that stops reading its
/// replies has its connection cut (`deliver`) rather than hold the threads that answer it.
async fn write_replies(
    mut wr: Writer,
    mut rx: mpsc::Receiver<Vec<u8>>,
    gate: Option<Arc<crate::OwnerGate>>,
) {
    let mut batch: Vec<u8> = Vec::new();
    while let Some(frame) = rx.recv().await {
        // A server that lost its volume (its lease over) never answers again.
        if gate.as_ref().is_some_and(|g| !g.is_open()) {
            tracing::warn!("no longer the volume's owner: connection closed unanswered");
            break;
        }
        if rx.is_empty() {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
            continue;
        }
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(f) => batch.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        if wr.write_all(&batch).await.is_err() {
            break;
        }
    }
}

/// What a (re)attached client may have missed: lock grants pushed while it was away (or
/// while its connection was failing), and which of its calls are durable.
async fn catch_up(session: &Session, tx: mpsc::Sender<Vec<u8>>) {
    for wait in session.recent_grants() {
        let push = ServerMsg::Push(protocol::Push::LockGranted { wait });
        if let Ok(frame) = encode_frame(&push, &[]) {
            let _ = tx.send(frame).await;
        }
    }
    if let Some(frame) = crate::durability::notice(session) {
        let _ = tx.send(frame).await;
    }
}

/// One attached connection's frames, read until it ends; each call goes to the pipeline
/// (`call`), inline or on the blocking pool.
struct Handler {
    shared: Arc<Shared>,
    session: Arc<Session>,
    frames: Frames,
    shutdown: CancellationToken,
    /// Cancelled when another connection resumes the session (or this one is cut).
    replaced: CancellationToken,
    /// This connection's calls in flight (`max_in_flight`).
    limit: Arc<Semaphore>,
    /// Its layout calls in flight (`max_in_flight` more): apart, so that calls waiting for a
    /// recall, however many, never keep a holder from answering one.
    layouts: Arc<Semaphore>,
    /// Its calls read and waiting for one of those permits, by weight (`weight`).
    queued: Arc<Semaphore>,
    lease: Duration,
}

impl Handler {
    /// Read frames until the connection ends, the server stops, or the client falls silent
    /// past its lease.
    async fn run(&mut self) -> End {
        loop {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return End::Shutdown,
                _ = self.replaced.cancelled() => return End::Replaced,
                n = tokio::time::timeout(self.lease, self.frames.next()) => n,
            };
            let body = match next {
                Err(_) => return End::Lost(format!("silent past the lease of {:?}", self.lease)),
                Ok(None) => return End::Lost("closed".into()),
                Ok(Some(Err(e))) => return End::Lost(format!("bad frame: {e}")),
                Ok(Some(Ok(b))) => b,
            };
            self.session.heard();
            if let Some(end) = self.frame(body).await {
                return end;
            }
        }
    }

    /// One frame from the client; `Some` if it ends the connection.
    async fn frame(&mut self, body: bytes::BytesMut) -> Option<End> {
        let (msg, bulk_start) = match decode_body::<ClientMsg>(&body) {
            Ok((m, bulk)) => (m, body.len() - bulk.len()),
            Err(e) => return Some(End::Lost(format!("malformed message: {e}"))),
        };
        // Bulk bytes stay in the frame buffer: no copy on their way to the engine.
        let bulk = body.freeze().slice(bulk_start..);
        let (id, req, cred) = match msg {
            ClientMsg::Heartbeat => {
                // Answered (with the durability notice, which says no more than the last
                // one did), so a client hears that its server is alive and still its owner.
                if let (Some(tx), Some(frame)) = (
                    self.session.sender(),
                    crate::durability::notice(&self.session),
                ) {
                    let _ = tx.try_send(frame);
                }
                return None;
            }
            ClientMsg::Ack { below } => {
                self.ack(below);
                return None;
            }
            ClientMsg::Goodbye => return Some(End::Final),
            ClientMsg::Hello { .. }
            | ClientMsg::Resume { .. }
            | ClientMsg::Status { .. }
            | ClientMsg::Admin { .. }
            | ClientMsg::Proof { .. } => {
                return Some(End::Lost("handshake message after the handshake".into()))
            }
            ClientMsg::Call { id, req } => (id, req, None),
            ClientMsg::CallAs { id, req, cred } => (id, req, Some(cred)),
        };
        let caller = Caller::new(cred, &self.shared.cfg.export);
        self.call(id, req, caller, bulk).await
    }

    /// The client has the replies below `below`: they need not be kept.
    fn ack(&self, below: u64) {
        self.session
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ack(below);
        if let Some(log) = &self.shared.state {
            log.acked(self.session.id, below);
        }
    }

    /// A call: answered from the reply cache, run here (quick in-memory work, sparing two
    /// thread hand-offs), or run on the blocking pool, tracked for shutdown.
    async fn call(&mut self, id: u64, req: Request, caller: Caller, bulk: Bytes) -> Option<End> {
        let (shared, session) = (&self.shared, &self.session);
        match call::dedupe(session, id, &req) {
            Dedupe::Run => {}
            Dedupe::Running => return None,
            Dedupe::Reply(frame) => {
                if let Some(tx) = session.sender() {
                    queue(session, &tx, frame, self.lease).await;
                }
                return None;
            }
        }
        let meta = req.meta();
        let remembered = meta.remembered;
        let blocks = meta.blocks || crate::recalls::may_wait(shared, &req);
        // After a restart, calls wait until the restored sessions have sent theirs again.
        let held = shared.grace.holds(session.id) && !meta.recovery;
        // Calls that cannot block (their engine work in memory, page-cache writes included)
        // are answered on the connection's task, sparing two thread hand-offs.
        let req = match (blocks || held, req) {
            (true, req) => req,
            (false, req) => match call::answer_now(shared, session, &caller, id, req, &bulk) {
                call::Now::Answered(frame) => {
                    call::keep(session, id, remembered, &frame);
                    if let Some(tx) = session.sender() {
                        queue(session, &tx, frame, self.lease).await;
                    }
                    return None;
                }
                // It would wait for recalls: on the blocking pool after all.
                call::Now::Later(req) => req,
            },
        };
        // A recall's answer makes the holder's writes answered before it (which ask for
        // layouts), commits them and gives the layouts back: none of these calls waits for
        // a recall, and each has its own permits, apart from the calls that may.
        let answers_recalls = matches!(
            req,
            Request::LayoutGet { .. } | Request::LayoutCommit { .. } | Request::LayoutReturn { .. }
        );
        let lane = match answers_recalls {
            true => self.layouts.clone(),
            false => self.limit.clone(),
        };
        // The permit is waited for by the call's task, not by the reader: the frames after
        // it (heartbeats, the layout returns that end the recalls calls in flight wait on)
        // go on being read. What waits so is bounded apart (`QUEUED_KIB`).
        let Ok(queued) = self.queued.clone().acquire_many_owned(weight(&bulk)).await else {
            return Some(End::Shutdown);
        };
        let (shared, session) = (shared.clone(), session.clone());
        let tracker = shared.tracker.clone();
        let shutdown = self.shutdown.clone();
        tracker.clone().spawn(async move {
            let permit = tokio::select! {
                p = lane.acquire_owned() => p,
                _ = shutdown.cancelled() => return,
            };
            let Ok(permit) = permit else { return };
            drop(queued);
            // A share of the pool for all connections together: one cannot take all of it.
            // Not for layout calls: calls waiting for recalls may hold all of it.
            let pooled = match answers_recalls {
                true => None,
                false => match shared.blocking.clone().acquire_owned().await {
                    Ok(p) => Some(p),
                    Err(_) => return,
                },
            };
            // The engine is synchronous; the reply goes straight to the session's writer.
            tracker.spawn_blocking(move || {
                if held {
                    shared.grace.wait_out();
                }
                let frame = call::answer(&shared, &session, &caller, id, req, &bulk);
                call::keep(&session, id, remembered, &frame);
                if let Some(tx) = session.sender() {
                    deliver(&session, &tx, frame);
                }
                drop((permit, pooled));
            });
        });
        None
    }

    /// The connection ended: its queued replies go out (unless the client does not take
    /// them), and its session ends, or waits out its lease for the client to come back.
    async fn close(
        self,
        end: End,
        addr: SocketAddr,
        epoch: u64,
        mut writer: tokio::task::JoinHandle<()>,
    ) -> Result<(), String> {
        let (shared, session) = (self.shared, self.session);
        // Cancelled as if replaced, but nobody took the session over: it was cut (`deliver`).
        let end = match (end, session.detach(epoch)) {
            (End::Replaced, true) => End::Lost("it stopped reading its replies".into()),
            (end, _) => end,
        };
        if tokio::time::timeout(Duration::from_secs(5), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        match end {
            End::Final => end_session(&shared, &session, true).await,
            End::Shutdown => end_session(&shared, &session, false).await,
            End::Replaced => {}
            End::Lost(why) => {
                tracing::info!(%addr, session = session.id.get(), "connection lost ({why}); the session waits out its lease");
                let (lease, shutdown) = (shared.cfg.lease, self.shutdown);
                let tracker = shared.tracker.clone();
                tracker.spawn(expire_after(shared, session, epoch, lease, shutdown));
                return Err(why);
            }
        }
        Ok(())
    }
}

/// Hand a reply to the session's connection without waiting (from the blocking pool): if its
/// queue is full, its client stopped reading, and the connection is cut — the client
/// reconnects and gets its kept replies — instead of this thread waiting on it.
pub(crate) fn deliver(session: &Session, tx: &mpsc::Sender<Vec<u8>>, frame: Vec<u8>) {
    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(frame) {
        tracing::warn!(
            session = session.id.get(),
            "the client does not read its replies: its connection is cut"
        );
        session.cut();
    }
}

/// Queue a reply from the connection's own task, waiting at most `wait` for room; a queue
/// still full then is cut as in `deliver`.
async fn queue(session: &Session, tx: &mpsc::Sender<Vec<u8>>, frame: Vec<u8>, wait: Duration) {
    if let Err(mpsc::error::SendTimeoutError::Timeout(_)) = tx.send_timeout(frame, wait).await {
        tracing::warn!(
            session = session.id.get(),
            "the client does not read its replies: its connection is cut"
        );
        session.cut();
    }
}

/// End a detached session `wait` after its client was last heard (or now), unless its client
/// came back. At shutdown it ends at once, but stays in the state log.
pub(crate) async fn expire_after(
    shared: Arc<Shared>,
    session: Arc<Session>,
    epoch: u64,
    wait: std::time::Duration,
    shutdown: CancellationToken,
) {
    let since = session.last_heard().unwrap_or_else(Instant::now);
    let expired = tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep_until((since + wait).into()) => true,
    };
    if session.detached_since(epoch) {
        if expired {
            tracing::info!(
                session = session.id.get(),
                "lease ended without the client returning"
            );
        }
        end_session(&shared, &session, expired).await;
    }
}

/// Forget a session: release the files it held open and return its layouts, drop its locks
/// and lock waits (the waiters they held back are granted). `for_good`: also from the state log (not so when the
/// server stops: the client may resume it from the next start).
async fn end_session(shared: &Arc<Shared>, session: &Arc<Session>, for_good: bool) {
    shared.sessions.remove(&session.id);
    shared.grace.done(session.id);
    if let (true, Some(log)) = (for_good, &shared.state) {
        log.ended(session.id);
    }
    // A mount waiting for this one to go (RWOP, RWO) may proceed.
    shared.sessions_changed.notify_waiters();
    // At a stop its files stay open: the session's client may resume it from the next
    // start, and files it holds unlinked must still be there (the log keeps its opens).
    let left = if for_good {
        session.take_opens()
    } else {
        Vec::new()
    };
    let (s, id) = (shared.clone(), session.id);
    let _ = shared
        .tracker
        .spawn_blocking(move || {
            let grants = s.locks.drop_session(id);
            crate::lock_calls::deliver(&s, grants);
            // Its blocks reserved for layouts go back; blocks held for them may be reused.
            // A mount gone with layouts out is fenced first where the store can.
            if for_good && s.vol.with(|v| v.holds_layouts(id.get())) {
                crate::recalls::take(&s, id.get(), None);
            }
            s.fencing.forget(id.get());
            s.vol.with(|v| {
                v.layout_return_all(id.get());
                for (ino, n) in left {
                    for _ in 0..n {
                        let _ = v.release_file(Ino::new(ino));
                    }
                }
            })
        })
        .await;
    tracing::info!(session = session.id.get(), "session ended");
}
