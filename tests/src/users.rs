//! Commands run as another user than root, inside a mount's namespace.

use std::path::Path;

use crate::Harness;

/// `sh -c script` as uid and gid `uid` (no supplementary groups, no capabilities) in the
/// mount namespace of the mount reached at `m`, `$MNT` standing for the mount as the shell
/// sees it; its output. Panics with the script and its errors if it fails.
pub fn sh_as(h: &Harness, m: &Path, uid: u32, script: &str) -> String {
    let (mut cmd, inner) = h.command_in(m, "setpriv").expect("a mount of this harness");
    let out = cmd
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "sh", "-c"])
        .arg(script.replace("$MNT", &inner.to_string_lossy()))
        .output()
        .expect("setpriv runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
