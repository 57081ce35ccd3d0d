//! `rwxfs serve` on a RADOS volume of a test cluster, as a child process whose log lines a
//! test waits for: the failover tests and the failover-time example run several of them.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bin;
use crate::ceph::CephCluster;

/// How long any one event may take before the wait fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

/// One `rwxfs serve` on a RADOS volume, its log lines as they come; killed by pid when
/// dropped (a stopped one included).
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").to_string()
}

/// A 5 s ownership lease, and clients that give up on a silent server after 3 s: each unless
/// `extra` says otherwise.
fn defaults(extra: &[&str]) -> Vec<&'static str> {
    let pairs = [
        ["--owner-lease-secs", "5"],
        ["--lease-secs", "3"],
        ["--grace-secs", "20"],
    ];
    pairs
        .into_iter()
        .filter(|[flag, _]| !extra.contains(flag))
        .flatten()
        .collect()
}

impl Server {
    /// A server of `image` on a free loopback port.
    pub fn start(cluster: &CephCluster, image: &str) -> Server {
        Server::start_with(cluster, image, &[])
    }

    /// As `start`, with more arguments (a later one wins over the defaults).
    pub fn start_with(cluster: &CephCluster, image: &str, extra: &[&str]) -> Server {
        Server::start_at_with(cluster, image, &free_addr(), extra)
    }

    /// A server of `image` listening on `addr`, with `extra` arguments.
    pub fn start_at_with(cluster: &CephCluster, image: &str, addr: &str, extra: &[&str]) -> Server {
        Server::start_in(&[], cluster, image, addr, extra)
    }

    /// As `start_at_with`, run through `prefix` (`ip netns exec NS`, which execs it: the
    /// child's pid stays the server's) on another host.
    pub fn start_in(
        prefix: &[&str],
        cluster: &CephCluster,
        image: &str,
        addr: &str,
        extra: &[&str],
    ) -> Server {
        let addr = addr.to_string();
        let bin = bin();
        let mut cmd = crate::run::command(prefix, &bin);
        let mut child = cmd
            .args(["serve", "--image", image, "--listen", &addr])
            .arg("--ceph-conf")
            .arg(cluster.conf())
            .args(defaults(extra))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rwxfs serve starts");
        let err = child.stderr.take().expect("its stderr");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        let show = std::env::var_os("RWXFS_SERVER_LOG").is_some();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if show {
                    eprintln!("server: {l}");
                }
                keep.lock().unwrap().push(l.clone());
                let _ = tx.send(l);
            }
        });
        Server {
            child,
            addr,
            log,
            lines,
        }
    }

    /// Wait for a log line containing one of `words`; the line.
    pub fn wait_for(&self, words: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if words.iter().any(|w| l.contains(w)) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!(
            "{}: none of {words:?} in its log:\n{}",
            self.addr,
            self.log()
        )
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Send it `sig`.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for the process to end (up to PATIENCE); its exit code.
    pub fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not exit:\n{}", self.addr, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
