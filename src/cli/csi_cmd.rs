//! `rwxfs csi --endpoint unix:///csi/csi.sock --node-id NODE [--controller] [--node]`: the
//! Kubernetes CSI driver (the `rwxfs-csi` crate).

use std::path::PathBuf;

// The command's arguments (no doc comment here: clap would take it as the subcommand's help).
#[derive(clap::Args)]
pub struct Args {
    /// The unix socket to serve CSI on, unix:///PATH.
    #[arg(long)]
    pub endpoint: String,
    /// This node's name (the server counts nodes by it for ReadWriteOnce).
    #[arg(long)]
    pub node_id: String,
    /// Serve the controller service: create, delete, expand and validate volumes.
    #[arg(long)]
    pub controller: bool,
    /// Serve the node service: publish and unpublish volumes, their stats.
    #[arg(long)]
    pub node: bool,
    /// The servers' administrator token when a request carries no `adminToken` secret.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The mounts' token when a publish carries no `token` secret.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Speak TLS to the servers, trusting the certificates in FILE (PEM), when a request
    /// carries no `tlsCA` secret.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// A server the controller knows (repeatable): ListVolumes lists their volumes, and the
    /// first is the one for a StorageClass or GetCapacity that names no `server`.
    #[arg(long = "server", value_name = "HOST:PORT")]
    pub servers: Vec<String>,
}

pub fn run(a: Args) -> i32 {
    if !a.controller && !a.node {
        eprintln!("rwxfs csi: give --controller, --node or both");
        return 2;
    }
    let opts = rwxfs_csi::Options {
        endpoint: a.endpoint,
        node_id: a.node_id,
        controller: a.controller,
        node: a.node,
        admin_token_file: a.admin_token_file,
        token_file: a.token_file,
        servers: a.servers,
        tls_ca: a.tls_ca,
        rwxfs: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rwxfs")),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rwxfs csi: {e}");
            return 1;
        }
    };
    match rt.block_on(rwxfs_csi::serve(opts)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rwxfs csi: {e}");
            1
        }
    }
}
