//! Subcommands and their arguments; each dispatches to the crate that owns the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod bench_cmd;
mod demo_cmd;
mod fsck_cmd;
mod image_lock;
mod limits;
mod mkfs_cmd;
mod mount_cmd;
mod mount_helper;
mod serve_cmd;
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
    /// Create an empty volume in an image file (sparse) or on a block device.
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
    },
    /// Check a volume. Exit status: 0 clean, 4 errors found, 8 could not check.
    Fsck {
        image: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Mount a volume: `rwxfs mount HOST:PORT MOUNTPOINT`, or `--raw-image IMAGE MOUNTPOINT`.
    Mount {
        /// HOST:PORT of the server, then the mount point (or just the mount point with --raw-image).
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Run the engine in this process directly on IMAGE (unsafe with several writers).
        #[arg(long, value_name = "IMAGE")]
        raw_image: Option<PathBuf>,
        /// Stay attached instead of serving in the background.
        #[arg(long)]
        foreground: bool,
        #[arg(long)]
        read_only: bool,
        /// mount(8) options, comma-separated: ro, rw, nosuid, nodev, noexec (suid, dev, exec
        /// undo them; the last one given wins).
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
        /// Node identity (default: /etc/machine-id, else the hostname).
        #[arg(long)]
        node_id: Option<String>,
        /// File holding the export's shared token (proven, never sent).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// If the server makes the mount wait (a ReadWriteOncePod volume in use), fail at once.
        #[arg(long)]
        no_wait: bool,
        /// Speak TLS, trusting the certificates in FILE (the server's, or its CA's), PEM.
        #[arg(long, value_name = "FILE")]
        tls_ca: Option<PathBuf>,
        /// How long the kernel may reuse attributes and names without asking the server, in
        /// seconds; the server's invalidations refresh what another mount changed sooner.
        #[arg(long, default_value_t = 1, value_name = "SECS")]
        cache_secs: u64,
    },
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
    },
    /// Measure throughput and metadata rates, verifying every byte: on existing mount points
    /// of any file system (--mounts), or on a server and mounts of its own.
    Bench {
        /// Mount points of one shared volume, comma-separated (writer i uses mount i, reads
        /// back go through another); default: start an image, a server and mounts.
        #[arg(long, value_delimiter = ',', value_name = "M1,M2,...")]
        mounts: Vec<PathBuf>,
        /// Concurrent writers.
        #[arg(long, default_value_t = 4)]
        writers: usize,
        /// Size of the large file (K, M, G suffixes); the multi-writer runs share it.
        #[arg(long, default_value = "512M", value_parser = parse_bytes)]
        size: u64,
        /// Small files per process.
        #[arg(long, default_value_t = 2000)]
        files: usize,
        /// Seconds of random 4 KiB writes.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Only these workloads: sequential, writers, small, random, scaling.
        #[arg(long, value_delimiter = ',', value_name = "W,...")]
        only: Vec<String>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Plot throughput against concurrent writers to this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// Serve a volume to any number of mounts.
    Serve {
        #[arg(long)]
        image: PathBuf,
        /// Address to listen on, HOST:PORT.
        #[arg(long)]
        listen: String,
        /// Seconds a silent client keeps its session.
        #[arg(long, default_value_t = 15)]
        lease_secs: u64,
        /// Kubernetes access mode enforced for every mount: rwx, rox, rwo or rwop.
        #[arg(long, default_value = "rwx", value_parser = parse_access_mode)]
        access_mode: server::AccessMode,
        /// File holding a shared token every client must prove (challenge-response).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Export read-only: every mount is.
        #[arg(long)]
        read_only: bool,
        /// Client addresses allowed to connect (CIDR, repeatable); default: any.
        #[arg(long = "allow", value_name = "CIDR", value_parser = parse_cidr)]
        allow: Vec<ipnet::IpNet>,
        /// Keep uid and gid 0 from clients as they are (default: map to nobody/nogroup).
        #[arg(long)]
        no_root_squash: bool,
        /// Speak TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Where sessions and the replies they may ask for again are kept across restarts
        /// (default: the image's path with `.sessions` appended).
        #[arg(long, value_name = "FILE")]
        state_file: Option<PathBuf>,
        /// After a restart, seconds the clients have to reclaim their locks before anyone
        /// else's lock is granted.
        #[arg(long, default_value_t = 30)]
        grace_secs: u64,
        #[command(flatten)]
        limits: limits::Limits,
    },
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
    let argv: Vec<String> = std::env::args().collect();
    // Installed as /sbin/mount.rwxfs, this binary is mount(8)'s helper for `mount -t rwxfs`
    // and /etc/fstab lines.
    let invoked_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let cli = if invoked_as.as_deref() == Some(mount_helper::NAME) {
        match mount_helper::translate(&argv[1..]) {
            Ok(mount_helper::Helper::Mount(args)) => {
                Cli::parse_from(std::iter::once("rwxfs".to_string()).chain(args))
            }
            Ok(mount_helper::Helper::Nothing) => return 0,
            Err(e) => {
                eprintln!("{}: {e}", mount_helper::NAME);
                return 1;
            }
        }
    } else {
        Cli::parse()
    };
    init_tracing();
    match cli.cmd {
        Cmd::Mkfs {
            image,
            size,
            force,
            inodes,
        } => mkfs_cmd::run(&image, size.as_deref(), force, inodes),
        Cmd::Fsck { image, json } => fsck_cmd::run(&image, json),
        Cmd::Mount {
            args,
            raw_image,
            foreground,
            read_only,
            options,
            node_id,
            token_file,
            no_wait,
            tls_ca,
            cache_secs,
        } => mount_cmd::run(mount_cmd::Args {
            args,
            raw_image,
            foreground,
            read_only,
            options,
            node_id,
            token_file,
            no_wait,
            tls_ca,
            cache_secs,
        }),
        Cmd::Serve {
            image,
            listen,
            lease_secs,
            access_mode,
            token_file,
            read_only,
            allow,
            no_root_squash,
            tls_cert,
            tls_key,
            state_file,
            grace_secs,
            limits,
        } => serve_cmd::run(serve_cmd::Args {
            image,
            listen,
            lease_secs,
            access_mode,
            token_file,
            read_only,
            allow,
            no_root_squash,
            tls: tls_cert.zip(tls_key),
            state_file,
            grace_secs,
            limits,
        }),
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
        } => demo_cmd::run(clients, files, json),
        Cmd::Bench {
            mounts,
            writers,
            size,
            files,
            seconds,
            only,
            json,
            plot,
        } => bench_cmd::run(bench_cmd::Args {
            mounts,
            writers,
            size,
            files,
            seconds,
            only,
            json,
            plot,
        }),
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
