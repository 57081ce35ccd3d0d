//! The accept loop, the periodic commit and graceful shutdown. Each connection is handled by
//! `connection::handle`; what outlives a connection lives in its `Session`.

use locks::SessionId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use volume::{SharedVolume, Volume};

use crate::Store;

use crate::connection::handle;
use crate::session::{Session, SessionInfo};
use crate::state_log::{LoggedSession, StateLog};
use volume::Ino;

/// How a server runs: its export, its lease and grace periods, its session log, its bounds.
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
    /// The administrator's token (`rwxfs export`), separate from the mounts'; without one
    /// the server takes no administration.
    pub admin_token: Option<Vec<u8>>,
    /// TLS for every connection, if set (`tls::acceptor`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where the server keeps its sessions and their kept replies across restarts
    /// (`state_log`); `None` keeps them in memory only.
    pub state_log: Option<Arc<dyn crate::state_log::LogPlace>>,
    /// After a restart that brought sessions back, how long their clients have to reclaim
    /// their locks; no other lock is granted meanwhile.
    pub grace: Duration,
    /// Most connections open at once; past it a new one is refused.
    pub max_connections: usize,
    /// Most connections in their handshake at once (TLS included); past it, refused.
    pub max_handshakes: usize,
    /// Most sessions (attached or waiting for their client); past it a new mount is refused.
    pub max_sessions: usize,
    /// Most locks one session holds; past it a lock request gets ENOLCK.
    pub max_locks_per_session: usize,
    /// Most calls running on the blocking pool at once, all connections together; a
    /// connection's calls past it wait on that connection alone. Held below
    /// `blocking_threads` (`blocking_calls`).
    pub max_blocking: usize,
    /// Threads in the blocking pool of the runtime the server runs on (tokio's
    /// `max_blocking_threads`: 512 unless its builder says otherwise; `blocking_pool` gives
    /// one for a `max_blocking`). The calls that may wait (for a recall, a lock, the disk)
    /// take at most all but a few of them: the others are left for the calls that answer
    /// recalls (layouts given, committed, returned) and for the server's own work
    /// (commits, sessions' ends), which the waiting calls may be waiting for.
    pub blocking_threads: usize,
    /// Where clients that read and write file data on the volume themselves (direct
    /// mounts) find it: its image's path as this machine sees it, or its RADOS pool and
    /// name. `None`: no client may.
    pub direct_location: Option<protocol::VolumeAt>,
    /// How to cut a direct mount off the volume's store before its layouts are taken
    /// (`fencing`); `None` where the store cannot (a local image).
    pub fence: Option<Arc<dyn crate::Fence>>,
    /// For a volume owned by a lease (RADOS): open while the lease holds. No connection is
    /// admitted and no frame goes out while it is closed. `None`: the server always owns it.
    pub owner_gate: Option<Arc<crate::OwnerGate>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            lease: Duration::from_secs(15),
            max_in_flight: 64,
            commit_interval: Duration::from_secs(1),
            export: crate::export::Export::default(),
            admin_token: None,
            tls: None,
            state_log: None,
            grace: Duration::from_secs(30),
            max_connections: 1024,
            max_handshakes: 64,
            max_sessions: 4096,
            max_locks_per_session: 4096,
            max_blocking: 256,
            blocking_threads: 512,
            direct_location: None,
            fence: None,
            owner_gate: None,
        }
    }
}

