//! Direct mounts and the users writing through them, with real FUSE mounts: what a mount
//! commits on its own (its commit thread, its answer to a recall, which no caller asked
//! for) is committed for the user who wrote, not anonymously, which the server would refuse
//! on a private file.

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rwxfs_tests::{assert_fsck_clean, harness};

/// `n` bytes of a pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 253) as u8).collect()
}

/// Wait until `ok` holds of `path`'s length.
fn wait_for_len(path: &Path, what: &str, ok: impl Fn(u64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let len = std::fs::metadata(path).map(|m| m.len());
        if len.as_ref().is_ok_and(|&l| ok(l)) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {len:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A file of mode 0600 owned by uid 1000, written by root on a direct mount (a process
/// with CAP_FSETID: its writes go through layouts). The mount's answer to a recall
/// (another mount truncates the file) and its commit thread (every 16 MiB of a file)
/// commit the writes with no caller of their own; the server lets only the owner or root
/// commit them, not an anonymous caller (nobody).
#[test]
fn a_users_private_file_written_directly_is_committed_at_a_recall_and_by_the_commit_thread() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &["--no-root-squash"]).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let path = a.join("f");
    let f = std::fs::File::create(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Answered, not yet made nor committed (nothing on `a` asks about the file, which would
    // commit it): the recall of a truncate on `b` makes and commits it.
    f.write_all_at(&pattern(4096), 0).unwrap();
    let cut = std::fs::OpenOptions::new().write(true).open(b.join("f"));
    cut.unwrap().set_len(10).unwrap();
    let synced = f.sync_all();
    assert!(synced.is_ok(), "fsync after the recall: {synced:?}");
    assert_eq!(std::fs::read(b.join("f")).unwrap(), pattern(10));

    // No fsync yet: only the commit thread tells the server of any of it.
    let data = pattern(40 << 20);
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        f.write_all_at(chunk, (i << 20) as u64).unwrap();
    }
    let seen = "the other mount sees what the commit thread committed";
    wait_for_len(&b.join("f"), seen, |l| l >= 16 << 20);
    let synced = f.sync_all();
    assert!(
        synced.is_ok(),
        "fsync after the commit thread's commits: {synced:?}"
    );
    assert!(std::fs::read(b.join("f")).unwrap() == data);
    drop(f);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
