//! Programs a test runs to completion: through a prefix (`ip netns exec NS`) or not, and what
//! they said.

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::bin;

/// `program` run through `prefix` (`ip netns exec NS`, which execs it, keeping its pid), or
/// directly when `prefix` is empty.
pub fn command<S: AsRef<OsStr>>(prefix: &[S], program: impl AsRef<OsStr>) -> Command {
    match prefix.split_first() {
        None => Command::new(program),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
    }
}

/// All a finished program wrote: its stdout, then its stderr.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The stdout of a program that succeeded; a panic with its exit code and all it wrote if it
/// did not.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rwxfs status ADDR --json EXTRA…`: the sessions it lists.
pub fn status(addr: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(bin())
        .args(["status", addr, "--json"])
        .args(extra)
        .output()
        .expect("rwxfs status runs");
    serde_json::from_str(&ok(out)).expect("status --json is a list")
}
