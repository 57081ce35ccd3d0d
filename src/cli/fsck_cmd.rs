//! `rwxfs fsck IMAGE [--json] [--state-file FILE] [--repair]`, exit status as e2fsck's.
//! Files unlinked while open that a session in the server's session log holds (its client
//! may come back) are told from lost ones, and are not damage. `--repair` makes the on-disk
//! lists (files unlinked while open, quota trees) and each tree's kept use again first.

use std::path::{Path, PathBuf};

use server::state_log::{FileLog, LogPlace};
use volume::{fsck, BlockStore, FileStore, Volume};

use super::serve_rados::SessionObject;

use super::image_lock::{self, Hold, LockError};
use super::rados_cmd::{self, CephArgs};
use rados_store::ImageName;

/// Who holds which unlinked files open, from the session log in `log` (none if there is no
/// log, or it is another volume's).
fn holders(store: &impl BlockStore, log: &dyn LogPlace) -> Result<fsck::Holders, String> {
    let mut b0 = vec![0u8; volume::layout::BLOCK_SIZE];
    store.read_at(&mut b0, 0).map_err(|e| e.to_string())?;
    let sb = volume::layout::Superblock::decode(&b0).map_err(|e| e.to_string())?;
    let sessions = server::state_log::sessions_kept(log, sb.volume_id)
        .map_err(|e| format!("session log {}: {e}", log.describe()))?
        .unwrap_or_default();
    let mut out = fsck::Holders::new();
    for (id, s) in sessions {
        for ino in s.opens.keys() {
            let who = format!("session {id} (node {}, mount {})", s.node_id, s.mount_id);
            out.entry(*ino)
                .and_modify(|w| *w = format!("{w} and {who}"))
                .or_insert(who);
        }
    }
    Ok(out)
}

pub fn run(
    image: &Path,
    ceph: &CephArgs,
    json: bool,
    state_file: Option<PathBuf>,
    repair: bool,
) -> i32 {
    match rados_cmd::name(image) {
        Ok(None) => {}
        Ok(Some(name)) => return run_rados(&name, ceph, image, json, state_file, repair),
        Err(e) => {
            eprintln!("rwxfs fsck: {e}");
            return 8;
        }
    }
    if repair {
        if let Err(e) = repair_lists(image) {
            eprintln!("rwxfs fsck: {}: {e}", image.display());
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
    let log = state_file.unwrap_or_else(|| {
        let mut p = image.as_os_str().to_owned();
        p.push(".sessions");
        PathBuf::from(p)
    });
    check(&store, image, json, Some(&FileLog::new(&log)))
}

/// `run` for a RADOS volume: refused while a server owns it, which none may take meanwhile.
/// The session log is the object beside the image, unless `--state-file` names one.
fn run_rados(
    name: &ImageName,
    ceph: &CephArgs,
    image: &Path,
    json: bool,
    state_file: Option<PathBuf>,
    repair: bool,
) -> i32 {
    let store = match rados_cmd::open(name, ceph, !repair) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            eprintln!("rwxfs fsck: {e}");
            return 8;
        }
    };
    let hold = match rados_cmd::hold(store.pool().cluster(), name, "fsck") {
        Ok(h) => h,
        Err(e) => {
            eprintln!("rwxfs fsck: {e}");
            return 8;
        }
    };
    // The repair writes nothing once the hold may have lapsed (a server may have taken it).
    if repair {
        if let Err(e) = rebuild(hold.guard(store.clone()), image) {
            eprintln!("rwxfs fsck: {e}");
            return 8;
        }
    }
    let log: Box<dyn LogPlace> = match state_file {
        Some(f) => Box::new(FileLog::new(&f)),
        None => match store.pool().cluster().pool(&name.pool) {
            Ok(pool) => Box::new(SessionObject::new(pool, name)),
            Err(e) => {
                eprintln!("rwxfs fsck: {e}");
                return 8;
            }
        },
    };
    let status = check(&*store, image, json, Some(log.as_ref()));
    // A server that took the volume during the check may have written what it read.
    if let Some(why) = hold.lapsed() {
        eprintln!("rwxfs fsck: {name}: the check's {why}; a server may have written the volume meanwhile: check it again");
        return 8;
    }
    status
}

/// Make the volume's on-disk lists and kept use again (`Volume::open_rebuilding_lists`); its
/// journal is replayed and an older format brought to this build's on the way. The files
/// unlinked while open are kept for the sessions that may hold them.
fn rebuild(store: impl BlockStore, image: &Path) -> Result<(), String> {
    let v = Volume::open_rebuilding_lists(store).map_err(|e| e.to_string())?;
    eprintln!(
        "rwxfs fsck: {}: list of files unlinked while open ({} kept for their sessions), \
         list of quota trees and their use made again",
        image.display(),
        v.orphans().len()
    );
    Ok(())
}

/// Make the image's on-disk lists and kept use again, the image this process's alone
/// meanwhile (no server, no mount); its journal is replayed and an older format brought to
/// this build's on the way.
fn repair_lists(image: &Path) -> Result<(), String> {
    let _owner = image_lock::lock(image, Hold::Owner).map_err(|e| match e {
        LockError::InUse(e) => format!("{e}; stop it to repair the image"),
        LockError::Io(e) => e,
    })?;
    let store = FileStore::open(image).map_err(|e| e.to_string())?;
    rebuild(store, image)
}

/// Check the volume on `store`, telling the orphans the sessions of the session log at `log`
/// hold from lost ones, and report; the exit status.
fn check(store: &impl BlockStore, image: &Path, json: bool, log: Option<&dyn LogPlace>) -> i32 {
    let holders = match log.map(|log| holders(store, log)) {
        None => fsck::Holders::new(),
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            eprintln!("rwxfs fsck: warning: {e}: every orphan counts as lost");
            fsck::Holders::new()
        }
    };
    let report = match fsck::check_holding(store, &holders) {
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
    show(image, &report, json);
    report.exit_code()
}

/// The report, as JSON or as text.
fn show(image: &Path, report: &fsck::Report, json: bool) {
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
            "held_orphans": report.held_orphans,
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
        for f in report.findings.iter().filter(|f| f.held_by.is_some()) {
            println!("  - {}", f.detail);
        }
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
}
