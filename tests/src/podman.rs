//! A real container runtime for the tests: Debian's podman with the `runc` runtime, running
//! containers from a root file system assembled here (a static busybox: no image registry is
//! needed or reachable). Everything it makes is its own and goes when it drops, even when the
//! test fails: podman's storage, run and lock directories and its containers.conf live in a
//! scratch directory; podman runs in a "host" — a mount namespace of its own, held by a
//! process of this test — so the rwxfs mounts made there for the containers, and the mounts
//! podman makes, go with it; the containers' cgroups sit under a parent of their own, removed
//! at the end.
//!
//! Podman's configuration, as it runs on this machine: `--cgroup-manager cgroupfs` (no
//! systemd), runc (crun refuses hybrid cgroup hierarchies), no default ulimits (podman's
//! defaults exceed what a container here may set), `--network none`, file locks in the
//! scratch directory rather than the machine's shared memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use client_fuse::mount::is_mounted_in;

static MADE: AtomicUsize = AtomicUsize::new(0);

/// podman's containers.conf for the tests.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
lock_type = "file"
"#;

/// Where Debian's busybox-static puts busybox.
const BUSYBOX: &str = "/bin/busybox";

/// podman, its containers and the host they run on; all removed when dropped.
pub struct Podman {
    /// The scratch directory: storage, configuration, the root file system, host paths.
    pub dir: tempfile::TempDir,
    /// The process holding the host's mount namespace (it exits when its stdin closes).
    host: Child,
    /// The containers' cgroup parent (a directory in every cgroup hierarchy).
    cgroup_parent: String,
    /// Containers started, by name.
    containers: Vec<String>,
    /// rwxfs mounts made on the host: mount point and the `rwxfs mount` process.
    mounts: Vec<(PathBuf, Child)>,
}

/// A program's output, or why it failed (its status and stderr).
fn output(mut cmd: Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!(
            "{shown}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// A root file system of a static busybox and its applets, with the directories runc mounts
/// on, and `lib` and `lib64` pointing into `usr` (where a container may have the host's).
fn assemble_rootfs(root: &Path) -> Result<(), String> {
    let ldd = Command::new("ldd")
        .arg(BUSYBOX)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    if ldd.status.success() {
        return Err(format!(
            "{BUSYBOX} is dynamically linked (the busybox package?): the containers need the \
             static one, Debian's busybox-static (bash .ci/setup installs it)"
        ));
    }
    for d in [
        "bin", "dev", "proc", "sys", "etc", "tmp", "run", "vol", "usr",
    ] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
    }
    // For a container given the host's /usr (read-only) to run a dynamically linked program.
    for (link, to) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(to, root.join(link)).map_err(|e| format!("{link}: {e}"))?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))
        .map_err(|e| format!("{BUSYBOX}: {e} (bash .ci/setup installs busybox-static)"))?;
    let list = output({
        let mut c = Command::new(BUSYBOX);
        c.arg("--list");
        c
    })?;
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .map_err(|e| format!("{applet}: {e}"))?;
    }
    Ok(())
}

