//! Direct mounts and the users writing through them, with real FUSE mounts: what a mount
//! commits on its own (its commit thread, its answer to a recall, which no caller asked
//! for) is committed for the user who wrote, not anonymously, which the server would refuse
//! on a private file.

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rwxfs_tests::{assert_fsck_clean, harness, sh_as, Harness, LayoutHold, Proxy};

/// The uid and gid of the user the tests write as.
const USER: u32 = 1000;

/// `n` bytes of a pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 253) as u8).collect()
}

/// `sh -c script` as `USER` (no capabilities) in the mount's namespace, `$MNT` the mount.
fn as_user(h: &Harness, m: &Path, script: &str) {
    sh_as(h, m, USER, script);
}

/// What `yes abcdefghijklmno | head -c N` writes.
fn yes_bytes(n: usize) -> Vec<u8> {
    b"abcdefghijklmno\n"
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
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
    let hold = LayoutHold::start(&addr).unwrap();
    let a = h.mount_remote_with(&hold.addr, &["--direct"]).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let path = a.join("f");
    let f = std::fs::File::create(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Answered, not yet made nor committed (nothing on `a` asks about the file, which would
    // commit it): the recall of a truncate on `b` makes and commits it. The write is
    // answered before its layout is asked for: the truncate waits until the server has
    // given it, so that `a` is among the holders it recalls (a write no layout stands for
    // yet is not ordered before another mount's call; close-to-open is what is promised).
    hold.hold();
    f.write_all_at(&pattern(4096), 0).unwrap();
    hold.wait_held();
    hold.release();
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

/// A user without CAP_FSETID (the kernel asks that every write of theirs drop setuid and
/// setgid) writes 16 MiB on a direct mount: the data goes to the volume, not through the
/// server (counted by a proxy that every byte between the mount and the server crosses),
/// and another mount reads it.
#[test]
fn a_non_root_writers_data_goes_straight_to_the_volume() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &["--no-root-squash"]).unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let a = h.mount_remote_with(&proxy.addr, &["--direct"]).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    std::fs::create_dir(a.join("home")).unwrap();
    std::os::unix::fs::chown(a.join("home"), Some(USER), Some(USER)).unwrap();
    let before = proxy.captured().len();
    as_user(
        &h,
        &a,
        "yes abcdefghijklmno | head -c 16777216 | dd of=$MNT/home/f bs=1M iflag=fullblock \
         conv=fsync status=none",
    );
    let through = proxy.captured().len() - before;
    assert!(
        through < 2 << 20,
        "{through} bytes crossed to and from the server for 16 MiB a user wrote directly"
    );
    assert!(std::fs::read(b.join("home/f")).unwrap() == yes_bytes(16 << 20));
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// A user without CAP_FSETID writes files of root's that the user may write, on a direct
/// mount: setuid goes, setgid goes where the group may execute and stays where it may not
/// (as Linux has it), as another mount sees; the data is all there.
#[test]
fn a_non_root_writer_drops_setuid_and_setgid_on_a_direct_mount_as_another_mount_sees() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &["--no-root-squash"]).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let cases = [
        ("suid", 0o4777, 0o777),
        ("sgid", 0o2777, 0o777),
        ("sgid-no-exec", 0o2767, 0o2767),
        ("plain", 0o777, 0o777),
    ];
    for (name, mode, _) in cases {
        std::fs::write(a.join(name), b"").unwrap();
        std::fs::set_permissions(a.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for (name, ..) in cases {
        as_user(
            &h,
            &a,
            &format!(
                "yes abcdefghijklmno | head -c 4194304 | dd of=$MNT/{name} bs=256K \
                 iflag=fullblock conv=notrunc,fsync status=none"
            ),
        );
    }
    for (name, _, after) in cases {
        let m = std::fs::metadata(b.join(name)).unwrap();
        assert_eq!(
            m.permissions().mode() & 0o7777,
            after,
            "{name}, seen from another mount"
        );
        assert!(
            std::fs::read(b.join(name)).unwrap() == yes_bytes(4 << 20),
            "{name}"
        );
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
