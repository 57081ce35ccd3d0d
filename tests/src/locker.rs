//! A lock owner in its own process (`scripts/locker.py`), run inside a mount's namespace as
//! an application on that machine would be.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use demo::Harness;

/// One locker process: its stdin (closing it ends a hold) and its output lines.
pub struct Locker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Locker {
    /// Start the locker script on mount `mp` with `args`.
    pub fn start(h: &Harness, mp: &Path, args: &[&str]) -> Locker {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/locker.py");
        let (mut cmd, inner) = h.command_in(mp, "python3").expect("a mount");
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("$MNT", &inner.to_string_lossy()))
            .collect();
        let mut child = cmd
            .arg(script)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Locker {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The next line, waiting up to `secs`.
    pub fn line(&self, secs: u64) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(secs))
            .unwrap_or_else(|_| "(nothing)".into())
    }

    /// True if it printed nothing for `ms` milliseconds.
    pub fn no_line_for(&self, ms: u64) -> bool {
        self.lines.recv_timeout(Duration::from_millis(ms)).is_err()
    }

    /// Wait until it is blocked in a lock call (fcntl or flock): its request has reached the
    /// file system (what the script prints comes only once the call returns).
    pub fn await_blocked(&self) {
        let path = format!("/proc/{}/syscall", self.child.id());
        let calls = [libc::SYS_fcntl.to_string(), libc::SYS_flock.to_string()];
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            if calls.iter().any(|c| now.split(' ').next() == Some(c)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never blocked in a lock call: {now}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send it a line of input.
    pub fn send(&mut self, s: &str) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(s.as_bytes()).unwrap();
        w.flush().unwrap();
    }

    /// Close stdin: a hold unlocks and exits.
    pub fn finish(&mut self) {
        self.stdin.take();
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The time T of a locker's `WORD T` line.
pub fn time_of(line: &str, word: &str) -> f64 {
    line.strip_prefix(word)
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("expected `{word} T`, got `{line}`"))
}
