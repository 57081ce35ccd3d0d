//! `rwxfs mount`: validate, then serve in the background (a child in --foreground) and return
//! once the mount is live, as sshfs does.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use client_fuse::link::ConnectOptions;
use client_fuse::mount::check_mountpoint;
use client_fuse::{
    mount_foreground, Backend, DirectBackend, MountConfig, MountFlags, RawBackend, RemoteBackend,
};
use volume::{FileStore, Volume};

use super::image_lock::{self, Hold, ImageLock, LockError};

// The command's arguments (no doc comment here: clap would take it as the subcommand's help).
#[derive(clap::Args)]
pub struct Args {
    /// HOST:PORT of the server (HOST:PORT/NAME for its export NAME; several addresses,
    /// HOST1:PORT,HOST2:PORT[/NAME], for an active server and its standbys, tried in turn),
    /// then the mount point (or just the mount point with --raw-image).
    #[arg(num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// Run the engine in this process directly on IMAGE (unsafe with several writers).
    #[arg(long, value_name = "IMAGE")]
    pub raw_image: Option<PathBuf>,
    /// Direct mode: metadata through the server, file data read and written on the shared
    /// volume itself at the blocks the server's layouts give (the volume where the server
    /// says it is, or at --direct-image).
    #[arg(long, conflicts_with = "raw_image")]
    pub direct: bool,
    /// With --direct: the volume's image as this machine sees it, where the server's path
    /// for it does not reach (a path, or rados://POOL/NAME).
    #[arg(long, value_name = "PATH", requires = "direct")]
    pub direct_image: Option<PathBuf>,
    /// With --direct of a volume in RADOS: how this mount reaches the Ceph cluster.
    #[command(flatten)]
    pub ceph: super::rados_cmd::CephArgs,
    /// Stay attached instead of serving in the background.
    #[arg(long)]
    pub foreground: bool,
    #[arg(long)]
    pub read_only: bool,
    /// mount(8) options, comma-separated: ro, rw, nosuid, nodev, noexec (suid, dev, exec
    /// undo them; the last one given wins).
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Node identity (default: /etc/machine-id, else the hostname).
    #[arg(long)]
    pub node_id: Option<String>,
    /// File holding the export's shared token (proven, never sent).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// If the server makes the mount wait (a ReadWriteOncePod volume in use), fail at once.
    #[arg(long)]
    pub no_wait: bool,
    /// Speak TLS, trusting the certificates in FILE (the server's, or its CA's), PEM.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// How long the kernel may reuse attributes and names without asking the server, in
    /// seconds; the server's invalidations refresh what another mount changed sooner.
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub cache_secs: u64,
}

const READY_FD: &str = "RWXFS_READY_FD";

/// The `-o` options: whether the mount is read-only (given `read_only` before them), and its
/// kernel flags. Any other option is refused, naming it.
pub fn parse_options(options: &[String], read_only: bool) -> Result<(bool, MountFlags), String> {
    let mut ro = read_only;
    let mut flags = MountFlags::default();
    for o in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        match o {
            "ro" => ro = true,
            "rw" => ro = false,
            o if flags.apply(o) => {}
            o => return Err(format!("unknown mount option {o}")),
        }
    }
    Ok((ro, flags))
}

/// The pipe to the `rwxfs mount` that started this one in the background and waits for it to
/// be live (none when run in the foreground by hand). The parent reads "pending: WHY" while
/// this mount waits to be admitted and "warning: WHY" for what the user should know, then
/// "ok" or "error: WHY".
struct Ready(Option<std::fs::File>);

impl Ready {
    /// The pipe our parent handed down in `READY_FD`, if any.
    fn from_env() -> Ready {
        let fd: Option<i32> = std::env::var(READY_FD).ok().and_then(|v| v.parse().ok());
        // SAFETY: the fd number was handed to us by our parent for this purpose only.
        Ready(fd.map(|fd| unsafe { std::fs::File::from_raw_fd(fd) }))
    }

    fn attached(&self) -> bool {
        self.0.is_some()
    }

    /// Tells the parent (or the terminal) that the mount failed, and why; the exit status.
    fn fail(&mut self, msg: String) -> i32 {
        if let Some(f) = self.0.as_mut() {
            let _ = writeln!(f, "error: {msg}");
        }
        eprintln!("rwxfs mount: {msg}");
        1
    }

    /// A note of `kind` ("pending", "warning") for the user, through the parent if there is one.
    fn note(&self, kind: &str, why: &str) {
        match self.0.as_ref() {
            Some(mut f) => {
                let _ = writeln!(f, "{kind}: {why}");
            }
            None => eprintln!("rwxfs mount: {kind}: {why}"),
        }
    }

    /// Tells the parent the mount is live, and lets it go.
    fn live(&mut self) {
        if let Some(f) = self.0.as_mut() {
            let _ = writeln!(f, "ok");
        }
        self.0 = None;
    }
}

