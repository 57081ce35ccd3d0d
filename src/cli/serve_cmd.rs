//! `rwxfs serve --image IMAGE --listen HOST:PORT [export options]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use server::state_log::LogPlace;

use protocol::VolumeAt;
use server::{serve, AccessMode, Export, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::{FileStore, Volume};

use super::image_lock::{self, Hold, ImageLock, LockError};
use super::rados_cmd::{self, CephArgs};

// The command's arguments (no doc comment here: clap would take it as the subcommand's help).
#[derive(clap::Args)]
pub struct Args {
    /// The image: a file, a block device, or rados://POOL/NAME.
    #[arg(long)]
    pub image: PathBuf,
    /// Address to listen on, HOST:PORT.
    #[arg(long)]
    pub listen: String,
    /// Seconds a silent client keeps its session.
    #[arg(long, default_value_t = 15)]
    pub lease_secs: u64,
    /// Kubernetes access mode enforced for every mount: rwx, rox, rwo or rwop.
    #[arg(long, default_value = "rwx", value_parser = super::parse_access_mode)]
    pub access_mode: AccessMode,
    /// File holding a shared token every client must prove (challenge-response).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// File holding the administrator's token, for `rwxfs export` (separate from
    /// --token-file, the mounts'); without it the server takes no administration.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Export read-only: every mount is.
    #[arg(long)]
    pub read_only: bool,
    /// Client addresses allowed to connect (CIDR, repeatable); default: any.
    #[arg(long = "allow", value_name = "CIDR", value_parser = super::parse_cidr)]
    pub allow: Vec<ipnet::IpNet>,
    /// Keep uid and gid 0 from clients as they are (default: map to nobody/nogroup).
    #[arg(long)]
    pub no_root_squash: bool,
    /// Speak TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where sessions and the replies they may ask for again are kept across restarts
    /// (default: the image's path with `.sessions` appended; for a RADOS image, the object
    /// NAME.sessions beside it, where a standby finds it).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// After a restart, seconds the clients have to reclaim their locks before anyone
    /// else's lock is granted.
    #[arg(long, default_value_t = 30)]
    pub grace_secs: u64,
    /// For a RADOS image: seconds of the lease by which this server owns the volume,
    /// renewed every third of it. A standby takes over when it ran out.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub owner_lease_secs: u64,
    #[command(flatten)]
    pub limits: super::limits::Limits,
    #[command(flatten)]
    pub ceph: CephArgs,
}

pub fn run(a: Args) -> i32 {
    let state_file = match state_file(&a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let cfg = match config(&a, state_file.clone()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cfg.blocking_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    match rados_cmd::name(&a.image) {
        Ok(Some(name)) => return serve_rados(&a, name, cfg, &rt),
        Ok(None) => {}
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    }
    // Held until the server exits; the kernel drops the locks if it dies.
    let (_owner, vol) = match open_owned(&a.image, state_file.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    rt.block_on(serve_on(&a.listen, &a.image, vol, cfg))
}

/// A RADOS volume: connect, then own it or stand by (`serve_rados`).
fn serve_rados(
    a: &Args,
    name: rados_store::ImageName,
    cfg: ServerConfig,
    rt: &tokio::runtime::Runtime,
) -> i32 {
    let cluster = match rados_store::Cluster::connect(&a.ceph.options()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let lease = Duration::from_secs(a.owner_lease_secs);
    rt.block_on(super::serve_rados::serve(
        name, cluster, &a.listen, lease, cfg,
    ))
}

/// The server's configuration from the arguments: the export (its token read, its TLS
/// certificate loaded), the lease, the grace period, the bounds and the session log.
fn config(a: &Args, state_file: Option<PathBuf>) -> Result<ServerConfig, String> {
    let token = a
        .token_file
        .as_deref()
        .map(super::mount_cmd::read_token)
        .transpose()?;
    let admin_token = a
        .admin_token_file
        .as_deref()
        .map(super::mount_cmd::read_token)
        .transpose()?;
    let tls = a
        .tls_cert
        .as_ref()
        .zip(a.tls_key.as_ref())
        .map(|(c, k)| server::tls::acceptor(c, k))
        .transpose()?;
    let export = Export {
        mode: a.access_mode,
        read_only: a.read_only,
        allow: a.allow.clone(),
        root_squash: !a.no_root_squash,
        token,
    };
    Ok(a.limits.apply(ServerConfig {
        lease: Duration::from_secs(a.lease_secs.max(1)),
        export,
        admin_token,
        tls,
        state_log: state_file
            .map(|p| Arc::new(server::state_log::FileLog::new(&p)) as Arc<dyn LogPlace>),
        grace: Duration::from_secs(a.grace_secs),
        direct_location: direct_location(&a.image)?,
        ..ServerConfig::default()
    }))
}

/// Where direct mounts find the volume: a local image's absolute path, a RADOS volume's pool
/// and name (each mount reaches the cluster with its own Ceph configuration and key).
fn direct_location(image: &std::path::Path) -> Result<Option<VolumeAt>, String> {
    if let Some(n) = rados_cmd::name(image)? {
        let (pool, name) = (n.pool, n.name);
        return Ok(Some(VolumeAt::Rados { pool, name }));
    }
    let path = std::fs::canonicalize(image).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok(path.to_str().map(|p| VolumeAt::Local(p.to_owned())))
}

/// Where the sessions are kept: `--state-file`, else beside a local image. A RADOS image has
/// no local place of its own: without `--state-file` its sessions live in memory only.
fn state_file(a: &Args) -> Result<Option<PathBuf>, String> {
    if a.state_file.is_some() {
        return Ok(a.state_file.clone());
    }
    if rados_cmd::name(&a.image)?.is_some() {
        return Ok(None); // the object beside the image (`serve_rados`)
    }
    let mut p = a.image.clone().into_os_string();
    p.push(".sessions");
    Ok(Some(PathBuf::from(p)))
}

/// The local image, owned by this server (see `own_image`) and opened. Files left
/// unlinked-but-open are kept until the sessions that may hold them are known.
fn open_owned(
    image: &Path,
    state_file: Option<&Path>,
) -> Result<(Vec<ImageLock>, Volume<server::Store>), String> {
    let mut owner = vec![own_image(image)?];
    owner.extend(own_log(state_file)?);
    let store = FileStore::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let store = Box::new(store) as server::Store;
    let vol =
        Volume::open_keeping_orphans(store).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok((owner, vol))
}

/// Listens on `listen` and serves `vol` until SIGTERM or ctrl-c; the exit status.
async fn serve_on(
    listen: &str,
    image: &Path,
    vol: Volume<server::Store>,
    cfg: ServerConfig,
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
    eprintln!("rwxfs: serving {} on {addr}", image.display());
    let token = CancellationToken::new();
    tokio::spawn(cancel_on_signal(token.clone()));
    match serve(vol, listener, cfg, token).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            1
        }
    }
}

/// Cancels `token` at SIGTERM or ctrl-c.
pub(super) async fn cancel_on_signal(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    token.cancel();
}

/// The image, exclusively this server's: another server, a raw mount or fsck of the image is
/// refused while it runs, with this server named.
fn own_image(image: &Path) -> Result<ImageLock, String> {
    image_lock::lock(image, Hold::Owner).map_err(|e| match e {
        LockError::InUse(e) => format!(
            "{e}; one image has one server, and no raw mount beside it (a local image has no \
             standby: for a server that takes over when the first is gone, put the volume in \
             Ceph RADOS, rados://POOL/NAME)"
        ),
        LockError::Io(e) => e,
    })
}

/// The session log, if there is one, exclusively this server's.
fn own_log(state_file: Option<&Path>) -> Result<Option<ImageLock>, String> {
    let Some(state_file) = state_file else {
        return Ok(None);
    };
    let mut companion = state_file.as_os_str().to_owned();
    companion.push(".lock");
    image_lock::lock_companion(Path::new(&companion), Hold::Owner)
        .map(Some)
        .map_err(|e| format!("session log {}: {e}", state_file.display()))
}
