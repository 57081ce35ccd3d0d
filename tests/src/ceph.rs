//! A real Ceph cluster for the RADOS tests: one monitor and one bluestore OSD on a sparse file
//! in a temporary directory, on loopback, with its own configuration and keyrings, from
//! Debian's packages (ceph-mon, ceph-osd, ceph-common). It is ready when a probe object is
//! written to its pool: that write waits for the monitor, the OSD and the pool's placement
//! groups (no sleeps, no polling). Its daemons are killed by pid when it drops, a failing
//! test included, and die with the thread that started them if the test process is killed.
//! `start_in` runs it in a network namespace (`crate::lan`) on an address there instead.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::run::{command, ok};

/// The pool every cluster has, ready for I/O.
pub const POOL: &str = "rwxfs";

/// A throwaway one-monitor, one-OSD Ceph cluster on loopback, removed when dropped.
pub struct CephCluster {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
    /// What every Ceph program is run through (`ip netns exec NS`), empty on loopback.
    prefix: Vec<String>,
}

/// Spawn a daemon that stays in the foreground and dies with the thread that spawned it.
fn spawn_daemon(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("its address").port()
}

fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("a uuid from the kernel")
        .trim()
        .to_string()
}

/// The cluster's configuration: everything in `dir`, at `ip`, one replica, small caches.
fn config(dir: &Path, fsid: &str, ip: &str, port: u16) -> String {
    let d = dir.display();
    format!(
        "[global]
fsid = {fsid}
mon_host = v2:{ip}:{port}
public_addr = {ip}
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = {d}/admin.keyring
run_dir = {d}/run
admin_socket = {d}/run/$name.asok
pid_file = {d}/run/$name.pid
log_file = {d}/log/$name.log
client_mount_timeout = 60
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
[mon]
mon_data = {d}/mon
mon_data_avail_warn = 1
mon_data_avail_crit = 0
[osd]
osd_data = {d}/osd
osd_objectstore = bluestore
bluestore_block_path = {d}/osd.block
bluestore_block_create = true
bluestore_block_size = 10737418240
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_memory_target = 939524096
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
"
    )
}

/// `rados://POOL/NAME`: the volume `name` in the pool every cluster has.
pub fn image(name: &str) -> String {
    format!("rados://{POOL}/{name}")
}

