//! Shared helpers for the integration tests: where the `rwxfs` binary is, and a harness.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use demo::Harness;

pub mod ceph;
pub mod certs;
pub mod dropped;
pub mod files;
pub mod filler;
pub mod lan;
pub mod layout_hold;
pub mod locker;
pub mod mount_script;
pub mod netns;
pub mod podman;
pub mod proxy;
pub mod rados_server;
pub mod run;
pub mod sqlite;
pub mod stopped;
pub mod users;
pub use certs::certificate;
pub use files::{data, reads_as, statvfs, write_synced};
pub use lan::Lan;
pub use layout_hold::LayoutHold;
pub use locker::{time_of, Locker};
pub use netns::Hosts;
pub use proxy::Proxy;
pub use run::{command, ok, status, text};
pub use stopped::Stopped;
pub use users::sh_as;

/// The `rwxfs` binary under test: `$RWXFS_BIN`, else the one cargo built beside this test
/// executable. Cargo puts a test in `<target>/<profile>/deps/` and the workspace's binaries in
/// `<target>/<profile>/`, wherever `<target>` is (`CARGO_TARGET_DIR`, `--target`, a profile of
/// its own): the binary is looked up there, never under a fixed `target/debug`.
pub fn bin() -> PathBuf {
    if let Ok(p) = std::env::var("RWXFS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let p = beside_deps(&exe).join("rwxfs");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --bins` first (with the same profile and target dir)",
        p.display()
    );
    p
}

/// `<target>/<profile>` for an executable in `<target>/<profile>/deps/` (a test),
/// `<target>/<profile>/examples/` (an example) or `<target>/<profile>/` (a binary).
fn beside_deps(exe: &std::path::Path) -> PathBuf {
    let dir = exe.parent().expect("an executable lives in a directory");
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir.parent().expect("deps/ has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// A harness for the `rwxfs` binary under test, in a scratch directory of its own.
pub fn harness() -> Harness {
    Harness::new(bin()).expect("scratch directory")
}

/// fsck an image with the engine's checker; panics with the findings if it is not clean.
pub fn assert_fsck_clean(image: &Path) {
    let store = volume::FileStore::open_read_only(image).expect("open image");
    let r = volume::fsck::check(&store).expect("fsck runs");
    assert!(r.is_clean(), "fsck found damage: {:#?}", r.findings);
}

/// The end of a test on one image: every mount unmounted, the server stopped, the image
/// checked clean.
pub fn finish(mut h: Harness, img: &Path) {
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(img);
}

/// Wait until `cond` holds; a panic naming `what` if it has not within two minutes (far
/// above an honest run on a loaded machine).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_found_in_this_tests_own_target_dir() {
        // Wherever cargo put this test (CARGO_TARGET_DIR or not), `cargo build --bins` put the
        // binary in the same profile directory.
        let exe = std::env::current_exe().unwrap();
        let found = beside_deps(&exe).join("rwxfs");
        assert!(found.is_file(), "{} is missing", found.display());
        assert!(found.starts_with(exe.parent().unwrap().parent().unwrap()));
    }

    #[test]
    fn any_target_dir_is_followed() {
        let t = std::path::Path::new("/elsewhere/t/debug/deps/shared_mode-0123abcd");
        assert_eq!(beside_deps(t), PathBuf::from("/elsewhere/t/debug"));
        let b = std::path::Path::new("/x/release/rwxfs");
        assert_eq!(beside_deps(b), PathBuf::from("/x/release"));
    }
}