pub(crate) struct Shared {
    pub vol: SharedVolume<Store>,
    /// Every byte-range and whole-file lock, across all sessions.
    pub locks: locks::LockManager,
    /// Sessions, attached to a connection or waiting out their lease for their client.
    pub sessions: DashMap<SessionId, Arc<Session>>,
    pub next_session: AtomicU64,
    pub cfg: ServerConfig,
    /// Tasks to wait for at shutdown.
    pub tracker: TaskTracker,
    /// Held while a new mount is admitted, so admissions see each other.
    pub admission: std::sync::Mutex<()>,
    /// Woken when a session ends: mounts waiting to be admitted check again.
    pub sessions_changed: tokio::sync::Notify,
    /// The durable record of sessions and kept replies, if the server keeps one.
    pub state: Option<Arc<StateLog>>,
    /// This start of the server, as clients see it in `Welcome`.
    pub boot: u64,
    /// The server before this one stopped cleanly: nothing a client sent it was lost.
    pub clean_start: bool,
    pub grace: Grace,
    /// The newest durable transaction, for telling clients which calls are durable.
    pub commits: Arc<crate::durability::Commits>,
    /// Files restored sessions hold open that a replay may bring back.
    pub reopens: crate::durability::Reopens,
    /// Connections open (`max_connections`) and in their handshake (`max_handshakes`).
    pub connections: Arc<tokio::sync::Semaphore>,
    pub handshakes: Arc<tokio::sync::Semaphore>,
    /// Calls on the blocking pool (`max_blocking`).
    pub blocking: Arc<tokio::sync::Semaphore>,
    /// Inodes made and names changed by calls not yet durable (`durability::Made`).
    pub made: Arc<crate::durability::Made>,
    /// Inodes handed out lately, and replaced files kept for them (`linger`).
    pub(crate) linger: crate::linger::Linger,
    /// Layout recalls waiting for their holders (direct mode).
    pub(crate) recalls: crate::recalls::Recalls,
    /// The direct mounts' addresses on the volume's store, for fencing them.
    pub(crate) fencing: crate::fencing::Fencing,
    /// Run right after a call's permission check: where tests land another connection's
    /// call between the check and the call.
    #[cfg(test)]
    pub after_check: std::sync::Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

/// The grace period after a restart: until it ends, only locks held before the restart are
/// granted (reclaimed), so no one else takes a lock its holder is about to reclaim; and
/// restored sessions send again the calls the crash lost before anyone else's call runs, so
/// no one takes the inode numbers and names those calls had, nor sees them missing.
pub(crate) struct Grace {
    until: Instant,
    /// Restored sessions that have not yet said they are done reclaiming.
    waiting: std::sync::Mutex<HashSet<SessionId>>,
}

impl Grace {
    pub(crate) fn new(until: Instant, waiting: HashSet<SessionId>) -> Grace {
        Grace {
            until,
            waiting: std::sync::Mutex::new(waiting),
        }
    }

    /// True until every restored session has reclaimed its locks, or the period ran out.
    pub(crate) fn active(&self) -> bool {
        Instant::now() < self.until
            && !self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    /// True if a call of session `id` must wait for the grace period to end: it is not one
    /// of the restored sessions still sending again what the crash lost.
    pub(crate) fn holds(&self, id: SessionId) -> bool {
        Instant::now() < self.until && {
            let w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            !w.is_empty() && !w.contains(&id)
        }
    }

    /// Session `id` is done reclaiming (or gone).
    pub(crate) fn done(&self, id: SessionId) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if w.remove(&id) && w.is_empty() {
            tracing::info!("every restored session has reclaimed its locks: grace period over");
        }
    }