/// Run a Ceph tool through `prefix` to completion; its stdout, or a panic with its stderr.
fn run_in(prefix: &[String], program: &str, args: &[&str]) -> String {
    let out = command(prefix, program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (is Ceph installed? .ci/setup --ceph)"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl CephCluster {
    /// Make and start a cluster on loopback with one pool, `POOL`, ready for I/O.
    pub fn start() -> CephCluster {
        CephCluster::start_in(&[], "127.0.0.1")
    }

    /// As `start`, every Ceph program run through `prefix` (`ip netns exec NS`), the cluster
    /// at `ip` (an address in that namespace).
    pub fn start_in(prefix: &[&str], ip: &str) -> CephCluster {
        let dir = tempfile::Builder::new()
            .prefix("rwxfs-ceph-")
            .tempdir()
            .expect("a temporary directory");
        let mut c = CephCluster {
            dir,
            daemons: Vec::new(),
            prefix: prefix.iter().map(|p| p.to_string()).collect(),
        };
        for sub in ["run", "log", "mon", "osd"] {
            std::fs::create_dir(c.path(sub)).expect("cluster directories");
        }
        let (fsid, port) = (uuid(), free_port());
        std::fs::write(c.conf(), config(c.dir.path(), &fsid, ip, port)).expect("ceph.conf");
        c.start_monitor(&fsid, ip, port);
        c.start_osd();
        c.ceph(&["osd", "pool", "create", POOL, "8"]);
        // Waits until the monitor, the OSD and the pool's placement groups are all up.
        let probe = c.path("probe");
        std::fs::write(&probe, b"probe").expect("probe file");
        c.rados(&["-p", POOL, "put", "probe", &probe.to_string_lossy()]);
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The cluster's configuration file, for `--ceph-conf`.
    pub fn conf(&self) -> PathBuf {
        self.path("ceph.conf")
    }

    /// Run a Ceph tool to completion; its stdout, or a panic with its stderr.
    fn run(&self, program: &str, args: &[&str]) -> String {
        run_in(&self.prefix, program, args)
    }

    /// What runs programs where the cluster is (`ip netns exec NS`), empty on loopback.
    pub fn prefix(&self) -> Vec<&str> {
        self.prefix.iter().map(String::as_str).collect()
    }

    fn start_monitor(&mut self, fsid: &str, ip: &str, port: u16) {
        let (mon_kr, admin_kr) = (self.path("mon.keyring"), self.path("admin.keyring"));
        let (mon_kr, admin_kr) = (mon_kr.to_string_lossy(), admin_kr.to_string_lossy());
        let caps = |k: &str, n: &str, extra: &[&str]| {
            let mut a = vec![
                k,
                "--create-keyring",
                "--gen-key",
                "-n",
                n,
                "--cap",
                "mon",
                "allow *",
            ];
            a.extend(extra);
            self.run("ceph-authtool", &a);
        };
        caps(&mon_kr, "mon.", &[]);
        caps(
            &admin_kr,
            "client.admin",
            &["--cap", "osd", "allow *", "--cap", "mgr", "allow *"],
        );
        self.run("ceph-authtool", &[&mon_kr, "--import-keyring", &admin_kr]);
        let monmap = self.path("monmap");
        let monmap = monmap.to_string_lossy();
        let addr = format!("[v2:{ip}:{port}]");
        self.run(
            "monmaptool",
            &["--create", "--addv", "a", &addr, "--fsid", fsid, &monmap],
        );
        let conf = self.conf();
        let conf = conf.to_string_lossy();
        self.run(
            "ceph-mon",
            &[
                "-c",
                &conf,
                "--mkfs",
                "-i",
                "a",
                "--monmap",
                &monmap,
                "--keyring",
                &mon_kr,
            ],
        );
        let mon =
            spawn_daemon(command(&self.prefix, "ceph-mon").args(["-c", &conf, "-i", "a", "-f"]));
        self.daemons.push(mon.expect("ceph-mon starts"));
    }

    fn start_osd(&mut self) {
        let id = uuid();
        // The monitor answers once it is up: the client waits for it.
        let n = self.ceph(&["osd", "new", &id]).trim().to_string();
        let keyring = self.path("osd/keyring");
        let keyring = keyring.to_string_lossy().into_owned();
        let caps = ["mon", "allow profile osd", "osd", "allow *"];
        let mut args = vec!["auth", "get-or-create"];
        let who = format!("osd.{n}");
        args.push(&who);
        args.extend(caps);
        args.extend(["-o", &keyring]);
        self.ceph(&args);
        let conf = self.conf();
        let conf = conf.to_string_lossy();
        let base = ["-c", &conf, "-i", &n, "--keyring", &keyring];
        self.run(
            "ceph-osd",
            &[&base[..], &["--mkfs", "--osd-uuid", &id]].concat(),
        );
        let osd = spawn_daemon(command(&self.prefix, "ceph-osd").args(base).arg("-f"));
        self.daemons.push(osd.expect("ceph-osd starts"));
    }

    /// Run `ceph` against this cluster; its stdout.
    pub fn ceph(&self, args: &[&str]) -> String {
        let conf = self.conf();
        self.run("ceph", &[&["-c", &conf.to_string_lossy()], args].concat())
    }

    /// Run `rados` against this cluster; its stdout.
    pub fn rados(&self, args: &[&str]) -> String {
        let conf = self.conf();
        self.run("rados", &[&["-c", &conf.to_string_lossy()], args].concat())
    }

    /// `rwxfs ARGS --ceph-conf CONF` where the cluster is (through its prefix), whatever its
    /// outcome.
    pub fn rwxfs(&self, args: &[&str]) -> Output {
        command(&self.prefix, crate::bin())
            .args(args)
            .arg("--ceph-conf")
            .arg(self.conf())
            .output()
            .expect("rwxfs runs")
    }

    /// `rwxfs fsck` of the volume `image` (`rados://…`) succeeds and finds it clean.
    pub fn assert_fsck_clean(&self, image: &str) {
        let out = ok(self.rwxfs(&["fsck", image]));
        assert!(out.contains(": clean,"), "fsck {image}: {out}");
    }

    /// Run `rados` against this cluster, whatever its outcome.
    pub fn rados_output(&self, args: &[&str]) -> Output {
        let conf = self.conf();
        command(&self.prefix, "rados")
            .arg("-c")
            .arg(&conf)
            .args(args)
            .output()
            .expect("rados runs")
    }

    /// Each daemon's resident memory now and at its peak, in KiB (VmRSS and VmHWM from
    /// /proc), by name: `[("ceph-mon", now, peak), ("ceph-osd", now, peak)]`.
    pub fn memory_kib(&self) -> Vec<(&'static str, u64, u64)> {
        let field = |status: &str, name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        ["ceph-mon", "ceph-osd"]
            .into_iter()
            .zip(&self.daemons)
            .map(|(name, child)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .unwrap_or_default();
                (name, field(&status, "VmRSS:"), field(&status, "VmHWM:"))
            })
            .collect()
    }

    /// The daemons' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["mon.a", "osd.0"] {
            let log =
                std::fs::read_to_string(self.path(&format!("log/{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            s += &format!("--- {name}.log (last lines)\n");
            for l in tail.into_iter().rev() {
                s += l;
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for CephCluster {
    fn drop(&mut self) {
        // The OSD first, then the monitor; each by its pid, each reaped.
        for child in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