pub fn run(mut a: Args) -> i32 {
    let mut ready = Ready::from_env();
    let (mountpoint, source) = match target(&a) {
        Ok(t) => t,
        Err(e) => return ready.fail(e),
    };
    let flags = match parse_options(&a.options, a.read_only) {
        Ok((ro, flags)) => {
            a.read_only = ro;
            flags
        }
        Err(e) => return ready.fail(e),
    };
    if let Err(e) = check_mountpoint(&mountpoint) {
        return ready.fail(e);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return ready.fail("mounting needs root (CAP_SYS_ADMIN) on this system".into());
    }
    if a.raw_image.is_some() && !ready.attached() {
        eprintln!(
            "rwxfs: WARNING: raw shared-image mode. This mount runs its own engine on {source}; \
             with more than one writer on the same image, data and metadata WILL be corrupted. \
             It exists to show why a server is needed."
        );
    }
    // The background child opens the image or connects, and reports any failure through the
    // readiness pipe: opening here too would replay and commit (or say hello) twice.
    if !a.foreground {
        return spawn_background(&a, flags, &mountpoint);
    }
    // A raw mount holds its image shared for as long as it runs: refused while a server
    // owns it, beside other raw mounts with a warning.
    let _raw_lock = match a.raw_image.as_deref().map(hold_raw).transpose() {
        Ok(l) => l,
        Err(e) => return ready.fail(e),
    };
    if let Some(w) = a.raw_image.as_deref().and_then(other_raw_mounts) {
        ready.note("warning", &w);
    }
    let backend = match backend(&a, &source, &ready) {
        Ok(b) => b,
        Err(e) => return ready.fail(e),
    };
    let cfg = MountConfig {
        mountpoint: mountpoint.clone(),
        source,
        read_only: a.read_only,
        flags,
        ttl: Duration::from_secs(a.cache_secs),
        threads: 4,
    };
    match mount_foreground(backend, &cfg, || ready.live()) {
        Ok(()) => 0,
        Err(e) => {
            let msg = match e.kind() {
                std::io::ErrorKind::PermissionDenied => format!(
                    "{}: permission denied (are you root?)",
                    mountpoint.display()
                ),
                _ => format!("{}: {e}", mountpoint.display()),
            };
            ready.fail(msg)
        }
    }
}

/// The mount point and the source (the server's address or the raw image), from the
/// positional arguments.
fn target(a: &Args) -> Result<(PathBuf, String), String> {
    match (&a.raw_image, a.args.as_slice()) {
        (Some(img), [mp]) => Ok((PathBuf::from(mp), img.display().to_string())),
        (Some(_), _) => Err("with --raw-image give only the mount point".into()),
        (None, [server, mp]) => Ok((PathBuf::from(mp), server.clone())),
        (None, _) => Err("usage: rwxfs mount HOST:PORT MOUNTPOINT".into()),
    }
}

/// The engine on the raw image, or the connection to the server at `source`.
fn backend(a: &Args, source: &str, ready: &Ready) -> Result<Arc<dyn Backend>, String> {
    let Some(img) = &a.raw_image else {
        return remote_backend(a, source, ready);
    };
    let store = if a.read_only {
        FileStore::open_read_only(img)
    } else {
        FileStore::open(img)
    }
    .map_err(|e| format!("{}: {e}", img.display()))?;
    let vol = Volume::open(store).map_err(|e| format!("{}: {e}", img.display()))?;
    Ok(Arc::new(RawBackend::new(vol)))
}

/// The server's address and the export a mount source names: `HOST:PORT` (the whole volume)
/// or `HOST:PORT/NAME`.
pub fn split_source(source: &str) -> (&str, &str) {
    source.split_once('/').unwrap_or((source, ""))
}

/// Connects to the server at `source`; while it makes the mount wait to be admitted (an RWOP
/// volume in use), says so, as a Pending pod would.
fn remote_backend(a: &Args, source: &str, ready: &Ready) -> Result<Arc<dyn Backend>, String> {
    let (addr, export) = split_source(source);
    let token = a.token_file.as_deref().map(read_token).transpose()?;
    let tls = a
        .tls_ca
        .as_deref()
        .map(client_fuse::transport::client_config)
        .transpose()?;
    let opts = ConnectOptions {
        tls,
        node_id: a.node_id.clone().unwrap_or_else(node_id),
        read_only: a.read_only,
        export: export.to_string(),
        token,
        no_wait: a.no_wait,
    };
    let pending = |why: &str| ready.note("pending", why);
    let remote = RemoteBackend::connect(addr, &opts, &pending)?;
    if !a.direct {
        return Ok(Arc::new(remote));
    }
    let image = a.direct_image.as_deref();
    Ok(DirectBackend::new(
        remote,
        image,
        &a.ceph.options(),
        a.read_only,
    )?)
}