    /// Wait (on a blocking thread) until the grace period is over.
    pub(crate) fn wait_out(&self) {
        while self.active() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The most threads of a blocking pool kept from the calls that may wait.
const SPARE_THREADS: usize = 64;

/// Threads of a blocking pool (`ServerConfig::blocking_threads`) left to the calls that
/// answer recalls and to the server's own work: an eighth, at least one, at most
/// `SPARE_THREADS`.
fn spare_threads(pool: usize) -> usize {
    (pool / 8).clamp(1, SPARE_THREADS)
}

/// A blocking pool in which `max_blocking` calls may wait at once and leave the spare
/// threads free: tokio's 512, or more. For the runtime's builder (`max_blocking_threads`)
/// and `ServerConfig::blocking_threads`.
pub fn blocking_pool(max_blocking: usize) -> usize {
    max_blocking.saturating_add(SPARE_THREADS).max(512)
}

/// How many calls may wait on the blocking pool at once: `max_blocking`, held below the
/// pool's size by its spare threads (a pool of one thread has none to spare: one call).
fn blocking_calls(cfg: &ServerConfig) -> usize {
    let pool = cfg.blocking_threads.max(1);
    let most = pool.saturating_sub(spare_threads(pool)).max(1);
    if cfg.max_blocking > most {
        tracing::warn!(
            "at most {most} calls at once on the {pool} blocking threads (max_blocking {}): \
             the others are left for the calls that answer recalls",
            cfg.max_blocking
        );
    }
    cfg.max_blocking.clamp(1, most)
}

/// Serve the volume on `listener` until `shutdown` is cancelled; then commit everything.
pub async fn serve(
    vol: Volume<Store>,
    listener: TcpListener,
    cfg: ServerConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let shared = start(vol, cfg)?;
    let tracker = shared.tracker.clone();
    background(&shared, &shutdown);
    accept(&listener, &shared, &shutdown).await;
    // Every connection and every call it started (`TaskTracker`) ends before the last commit.
    tracker.close();
    tracker.wait().await;
    let s = shared.clone();
    let last = move || {
        // Kept files go before the last commit, so the volume is stopped with them freed,
        // and so do the orphans left from the last run once the grace period is over.
        s.vol.with(|v| {
            s.linger.sweep(v, s.grace.active());
            s.linger.release_all(v)
        });
        s.vol.commit()
    };
    tokio::task::spawn_blocking(last)
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    if let Some(log) = &shared.state {
        // Last: the next start knows every kept reply and open it restores is exact.
        log.stopped()?;
    }
    tracing::info!("volume committed; server stopped");
    Ok(())
}

/// The session log, if the server keeps one, and the sessions it brings back; the volume
/// then makes kept replies durable before the changes they answer for.
fn open_state_log(
    vol: &mut Volume<Store>,
    cfg: &ServerConfig,
) -> (Option<Arc<StateLog>>, HashMap<u64, LoggedSession>) {
    let Some(place) = &cfg.state_log else {
        return (None, Default::default());
    };
    match StateLog::open_in(
        place.clone(),
        vol.superblock().volume_id,
        vol.recovered_seq(),
    ) {
        Ok((log, restored)) => {
            let log = Arc::new(log);
            let hook = log.clone();
            vol.set_durability_hook(Arc::new(move || Ok(hook.sync()?)));
            (Some(log), restored)
        }
        Err(e) => {
            tracing::error!(
                "session log {}: {e}; serving without one: sessions will not \
                 survive a restart",
                place.describe()
            );
            (None, Default::default())
        }
    }
}

/// The server's shared state on `vol`, with the sessions its log restores and their files
/// open again.
fn start(mut vol: Volume<Store>, cfg: ServerConfig) -> std::io::Result<Arc<Shared>> {
    let (state, restored) = open_state_log(&mut vol, &cfg);
    let commits = Arc::new(crate::durability::Commits::default());
    let made = Arc::new(crate::durability::Made::default());
    let (told, settled) = (commits.clone(), made.clone());
    // What builds on a change need not wait once the change is durable: forgotten here, in
    // the commit, so a call that asked for this commit (`Made`) runs right after it.
    vol.set_commit_hook(Arc::new(move |upto| {
        settled.durable(upto);
        told.committed(upto)
    }));
    let clean_start = state.as_ref().is_some_and(|l| l.clean());
    let sessions = DashMap::new();
    let mut next = first_session_id();
    for (id, s) in restored {
        next = next.max(id + 1);
        let info = SessionInfo {
            node_id: s.node_id,
            mount_id: s.mount_id,
            read_only: s.read_only,
            started: Instant::now(),
            secret: protocol::auth::SessionSecret::from_bytes(s.secret),
            export: s.export,
        };
        let replies = s.replies.into_iter().map(|(call, (_, f))| (call, f));
        let session = Session::restored(SessionId::new(id), info, replies);
        restore_opens(&mut vol, &session, &s.opens);
        sessions.insert(SessionId::new(id), session);
    }
    let waiting: HashSet<SessionId> = sessions.iter().map(|s| *s.key()).collect();
    // Files left unlinked-but-open that restored sessions hold are freed at their last close,
    // or when their session ends; the others once the grace period is over, as restored
    // mounts open again what they hold (an open since the last commit before a crash is not
    // in the log). With no session restored, they are nobody's now.
    let linger = crate::linger::Linger::default();
    if !waiting.is_empty() {
        linger.reclaim_after_grace();
    } else {
        match vol.reclaim_orphans() {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} files unlinked while open and held by no session freed"),
            Err(e) => tracing::error!("files unlinked while open not freed: {e}"),
        }
    }
    if !waiting.is_empty() {
        tracing::info!(
            "{} sessions restored from before the restart; lock grace period {:?}",
            waiting.len(),
            cfg.grace
        );
    }
    let mut boot = [0u8; 8];
    getrandom::getrandom(&mut boot).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Arc::new(Shared {
        vol: SharedVolume::new(vol),
        locks: locks::LockManager::new(),
        sessions,
        next_session: AtomicU64::new(next),
        grace: Grace::new(Instant::now() + cfg.grace, waiting),
        connections: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
        handshakes: Arc::new(tokio::sync::Semaphore::new(cfg.max_handshakes)),
        blocking: Arc::new(tokio::sync::Semaphore::new(blocking_calls(&cfg))),
        cfg,
        tracker: TaskTracker::new(),
        admission: std::sync::Mutex::new(()),
        sessions_changed: tokio::sync::Notify::new(),
        state,
        boot: u64::from_le_bytes(boot),
        commits,
        reopens: Default::default(),
        made,
        linger,
        recalls: Default::default(),
        fencing: Default::default(),
        clean_start,
        #[cfg(test)]
        after_check: Default::default(),
    }))
}

/// What runs beside the connections: restored sessions whose clients do not come back end
/// like any detached session; clients hear which calls are durable; pending metadata is
/// committed at least every `commit_interval`; export deletes a stopped server cut short are
/// finished.
fn background(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let tracker = &shared.tracker;
    // Deletes a stopped server cut short, found before this one can start its own.
    let unfinished = crate::exports::admin::unfinished_deletes(shared);
    if !unfinished.is_empty() {
        let s = shared.clone();
        tracker.spawn_blocking(move || crate::exports::admin::finish_deletes(&s, unfinished));
    }
    for s in shared
        .sessions
        .iter()
        .map(|s| s.clone())
        .collect::<Vec<_>>()
    {
        let (sh, sd) = (shared.clone(), shutdown.clone());
        let wait = sh.cfg.lease.max(sh.cfg.grace);
        tracker.spawn(async move { crate::connection::expire_after(sh, s, 0, wait, sd).await });
    }
    tracker.spawn(crate::durability::tell_clients(
        shared.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(release_lingering(shared.clone(), shutdown.clone()));
    let (shared, shutdown) = (shared.clone(), shutdown.clone());
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(shared.cfg.commit_interval / 2);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let s = shared.clone();
            let r = s
                .tracker
                .clone()
                .spawn_blocking(move || s.vol.commit_if_older(s.cfg.commit_interval))
                .await;
            if let Ok(Err(e)) = r {
                tracing::error!("periodic commit failed: {e}");
            }
        }
    });
}

