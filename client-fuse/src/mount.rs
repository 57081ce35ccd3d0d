//! Mounting: options every mode shares, foreground serving until unmount or SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};

use crate::backend::{Backend, Invalidate};
use crate::fuse::RwxFuse;

#[derive(Debug, Clone)]
/// How to mount: where, as what, and with which kernel options.
pub struct MountConfig {
    /// The directory to mount on.
    pub mountpoint: PathBuf,
    /// What `mount` shows as the source (image path or HOST:PORT).
    pub source: String,
    /// The kernel refuses every change.
    pub read_only: bool,
    /// The mount flags (nosuid, nodev, noexec, ...).
    pub flags: MountFlags,
    /// How long the kernel may trust attributes and entries.
    pub ttl: Duration,
    /// Threads serving the kernel's requests.
    pub threads: usize,
}

/// The kernel's per-mount restrictions (mount(8)'s `nosuid`, `nodev`, `noexec`): off unless
/// asked for, as on a local file system mounted by root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountFlags {
    /// setuid and setgid bits (and file capabilities) do nothing on executables here.
    pub nosuid: bool,
    /// Device nodes here cannot be opened.
    pub nodev: bool,
    /// Nothing here can be executed.
    pub noexec: bool,
}

impl MountFlags {
    /// Apply one mount(8) option; false if it is not one of these flags or their opposites.
    pub fn apply(&mut self, option: &str) -> bool {
        match option {
            "nosuid" => self.nosuid = true,
            "suid" => self.nosuid = false,
            "nodev" => self.nodev = true,
            "dev" => self.nodev = false,
            "noexec" => self.noexec = true,
            "exec" => self.noexec = false,
            _ => return false,
        }
        true
    }