/// The shared hold of a raw mount on its image, or why it is refused.
fn hold_raw(image: &Path) -> Result<ImageLock, String> {
    image_lock::lock(image, Hold::Shared).map_err(|e| match e {
        LockError::InUse(e) => format!(
            "{e}; a served image is mounted through its server (rwxfs mount HOST:PORT MOUNTPOINT)"
        ),
        LockError::Io(e) => e,
    })
}

/// A warning when other processes hold the image raw as well (the demonstration of what that
/// does), naming them.
fn other_raw_mounts(image: &Path) -> Option<String> {
    let others = image_lock::others(image);
    if others.is_empty() {
        return None;
    }
    Some(format!(
        "{} is also {}: with more than one writer, this image WILL be corrupted",
        image.display(),
        image_lock::describe(&others, std::process::id())
    ))
}

/// A token file's secret, or why it cannot be used.
pub fn read_token(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
    protocol::auth::token_from_file(&bytes)
        .map_err(|e| format!("token file {}: {e}", path.display()))
}

/// This machine's identity: /etc/machine-id, else the hostname.
pub fn node_id() -> String {
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
        let id = id.trim();
        if !id.is_empty() {
            return id.to_string();
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Re-run this command in the foreground as a detached child; return once it reports the
/// mount live (0) or fails (its message, 1).
fn spawn_background(a: &Args, flags: MountFlags, mountpoint: &std::path::Path) -> i32 {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array; plain pipe(2) leaves both ends inheritable.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("rwxfs mount: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rwxfs"));
    let log = std::env::var_os("RWXFS_LOG_FILE").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let mut cmd = Command::new(exe);
    cmd.args(foreground_args(a, flags))
        .env(READY_FD, fds[1].to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn();
    // SAFETY: closing our copy of the write end; the child holds its own.
    unsafe { libc::close(fds[1]) };
    // SAFETY: fds[0] is the pipe's read end, owned from here on.
    let rd = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    match child {
        Ok(child) => await_child(rd, child, mountpoint),
        Err(e) => {
            eprintln!("rwxfs mount: cannot start the mount process: {e}");
            1
        }
    }
}

/// This command's arguments for the child that mounts in the foreground, with the `-o`
/// options already folded into `flags` and `read_only`.
fn foreground_args(a: &Args, flags: MountFlags) -> Vec<String> {
    let mut args: Vec<String> = vec!["mount".into()];
    if let Some(img) = &a.raw_image {
        args.push("--raw-image".into());
        args.push(img.display().to_string());
    }
    if a.direct {
        args.push("--direct".into());
    }
    if let Some(img) = &a.direct_image {
        args.push("--direct-image".into());
        args.push(img.display().to_string());
    }
    if let Some(c) = &a.ceph.ceph_conf {
        args.push("--ceph-conf".into());
        args.push(c.display().to_string());
    }
    if let Some(id) = &a.ceph.ceph_id {
        args.push("--ceph-id".into());
        args.push(id.clone());
    }
    if a.read_only {
        args.push("--read-only".into());
    }
    let flags = flags.to_options();
    if !flags.is_empty() {
        args.push("-o".into());
        args.push(flags);
    }
    if let Some(n) = &a.node_id {
        args.push("--node-id".into());
        args.push(n.clone());
    }
    if let Some(t) = &a.token_file {
        args.push("--token-file".into());
        args.push(t.display().to_string());
    }
    if a.no_wait {
        args.push("--no-wait".into());
    }
    if let Some(c) = &a.tls_ca {
        args.push("--tls-ca".into());
        args.push(c.display().to_string());
    }
    args.push("--cache-secs".into());
    args.push(a.cache_secs.to_string());
    args.push("--foreground".into());
    args.push("--".into());
    args.extend(a.args.iter().cloned());
    args
}

/// Relays the child's notes from the readiness pipe `rd` (see `Ready`) until it reports the
/// mount live (0) or fails (its message, 1).
fn await_child(mut rd: std::fs::File, mut child: std::process::Child, mountpoint: &Path) -> i32 {
    let mut msg = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(&mut rd)) {
        let Ok(line) = line else { break };
        if let Some(why) = line.strip_prefix("warning: ") {
            eprintln!("rwxfs mount: warning: {why}");
            continue;
        }
        if let Some(why) = line.strip_prefix("pending: ") {
            eprintln!("rwxfs mount: pending: {why}");
            continue;
        }
        msg = line;
        break;
    }
    let msg = msg.trim();
    if msg.starts_with("ok") {
        println!(
            "rwxfs: mounted on {} (pid {})",
            mountpoint.display(),
            child.id()
        );
        return 0;
    }
    let status = child.wait().ok();
    let reason = msg.strip_prefix("error: ").unwrap_or(msg);
    if reason.is_empty() {
        eprintln!("rwxfs mount: the mount process exited ({status:?}) before the mount was live");
    } else {
        eprintln!("rwxfs mount: {reason}");
    }
    1
}
