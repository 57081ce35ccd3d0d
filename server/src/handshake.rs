//! A connection's first exchange: the client's address is checked against the export, the
//! client says `Hello` (a new mount), `Resume` (a mount coming back) or `Status` (a query);
//! the version must match; if the export has a token, the client proves it holds it; then the
//! access mode admits the mount, refuses it, or makes it wait (`Pending`) until it may.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use protocol::codec::{decode_body, encode_frame};
use protocol::{auth, ClientMsg, ServerMsg, SessionStatus, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::export::Admission;
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

async fn refuse(wr: &mut Writer, reason: String) -> Result<Option<Arc<Session>>, String> {
    let _ = send(
        wr,
        &ServerMsg::Refused {
            reason: reason.clone(),
        },
    )
    .await;
    Err(reason)
}

async fn next(frames: &mut Frames) -> Result<ClientMsg, String> {
    let body = tokio::time::timeout(STEP, frames.next())
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .ok_or("closed during the handshake")?
        .map_err(|e| format!("bad frame: {e}"))?;
    decode_body::<ClientMsg>(&body)
        .map(|(m, _)| m)
        .map_err(|e| format!("bad handshake message: {e}"))
}

/// Run the handshake. `Ok(Some(session))`: the mount is in (Welcome not yet sent);
/// `Ok(None)`: a status query was answered; `Err`: refused or broken (the reason).
pub(crate) async fn admit(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    frames: &mut Frames,
    wr: &mut Writer,
) -> Result<Option<Arc<Session>>, String> {
    let export = &shared.cfg.export;
    if !export.allows(addr.ip()) {
        tracing::warn!(%addr, "refused: address not allowed by the export");
        return refuse(
            wr,
            format!("client address {} is not allowed by this export", addr.ip()),
        )
        .await;
    }
    let (version, node_id, mount_id, read_only, resume, status) = match next(frames).await? {
        ClientMsg::Hello {
            version,
            node_id,
            mount_id,
            read_only,
        } => (version, node_id, mount_id, read_only, None, false),
        ClientMsg::Resume {
            version,
            node_id,
            mount_id,
            read_only,
            session,
        } => (version, node_id, mount_id, read_only, Some(session), false),
        ClientMsg::Status { version } => (version, String::new(), 0, true, None, true),
        _ => return Err("first message was not hello".into()),
    };
    if version != PROTOCOL_VERSION {
        return refuse(
            wr,
            format!(
                "protocol version {version} not supported; this server speaks {PROTOCOL_VERSION}"
            ),
        )
        .await;
    }
    if let Some(token) = &export.token {
        let mut nonce = vec![0u8; auth::NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        send(
            wr,
            &ServerMsg::Challenge {
                nonce: nonce.clone(),
            },
        )
        .await?;
        let ok = match next(frames).await {
            Ok(ClientMsg::Proof { mac }) => auth::verify(token, &nonce, &node_id, mount_id, &mac),
            Ok(_) => false,
            Err(e) => return Err(format!("no answer to the challenge: {e}")),
        };
        if !ok {
            tracing::warn!(%addr, node = %node_id, "refused: authentication failed");
            return refuse(wr, "authentication failed: wrong token".into()).await;
        }
    }
    if status {
        send(wr, &ServerMsg::Status(statuses(shared))).await?;
        return Ok(None);
    }
    // The session continues only for the very mount that held it.
    let resumed = resume
        .and_then(|id| shared.sessions.get(&id).map(|s| s.clone()))
        .filter(|s| s.info.mount_id == mount_id && s.info.node_id == node_id);
    if let Some(s) = resumed {
        tracing::info!(%addr, session = s.id, "session resumed");
        return Ok(Some(s));
    }
    let mut told_pending = false;
    loop {
        // Deciding and registering under one lock: two waiting mounts never both get in.
        let changed = shared.sessions_changed.notified();
        let decision = {
            let _one_at_a_time = shared.admission.lock().unwrap_or_else(|e| e.into_inner());
            let held: Vec<Arc<Session>> = shared.sessions.iter().map(|s| s.clone()).collect();
            match export.admit(&node_id, read_only, held.iter().map(|s| s.as_ref())) {
                Admission::Admit { read_only } => {
                    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
                    let s = Session::new(
                        id,
                        SessionInfo {
                            node_id: node_id.clone(),
                            mount_id,
                            read_only,
                            started: Instant::now(),
                        },
                    );
                    shared.sessions.insert(id, s.clone());
                    if let Some(log) = &shared.state {
                        log.started(id, &node_id, mount_id, read_only);
                    }
                    tracing::info!(%addr, session = id, node = %node_id, read_only, "session started");
                    return Ok(Some(s));
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

fn statuses(shared: &Shared) -> Vec<SessionStatus> {
    let mut out: Vec<SessionStatus> = shared
        .sessions
        .iter()
        .map(|s| SessionStatus {
            session: s.id,
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
