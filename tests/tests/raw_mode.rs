//! Raw mode: one mount alone is a correct file system; several on one image are not.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use demo::workload::{layout, run_all, verify};
use rwxfs_tests::{assert_fsck_clean, bin, harness};

#[test]
fn one_raw_mount_with_many_writer_threads_is_perfect() {
    let mut h = harness();
    let img = h.mkfs("v.img", "512M").unwrap();
    let mp = h.mount_raw(&img).unwrap();
    for d in layout(3) {
        std::fs::create_dir(mp.join(d)).unwrap();
    }
    let results = run_all(
        std::slice::from_ref(&mp),
        3,
        200,
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    assert_eq!(results.iter().map(|r| r.op_errors).sum::<u64>(), 0);
    h.unmount(&mp).unwrap();
    assert_fsck_clean(&img);
    let mp = h.mount_raw(&img).unwrap();
    let v = verify(&mp, &results, &layout(3));
    assert_eq!(
        (v.missing, v.wrong_content, v.unreadable),
        (0, 0, 0),
        "{v:?}"
    );
    h.unmount(&mp).unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn demo_json_shows_shared_and_direct_perfect_and_raw_damaged() {
    let pictures = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["demo", "--json", "--files", "150", "--picture"])
        .arg(pictures.path())
        .output()
        .expect("run rwxfs demo");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let n = |side: &str, k: &str| {
        v[side][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{side}.{k} missing: {v}"))
    };
    assert_eq!(n("shared", "files_written"), 450);
    assert_eq!(n("direct", "files_written"), 450);
    for k in [
        "missing",
        "wrong_content",
        "unreadable",
        "fsck_errors",
        "op_errors",
    ] {
        assert_eq!(n("shared", k), 0, "shared side must be perfect: {v}");
        assert_eq!(n("direct", k), 0, "direct side must be perfect: {v}");
    }
    let damage = n("raw", "missing")
        + n("raw", "wrong_content")
        + n("raw", "unreadable")
        + n("raw", "fsck_errors");
    assert!(damage > 0, "raw side showed no damage: {v}");
    assert!(!v["raw"]["explanations"].as_array().unwrap().is_empty());
    for side in ["shared", "raw", "direct"] {
        let p = &v[side]["picture"];
        let svg = std::path::PathBuf::from(p["svg"].as_str().expect("svg named"));
        let png = std::path::PathBuf::from(p["png"].as_str().expect("png named"));
        assert_eq!(svg, pictures.path().join(format!("{side}.svg")), "{v}");
        assert_eq!(png, pictures.path().join(format!("{side}.png")), "{v}");
        assert!(std::fs::metadata(&png).unwrap().len() > 0);
        let svg = std::fs::read_to_string(&svg).unwrap();
        let twice = p["claimed_twice"].as_u64().unwrap();
        assert_eq!(svg.contains("class=\"twice\""), twice > 0, "{side}: {v}");
        if side != "raw" {
            assert_eq!(twice, 0, "{side} has blocks claimed twice: {v}");
            assert_eq!(p["leaked"].as_u64(), Some(0), "{side}: {v}");
        }
    }
}

#[test]
fn mount_errors_are_clear() {
    let h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "mount",
        "--raw-image",
        &img.to_string_lossy(),
        "/nonexistent/mp",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("mount point /nonexistent/mp"), "{err}");
    let junk = h.path("junk");
    std::fs::write(&junk, b"not an image at all").unwrap();
    let mp = h.path("mp");
    std::fs::create_dir(&mp).unwrap();
    let (code, err) = run(&[
        "mount",
        "--raw-image",
        &junk.to_string_lossy(),
        &mp.to_string_lossy(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not an rwxfs image"), "{err}");
    let (code, err) = run(&["fsck", &junk.to_string_lossy()]);
    assert_eq!(code, Some(8), "{err}");
    let (code, err) = run(&["mkfs", &img.to_string_lossy(), "--size", "64M"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn demo_refuses_a_picture_directory_it_cannot_make_before_starting_anything() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = std::process::Command::new(bin())
        .args(["demo", "--files", "1", "--picture"])
        .arg(file.join("pictures"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the pictures' directory") && err.contains("a-file"),
        "{err}"
    );
    // Nothing ran: no table, no progress.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}
