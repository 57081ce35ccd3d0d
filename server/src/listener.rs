//! Accept loop and per-connection handler: Hello first, then calls until the connection
//! closes, its lease runs out, or the server shuts down. A malformed frame closes that one
//! connection; everyone else is unaffected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::StreamExt;
use protocol::codec::{decode_body, encode_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, MAX_FRAME, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use volume::{FileStore, FsError, SharedVolume, Volume};

use crate::dispatch::execute;
use crate::session::SessionInfo;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A session whose client sends nothing for this long is ended.
    pub lease: Duration,
    /// Most requests one connection may have in flight.
    pub max_in_flight: usize,
    /// Pending metadata is committed at least this often.
    pub commit_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            lease: Duration::from_secs(15),
            max_in_flight: 64,
            commit_interval: Duration::from_secs(1),
        }
    }
}

struct Shared {
    vol: SharedVolume<FileStore>,
    /// Live sessions, for status and access decisions.
    sessions: DashMap<u64, SessionInfo>,
    next_session: AtomicU64,
    cfg: ServerConfig,
}

/// Serve the volume on `listener` until `shutdown` is cancelled; then commit everything.
pub async fn serve(
    vol: Volume<FileStore>,
    listener: TcpListener,
    cfg: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        vol: SharedVolume::new(vol),
        sessions: DashMap::new(),
        next_session: AtomicU64::new(1),
        cfg,
    });
    let tracker = TaskTracker::new();
    {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(shared.cfg.commit_interval / 2);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let s = shared.clone();
                let r = tokio::task::spawn_blocking(move || {
                    s.vol.commit_if_older(s.cfg.commit_interval)
                })
                .await;
                if let Ok(Err(e)) = r {
                    tracing::error!("periodic commit failed: {e}");
                }
            }
        });
    }
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(10);
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    if let Err(e) = handle(stream, addr, shared, shutdown).await {
                        tracing::info!(%addr, "connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.vol.commit())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    tracing::info!("volume committed; server stopped");
    Ok(())
}

async fn handle(
    stream: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    stream.set_nodelay(true).ok();
    let (rd, mut wr) = stream.into_split();
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    let mut frames = FramedRead::new(rd, codec);
    let lease = shared.cfg.lease;

    // Hello.
    let first = tokio::time::timeout(Duration::from_secs(10), frames.next())
        .await
        .map_err(|_| "no hello within 10 s".to_string())?
        .ok_or("closed before hello")?
        .map_err(|e| format!("bad frame: {e}"))?;
    let (hello, _) = decode_body::<ClientMsg>(&first).map_err(|e| format!("bad hello: {e}"))?;
    let ClientMsg::Hello {
        version,
        node_id,
        mount_id,
        read_only,
    } = hello
    else {
        return Err("first message was not hello".into());
    };
    if version != PROTOCOL_VERSION {
        let reason = format!(
            "protocol version {version} not supported; this server speaks {PROTOCOL_VERSION}"
        );
        let f = encode_frame(
            &ServerMsg::Refused {
                reason: reason.clone(),
            },
            &[],
        )
        .map_err(|e| e.to_string())?;
        let _ = wr.write_all(&f).await;
        return Err(reason);
    }
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let welcome = ServerMsg::Welcome {
        version: PROTOCOL_VERSION,
        session,
        lease_secs: lease.as_secs() as u32,
    };
    wr.write_all(&encode_frame(&welcome, &[]).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    shared.sessions.insert(
        session,
        SessionInfo {
            node_id: node_id.clone(),
            mount_id,
            addr,
            read_only,
            started: Instant::now(),
        },
    );
    tracing::info!(%addr, session, node = %node_id, "session started");

    // Replies go through one writer task so calls complete in any order.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(shared.cfg.max_in_flight);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let limit = Arc::new(Semaphore::new(shared.cfg.max_in_flight));
    // Files this session holds open, released if it goes away.
    let opens: Arc<Opens> = Arc::new(Mutex::new(HashMap::new()));
    let result = loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            n = tokio::time::timeout(lease, frames.next()) => n,
        };
        let body = match next {
            Err(_) => break Err(format!("lease of {lease:?} expired")),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(format!("bad frame: {e}")),
            Ok(Some(Ok(b))) => b,
        };
        let (msg, bulk_start) = match decode_body::<ClientMsg>(&body) {
            Ok((m, bulk)) => (m, body.len() - bulk.len()),
            Err(e) => break Err(format!("malformed message: {e}")),
        };
        // Bulk bytes stay in the frame buffer: no copy on their way to the engine.
        let bulk = body.freeze().slice(bulk_start..);
        let (id, req) = match msg {
            ClientMsg::Heartbeat => continue,
            ClientMsg::Hello { .. } => break Err("second hello".into()),
            ClientMsg::Call { id, req } => (id, req),
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break Ok(());
        };
        let shared = shared.clone();
        let tx = tx.clone();
        let opens = opens.clone();
        // One blocking task per call: the engine is synchronous, and its reply goes straight
        // to the writer task from there.
        tokio::task::spawn_blocking(move || {
            let frame = answer(&shared, &opens, id, req, &bulk, read_only);
            let _ = tx.blocking_send(frame);
            drop(permit);
        });
    };
    drop(tx);
    let _ = writer.await;
    // Release what this session left open.
    let left: Vec<(u64, u32)> = opens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    if !left.is_empty() {
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.vol.with(|v| {
                for (ino, n) in left {
                    for _ in 0..n {
                        let _ = v.release_file(ino);
                    }
                }
            })
        })
        .await;
    }
    shared.sessions.remove(&session);
    tracing::info!(%addr, session, "session ended");
    result
}

/// Files a session holds open, by inode: how many opens each.
type Opens = Mutex<HashMap<u64, u32>>;

/// Run one call against the engine and encode its reply frame.
fn answer(
    shared: &Shared,
    opens: &Opens,
    id: u64,
    req: Request,
    bulk: &[u8],
    read_only: bool,
) -> Vec<u8> {
    let (r, out) = if read_only && req.mutates() {
        (Err(FsError::ReadOnly), Vec::new())
    } else {
        let counts_open = matches!(req, Request::Open { .. } | Request::Create { .. });
        let released = match req {
            Request::Release { ino } => Some(ino),
            _ => None,
        };
        let (r, out) = execute(&shared.vol, req, bulk);
        let mut o = opens.lock().unwrap_or_else(|e| e.into_inner());
        if let (true, Ok(Response::Attr(a))) = (counts_open, &r) {
            *o.entry(a.ino).or_insert(0) += 1;
        }
        if let Some(ino) = released {
            if let Some(n) = o.get_mut(&ino) {
                *n -= 1;
                if *n == 0 {
                    o.remove(&ino);
                }
            }
        }
        (r, out)
    };
    let result = r.map_err(|e| {
        if matches!(e, FsError::Corrupt(_) | FsError::Io(_)) {
            tracing::error!("request {id} failed: {e}");
        }
        e.errno()
    });
    encode_frame(&ServerMsg::Reply { id, result }, &out).unwrap_or_else(|e| {
        tracing::error!("reply {id} not encodable: {e}");
        let eio = FsError::Io(std::io::Error::other("reply not encodable")).errno();
        encode_frame(
            &ServerMsg::Reply {
                id,
                result: Err(eio),
            },
            &[],
        )
        .unwrap_or_default()
    })
}
