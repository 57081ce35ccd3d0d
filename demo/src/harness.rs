//! Child processes and mounts that always go away: every mount is unmounted and every child
//! stopped (by pid) when the `Harness` drops — on success, on error and on panic.
//!
//! As root, each mount runs in a mount namespace of its own (`unshare --mount`), as a
//! container's would: no other process sees it, and it cannot outlive its process, since the
//! namespace goes when its last process does. The harness hands out the path by which this
//! process reaches it, `/proc/PID/root/MOUNTPOINT`, and `Harness::command_in` runs a program
//! inside the namespace for what needs the plain path.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client_fuse::mount::is_mounted_in;

/// A live mount and the `rwxfs mount --foreground` process serving it.
struct Mount {
    /// How this process reaches the mount.
    path: PathBuf,
    /// The mount point inside the mount's namespace.
    inner: PathBuf,
    /// Whether the mount lives in a namespace of its own.
    isolated: bool,
    process: Child,
}

/// A scratch directory with the server and the mounts started in it, all stopped (and unmounted)
/// when dropped.
pub struct Harness {
    /// The rwxfs binary everything is started with.
    pub bin: PathBuf,
    /// The scratch directory: images, mount points, logs.
    pub dir: tempfile::TempDir,
    server: Option<Child>,
    /// A shell forked while the server was up, waiting for the next server's command line.
    standby: Option<Child>,
    mounts: Vec<Mount>,
    /// Mount points made so far, to name the next one.
    made: usize,
    /// Each mount in a mount namespace of its own.
    isolate: bool,
}

fn umount(mp: &Path, lazy: bool) -> bool {
    let Ok(c) = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: plain syscall on a NUL-terminated path.
    unsafe { libc::umount2(c.as_ptr(), if lazy { libc::MNT_DETACH } else { 0 }) == 0 }
}

