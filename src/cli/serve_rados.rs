//! `rwxfs serve --image rados://POOL/NAME`: one server at a time owns a RADOS volume
//! (`rados_store::Owner`). A server that finds it owned is a standby: it listens, answers
//! every connection with who is active, and takes the volume over once the owner's lease ran
//! out — the old owner fenced first — then replays the journal, restores the sessions from
//! the session log (an object beside the image) and serves. The owner renews its lease a
//! third of the way through; if it ever finds the volume taken, or its lease over for a
//! whole lease without a renewal, it exits at once without writing, and its gate
//! (`server::OwnerGate`) has stopped every reply from the moment the lease ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rados_store::{Claim, Cluster, ImageName, Owner, Pool, RadosStore, Renewal};
use server::state_log::LogPlace;
use server::{OwnerGate, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::Volume;

/// The exit status of a server that stopped because it no longer owns its volume.
pub const LOST: i32 = 3;

/// Direct mounts of the volume are fenced by the cluster's OSD blocklist, for as long as an
/// old owner is (a week: far longer than any pause a mount could wake from).
struct Blocklist(Arc<Cluster>);

impl server::Fence for Blocklist {
    fn fence(&self, address: &str) -> std::io::Result<()> {
        self.0.blocklist(address, rados_store::FENCE_FOR)
    }
}

/// Serve `name`, as its owner or first as a standby; the exit status.
pub async fn serve(
    name: ImageName,
    cluster: Arc<Cluster>,
    listen: &str,
    lease: Duration,
    mut cfg: ServerConfig,
) -> i32 {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rwxfs serve: cannot listen on {listen}: {e}");
            return 1;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| listen.to_string());
    let about = format!("{} at {addr}", hostname());
    let owner = match Owner::new(&cluster, &name, lease, &about) {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let gate = Arc::new(OwnerGate::new());
    let fenced = match become_owner(&owner, &name, &listener, &cfg, &gate).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rwxfs serve: {name}: {e}");
            return 1;
        }
    };
    match fenced {
        Some(prev) => eprintln!("rwxfs: {name}: taken over; the previous owner ({prev}) is fenced"),
        None => eprintln!("rwxfs: {name}: this server owns the volume"),
    }
    keep_lease(owner.clone(), gate.clone(), name.clone());
    cfg.owner_gate = Some(gate);
    cfg.fence = Some(Arc::new(Blocklist(cluster.clone())));
    if cfg.state_log.is_none() {
        match cluster.pool(&name.pool) {
            Ok(pool) => cfg.state_log = Some(Arc::new(SessionObject::new(pool, &name))),
            Err(e) => eprintln!("rwxfs: {name}: sessions not kept: {e}"),
        }
    }
    let vol = {
        let (cluster, name) = (cluster.clone(), name.clone());
        tokio::task::spawn_blocking(move || open_volume(&cluster, &name)).await
    };
    let vol = match vol.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    eprintln!("rwxfs: serving {name} on {addr}");
    let token = CancellationToken::new();
    tokio::spawn(super::serve_cmd::cancel_on_signal(token.clone()));
    match server::serve(vol, listener, cfg, token).await {
        Ok(()) => {
            if let Err(e) = owner.release() {
                eprintln!(
                    "rwxfs: {name}: ownership not released ({e}): the next owner fences this one"
                );
            }
            0
        }
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            1
        }
    }
}

/// The volume opened by its new owner: the journal replayed, orphans kept for the sessions.
fn open_volume(cluster: &Arc<Cluster>, name: &ImageName) -> Result<Volume<server::Store>, String> {
    let pool = cluster.pool(&name.pool).map_err(|e| e.to_string())?;
    let store = RadosStore::open_in(pool, name, false).map_err(|e| e.to_string())?;
    Volume::open_keeping_orphans(Box::new(store) as server::Store)
        .map_err(|e| format!("{name}: {e}"))
}

