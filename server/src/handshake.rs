//! A connection's first exchange: the client's address is checked against the export, the
//! client says `Hello` (a new mount), `Resume` (a mount coming back) or `Status` (a query);
//! the version must match; if the export has a token, the server and then the client prove
//! they hold it (`protocol::auth`, bound to the TLS session when there is one); a session is
//! resumed only with its secret; then the access mode admits the mount, refuses it, or makes
//! it wait (`Pending`) until it may.

use locks::SessionId;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use protocol::codec::{decode_body, encode_frame};
use protocol::{auth, ClientMsg, ExportCmd, ServerMsg, SessionStatus, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::export::Admission;
use crate::exports::{self, Mounted};
use crate::listener::Shared;
use crate::session::{Session, SessionInfo};

/// A connection's two directions, plain TCP or TLS.
pub(crate) type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
pub(crate) type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
pub(crate) type Frames = FramedRead<Reader, LengthDelimitedCodec>;

/// How long a client has for each step of the handshake.
const STEP: Duration = Duration::from_secs(10);

async fn send(wr: &mut Writer, msg: &ServerMsg) -> Result<(), String> {
    let f = encode_frame(msg, &[]).map_err(|e| e.to_string())?;
    wr.write_all(&f).await.map_err(|e| e.to_string())
}

async fn refuse(wr: &mut Writer, reason: String) -> Result<Option<Admitted>, String> {
    let _ = send(
        wr,
        &ServerMsg::Refused {
            reason: reason.clone(),
        },
    )
    .await;
    Err(reason)
}

/// The first message, or why not. A first message of another protocol version may not
/// decode as this one's: its version is read where every version put it.
enum First {
    Msg(ClientMsg),
    OtherVersion(u32),
}

/// Refuse a connection before its handshake (a limit reached): the reason as a `Refused`
/// frame, sent without waiting long for a client that does not read it, then close.
pub(crate) async fn refuse_early(stream: tokio::net::TcpStream, reason: String) {
    let mut wr: Writer = Box::new(stream);
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        send(&mut wr, &ServerMsg::Refused { reason }),
    )
    .await;
}

async fn next(frames: &mut Frames) -> Result<ClientMsg, String> {
    match next_first(frames).await? {
        First::Msg(m) => Ok(m),
        First::OtherVersion(v) => Err(format!("a message of protocol version {v}")),
    }
}