/// Wait for `child` to exit until `deadline`, then kill it. True if it exited by itself.
fn wait_or_kill(child: &mut Child, deadline: Instant) -> bool {
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Mount namespaces need root and `unshare` (util-linux).
fn can_isolate() -> bool {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    root && Command::new("unshare")
        .args(["--mount", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Reads a count and that many NUL-terminated arguments on stdin, then execs them.
const STANDBY: &str = r#"IFS= read -r -d '' n || exit 0
args=()
for ((i = 0; i < n; i++)); do IFS= read -r -d '' a || exit 0; args+=("$a"); done
exec "${args[@]}""#;

/// A shell that will exec the next server, forked now while the server is up. A process
/// that forks while a server is down can hang: exec closes the child's copies of files open
/// on the mounts, and each close is a FUSE flush, which waits for that file's writes to reach
/// the server (as a close does on a hard NFS mount). A test whose own threads write through
/// the mounts must never fork the server that those flushes wait for.
fn spawn_standby() -> Option<Child> {
    Command::new("bash")
        .args(["-c", STANDBY])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()
}

/// Hand `argv` to a standby shell, which execs it (keeping its pid and its stderr pipe).
fn exec_standby(mut standby: Child, argv: &[&str]) -> Option<Child> {
    let mut msg = format!("{}\0", argv.len()).into_bytes();
    for a in argv {
        msg.extend_from_slice(a.as_bytes());
        msg.push(0);
    }
    let sent = standby
        .stdin
        .take()
        .is_some_and(|mut i| i.write_all(&msg).is_ok());
    if sent {
        Some(standby)
    } else {
        let _ = standby.kill();
        let _ = standby.wait();
        None
    }
}

fn terminate(child: &Child) {
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

impl Harness {
    /// A harness with its own scratch directory under the system temp dir.
    pub fn new(bin: PathBuf) -> std::io::Result<Harness> {
        let dir = tempfile::Builder::new().prefix("rwxfs-").tempdir()?;
        Ok(Harness {
            bin,
            dir,
            server: None,
            standby: None,
            mounts: Vec::new(),
            made: 0,
            isolate: can_isolate(),
        })
    }

    /// Mount in this process's own namespace instead (where a test needs a plain path).
    pub fn share_namespace(&mut self) {
        self.isolate = false;
    }

    /// `name` in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rwxfs mkfs` an image of `size` (e.g. "256M") in the scratch dir.
    pub fn mkfs(&self, name: &str, size: &str) -> Result<PathBuf, String> {
        let img = self.path(name);
        let out = Command::new(&self.bin)
            .args(["mkfs", &img.to_string_lossy(), "--size", size, "--force"])
            .output()
            .map_err(|e| format!("mkfs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mkfs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(img)
    }

    /// Start `rwxfs serve` on a free loopback port; returns HOST:PORT.
    pub fn start_server(&mut self, image: &Path, extra: &[&str]) -> Result<String, String> {
        self.start_server_in(&[], image, "127.0.0.1:0", extra)
    }

    /// Start `rwxfs serve` listening on `listen`, run through `prefix` (e.g. `ip netns exec
    /// NS`, which execs, so the child's pid stays the server's); returns the address it bound.
    pub fn start_server_in(
        &mut self,
        prefix: &[&str],
        image: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Result<String, String> {
        self.stop_server()?;
        let bin = self.bin.to_string_lossy().into_owned();
        let image = image.to_string_lossy().into_owned();
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend([bin.as_str(), "serve", "--image", &image, "--listen", listen]);
        argv.extend(extra);
        let mut child = match self.standby.take().and_then(|s| exec_standby(s, &argv)) {
            Some(c) => c,
            None => Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("serve: {e}"))?,
        };
        let stderr = child.stderr.take().ok_or("serve: no stderr")?;
        self.server = Some(child);
        let mut lines = BufReader::new(stderr).lines();
        let show = std::env::var_os("RWXFS_SERVER_LOG").is_some();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if show {
                eprintln!("server: {line}");
            }
            if let Some(addr) = line
                .strip_prefix("rwxfs: serving")
                .and_then(|l| l.rsplit(" on ").next())
            {
                let addr = addr.trim().to_string();
                // Keep draining the server's log so it never blocks on a full pipe; with
                // RWXFS_SERVER_LOG set, show it.
                std::thread::spawn(move || {
                    for l in lines.map_while(Result::ok) {
                        if show {
                            eprintln!("server: {l}");
                        }
                    }
                });
                self.standby = spawn_standby();
                return Ok(addr);
            }
            if line.contains("rwxfs serve:") {
                let _ = self.stop_server();
                return Err(line);
            }
        }
        let _ = self.stop_server();
        Err("server exited before listening".into())
    }

    /// Kill the server with SIGKILL, as a crash would, and reap it.
    pub fn kill_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The running server's pid.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(|c| c.id())
    }

    /// Stop the server with SIGTERM and wait for it (it commits everything first).
    pub fn stop_server(&mut self) -> Result<(), String> {
        let Some(mut c) = self.server.take() else {
            return Ok(());
        };
        terminate(&c);
        let status = c.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("server exited with {status}"))
        }
    }

    fn mount_with(&mut self, args: &[String]) -> Result<PathBuf, String> {
        self.mount_with_prefix(&[], args)
    }

    /// Mount through `prefix` (e.g. `ip netns exec NS`, which execs): each program in it must
    /// exec the next, so the child's pid stays the mount's.
    fn mount_with_prefix(&mut self, prefix: &[&str], args: &[String]) -> Result<PathBuf, String> {
        self.made += 1;
        let mp = self.path(&format!("mnt{}", self.made));
        std::fs::create_dir_all(&mp).map_err(|e| e.to_string())?;
        let mut words: Vec<std::ffi::OsString> = prefix.iter().map(|p| p.into()).collect();
        if self.isolate {
            // unshare execs rwxfs in the new namespace: the child's pid is the mount's.
            words.extend(["unshare", "--mount", "--propagation", "private"].map(Into::into));
        }
        words.push(self.bin.clone().into_os_string());
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        cmd.arg("mount").args(args).arg(&mp).arg("--foreground");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("mount: {e}"))?;
        let mountinfo = PathBuf::from(format!("/proc/{}/mountinfo", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted_in(&mountinfo, &mp) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("mount exited ({status}): {}", err.trim()));
            }
            if Instant::now() > deadline {
                terminate(&child);
                wait_or_kill(&mut child, Instant::now() + Duration::from_secs(5));
                if !self.isolate {
                    umount(&mp, true);
                }
                return Err("mount did not become live within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(e) = child.stderr.take() {
            let show = std::env::var_os("RWXFS_MOUNT_LOG").is_some();
            let who = mp.display().to_string();
            std::thread::spawn(move || {
                for l in BufReader::new(e).lines().map_while(Result::ok) {
                    if show {
                        eprintln!("mount {who}: {l}");
                    }
                }
            });
        }
        let path = if self.isolate {
            PathBuf::from(format!("/proc/{}/root", child.id()))
                .join(mp.strip_prefix("/").unwrap_or(&mp))
        } else {
            mp.clone()
        };
        self.mounts.push(Mount {
            path: path.clone(),
            inner: mp,
            isolated: self.isolate,
            process: child,
        });
        Ok(path)
    }

    /// `program` set up to run in the mount namespace of the mount reached at `mp`, and the
    /// mount point as that program sees it.
    pub fn command_in(&self, mp: &Path, program: &str) -> Option<(Command, PathBuf)> {
        let m = self.mounts.iter().find(|m| m.path == mp)?;
        if m.isolated {
            let mut c = Command::new("nsenter");
            c.arg("--mount")
                .arg("--target")
                .arg(m.process.id().to_string())
                .arg("--")
                .arg(program);
            Some((c, m.inner.clone()))
        } else {
            Some((Command::new(program), m.inner.clone()))
        }
    }

    /// The pid of the process serving the mount reached at `mp`.
    pub fn mount_pid(&self, mp: &Path) -> Option<u32> {
        self.mounts
            .iter()
            .find(|m| m.path == mp)
            .map(|m| m.process.id())
    }

    /// A shared-mode mount of the server at `addr`.
    pub fn mount_remote(&mut self, addr: &str) -> Result<PathBuf, String> {
        self.mount_with(&[addr.to_string()])
    }

    /// A shared-mode mount with extra `rwxfs mount` options (`--node-id`, `--token-file`...).
    pub fn mount_remote_with(&mut self, addr: &str, extra: &[&str]) -> Result<PathBuf, String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.push(addr.to_string());
        self.mount_with(&args)
    }

    /// A shared-mode mount started through `prefix`, e.g. `["ip", "netns", "exec", "host1"]`
    /// to mount from inside a network namespace playing another host.
    pub fn mount_remote_in(&mut self, prefix: &[&str], addr: &str) -> Result<PathBuf, String> {
        self.mount_with_prefix(prefix, &[addr.to_string()])
    }

    /// `mount_remote_in` with extra `rwxfs mount` options (`--direct`...).
    pub fn mount_remote_in_with(
        &mut self,
        prefix: &[&str],
        addr: &str,
        extra: &[&str],
    ) -> Result<PathBuf, String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.push(addr.to_string());
        self.mount_with_prefix(prefix, &args)
    }

    /// A raw-mode mount: this mount's own engine on `image`.
    pub fn mount_raw(&mut self, image: &Path) -> Result<PathBuf, String> {
        self.mount_with(&["--raw-image".into(), image.to_string_lossy().into_owned()])
    }

    /// Unmount (with `umount`, as a user would) and wait for that mount's process to finish
    /// its final commit.
    pub fn unmount(&mut self, mp: &Path) -> Result<(), String> {
        let Some(pos) = self.mounts.iter().position(|m| m.path == mp) else {
            return Ok(());
        };
        let mut m = self.mounts.remove(pos);
        let mut ok = false;
        for _ in 0..100 {
            ok = if m.isolated {
                Command::new("nsenter")
                    .arg("--mount")
                    .arg("--target")
                    .arg(m.process.id().to_string())
                    .arg("--")
                    .arg("umount")
                    .arg(&m.inner)
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            } else {
                umount(&m.inner, false)
            };
            if ok || m.process.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !ok {
            // Busy: SIGTERM makes the mount detach itself and commit.
            terminate(&m.process);
        }
        // The mount's process exits once the kernel drops the connection.
        if wait_or_kill(&mut m.process, Instant::now() + Duration::from_secs(30)) {
            Ok(())
        } else {
            if !m.isolated {
                umount(&m.inner, true);
            }
            Err(format!(
                "mount process {} did not exit after unmount",
                m.process.id()
            ))
        }
    }

    /// Kill the process serving the mount at `mp` with SIGKILL, as a crash would, and reap
    /// it. A mount in its own namespace goes with it; any other is detached.
    pub fn kill_mount(&mut self, mp: &Path) {
        let Some(pos) = self.mounts.iter().position(|m| m.path == mp) else {
            return;
        };
        let mut m = self.mounts.remove(pos);
        let _ = m.process.kill();
        let _ = m.process.wait();
        if !m.isolated {
            umount(&m.inner, true);
        }
    }

    /// Unmount every mount and wait for its process; the first failure, if any.
    pub fn unmount_all(&mut self) -> Result<(), String> {
        let mps: Vec<PathBuf> = self.mounts.iter().map(|m| m.path.clone()).collect();
        let mut first_err = Ok(());
        for mp in mps.iter().rev() {
            if let Err(e) = self.unmount(mp) {
                first_err = first_err.and(Err(e));
            }
        }
        first_err
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A namespaced mount goes with its process; the others are unmounted here.
        for m in self.mounts.iter().rev().filter(|m| !m.isolated) {
            if !umount(&m.inner, false) {
                umount(&m.inner, true);
            }
        }
        let mut children: Vec<Child> = self.mounts.drain(..).map(|m| m.process).collect();
        children.extend(self.server.take());
        if let Some(mut s) = self.standby.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        for c in &children {
            terminate(c);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in children.iter_mut() {
            wait_or_kill(c, deadline);
        }
    }
}
