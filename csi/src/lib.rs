//! rwxfs as a Kubernetes CSI driver (CSI v1 over gRPC on a unix socket). A volume is an
//! export of an rwxfs server (`rwxfs export`): the controller makes, resizes and deletes
//! exports with the server's administrator token; the node mounts one at a pod's target
//! path with `rwxfs mount HOST:PORT/NAME`, a daemon of its own that outlives the plugin.
//! Access modes are the server's to enforce: a mount the export's mode does not admit is
//! refused by the server, and the refusal (naming the node that holds the volume) is the
//! driver's FAILED_PRECONDITION.

#![warn(missing_docs)]
#![warn(unreachable_pub)]
// Every handler answers with tonic's `Status`, a large error passed straight to gRPC.
#![allow(clippy::result_large_err)]

mod admin;
mod asked;
mod controller;
mod identity;
mod listing;
mod modes;
mod mountinfo;
mod node;

use std::path::PathBuf;

pub use bpfman_csi::v1 as spec;

/// The driver's name, as a StorageClass's `provisioner` names it.
pub const DRIVER_NAME: &str = "rwxfs.csi.rwxfs.dev";
/// The StorageClass parameter naming the server its volumes are exports of (`HOST:PORT`).
pub const SERVER_PARAM: &str = "server";
/// The StorageClass parameter making a class admit claims of one access mode only (rwx,
/// rox, rwo or rwop); without it, a volume has the mode its claim asks for.
pub const ACCESS_MODE_PARAM: &str = "accessMode";
/// The StorageClass parameters for a volume's root directory: its owner, its group, and
/// its permission bits in octal (as other drivers' `mountPermissions`). With an owner and no
/// bits it is 0755; with neither it is root's and 0777, as a fresh volume's root (the server
/// squashes root, so a root-owned 0755 root would be writable by no pod).
pub const OWNER_PARAMS: [&str; 3] = ["uid", "gid", "mountPermissions"];
pub use admin::{ADMIN_SECRET, MOUNT_SECRET, TLS_SECRET};

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The unix socket to listen on (`unix:///csi/csi.sock` or a plain path).
    pub endpoint: String,
    /// This node's name: what the server counts nodes by for its access modes.
    pub node_id: String,
    /// Serve the controller service (create, delete, expand, validate).
    pub controller: bool,
    /// Serve the node service (publish, unpublish, stats).
    pub node: bool,
    /// The administrator's token when a request carries none (`adminToken` secret).
    pub admin_token_file: Option<PathBuf>,
    /// The mounts' token when a publish carries none (`token` secret).
    pub token_file: Option<PathBuf>,
    /// The CA (PEM) the servers' TLS certificates are checked with when a request carries
    /// no `tlsCA` secret; with neither, connections are plain TCP.
    pub tls_ca: Option<PathBuf>,
    /// The servers the controller knows: ListVolumes lists theirs, and the first serves a
    /// StorageClass or GetCapacity that names no `server`.
    pub servers: Vec<String>,
    /// The `rwxfs` binary the node mounts with.
    pub rwxfs: PathBuf,
}

/// Serve CSI on `opts.endpoint` until SIGTERM or ctrl-c.
pub async fn serve(opts: Options) -> Result<(), String> {
    let path = opts
        .endpoint
        .strip_prefix("unix://")
        .unwrap_or(&opts.endpoint)
        .to_string();
    if !path.starts_with('/') {
        return Err(format!(
            "endpoint {:?}: expected unix:///PATH/TO/SOCKET",
            opts.endpoint
        ));
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{path}: {e}")),
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("cannot listen on {path}: {e}"))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let identity = identity::Identity {
        controller: opts.controller,
    };
    let mut router = tonic::transport::Server::builder()
        .add_service(spec::identity_server::IdentityServer::new(identity));
    if opts.controller {
        let c = controller::Controller::new(&opts);
        router = router.add_service(spec::controller_server::ControllerServer::new(c));
    }
    if opts.node {
        let n = node::Node::new(&opts);
        router = router.add_service(spec::node_server::NodeServer::new(n));
    }
    eprintln!("rwxfs csi: serving on {path}");
    router
        .serve_with_incoming_shutdown(incoming, stopped())
        .await
        .map_err(|e| e.to_string())
}

/// SIGTERM or ctrl-c.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
