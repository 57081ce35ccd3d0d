//! Where the benchmark runs: mount points the user gave (of any file system), or a cluster of
//! its own — an image, an `rwxfs serve` and mounts — that goes away when the run ends, on
//! error and on Ctrl-C too (the process harness stops everything it started, by pid).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use demo::Harness;

/// Where the benchmark runs: mount points of any file system, or a cluster of its own.
pub struct Cluster {
    /// The mount points the workloads spread over.
    pub mounts: Vec<PathBuf>,
    /// The server's address, when the cluster is the benchmark's own.
    pub addr: Option<String>,
    /// The server and mount processes, when the cluster is the benchmark's own (behind a
    /// lock: a restart replaces the server while the workloads hold the cluster shared).
    own: Option<Mutex<Harness>>,
    /// The image the own server serves.
    image: Option<PathBuf>,
}

impl Cluster {
    /// Existing mount points: each must be a directory.
    pub fn given(mounts: Vec<PathBuf>) -> Result<Cluster, String> {
        if mounts.is_empty() {
            return Err("--mounts lists no mount point".into());
        }
        for m in &mounts {
            if !m.is_dir() {
                return Err(format!("{}: not a directory", m.display()));
            }
        }
        Ok(Cluster {
            mounts,
            addr: None,
            own: None,
            image: None,
        })
    }

    /// A fresh image of `size` bytes, a server, and `n` mounts of it: through the server, or
    /// (`direct`) reading and writing file data on the image themselves.
    pub fn own(bin: PathBuf, size: u64, n: usize, direct: bool) -> Result<Cluster, String> {
        let mut h = Harness::new(bin).map_err(|e| format!("scratch directory: {e}"))?;
        let img = h.mkfs("bench.img", &format!("{}M", size >> 20))?;
        let addr = h.start_server(&img, &[])?;
        let mut mounts = Vec::with_capacity(n);
        for _ in 0..n {
            let extra: &[&str] = if direct { &["--direct"] } else { &[] };
            mounts.push(h.mount_remote_with(&addr, extra)?);
        }
        Ok(Cluster {
            mounts,
            addr: Some(addr),
            own: Some(Mutex::new(h)),
            image: Some(img),
        })
    }

    /// Mount `i`, round robin over the mounts.
    pub fn mount(&self, i: usize) -> &PathBuf {
        &self.mounts[i % self.mounts.len()]
    }

    /// A mount other than `i`'s, to read back through (the same one if there is only one).
    pub fn other(&self, i: usize) -> &PathBuf {
        self.mount(i + 1)
    }

    /// Peak resident memory (KiB) of the server and of the largest mount process, for a
    /// cluster of its own.
    pub fn peak_rss_kib(&self) -> Option<(u64, u64)> {
        let h = self.harness()?;
        let server = h.server_pid().and_then(vm_hwm)?;
        let client = self
            .mounts
            .iter()
            .filter_map(|m| h.mount_pid(m).and_then(vm_hwm))
            .max()?;
        Some((server, client))
    }

    /// Whether `restart_server` can: the cluster is the benchmark's own.
    pub fn restartable(&self) -> bool {
        self.own.is_some()
    }

    /// Stop the server, with SIGKILL as a crash would (`crash`) or with SIGTERM as a planned
    /// stop does, and start it again on the same image and address; returns once it serves.
    pub fn restart_server(&self, crash: bool) -> Result<(), String> {
        let (Some(mut h), Some(image), Some(addr)) = (self.harness(), &self.image, &self.addr)
        else {
            return Err("only the benchmark's own server can be restarted".into());
        };
        if crash {
            h.kill_server();
        } else {
            h.stop_server()?;
        }
        h.start_server_in(&[], image, addr, &[]).map(|_| ())
    }

    fn harness(&self) -> Option<MutexGuard<'_, Harness>> {
        let h = self.own.as_ref()?;
        Some(h.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Unmount and stop what the cluster started, reporting a failure to do so.
    pub fn finish(mut self) -> Result<(), String> {
        if let Some(mut h) = self
            .own
            .take()
            .map(|h| h.into_inner().unwrap_or_else(|e| e.into_inner()))
        {
            h.unmount_all()?;
            h.stop_server()?;
        }
        Ok(())
    }
}

fn vm_hwm(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
