//! A counter in one SQLite database (`scripts/sqlite_counter.py`) that processes on several
//! mounts increment at once, each in its mount's namespace as an application on that machine
//! would: a lost update means a mount did not honour another's lock or did not read what
//! the lock's last holder wrote.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use demo::Harness;

/// The script run on the mount reached at `mp` with `what` and the mount's directory.
fn script(h: &Harness, mp: &Path, what: &str) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/sqlite_counter.py");
    let (mut cmd, inner) = h.command_in(mp, "python3").expect("a mount");
    cmd.arg(script).arg(what).arg(inner);
    cmd
}

/// Make the counter (at 0) on the mount reached at `mp`.
pub fn create(h: &Harness, mp: &Path) {
    let out = script(h, mp, "create").output().expect("python3");
    assert!(
        out.status.success(),
        "creating the database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `PRAGMA integrity_check` and the count say, read on the mount reached at `mp`:
/// `ok N` for a sound database.
pub fn check(h: &Harness, mp: &Path) -> String {
    let out = script(h, mp, "check").output().expect("python3");
    assert!(
        out.status.success(),
        "checking the database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Processes incrementing the counter; any still running when this drops is killed.
pub struct Writers(Vec<Child>);

impl Writers {
    /// A process on each mount of `mps` (one per entry), each incrementing `per` times.
    pub fn start(h: &Harness, mps: &[&Path], per: usize) -> Writers {
        let spawn = |mp: &Path| {
            script(h, mp, "bump")
                .arg(per.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3")
        };
        Writers(mps.iter().map(|mp| spawn(mp)).collect())
    }

    /// Wait (at most `limit`) until every writer is done; panics with what a failed or
    /// stuck one said.
    pub fn wait(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(mut w) = self.0.pop() {
            let status = loop {
                if let Some(s) = w.try_wait().expect("wait") {
                    break s;
                }
                if Instant::now() > deadline {
                    let _ = w.kill();
                    let _ = w.wait();
                    panic!("a writer still runs after {limit:?}: {}", said(&mut w));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            assert!(status.success(), "a writer failed: {}", said(&mut w));
        }
    }
}

/// What writer `w` wrote on its stderr.
fn said(w: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = w.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

impl Drop for Writers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
