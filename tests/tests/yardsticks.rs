//! The third-party POSIX yardsticks on real mounts: pjdfstest (the POSIX suite) and fsx (the
//! file system exerciser, with fallocate, hole punching and copy_file_range), each on a raw
//! single mount and on a shared-mode mount, each mount in its own mount namespace.
//!
//! Their configurations and runners are the project's own, in `tests/yardsticks/`;
//! `.ci/setup` installs the two programs (`cargo install pjdfstest fsx`). `$RWXFS_FSX_OPS`
//! changes the number of fsx operations (default 100,000).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rwxfs_tests::{assert_fsck_clean, harness, Harness};

/// The runners and configurations, committed beside this test.
fn yardsticks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yardsticks")
}

/// A tool from PATH or cargo's bin directory.
fn tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: cargo install {name}"))
}

/// Run a yardstick runner inside the namespace of the mount at `mp`; returns its output and
/// whether it succeeded.
fn run_in(h: &Harness, mp: &Path, script: &str, args: &[&str]) -> (String, bool) {
    let (mut cmd, inner) = h.command_in(mp, "bash").expect("a mount of this harness");
    let out = cmd
        .arg(yardsticks().join(script))
        .args(args)
        .arg(&inner)
        .env("PJDFSTEST", tool("pjdfstest"))
        .env("FSX", tool("fsx"))
        .current_dir("/")
        .output()
        .expect("run the yardstick");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (text, out.status.success())
}

/// A harness whose scratch directory the suite's unprivileged users can traverse, with an
/// image; the mount's root is opened to everyone.
fn setup(h: &Harness) -> PathBuf {
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.mkfs("v.img", "1G").unwrap()
}

fn open_root(mp: &Path) {
    // A new volume's root is open to all already (1777), and a squashed root may not chmod it.
    let mode = std::fs::metadata(mp).unwrap().permissions().mode();
    if mode & 0o777 != 0o777 {
        std::fs::set_permissions(mp, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

fn pjdfstest(h: &Harness, mp: &Path) {
    open_root(mp);
    // A directory on another file system, for the cross-device (EXDEV) tests.
    let other = h.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (out, ok) = run_in(h, mp, "pjdfstest.sh", &["-o", &other.to_string_lossy()]);
    let summary = out.lines().last().unwrap_or_default().to_string();
    println!("{summary}");
    assert!(ok, "pjdfstest failed:\n{out}");
    let passed: u32 = summary
        .strip_prefix("pjdfstest: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pjdfstest summary in:\n{out}"));
    assert!(summary.contains(" 0 failed"), "{out}");
    assert!(
        passed >= 384,
        "pjdfstest passed only {passed} tests:\n{out}"
    );
}

fn fsx(h: &Harness, mp: &Path) {
    open_root(mp);
    let ops = std::env::var("RWXFS_FSX_OPS").unwrap_or_else(|_| "100000".into());
    let (out, ok) = run_in(h, mp, "fsx.sh", &["-n", &ops]);
    let summary = out.lines().last().unwrap_or_default().to_string();
    println!("{summary}");
    assert!(
        ok && summary.starts_with("fsx: passed "),
        "fsx failed:\n{out}"
    );
    assert!(summary.contains(&format!("ops={ops} ")), "{out}");
}

#[test]
fn pjdfstest_passes_on_a_raw_mount() {
    let mut h = harness();
    let img = setup(&h);
    let mp = h.mount_raw(&img).unwrap();
    pjdfstest(&h, &mp);
    h.unmount_all().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn pjdfstest_passes_on_a_shared_mount() {
    let mut h = harness();
    let img = setup(&h);
    // The suite runs as root and checks root's own ownership: export without root squash,
    // as NFS exports for it are.
    let addr = h.start_server(&img, &["--no-root-squash"]).unwrap();
    let mp = h.mount_remote(&addr).unwrap();
    pjdfstest(&h, &mp);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn fsx_full_runs_clean_on_a_raw_mount() {
    let mut h = harness();
    let img = setup(&h);
    let mp = h.mount_raw(&img).unwrap();
    fsx(&h, &mp);
    h.unmount_all().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn fsx_full_runs_clean_on_a_shared_mount() {
    let mut h = harness();
    let img = setup(&h);
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.mount_remote(&addr).unwrap();
    fsx(&h, &mp);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn fsx_full_runs_clean_on_a_direct_mount() {
    let mut h = harness();
    let img = setup(&h);
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    fsx(&h, &mp);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn pjdfstest_passes_on_a_direct_mount() {
    let mut h = harness();
    let img = setup(&h);
    let addr = h.start_server(&img, &["--no-root-squash"]).unwrap();
    let mp = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    pjdfstest(&h, &mp);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