async fn next_first(frames: &mut Frames) -> Result<First, String> {
    let body = tokio::time::timeout(STEP, frames.next())
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .ok_or("closed during the handshake")?
        .map_err(|e| format!("bad frame: {e}"))?;
    match decode_body::<ClientMsg>(&body) {
        Ok((m, _)) => Ok(First::Msg(m)),
        Err(e) => {
            // [header length][variant u32][version u32]: Hello, Resume and Status.
            let word = |at: usize| {
                body.get(at..at + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            match (word(4), word(8)) {
                (Some(0 | 3 | 7 | 9), Some(v)) if v != PROTOCOL_VERSION => {
                    Ok(First::OtherVersion(v))
                }
                _ => Err(format!("bad handshake message: {e}")),
            }
        }
    }
}

/// What the first message asks for.
struct Greeting {
    version: u32,
    node_id: String,
    mount_id: u64,
    read_only: bool,
    /// The session to resume, and the secret offered for it.
    resume: Option<(u64, Vec<u8>)>,
    status: bool,
    /// The client's challenge to the server.
    nonce: Vec<u8>,
    /// The export mounted; empty for the whole volume.
    export: String,
    /// An administrator's command (`ClientMsg::Admin`).
    admin: Option<ExportCmd>,
}

fn greeting(first: First) -> Result<Greeting, String> {
    let g = |version, node_id, mount_id, read_only, resume, status, nonce| Greeting {
        version,
        node_id,
        mount_id,
        read_only,
        resume,
        status,
        nonce,
        export: String::new(),
        admin: None,
    };
    Ok(match first {
        First::OtherVersion(v) => g(v, String::new(), 0, true, None, false, Vec::new()),
        First::Msg(ClientMsg::Hello {
            version,
            node_id,
            mount_id,
            read_only,
            nonce,
            export,
        }) => Greeting {
            export,
            ..g(version, node_id, mount_id, read_only, None, false, nonce)
        },
        First::Msg(ClientMsg::Resume {
            version,
            node_id,
            mount_id,
            read_only,
            session,
            secret,
            nonce,
            export,
        }) => Greeting {
            export,
            ..g(
                version,
                node_id,
                mount_id,
                read_only,
                Some((session, secret)),
                false,
                nonce,
            )
        },
        First::Msg(ClientMsg::Status { version, nonce }) => {
            g(version, String::new(), 0, true, None, true, nonce)
        }
        First::Msg(ClientMsg::Admin {
            version,
            nonce,
            cmd,
        }) => Greeting {
            admin: Some(cmd),
            ..g(version, String::new(), 0, true, None, false, nonce)
        },
        First::Msg(_) => return Err("first message was not hello".into()),
    })
}

/// Token proofs both ways: the server's first (over the client's nonce), then the client's.
/// `binding`: the TLS exporter value of this connection, empty without TLS.
async fn prove(
    token: &[u8],
    g: &Greeting,
    binding: &[u8],
    frames: &mut Frames,
    wr: &mut Writer,
) -> Result<bool, String> {
    let nonce = auth::random_bytes(auth::NONCE_LEN)?;
    let mac = auth::server_proof(token, &g.nonce, &nonce, binding);
    send(
        wr,
        &ServerMsg::Challenge {
            nonce: nonce.clone(),
            mac,
        },
    )
    .await?;
    Ok(match next(frames).await {
        Ok(ClientMsg::Proof { mac }) => {
            auth::verify(token, &nonce, &g.node_id, g.mount_id, binding, &mac)
        }
        Ok(_) => false,
        Err(e) => return Err(format!("no answer to the challenge: {e}")),
    })
}

/// A mount let in: its session, and whether it was made now (its secret goes to the client
/// in `Welcome`) or resumed.
pub(crate) struct Admitted {
    pub session: Arc<Session>,
    pub new: bool,
}

/// Run the handshake. `Ok(Some(_))`: the mount is in (Welcome not yet sent);
/// `Ok(None)`: a status query was answered; `Err`: refused or broken (the reason).
/// `binding`: the TLS exporter value of the connection (`auth::TLS_EXPORTER_LABEL`), empty
/// without TLS.
pub(crate) async fn admit(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    binding: &[u8],
    stopping: &CancellationToken,
    frames: &mut Frames,
    wr: &mut Writer,
) -> Result<Option<Admitted>, String> {
    let export = &shared.cfg.export;
    if !export.allows(addr.ip()) {
        tracing::warn!(%addr, "refused: address not allowed by the export");
        return refuse(
            wr,
            format!("client address {} is not allowed by this export", addr.ip()),
        )
        .await;
    }
    let g = greeting(next_first(frames).await?)?;
    let version = g.version;
    if version != PROTOCOL_VERSION {
        return refuse(
            wr,
            format!(
                "protocol version {version} not supported; this server speaks {PROTOCOL_VERSION}"
            ),
        )
        .await;
    }
    if g.admin.is_some() {
        return administer(shared, addr, g, binding, frames, wr).await;
    }
    if let Some(token) = &export.token {
        if !prove(token, &g, binding, frames, wr).await? {
            tracing::warn!(%addr, node = %g.node_id, "refused: authentication failed");
            return refuse(wr, "authentication failed: wrong token".into()).await;
        }
    }
    if g.status {
        send(wr, &ServerMsg::Status(statuses(shared))).await?;
        return Ok(None);
    }
    if stopping.is_cancelled() {
        return refuse_stopping(addr, wr).await;
    }
    let mounted = match mounted(shared, &g.export) {
        Ok(m) => m,
        Err(why) => {
            tracing::warn!(%addr, node = %g.node_id, "refused: {why}");
            return refuse(wr, why).await;
        }
    };
    let root = mounted.map_or(0, |m| m.root);
    if let Some((id, offered)) = &g.resume {
        if let Some(s) = shared.sessions.get(&SessionId::new(*id)).map(|s| s.clone()) {
            // Only the client that holds the session's secret may take it over.
            if !s.info.secret.matches(offered) {
                tracing::warn!(%addr, session = id, node = %g.node_id, "refused: resume without the session's secret");
                return refuse(
                    wr,
                    format!("session {id} cannot be resumed: wrong session secret"),
                )
                .await;
            }
            // The session continues only for the very mount that held it.
            if s.info.mount_id == g.mount_id && s.info.node_id == g.node_id && s.info.export == root
            {
                tracing::info!(%addr, session = s.id.get(), "session resumed");
                return Ok(Some(Admitted {
                    session: s,
                    new: false,
                }));
            }
        }
    }
    admit_new(shared, addr, (g, mounted), stopping, frames, wr).await
}

/// The export a mount names, resolved; `None` for the whole volume.
fn mounted(shared: &Shared, name: &str) -> Result<Option<Mounted>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    shared.vol.with(|v| exports::resolve(v, name)).map(Some)
}

/// An administrator's connection: the administrator's token proved (never the mounts'),
/// the command run on the blocking pool, its answer sent.
async fn administer(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    mut g: Greeting,
    binding: &[u8],
    frames: &mut Frames,
    wr: &mut Writer,
) -> Result<Option<Admitted>, String> {
    let Some(token) = &shared.cfg.admin_token else {
        tracing::warn!(%addr, "refused: administration without an administrator token");
        return refuse(
            wr,
            "this server takes no administration: it was started without --admin-token-file".into(),
        )
        .await;
    };
    if !prove(token, &g, binding, frames, wr).await? {
        tracing::warn!(%addr, "refused: administrator authentication failed");
        return refuse(
            wr,
            "authentication failed: wrong administrator token".into(),
        )
        .await;
    }
    let Some(cmd) = g.admin.take() else {
        return Err("no command".into());
    };
    tracing::info!(%addr, ?cmd, "administration");
    let on = shared.clone();
    let answer = tokio::task::spawn_blocking(move || exports::admin::answer(&on, cmd))
        .await
        .unwrap_or_else(|e| ServerMsg::Exports(Err(format!("the command failed: {e}"))));
    send(wr, &answer).await?;
    Ok(None)
}

/// A stopping server admits no mount. Its stop ends each session in memory only (the
/// session log keeps it for the next start): a session resumed or started now would be
/// ended or lost with the stop, and a mount given a new session in place of one the log
/// keeps would hold a secret the next start does not know for the session it does.
async fn refuse_stopping(addr: SocketAddr, wr: &mut Writer) -> Result<Option<Admitted>, String> {
    tracing::info!(%addr, "refused: the server is stopping");
    refuse(
        wr,
        "the server is stopping; try again once it is back".into(),
    )
    .await
}

/// A new session for the mount `g` greets with, as the export's access mode allows: now,
/// after other sessions end (the client is told it is pending meanwhile), or never.
async fn admit_new(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    (g, mounted): (Greeting, Option<Mounted>),
    stopping: &CancellationToken,
    frames: &mut Frames,
    wr: &mut Writer,
) -> Result<Option<Admitted>, String> {
    let node_id = &g.node_id;
    let mut told_pending = false;
    loop {
        // Deciding and registering under one lock: two waiting mounts never both get in.
        let changed = shared.sessions_changed.notified();
        let decision = {
            let _one_at_a_time = shared.admission.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again here: a session the stop ended after the first check is not
            // found by its resume, which comes here.
            if stopping.is_cancelled() {
                drop(_one_at_a_time);
                return refuse_stopping(addr, wr).await;
            }
            let all = shared.sessions.len();
            let root = mounted.map_or(0, |m| m.root);
            let held: Vec<Arc<Session>> = shared
                .sessions
                .iter()
                .filter(|s| s.info.export == root)
                .map(|s| s.clone())
                .collect();
            if all >= shared.cfg.max_sessions {
                let why = format!(
                    "too many sessions (the server's limit is {})",
                    shared.cfg.max_sessions
                );
                tracing::warn!(%addr, node = %node_id, "refused: {why}");
                drop(_one_at_a_time);
                return refuse(wr, why).await;
            }
            let export = &shared.cfg.export;
            let holders = held.iter().map(|s| s.as_ref());
            let admission = match mounted {
                None => export.admit(node_id, g.read_only, holders),
                Some(m) => {
                    let what = format!("export {}", g.export);
                    let read_only = g.read_only || export.read_only;
                    crate::export::admit(m.mode, &what, node_id, read_only, holders)
                }
            };
            match admission {
                Admission::Admit { read_only } => {
                    let session = start_session(shared, addr, &g, read_only, root)?;
                    return Ok(Some(Admitted { session, new: true }));
                }
                other => other,
            }
        };
        match decision {
            Admission::Refuse(reason) => {
                tracing::warn!(%addr, node = %node_id, "refused: {reason}");
                return refuse(wr, reason).await;
            }
            Admission::Wait(reason) => {
                if !told_pending {
                    tracing::info!(%addr, node = %node_id, "pending: {reason}");
                    send(wr, &ServerMsg::Pending { reason }).await?;
                    told_pending = true;
                }
            }
            Admission::Admit { .. } => unreachable!("admitted above"),
        }
        // Wait for a session to end, re-checking now and then; a client that gives up
        // (closes) ends the wait.
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            n = frames.next() => {
                return Err(match n {
                    None => "gave up waiting".into(),
                    Some(_) => "sent something while pending".into(),
                });
            }
        }
    }
}

