//! Shared helpers for the integration tests: where the `rwxfs` binary is, and a harness.

use std::path::PathBuf;

pub use demo::Harness;

pub mod certs;
pub mod locker;
pub mod netns;
pub mod proxy;
pub use certs::certificate;
pub use locker::{time_of, Locker};
pub use netns::Hosts;
pub use proxy::Proxy;

/// The `rwxfs` binary under test: `$RWXFS_BIN`, else the workspace's release or debug build.
pub fn bin() -> PathBuf {
    if let Ok(p) = std::env::var("RWXFS_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let p = root.join("target").join(profile).join("rwxfs");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --bins` first",
        p.display()
    );
    p
}

pub fn harness() -> Harness {
    Harness::new(bin()).expect("scratch directory")
}

/// fsck an image with the engine's checker; panics with the findings if it is not clean.
pub fn assert_fsck_clean(image: &std::path::Path) {
    let store = volume::FileStore::open_read_only(image).expect("open image");
    let r = volume::fsck::check(&store).expect("fsck runs");
    assert!(r.is_clean(), "fsck found damage: {:#?}", r.findings);
}