impl Podman {
    /// A host (a mount namespace of its own) with podman ready to run containers on it.
    pub fn new() -> Result<Podman, String> {
        for (program, package) in [("podman", "podman"), ("runc", "runc")] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Err(format!(
                    "{program} is missing: Debian's {package} (bash .ci/setup installs it)"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("rwxfs-podman-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        assemble_rootfs(&dir.path().join("rootfs"))?;
        std::fs::write(dir.path().join("containers.conf"), CONTAINERS_CONF)
            .map_err(|e| e.to_string())?;
        // unshare execs sh in the new namespace: the child's pid holds it.
        let host = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", "read _"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let cgroup_parent = format!(
            "/rwxfs-test-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::SeqCst)
        );
        let p = Podman {
            dir,
            host,
            cgroup_parent,
            containers: Vec::new(),
            mounts: Vec::new(),
        };
        let ours = std::fs::read_link("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
        let theirs = format!("/proc/{}/ns/mnt", p.host.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(&theirs).ok().as_ref() == Some(&ours) {
            if Instant::now() > deadline {
                return Err("the host's mount namespace was not made within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(p)
    }

    /// `program` set up to run on the host (in its mount namespace).
    pub fn on_host(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["--mount", "--target", &self.host.id().to_string(), "--"])
            .arg(program);
        c
    }

    /// A shell script run on the host: its stdout, or why it failed.
    pub fn host_sh(&self, script: &str) -> Result<String, String> {
        let mut c = self.on_host("sh");
        c.args(["-c", script]);
        output(c)
    }

    /// `podman ARGS` on the host, with the scratch directory's storage and configuration.
    pub fn podman(&self, args: &[&str]) -> Result<String, String> {
        let d = self.dir.path();
        let mut c = self.on_host("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .stdin(Stdio::null());
        output(c)
    }

    /// Start container `name` running `script` (busybox sh) with `volumes`, each
    /// `HOST_PATH:CONTAINER_PATH[:OPTIONS]` as `podman run -v` takes it, and no network.
    pub fn start(&mut self, name: &str, volumes: &[String], script: &str) -> Result<(), String> {
        let mut options: Vec<String> = vec!["--network".into(), "none".into()];
        for v in volumes {
            options.extend(["--volume".into(), v.clone()]);
        }
        self.run(
            name,
            &options,
            &["/bin/sh".into(), "-c".into(), script.into()],
        )
    }

    /// Start container `name` with `podman run` `options`, running `argv`.
    pub fn run(&mut self, name: &str, options: &[String], argv: &[String]) -> Result<(), String> {
        let rootfs = self.dir.path().join("rootfs");
        let mut args: Vec<String> = ["run", "--detach", "--name", name].map(String::from).into();
        args.extend(["--cgroup-parent".into(), self.cgroup_parent.clone()]);
        args.extend(options.iter().cloned());
        args.extend(["--rootfs".into(), rootfs.to_string_lossy().into_owned()]);
        args.extend(argv.iter().cloned());
        self.containers.push(name.to_string());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.podman(&argv).map(|_| ())
    }

    /// Wait for container `name` to exit (at most `limit`): its exit code.
    pub fn wait(&self, name: &str, limit: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.podman(&["inspect", "--format", "{{.State.Status}}", name])?;
            if state.trim() == "exited" {
                let code = self.podman(&["inspect", "--format", "{{.State.ExitCode}}", name])?;
                return code.trim().parse().map_err(|e| format!("{code:?}: {e}"));
            }
            if Instant::now() > deadline {
                return Err(format!("container {name} still {state:?} after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Container `name`'s output so far.
    pub fn logs(&self, name: &str) -> String {
        self.podman(&["logs", name]).unwrap_or_else(|e| e)
    }

    /// Mount `source` (`HOST:PORT/EXPORT`, with `extra` `rwxfs mount` options) at `mp` on the
    /// host, and wait for the mount to be live.
    pub fn mount(
        &mut self,
        rwxfs: &Path,
        source: &str,
        mp: &Path,
        extra: &[&str],
    ) -> Result<(), String> {
        let mut c = self.on_host(&rwxfs.to_string_lossy());
        c.arg("mount")
            .args(extra)
            .arg(source)
            .arg(mp)
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // nsenter execs rwxfs: the child's pid is the mount's.
        let mut child = c.spawn().map_err(|e| format!("rwxfs mount: {e}"))?;
        let mountinfo = PathBuf::from(format!("/proc/{}/mountinfo", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted_in(&mountinfo, mp) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("rwxfs mount exited ({status}): {}", err.trim()));
            }
            if Instant::now() > deadline {
                self.mounts.push((mp.to_path_buf(), child));
                return Err(format!("{} not mounted within 20 s", mp.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.mounts.push((mp.to_path_buf(), child));
        Ok(())
    }

    /// Remove every container, unmount every mount, stop the host: the first failure.
    fn clean(&mut self) -> Result<(), String> {
        let mut first = Ok(());
        for name in std::mem::take(&mut self.containers) {
            let r = self.podman(&["rm", "--force", "--time", "0", &name]);
            first = first.and(r.map(|_| ()));
        }
        for (mp, mut child) in std::mem::take(&mut self.mounts).into_iter().rev() {
            let mp = mp.to_string_lossy().into_owned();
            if self.host_sh(&format!("umount '{mp}'")).is_err() {
                let _ = self.host_sh(&format!("umount -l '{mp}'"));
            }
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.host.stdin.take());
        let _ = self.host.kill();
        let _ = self.host.wait();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten() {
            let Ok(h) = hierarchy else { continue };
            let top = h.path().join(self.cgroup_parent.trim_start_matches('/'));
            if top.exists() {
                first = first.and(remove_cgroup_tree(&top));
            }
        }
        first
    }

    /// Remove everything now, reporting what could not be removed.
    pub fn finish(mut self) -> Result<(), String> {
        self.clean()
    }
}

/// Remove the cgroup directory `top` and every one under it, children first. A cgroup still
/// holding processes (conmon runs the container's exit command after `podman rm` returns) is
/// waited for; what is left after 10 s is killed (every process there was started by this
/// test's podman), and waited for again.
fn remove_cgroup_tree(top: &Path) -> Result<(), String> {
    let mut dirs = vec![top.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for e in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    let mut first = Ok(());
    for d in dirs.iter().rev() {
        first = first.and(remove_cgroup(d));
    }
    first
}

/// Remove one cgroup directory once it holds no process (see `remove_cgroup_tree`).
fn remove_cgroup(dir: &Path) -> Result<(), String> {
    let start = Instant::now();
    let mut killed = false;
    loop {
        let err = match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        let busy = err.raw_os_error() == Some(libc::EBUSY);
        if !busy || start.elapsed() > Duration::from_secs(30) {
            let left = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let left = left.split_whitespace().collect::<Vec<_>>().join(" ");
            return Err(format!(
                "{}: {err} (processes left: [{left}])",
                dir.display()
            ));
        }
        if !killed && start.elapsed() > Duration::from_secs(10) {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: a process in this test's own containers' cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if let Err(e) = self.clean() {
            eprintln!("podman clean-up: {e}");
        }
    }
}