/// A new session for the mount `g` greets with, registered (and in the session log, durably:
/// a crash before the next commit must not lose it, or its client could not send again what
/// the crash lost).
fn start_session(
    shared: &Shared,
    addr: SocketAddr,
    g: &Greeting,
    read_only: bool,
    export: u64,
) -> Result<Arc<Session>, String> {
    let id = SessionId::new(shared.next_session.fetch_add(1, Ordering::Relaxed));
    let secret = auth::SessionSecret::generate()?;
    if let Some(log) = &shared.state {
        log.started(
            id,
            &g.node_id,
            g.mount_id,
            read_only,
            secret.as_bytes(),
            export,
        );
        let _ = log.sync();
    }
    let info = SessionInfo {
        node_id: g.node_id.clone(),
        mount_id: g.mount_id,
        read_only,
        started: Instant::now(),
        secret,
        export,
    };
    let s = Session::new(id, info);
    shared.sessions.insert(id, s.clone());
    tracing::info!(%addr, session = id.get(), node = %g.node_id, read_only, "session started");
    Ok(s)
}

fn statuses(shared: &Shared) -> Vec<SessionStatus> {
    let mut out: Vec<SessionStatus> = shared
        .sessions
        .iter()
        .map(|s| SessionStatus {
            session: s.id.get(),
            node_id: s.info.node_id.clone(),
            mount_id: s.info.mount_id,
            read_only: s.info.read_only,
            addr: s.addr().map(|a| a.to_string()).unwrap_or_default(),
            last_heard_ms: s
                .last_heard()
                .map(|t| t.elapsed().as_millis() as u64)
                .unwrap_or(0),
            connected: s.sender().is_some(),
            open_files: s.open_count() as u32,
            locks: shared.locks.held_by_session(s.id) as u32,
        })
        .collect();
    out.sort_by_key(|s| s.session);
    out
}