/// Release, about every half `LINGER`, the replaced files kept for their readers once their
/// time has passed (`linger`).
async fn release_lingering(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(crate::linger::LINGER / 2);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let s = shared.clone();
        let sweep = move || s.vol.with(|v| s.linger.sweep(v, s.grace.active()));
        let _ = shared.tracker.clone().spawn_blocking(sweep).await;
    }
}

/// Accept connections until `shutdown`, each handled on a tracked task of its own; past
/// `max_connections`, a new one is refused with the reason.
async fn accept(listener: &TcpListener, shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let tracker = &shared.tracker;
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            // Once stopping, no more connections are taken, even those already waiting.
            biased;
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let Ok(open) = shared.connections.clone().try_acquire_owned() else {
            let why = format!(
                "too many connections (the server's limit is {})",
                shared.cfg.max_connections
            );
            tracing::warn!(%addr, "refused: {why}");
            tracker.spawn(crate::handshake::refuse_early(stream, why));
            continue;
        };
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tracker.spawn(async move {
            if let Err(e) = handle(stream, addr, shared, shutdown).await {
                tracing::info!(%addr, "connection ended: {e}");
            }
            drop(open);
        });
    }
}

/// Open again in the engine the files a restored session held open.
fn restore_opens(
    vol: &mut Volume<Store>,
    session: &Session,
    opens: &std::collections::BTreeMap<u64, u32>,
) {
    for (&ino, &n) in opens {
        for _ in 0..n {
            match vol.open_file(Ino::new(ino)) {
                Ok(_) => session.restore_open(ino),
                Err(e) => {
                    tracing::info!(
                        session = session.id.get(),
                        ino,
                        "open file not restored: {e}"
                    );
                    break;
                }
            }
        }
    }
}

/// Session ids start at a value unlikely to repeat across server restarts, so a client
/// resuming after a restart is not mistaken for another session.
fn first_session_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_secs() << 20 ^ t.subsec_micros() as u64) | 1
}

#[cfg(test)]
mod tests {
    use super::{blocking_calls, blocking_pool, ServerConfig};

    fn calls(max_blocking: usize, blocking_threads: usize) -> usize {
        blocking_calls(&ServerConfig {
            max_blocking,
            blocking_threads,
            ..ServerConfig::default()
        })
    }

    #[test]
    fn calls_that_may_wait_leave_threads_of_the_pool_to_the_others() {
        assert_eq!(calls(256, 512), 256);
        assert_eq!(calls(512, 512), 448);
        assert_eq!(calls(10_000, 512), 448);
        assert_eq!(calls(512, 4), 3);
        assert_eq!(calls(512, 1), 1);
        assert_eq!(calls(0, 512), 1);
        // The pool made for a `max_blocking` lets that many wait, and spares threads.
        for n in [1, 256, 448, 449, 512, 5000] {
            assert_eq!(calls(n, blocking_pool(n)), n, "max_blocking {n}");
            assert!(blocking_pool(n) > n);
        }
    }
}
