//! `rwxfs serve --image IMAGE --listen HOST:PORT [export options]`

use std::path::{Path, PathBuf};
use std::time::Duration;

use server::{serve, AccessMode, Export, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::{FileStore, Volume};

use super::image_lock::{self, Hold, ImageLock, LockError};

pub struct Args {
    pub image: PathBuf,
    pub listen: String,
    pub lease_secs: u64,
    pub access_mode: AccessMode,
    pub token_file: Option<PathBuf>,
    pub read_only: bool,
    pub allow: Vec<ipnet::IpNet>,
    pub no_root_squash: bool,
    /// Certificate chain and key files, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub state_file: Option<PathBuf>,
    pub grace_secs: u64,
    pub limits: super::limits::Limits,
}

pub fn run(a: Args) -> i32 {
    let (image, listen) = (a.image.as_path(), a.listen.as_str());
    let state_file = a.state_file.clone().unwrap_or_else(|| {
        let mut p = a.image.clone().into_os_string();
        p.push(".sessions");
        PathBuf::from(p)
    });
    let token = match a
        .token_file
        .as_deref()
        .map(super::mount_cmd::read_token)
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let tls = match a
        .tls
        .as_ref()
        .map(|(c, k)| server::tls::acceptor(c, k))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let export = Export {
        mode: a.access_mode,
        read_only: a.read_only,
        allow: a.allow.clone(),
        root_squash: !a.no_root_squash,
        token,
    };
    // Held until the server exits; the kernel drops both if it dies.
    let _owner = match own_image(image, &state_file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    let store = match FileStore::open(image) {
        Ok(s) => Box::new(s) as server::Store,
        Err(e) => {
            eprintln!("rwxfs serve: {}: {e}", image.display());
            return 1;
        }
    };
    // Files left unlinked-but-open are kept until the sessions that may hold them are known.
    let vol = match Volume::open_keeping_orphans(store) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rwxfs serve: {}: {e}", image.display());
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rwxfs serve: {e}");
            return 1;
        }
    };
    rt.block_on(async {
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
        let t = token.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            t.cancel();
        });
        let cfg = a.limits.apply(ServerConfig {
            lease: Duration::from_secs(a.lease_secs.max(1)),
            export,
            tls,
            state_log: Some(state_file),
            grace: Duration::from_secs(a.grace_secs),
            ..ServerConfig::default()
        });
        match serve(vol, listener, cfg, token).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rwxfs serve: {e}");
                1
            }
        }
    })
}

/// The image and the session log, exclusively this server's: another server, a raw mount or
/// fsck of the image is refused while it runs, with this server named.
fn own_image(image: &Path, state_file: &Path) -> Result<[ImageLock; 2], String> {
    let image_lock = image_lock::lock(image, Hold::Owner).map_err(|e| match e {
        LockError::InUse(e) => format!("{e}; one image has one server, and no raw mount beside it"),
        LockError::Io(e) => e,
    })?;
    let mut companion = state_file.as_os_str().to_owned();
    companion.push(".lock");
    let log_lock = image_lock::lock_companion(Path::new(&companion), Hold::Owner)
        .map_err(|e| format!("session log {}: {e}", state_file.display()))?;
    Ok([image_lock, log_lock])
}
