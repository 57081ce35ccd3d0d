//! Child processes and mounts that always go away: every mount is unmounted and every child
//! stopped (by pid) when the `Harness` drops — on success, on error and on panic.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Harness {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
    mounts: Vec<PathBuf>,
    server: Option<usize>,
    next: usize,
}

pub fn is_mounted(mp: &Path) -> bool {
    let canon = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    let want = canon.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(want.as_str()) && is_fuse_line(l))
        })
        .unwrap_or(false)
}

fn umount(mp: &Path, lazy: bool) -> bool {
    let Ok(c) = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: plain syscall on a NUL-terminated path.
    unsafe { libc::umount2(c.as_ptr(), if lazy { libc::MNT_DETACH } else { 0 }) == 0 }
}

impl Harness {
    /// A harness whose scratch space lives under `parent` (default: the system temp dir).
    pub fn new(bin: PathBuf) -> std::io::Result<Harness> {
        let dir = tempfile::Builder::new().prefix("rwxfs-").tempdir()?;
        Ok(Harness {
            bin,
            dir,
            children: Vec::new(),
            mounts: Vec::new(),
            server: None,
            next: 0,
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
        self.children.push(child);
        self.server = Some(self.children.len() - 1);
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(addr) = line
                .rsplit(" on ")
                .next()
                .filter(|_| line.starts_with("rwxfs: serving"))
            {
                let addr = addr.trim().to_string();
                // Keep draining the server's log so it never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok(addr);
            }
            if line.contains("rwxfs serve:") {
                return Err(line);
            }
        }
        Err("server exited before listening".into())
    }

    /// Pid of the server, if one runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.map(|i| self.children[i].id())
    }

    /// Stop the server with SIGTERM and wait for it (it commits everything first).
    pub fn stop_server(&mut self) -> Result<(), String> {
        let Some(i) = self.server.take() else {
            return Ok(());
        };
        let c = &mut self.children[i];
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let status = c.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("server exited with {status}"))
        }
    }

    fn mount_with(&mut self, args: &[String]) -> Result<PathBuf, String> {
        self.next += 1;
        let mp = self.path(&format!("mnt{}", self.next));
        std::fs::create_dir_all(&mp).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("mount").args(args).arg(&mp).arg("--foreground");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("mount: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if is_mounted(&mp) {
                break;
            }
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
        self.children.push(child);
        self.mounts.push(mp.clone());
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
        let Some(pos) = self.mounts.iter().position(|m| m == mp) else {
            return Ok(());
        };
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
        self.mounts.remove(pos);
        // The mount's process exits once the kernel drops the connection.
        let deadline = Instant::now() + Duration::from_secs(30);
        for c in self.children.iter_mut() {
            if c.try_wait().ok().flatten().is_some() {
                continue;
            }
            let pid = c.id();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmdline).contains(&*mp.to_string_lossy()) {
                continue;
            }
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Err(format!("mount process {pid} did not exit after unmount"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    pub fn unmount_all(&mut self) -> Result<(), String> {
        let mps = self.mounts.clone();
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
        for mp in self.mounts.drain(..).rev() {
            if !umount(&mp, false) {
                umount(&mp, true);
            }
        }
        for c in self.children.iter_mut() {
            if c.try_wait().ok().flatten().is_none() {
                // SAFETY: signalling our own child by pid.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in self.children.iter_mut() {
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A mountinfo line of a FUSE mount (the type reads `fuse` or `fuse.rwxfs`).
fn is_fuse_line(l: &str) -> bool {
    l.contains(" - fuse ") || l.contains(" - fuse.rwxfs ")
}