/// Take the volume, answering connections as a standby while another server owns it; the
/// fenced previous owner's address, if any. The gate is open for the first lease when this
/// returns.
async fn become_owner(
    owner: &Arc<Owner>,
    name: &ImageName,
    listener: &tokio::net::TcpListener,
    cfg: &ServerConfig,
    gate: &OwnerGate,
) -> Result<Option<String>, String> {
    let until = CancellationToken::new();
    let active: server::standby::Active = {
        let o = owner.clone();
        Arc::new(move || o.holder())
    };
    let answering = server::standby::answer(listener, cfg.tls.clone(), active, until.clone());
    let taking = async {
        let r = take(owner, name, gate).await;
        until.cancel();
        r
    };
    tokio::join!(taking, answering).0
}

/// Try to take the volume every fifth of a lease until it is this server's.
async fn take(
    owner: &Arc<Owner>,
    name: &ImageName,
    gate: &OwnerGate,
) -> Result<Option<String>, String> {
    let every = (owner.lease() / 5).clamp(Duration::from_millis(200), Duration::from_secs(2));
    let mut said = false;
    loop {
        let sent = Instant::now();
        let o = owner.clone();
        let claim = tokio::task::spawn_blocking(move || o.try_take())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot take the volume: {e}"))?;
        match claim {
            Claim::Taken { fenced } => {
                gate.open_until(sent + owner.lease());
                return Ok(fenced);
            }
            Claim::Held(who) if !said => {
                said = true;
                eprintln!(
                    "rwxfs: standby for {name}: {who} serves it; this server takes over when \
                     that one's lease ({:?}) runs out",
                    owner.lease()
                );
            }
            Claim::Held(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

/// Renew the lease a third of the way through, on a thread of its own; the gate stays open
/// until the end of the last lease renewed. The volume lost (taken, or this server fenced),
/// or no renewal for a whole lease after the last one ended: the process exits at once.
fn keep_lease(owner: Arc<Owner>, gate: Arc<OwnerGate>, name: ImageName) {
    let lease = owner.lease();
    let (o, g, n) = (owner.clone(), gate.clone(), name.clone());
    std::thread::spawn(move || loop {
        std::thread::sleep(lease / 3);
        let sent = Instant::now();
        match o.renew() {
            Ok(Renewal::Kept) => g.open_until(sent + lease),
            Ok(Renewal::Lost(why)) => lost(&g, &n, &why),
            Err(e) if rados_store::fenced(&e) => lost(&g, &n, &format!("fenced ({e})")),
            Err(e) => tracing::warn!("{n}: lease not renewed: {e}; trying again"),
        }
    });
    // Apart from the renewals, which may hang on a cluster that cannot be reached.
    std::thread::spawn(move || {
        let mut closed_since: Option<Instant> = None;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if gate.is_open() {
                closed_since = None;
                continue;
            }
            let since = *closed_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= lease {
                lost(&gate, &name, "its lease ran out and could not be renewed");
            }
        }
    });
}

/// This server no longer owns the volume: it stops without another word or write.
fn lost(gate: &OwnerGate, name: &ImageName, why: &str) -> ! {
    gate.close();
    eprintln!("rwxfs serve: {name}: no longer this server's: {why}; stopping without writing");
    // SAFETY: ends the process at once: no destructor may flush anything to the volume.
    unsafe { libc::_exit(LOST) }
}

/// The session log in the object `NAME.sessions` beside the image, where a standby on
/// another host finds it.
pub struct SessionObject {
    pool: Pool,
    oid: String,
}

impl SessionObject {
    pub fn new(pool: Pool, name: &ImageName) -> SessionObject {
        SessionObject {
            pool,
            oid: format!("{}.sessions", name.name),
        }
    }
}

impl LogPlace for SessionObject {
    fn describe(&self) -> String {
        format!("RADOS object {}", self.oid)
    }

    fn read(&self) -> std::io::Result<Vec<u8>> {
        self.pool.read_all(&self.oid)
    }

    fn replace(&self, data: &[u8]) -> std::io::Result<()> {
        self.pool.write_full(&self.oid, data)
    }

    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        self.pool.append(&self.oid, data)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "a host".into())
}
