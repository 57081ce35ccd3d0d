//! `rwxfs fsck IMAGE [--json]`, exit status as e2fsck's.

use std::path::Path;

use volume::{fsck, FileStore};

pub fn run(image: &Path, json: bool) -> i32 {
    let store = match FileStore::open_read_only(image) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rwxfs fsck: {}: {e}", image.display());
            return 8;
        }
    };
    let report = match fsck::check(&store) {
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
