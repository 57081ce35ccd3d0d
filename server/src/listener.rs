//! The accept loop, the periodic commit and graceful shutdown. Each connection is handled by
//! `connection::handle`; what outlives a connection lives in its `Session`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use volume::{FileStore, SharedVolume, Volume};

use crate::connection::handle;
use crate::session::Session;

#[derive(Clone)]
pub struct ServerConfig {
    /// A session whose client sends nothing for this long is ended.
    pub lease: Duration,
    /// Most requests one connection may have in flight.
    pub max_in_flight: usize,
    /// Pending metadata is committed at least this often.
    pub commit_interval: Duration,
    /// Who may mount, and how.
    pub export: crate::export::Export,
    /// TLS for every connection, if set (`tls::acceptor`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            lease: Duration::from_secs(15),
            max_in_flight: 64,
            commit_interval: Duration::from_secs(1),
            export: crate::export::Export::default(),
            tls: None,
        }
    }
}

pub(crate) struct Shared {
    pub vol: SharedVolume<FileStore>,
    /// Every byte-range and whole-file lock, across all sessions.
    pub locks: locks::LockManager,
    /// Sessions, attached to a connection or waiting out their lease for their client.
    pub sessions: DashMap<u64, Arc<Session>>,
    pub next_session: AtomicU64,
    pub cfg: ServerConfig,
    /// Tasks to wait for at shutdown.
    pub tracker: TaskTracker,
    /// Held while a new mount is admitted, so admissions see each other.
    pub admission: std::sync::Mutex<()>,
    /// Woken when a session ends: mounts waiting to be admitted check again.
    pub sessions_changed: tokio::sync::Notify,
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
        locks: locks::LockManager::new(),
        sessions: DashMap::new(),
        next_session: AtomicU64::new(first_session_id()),
        cfg,
        tracker: TaskTracker::new(),
        admission: std::sync::Mutex::new(()),
        sessions_changed: tokio::sync::Notify::new(),
    });
    let tracker = shared.tracker.clone();
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

/// Session ids start at a value unlikely to repeat across server restarts, so a client
/// resuming after a restart is not mistaken for another session.
fn first_session_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_secs() << 20 ^ t.subsec_micros() as u64) | 1
}
