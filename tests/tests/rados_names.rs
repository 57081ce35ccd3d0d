//! `rados://` names without a Ceph cluster: a malformed name, and a host whose librados
//! cannot be loaded, are refused with what to do, and local image paths are untouched.

use std::process::{Command, Output};

use rwxfs_tests::bin;

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_malformed_rados_name_is_refused_before_any_connection() {
    for cmd in [
        &["mkfs", "rados://pool", "--size", "1G"][..],
        &["fsck", "rados://pool/"],
    ] {
        let out = Command::new(bin()).args(cmd).output().unwrap();
        assert!(!out.status.success(), "{cmd:?}");
        let e = stderr_of(&out);
        assert!(e.contains("expected rados://POOL/NAME"), "{cmd:?}: {e}");
    }
}

#[test]
fn without_librados_a_rados_name_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("librados.so.2");
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("RWXFS_LIBRADOS", &missing)
            .output()
            .unwrap()
    };
    let out = run(&["mkfs", "rados://rbd/vol", "--size", "1G"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr_of(&out);
    assert!(
        e.contains("RADOS support needs Ceph's client library"),
        "{e}"
    );
    assert!(e.contains("apt-get install librados2"), "{e}");
    let out = run(&["fsck", "rados://rbd/vol"]);
    assert_eq!(out.status.code(), Some(8), "fsck's operational error");
    assert!(stderr_of(&out).contains("apt-get install librados2"));
    // A local image is not a RADOS name, whatever the environment says about librados.
    let img = dir.path().join("v.img");
    let out = run(&["mkfs", img.to_str().unwrap(), "--size", "64M"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = run(&["fsck", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}
