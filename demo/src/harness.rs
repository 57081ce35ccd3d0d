//! Child processes and mounts that always go away: every mount is unmounted and every child
//! stopped (by pid) when the `Harness` drops — on success, on error and on panic.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client_fuse::mount::is_mounted;

/// A live mount and the `rwxfs mount --foreground` process serving it.
struct Mount {
    path: PathBuf,
    process: Child,
}

pub struct Harness {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    server: Option<Child>,
    mounts: Vec<Mount>,
    /// Mount points made so far, to name the next one.
    made: usize,
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
            mounts: Vec::new(),
            made: 0,
        })
    }

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
        self.stop_server()?;
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "serve",
            "--image",
            &image.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("serve: {e}"))?;
        let stderr = child.stderr.take().ok_or("serve: no stderr")?;
        self.server = Some(child);
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(addr) = line
                .strip_prefix("rwxfs: serving")
                .and_then(|l| l.rsplit(" on ").next())
            {
                let addr = addr.trim().to_string();
                // Keep draining the server's log so it never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
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
        self.made += 1;
        let mp = self.path(&format!("mnt{}", self.made));
        std::fs::create_dir_all(&mp).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("mount").args(args).arg(&mp).arg("--foreground");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("mount: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&mp) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("mount exited ({status}): {}", err.trim()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                umount(&mp, true);
                return Err("mount did not become live within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(e) = child.stderr.take() {
            std::thread::spawn(move || for _ in BufReader::new(e).lines() {});
        }
        self.mounts.push(Mount {
            path: mp.clone(),
            process: child,
        });
        Ok(mp)
    }

    /// A shared-mode mount of the server at `addr`.
    pub fn mount_remote(&mut self, addr: &str) -> Result<PathBuf, String> {
        self.mount_with(&[addr.to_string()])
    }

    /// A raw-mode mount: this mount's own engine on `image`.
    pub fn mount_raw(&mut self, image: &Path) -> Result<PathBuf, String> {
        self.mount_with(&["--raw-image".into(), image.to_string_lossy().into_owned()])
    }

    /// Unmount and wait for that mount's process to finish its final commit.
    pub fn unmount(&mut self, mp: &Path) -> Result<(), String> {
        let Some(pos) = self.mounts.iter().position(|m| m.path == mp) else {
            return Ok(());
        };
        let mut m = self.mounts.remove(pos);
        let mut ok = false;
        for _ in 0..100 {
            if umount(mp, false) {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !ok {
            umount(mp, true);
        }
        // The mount's process exits once the kernel drops the connection.
        if wait_or_kill(&mut m.process, Instant::now() + Duration::from_secs(30)) {
            Ok(())
        } else {
            Err(format!(
                "mount process {} did not exit after unmount",
                m.process.id()
            ))
        }
    }

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
        for m in self.mounts.iter().rev() {
            if !umount(&m.path, false) {
                umount(&m.path, true);
            }
        }
        let mut children: Vec<Child> = self.mounts.drain(..).map(|m| m.process).collect();
        children.extend(self.server.take());
        for c in &children {
            terminate(c);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in children.iter_mut() {
            wait_or_kill(c, deadline);
        }
    }
}
