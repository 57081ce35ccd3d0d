//! `rwxfs fsck IMAGE [--json]`, exit status as e2fsck's.

use std::path::Path;

use volume::{fsck, BlockStore, FileStore};

use super::image_lock::{self, Hold, LockError};
use super::rados_cmd::{self, CephArgs};

pub fn run(image: &Path, ceph: &CephArgs, json: bool) -> i32 {
    match rados_cmd::name(image) {
        Ok(None) => {}
        Ok(Some(name)) => {
            return match rados_cmd::open(&name, ceph, true) {
                Ok(store) => check(&store, image, json),
                Err(e) => {
                    eprintln!("rwxfs fsck: {e}");
                    8
                }
            }
        }
        Err(e) => {
            eprintln!("rwxfs fsck: {e}");
            return 8;
        }
    }
    // What a running server or raw mount has not written back yet would show as damage:
    // refuse a served image; check one that raw mounts hold, with a warning.
    let _hold = match image_lock::lock(image, Hold::Shared) {
        Ok(l) => l,
        Err(LockError::InUse(e)) => {
            eprintln!("rwxfs fsck: {e}; stop the server to check the image");
            return 8;
        }
        Err(LockError::Io(e)) => {
            eprintln!("rwxfs fsck: {e}");
            return 8;
        }
    };
    let others = image_lock::others(image);
    if !others.is_empty() {
        eprintln!(
            "rwxfs fsck: warning: {} is also {}: what they have not written back yet shows as damage",
            image.display(),
            image_lock::describe(&others, std::process::id())
        );
    }
    let store = match FileStore::open_read_only(image) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rwxfs fsck: {}: {e}", image.display());
            return 8;
        }
    };
    check(&store, image, json)
}

/// Check the volume on `store` and report; the exit status.
fn check(store: &impl BlockStore, image: &Path, json: bool) -> i32 {
    let report = match fsck::check(store) {
        Ok(r) => r,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "image": image, "error": e.to_string() })
                );
            }
            eprintln!("rwxfs fsck: {}: {e}", image.display());
            return 8;
        }
    };
    if json {
        let v = serde_json::json!({
            "image": image,
            "clean": report.is_clean(),
            "errors": report.errors(),
            "by_kind": report.by_kind,
            "findings": report.findings,
            "inodes_used": report.inodes_used,
            "blocks_used": report.blocks_used,
            "directories": report.directories,
            "files": report.files,
            "journal_replayed": report.journal_replayed,
        });
        println!("{v}");
    } else if report.is_clean() {
        println!(
            "{}: clean, {} inodes in use ({} files, {} directories), {} blocks",
            image.display(),
            report.inodes_used,
            report.files,
            report.directories,
            report.blocks_used
        );
    } else {
        println!("{}: {} errors", image.display(), report.errors());
        for (kind, n) in &report.by_kind {
            println!(
                "  {:<22} {n}",
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            );
        }
        for f in report.findings.iter().take(30) {
            println!("  - {}", f.detail);
        }
    }
    report.exit_code()
}