    /// These flags as mount(8) options, restrictions only (`nosuid,nodev`); empty if none.
    pub fn to_options(&self) -> String {
        let on = [
            (self.nosuid, "nosuid"),
            (self.nodev, "nodev"),
            (self.noexec, "noexec"),
        ];
        on.iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The options the kernel mount is made with.
pub fn mount_options(cfg: &MountConfig) -> Vec<MountOption> {
    let f = cfg.flags;
    let mut options = vec![
        MountOption::FSName(cfg.source.clone()),
        MountOption::Subtype("rwxfs".into()),
        MountOption::DefaultPermissions,
        // Leaving out `Dev` and `Suid` is what makes the mount nodev and nosuid.
        if f.nodev {
            MountOption::NoDev
        } else {
            MountOption::Dev
        },
        if f.nosuid {
            MountOption::NoSuid
        } else {
            MountOption::Suid
        },
        if f.noexec {
            MountOption::NoExec
        } else {
            MountOption::Exec
        },
    ];
    if cfg.read_only {
        options.push(MountOption::RO);
    }
    options
}

/// Refuse a mount point that cannot work, with the reason.
pub fn check_mountpoint(mp: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(mp).map_err(|e| format!("mount point {}: {e}", mp.display()))?;
    if !meta.is_dir() {
        return Err(format!("mount point {} is not a directory", mp.display()));
    }
    if is_mounted(mp) {
        return Err(format!(
            "mount point {} is busy: a FUSE file system is already mounted there",
            mp.display()
        ));
    }
    if std::fs::metadata("/dev/fuse").is_err() {
        return Err("FUSE is unavailable: /dev/fuse does not exist (load the fuse module)".into());
    }
    Ok(())
}

/// True while a FUSE mount (rwxfs's or another's) is live at `mp`.
pub fn is_mounted(mp: &Path) -> bool {
    is_mounted_in(Path::new("/proc/self/mountinfo"), mp)
}

/// True while a FUSE mount is live at `mp` in the mount namespace whose mount table is
/// `mountinfo` (`/proc/PID/mountinfo` for another process's namespace).
pub fn is_mounted_in(mountinfo: &Path, mp: &Path) -> bool {
    let canon = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    std::fs::read_to_string(mountinfo)
        .map(|m| {
            m.lines().any(|l| {
                l.split(' ').nth(4) == Some(canon.to_string_lossy().as_ref()) && is_fuse_line(l)
            })
        })
        .unwrap_or(false)
}

/// Mount and serve until the file system is unmounted or the process gets SIGTERM/SIGINT;
/// then everything is made durable. `on_ready` runs once the mount is live.
pub fn mount_foreground(
    backend: Arc<dyn Backend>,
    cfg: &MountConfig,
    on_ready: impl FnOnce(),
) -> std::io::Result<()> {
    let mut config = Config::default();
    config.mount_options = mount_options(cfg);
    config.acl = SessionACL::All;
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    let notifier = Arc::new(std::sync::OnceLock::new());
    let fs = RwxFuse::new(backend.clone(), cfg.ttl, cfg.read_only, notifier.clone());
    let session = fuser::Session::new(fs, &cfg.mountpoint, &config)?;
    let _ = notifier.set(session.notifier());
    start_invalidator(&*backend, session.notifier());
    let bg = session.spawn()?;
    on_ready();
    let mp = cfg.mountpoint.clone();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    let handle = signals.handle();
    let waiter = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            tracing::info!("signal received: unmounting {}", mp.display());
            let c = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes()).unwrap_or_default();
            // SAFETY: plain syscall on a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    });
    let r = bg.join();
    handle.close();
    let _ = waiter.join();
    backend.shutdown().map_err(std::io::Error::other)?;
    r
}

/// A mountinfo line of a FUSE mount (the type reads `fuse` or `fuse.rwxfs`).
fn is_fuse_line(l: &str) -> bool {
    l.contains(" - fuse ") || l.contains(" - fuse.rwxfs ")
}

/// Hand the backend's invalidations to the kernel, on a thread of their own: the kernel may
/// wait for page locks that a FUSE request in progress holds until its reply arrives, so this
/// must never run on the thread that delivers replies.
fn start_invalidator(backend: &dyn Backend, notifier: fuser::Notifier) {
    use std::os::unix::ffi::OsStrExt;
    let (tx, rx) = std::sync::mpsc::channel::<Invalidate>();
    backend.on_invalidate(tx);
    let spawned = std::thread::Builder::new()
        .name("rwxfs-inval".into())
        .spawn(move || {
            for i in rx {
                // ENOENT: the kernel does not hold that inode or name; nothing to drop.
                let _ = match &i {
                    Invalidate::Inode(ino) => notifier.inval_inode(fuser::INodeNo(*ino), 0, 0),
                    Invalidate::Entry { parent, name } => notifier
                        .inval_entry(fuser::INodeNo(*parent), std::ffi::OsStr::from_bytes(name)),
                };
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the invalidation thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(read_only: bool, flags: MountFlags) -> MountConfig {
        MountConfig {
            mountpoint: "/mnt".into(),
            source: "h:1".into(),
            read_only,
            flags,
            ttl: Duration::from_secs(1),
            threads: 1,
        }
    }

    #[test]
    fn flags_asked_for_reach_the_kernel_options_and_others_stay_permissive() {
        let plain = mount_options(&cfg(false, MountFlags::default()));
        for o in [MountOption::Dev, MountOption::Suid, MountOption::Exec] {
            assert!(plain.contains(&o), "{o:?} missing from {plain:?}");
        }
        assert!(!plain.contains(&MountOption::RO));
        let mut f = MountFlags::default();
        for o in "nosuid,nodev,noexec".split(',') {
            assert!(f.apply(o));
        }
        let strict = mount_options(&cfg(true, f));
        for o in [
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoExec,
            MountOption::RO,
        ] {
            assert!(strict.contains(&o), "{o:?} missing from {strict:?}");
        }
        for o in [MountOption::Dev, MountOption::Suid, MountOption::Exec] {
            assert!(!strict.contains(&o), "{o:?} in {strict:?}");
        }
    }

    #[test]
    fn the_last_of_opposite_options_wins_and_others_are_not_flags() {
        let mut f = MountFlags::default();
        for o in ["noexec", "nodev", "exec"] {
            assert!(f.apply(o));
        }
        assert_eq!(
            f,
            MountFlags {
                nodev: true,
                ..Default::default()
            }
        );
        assert_eq!(f.to_options(), "nodev");
        assert!(!f.apply("ro"));
        assert!(!f.apply("bogus"));
        assert_eq!(MountFlags::default().to_options(), "");
    }
}
