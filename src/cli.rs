//! Subcommands and their arguments; each dispatches to the crate that owns the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod bench_cmd;
mod csi_cmd;
mod demo_cmd;
mod export_cmd;
mod fsck_cmd;
mod image_lock;
mod limits;
mod mkfs_cmd;
mod mount_cmd;
mod mount_helper;
mod rados_cmd;
mod serve_cmd;
mod serve_rados;
mod status_cmd;

#[derive(Parser)]
#[command(
    name = "rwxfs",
    version,
    about = "A shared file system: one server, many read-write FUSE mounts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create an empty volume in an image file (sparse), on a block device, or in Ceph RADOS
    /// (rados://POOL/NAME).
    Mkfs {
        image: PathBuf,
        /// Size with K/M/G/T suffix, e.g. 4G (ignored for block devices).
        #[arg(long)]
        size: Option<String>,
        /// Overwrite an existing rwxfs volume.
        #[arg(long)]
        force: bool,
        /// Inodes to provision (default: one per 16 KiB).
        #[arg(long)]
        inodes: Option<u64>,
        #[command(flatten)]
        ceph: rados_cmd::CephArgs,
    },
    /// Check a volume. Exit status: 0 clean, 4 errors found, 8 could not check.
    Fsck {
        image: PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ceph: rados_cmd::CephArgs,
        /// The server's session log, whose sessions' open files are told from lost ones
        /// (default: the image's path with `.sessions` appended, as `serve` uses; a RADOS
        /// image has none unless given).
        #[arg(long, value_name = "FILE")]
        state_file: Option<PathBuf>,
        /// Before checking, make the list of files unlinked while open, the list of quota
        /// trees and each tree's kept use again from the inode table (no server running);
        /// files unlinked while open are kept for their sessions.
        #[arg(long)]
        repair: bool,
    },
    /// Mount a volume: `rwxfs mount HOST:PORT MOUNTPOINT`, or `--raw-image IMAGE MOUNTPOINT`.
    Mount(mount_cmd::Args),
    /// Run one concurrent-writer workload through the server and on a raw shared image,
    /// and show side by side what each lost.
    Demo {
        #[arg(long, default_value_t = 3)]
        clients: usize,
        /// Files each client writes.
        #[arg(long, default_value_t = 200)]
        files: usize,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Write each run's block map here, as SVG and PNG (default: rwxfs-demo in the
        /// temporary directory, printed at the end).
        #[arg(long, value_name = "DIR")]
        picture: Option<std::path::PathBuf>,
    },
    /// Measure throughput and metadata rates, verifying every byte: on existing mount points
    /// of any file system (--mounts), or on a server and mounts of its own.
    Bench(bench_cmd::Args),
    /// Serve a volume to any number of mounts.
    Serve(serve_cmd::Args),
    /// A running server's exports: create, list, resize, delete.
    Export(export_cmd::Args),
    /// The Kubernetes CSI driver: exports as volumes, mounted on the nodes.
    Csi(csi_cmd::Args),
    /// List a server's sessions: node, mount, access, address, lease, open files, locks.
    Status {
        /// HOST:PORT of the server.
        server: String,
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "FILE")]
        tls_ca: Option<PathBuf>,
    },
}

fn parse_access_mode(s: &str) -> Result<server::AccessMode, String> {
    s.parse()
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    mkfs_cmd::parse_size(s)
}

fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address range like 10.0.0.0/8"))
}

pub fn run() -> i32 {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_tracing();
    match cli.cmd {
        Cmd::Mkfs {
            image,
            size,
            force,
            inodes,
            ceph,
        } => mkfs_cmd::run(&image, &ceph, size.as_deref(), force, inodes),
        Cmd::Fsck {
            image,
            json,
            ceph,
            state_file,
            repair,
        } => fsck_cmd::run(&image, &ceph, json, state_file, repair),
        Cmd::Mount(args) => mount_cmd::run(args),
        Cmd::Serve(args) => serve_cmd::run(args),
        Cmd::Export(args) => export_cmd::run(args),
        Cmd::Csi(args) => csi_cmd::run(args),
        Cmd::Status {
            server,
            token_file,
            json,
            tls_ca,
        } => status_cmd::run(&server, token_file.as_deref(), tls_ca.as_deref(), json),
        Cmd::Demo {
            clients,
            files,
            json,
            picture,
        } => demo_cmd::run(clients, files, json, picture),
        Cmd::Bench(args) => bench_cmd::run(args),
    }
}

/// The command line, or the exit status when there is nothing to run. Installed as
/// /sbin/mount.rwxfs, this binary is mount(8)'s helper for `mount -t rwxfs` and /etc/fstab
/// lines: its arguments are translated into `rwxfs mount`'s.
fn parse_args() -> Result<Cli, i32> {
    let argv: Vec<String> = std::env::args().collect();
    let invoked_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if invoked_as.as_deref() != Some(mount_helper::NAME) {
        return Ok(Cli::parse());
    }
    match mount_helper::translate(&argv[1..]) {
        Ok(mount_helper::Helper::Mount(args)) => Ok(Cli::parse_from(
            std::iter::once("rwxfs".to_string()).chain(args),
        )),
        Ok(mount_helper::Helper::Nothing) => Err(0),
        Err(e) => {
            eprintln!("{}: {e}", mount_helper::NAME);
            Err(1)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RWXFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fuser=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
