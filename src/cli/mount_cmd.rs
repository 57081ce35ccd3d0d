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
use client_fuse::{mount_foreground, Backend, MountConfig, MountFlags, RawBackend, RemoteBackend};
use volume::{FileStore, Volume};

use super::image_lock::{self, Hold, ImageLock, LockError};

pub struct Args {
    pub args: Vec<String>,
    pub raw_image: Option<PathBuf>,
    pub foreground: bool,
    pub read_only: bool,
    /// `-o` values: mount(8) options (`ro`, `nosuid`, ...), comma-separated.
    pub options: Vec<String>,
    pub node_id: Option<String>,
    pub token_file: Option<PathBuf>,
    pub no_wait: bool,
    pub tls_ca: Option<PathBuf>,
    /// Seconds the kernel may reuse attributes and names without asking.
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

pub fn run(mut a: Args) -> i32 {
    let ready_fd: Option<i32> = std::env::var(READY_FD).ok().and_then(|v| v.parse().ok());
    // SAFETY: the fd number was handed to us by our parent for this purpose only.
    let mut ready = ready_fd.map(|fd| unsafe { std::fs::File::from_raw_fd(fd) });
    let fail = |ready: &mut Option<std::fs::File>, msg: String| {
        if let Some(f) = ready.as_mut() {
            let _ = writeln!(f, "error: {msg}");
        }
        eprintln!("rwxfs mount: {msg}");
        1
    };
    let (mountpoint, source) = match (&a.raw_image, a.args.as_slice()) {
        (Some(img), [mp]) => (PathBuf::from(mp), img.display().to_string()),
        (Some(_), _) => {
            return fail(
                &mut ready,
                "with --raw-image give only the mount point".into(),
            )
        }
        (None, [server, mp]) => (PathBuf::from(mp), server.clone()),
        (None, _) => return fail(&mut ready, "usage: rwxfs mount HOST:PORT MOUNTPOINT".into()),
    };
    let flags = match parse_options(&a.options, a.read_only) {
        Ok((ro, flags)) => {
            a.read_only = ro;
            flags
        }
        Err(e) => return fail(&mut ready, e),
    };
    if let Err(e) = check_mountpoint(&mountpoint) {
        return fail(&mut ready, e);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return fail(
            &mut ready,
            "mounting needs root (CAP_SYS_ADMIN) on this system".into(),
        );
    }
    if a.raw_image.is_some() && ready.is_none() {
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
        Err(e) => return fail(&mut ready, e),
    };
    if let Some(w) = a.raw_image.as_deref().and_then(other_raw_mounts) {
        match ready.as_ref() {
            Some(mut f) => {
                let _ = writeln!(f, "warning: {w}");
            }
            None => eprintln!("rwxfs mount: warning: {w}"),
        }
    }
    let backend: Arc<dyn Backend> = match &a.raw_image {
        Some(img) => {
            let store = match if a.read_only {
                FileStore::open_read_only(img)
            } else {
                FileStore::open(img)
            } {
                Ok(s) => s,
                Err(e) => return fail(&mut ready, format!("{}: {e}", img.display())),
            };
            match Volume::open(store) {
                Ok(v) => Arc::new(RawBackend::new(v)),
                Err(e) => return fail(&mut ready, format!("{}: {e}", img.display())),
            }
        }
        None => {
            let token = match a.token_file.as_deref().map(read_token).transpose() {
                Ok(t) => t,
                Err(e) => return fail(&mut ready, e),
            };
            let tls = match a
                .tls_ca
                .as_deref()
                .map(client_fuse::transport::client_config)
                .transpose()
            {
                Ok(t) => t,
                Err(e) => return fail(&mut ready, e),
            };
            let opts = ConnectOptions {
                tls,
                node_id: a.node_id.clone().unwrap_or_else(node_id),
                read_only: a.read_only,
                token,
                no_wait: a.no_wait,
            };
            // Waiting to be admitted (an RWOP volume in use): say so, as a Pending pod would.
            let pending = |why: &str| {
                if let Some(f) = ready.as_ref() {
                    let mut f: &std::fs::File = f;
                    let _ = writeln!(f, "pending: {why}");
                } else {
                    eprintln!("rwxfs mount: pending: {why}");
                }
            };
            match RemoteBackend::connect(&source, &opts, &pending) {
                Ok(r) => Arc::new(r),
                Err(e) => return fail(&mut ready, e),
            }
        }
    };
    let cfg = MountConfig {
        mountpoint: mountpoint.clone(),
        source,
        read_only: a.read_only,
        flags,
        ttl: Duration::from_secs(a.cache_secs),
        threads: 4,
    };
    let res = mount_foreground(backend, &cfg, || {
        if let Some(f) = ready.as_mut() {
            let _ = writeln!(f, "ok");
        }
        ready = None;
    });
    match res {
        Ok(()) => 0,
        Err(e) => {
            let msg = match e.kind() {
                std::io::ErrorKind::PermissionDenied => format!(
                    "{}: permission denied (are you root?)",
                    mountpoint.display()
                ),
                _ => format!("{}: {e}", mountpoint.display()),
            };
            fail(&mut ready, msg)
        }
    }
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
    let mut args: Vec<String> = vec!["mount".into()];
    if let Some(img) = &a.raw_image {
        args.push("--raw-image".into());
        args.push(img.display().to_string());
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
    let log = std::env::var_os("RWXFS_LOG_FILE").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        .env(READY_FD, fds[1].to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn();
    // SAFETY: closing our copy of the write end; the child holds its own.
    unsafe { libc::close(fds[1]) };
    // SAFETY: fds[0] is the pipe's read end, owned from here on.
    let mut rd = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rwxfs mount: cannot start the mount process: {e}");
            return 1;
        }
    };
    // The child reports "pending: WHY" while it waits to be admitted and "warning: WHY" for
    // what the user should know, then "ok" or "error: WHY".
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
