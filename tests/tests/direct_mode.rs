//! Direct mode with real FUSE mounts: metadata through the server, file data read and written
//! by each mount on the shared image itself at the blocks of its layouts.

use std::path::Path;
use std::time::{Duration, Instant};

use rwxfs_tests::{assert_fsck_clean, data, harness, reads_as, statvfs, Hosts, Stopped};

/// Bytes the process has written through write(2) and its kind so far (`wchar`).
fn written_by(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let line = io.lines().find(|l| l.starts_with("wchar:")).unwrap();
    line[6..].trim().parse().unwrap()
}

/// Wait until a listing of `dir` shows `name` `len` bytes long: a direct write, answered
/// before it is made (write-behind), has then been made on the image through its layout
/// and noted for its commit (a direct mount's listing counts the writes it has not
/// committed, and waits for those on their way).
fn listed_at(dir: &Path, name: &str, len: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let entry = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.file_name() == name);
        let got = entry.map(|e| e.metadata().unwrap().len());
        if got == Some(len) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} listed as {got:?} bytes, not {len}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_hosts_write_truncate_rename_over_and_read_each_others_files_directly() {
    let hosts = Hosts::star(2).unwrap();
    let mut h = harness();
    let img = h.mkfs("v.img", "512M").unwrap();
    let bound = h
        .start_server_in(&Hosts::exec(&hosts.server), &img, "0.0.0.0:0", &[])
        .unwrap();
    let port = bound.rsplit(':').next().unwrap().to_string();
    let server = h.server_pid().unwrap();
    let mut direct = |k: usize| {
        let addr = format!("{}:{port}", hosts.server_ip_for(k + 1));
        h.mount_remote_in_with(&Hosts::exec(&hosts.clients[k]), &addr, &["--direct"])
            .unwrap()
    };
    let (a, b) = (direct(0), direct(1));
    let before = written_by(server);
    // 64 MiB from one host, read on the other: none of it passes through the server.
    let big = data(1, 16 * 1024);
    std::fs::write(a.join("big"), &big).unwrap();
    assert!(big.len() >= 64 << 20, "{}", big.len());
    reads_as(&b.join("big"), &big);
    let through_server = written_by(server) - before;
    assert!(
        through_server < 8 << 20,
        "the server wrote {through_server} bytes for 64 MiB written directly"
    );
    // The other way, then truncated by the first host and grown sparse by the second.
    let two = data(2, 300);
    std::fs::write(b.join("two"), &two).unwrap();
    reads_as(&a.join("two"), &two);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.join("two"))
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    reads_as(&b.join("two"), &two[..1000]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(b.join("two"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail", 3 << 20).unwrap();
    drop(f);
    let mut sparse = two[..1000].to_vec();
    sparse.resize(3 << 20, 0);
    sparse.extend_from_slice(b"tail");
    reads_as(&a.join("two"), &sparse);
    // A file renamed over another: its blocks go, the new one reads whole on both hosts.
    let three = data(3, 500);
    std::fs::write(b.join("three"), &three).unwrap();
    std::fs::rename(b.join("three"), b.join("big")).unwrap();
    reads_as(&a.join("big"), &three);
    reads_as(&b.join("big"), &three);
    h.unmount_all().unwrap();
    // A fresh mount through the server sees the same.
    let c = h
        .mount_remote_in(
            &Hosts::exec(&hosts.clients[0]),
            &format!("{}:{port}", hosts.server_ip_for(1)),
        )
        .unwrap();
    assert_eq!(std::fs::read(c.join("big")).unwrap(), three);
    assert_eq!(std::fs::read(c.join("two")).unwrap(), sparse);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn data_fsynced_or_closed_after_the_restart_survives_the_server_killed_mid_write() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let m = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let kept = data(4, 2000);
    let mut f = std::fs::File::create(m.join("kept")).unwrap();
    std::io::Write::write_all(&mut f, &kept).unwrap();
    f.sync_all().unwrap();
    // More on its way, never fsynced, when the server dies.
    let mut g = std::fs::File::create(m.join("unsynced")).unwrap();
    std::io::Write::write_all(&mut g, &data(5, 500)).unwrap();
    h.kill_server();
    h.start_server_in(&[], &img, &addr, &[]).unwrap();
    // Their closes commit what they wrote, to the server that came back.
    drop((f, g));
    let fresh = h.mount_remote(&addr).unwrap();
    assert!(
        std::fs::read(fresh.join("kept")).unwrap() == kept,
        "kept differs"
    );
    // Written before the crash, committed after it: its reserved blocks died with the
    // server, so it went through the new one, whole.
    let unsynced = std::fs::read(fresh.join("unsynced")).unwrap();
    assert!(
        unsynced == data(5, 500),
        "unsynced: {} bytes",
        unsynced.len()
    );
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_direct_mount_killed_with_uncommitted_writes_leaves_nothing_of_them_once_its_lease_ends() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &["--lease-secs", "2"]).unwrap();
    let watch = h.mount_remote(&addr).unwrap();
    let m = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(m.join("f"), b"committed at close").unwrap();
    let free = statvfs(&watch).f_bfree;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.join("f"))
        .unwrap();
    let written = data(6, 500);
    std::os::unix::fs::FileExt::write_all_at(&f, &written, 1 << 20).unwrap();
    listed_at(&m, "f", (1 << 20) + written.len() as u64);
    // Reserved for the writer, not committed: out of the free blocks, in no file.
    assert!(statvfs(&watch).f_bfree < free - 200, "nothing was reserved");
    h.kill_mount(&m);
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(30);
    while statvfs(&watch).f_bfree != free {
        assert!(
            Instant::now() < deadline,
            "the reserved blocks never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read(watch.join("f")).unwrap(),
        b"committed at close"
    );
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_direct_writer_racing_truncates_leaves_the_other_files_and_the_volume_whole() {
    let mut h = harness();
    let img = h.mkfs("v.img", "512M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(a.join("w"), b"").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (a.join("w"), stop.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let chunk = vec![b'a'; 256 << 10];
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Overwrites of blocks the truncates free, and new ones past them.
                let _ = std::os::unix::fs::FileExt::write_all_at(&f, &chunk, (k % 16) << 18);
                if k % 4 == 3 {
                    let _ = f.sync_data();
                }
                k += 1;
            }
            k
        })
    };
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut others = 0;
    while Instant::now() < deadline {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(b.join("w"))
            .unwrap();
        f.set_len(0).unwrap();
        drop(f);
        std::fs::write(b.join(format!("o{others}")), vec![b'b'; 512 << 10]).unwrap();
        others += 1;
        let seen = std::fs::read(b.join("w")).unwrap();
        assert!(
            seen.iter().all(|&c| c == b'a' || c == 0),
            "w read foreign bytes"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 16 && others > 4, "{writes} writes, {others} files");
    h.unmount_all().unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    for k in 0..others {
        let o = std::fs::read(fresh.join(format!("o{k}"))).unwrap();
        assert!(
            o.len() == 512 << 10 && o.iter().all(|&c| c == b'b'),
            "o{k} was written into"
        );
    }
    let w = std::fs::read(fresh.join("w")).unwrap();
    assert!(
        w.iter().all(|&c| c == b'a' || c == 0),
        "w holds foreign bytes"
    );
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_lock_holder_on_a_direct_mount_reads_what_the_last_holder_wrote() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(a.join("counter"), 0u64.to_le_bytes()).unwrap();
    let bump = |m: &Path, times: usize| {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.join("counter"))
            .unwrap();
        for _ in 0..times {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            // SAFETY: flock on a file descriptor this function owns.
            assert_eq!(unsafe { libc::flock(fd, libc::LOCK_EX) }, 0);
            let mut n = [0u8; 8];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut n, 0).unwrap();
            let next = u64::from_le_bytes(n) + 1;
            std::os::unix::fs::FileExt::write_all_at(&f, &next.to_le_bytes(), 0).unwrap();
            // SAFETY: as above.
            assert_eq!(unsafe { libc::flock(fd, libc::LOCK_UN) }, 0);
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| bump(&a, 200));
        s.spawn(|| bump(&b, 200));
    });
    let n = std::fs::read(a.join("counter")).unwrap();
    assert_eq!(u64::from_le_bytes(n.try_into().unwrap()), 400);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn sizes_listed_or_looked_up_include_the_mounts_own_uncommitted_direct_writes() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let m = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(m.join("f"), b"").unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(m.join("f"))
        .unwrap();
    // Written on the image, not yet committed: the server still says 0 bytes.
    std::os::unix::fs::FileExt::write_all_at(&f, &[7u8; 5000], 0).unwrap();
    // A listing hands the kernel each entry's attributes (READDIRPLUS), which it takes.
    for e in std::fs::read_dir(&m).unwrap() {
        e.unwrap();
    }
    let listed = std::fs::metadata(m.join("f")).unwrap().len();
    assert_eq!(
        listed, 5000,
        "the listing's size missed the uncommitted write"
    );
    drop(f);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_truncate_on_another_mount_recalls_the_writers_layouts_and_cuts_what_it_wrote() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(a.join("f"), b"").unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.join("f"))
        .unwrap();
    // 1 MiB on the image through a's layouts, not committed: the server says 0 bytes.
    let written = data(8, 256);
    std::os::unix::fs::FileExt::write_all_at(&f, &written, 0).unwrap();
    // b cuts the file to half: a's layouts are recalled first (a commits and returns
    // them), so the truncate comes after a's write and cuts it.
    let g = std::fs::OpenOptions::new()
        .write(true)
        .open(b.join("f"))
        .unwrap();
    g.set_len(512 << 10).unwrap();
    drop(g);
    let seen = std::fs::read(b.join("f")).unwrap();
    assert!(
        seen == written[..512 << 10],
        "after the truncate b reads {} bytes, not a's write cut at 512 KiB",
        seen.len()
    );
    // a's file, closed: nothing of the cut half comes back.
    drop(f);
    reads_as(&b.join("f"), &written[..512 << 10]);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_recall_the_writer_does_not_answer_within_its_lease_takes_its_layouts_and_its_writes() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &["--lease-secs", "2"]).unwrap();
    let watch = h.mount_remote(&addr).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(a.join("f"), b"kept").unwrap();
    let free = statvfs(&watch).f_bfree;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.join("f"))
        .unwrap();
    let written = data(9, 256);
    std::os::unix::fs::FileExt::write_all_at(&f, &written, 1 << 20).unwrap();
    listed_at(&a, "f", (1 << 20) + written.len() as u64);
    assert!(statvfs(&watch).f_bfree < free - 200, "nothing was reserved");
    let stopped = Stopped::new(h.mount_pid(&a).unwrap());
    // b's truncate recalls a's layouts; a cannot answer: after the lease they are taken,
    // and the truncate goes on.
    let g = std::fs::OpenOptions::new()
        .write(true)
        .open(b.join("f"))
        .unwrap();
    g.set_len(2).unwrap();
    drop(g);
    assert_eq!(std::fs::read(b.join("f")).unwrap(), b"ke");
    drop(stopped);
    // What a wrote through the taken layouts never appears, and its fsync says so.
    assert!(
        f.sync_all().is_err(),
        "a's fsync of writes it lost succeeded"
    );
    drop(f);
    assert_eq!(std::fs::read(b.join("f")).unwrap(), b"ke");
    let deadline = Instant::now() + Duration::from_secs(30);
    while statvfs(&watch).f_bfree != free {
        assert!(
            Instant::now() < deadline,
            "the taken blocks never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    h.unmount_all().unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    assert_eq!(std::fs::read(fresh.join("f")).unwrap(), b"ke");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// `seen` starts with `floor`; where it does not, the panic says where and what it holds.
fn same_floor(seen: &[u8], floor: &[u8]) {
    assert!(
        seen.len() >= floor.len(),
        "{} bytes, short of the floor",
        seen.len()
    );
    if let Some(at) = (0..floor.len()).find(|&k| seen[k] != floor[k]) {
        let to = (at + 16).min(floor.len());
        panic!(
            "the fsynced floor changed at {at}: {:?}, not {:?}",
            &seen[at..to],
            &floor[at..to]
        );
    }
}

#[test]
fn truncates_and_renames_over_a_file_another_mount_writes_directly_race_its_writes_safely() {
    let mut h = harness();
    let img = h.mkfs("v.img", "512M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    let b = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    // The first MiB written and fsynced: committed, never lost to what follows.
    let mut floor = data(10, 256);
    floor.truncate(1 << 20);
    let f = std::fs::File::create(a.join("w")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &floor, 0).unwrap();
    f.sync_all().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let chunk = vec![b'a'; 128 << 10];
            let mut k = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let at = (1 << 20) + ((k % 24) << 17);
                std::os::unix::fs::FileExt::write_all_at(&f, &chunk, at).unwrap();
                if k % 5 == 4 {
                    f.sync_data().unwrap();
                }
                k += 1;
            }
            k
        })
    };
    // b cuts the file back to the floor and grows it, racing a's writes past it: each
    // write lands before the truncate (cut) or after it (kept), never as stale bytes.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut cuts = 0;
    while Instant::now() < deadline {
        let g = std::fs::OpenOptions::new()
            .write(true)
            .open(b.join("w"))
            .unwrap();
        g.set_len(1 << 20).unwrap();
        g.set_len((1 << 20) + (cuts % 7) * 50_000).unwrap();
        drop(g);
        let seen = std::fs::read(b.join("w")).unwrap();
        same_floor(&seen, &floor);
        assert!(
            seen[1 << 20..].iter().all(|&c| c == b'a' || c == 0),
            "w read stale bytes past the floor"
        );
        cuts += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 8 && cuts > 4, "{writes} writes, {cuts} cuts");
    // A file a writes to, renamed over by b while a is writing it.
    let v = std::fs::File::create(a.join("victim")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&v, &data(11, 256), 0).unwrap();
    let new = data(12, 100);
    std::fs::write(b.join("new"), &new).unwrap();
    std::fs::rename(b.join("new"), b.join("victim")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&v, &data(13, 64), 1 << 20).unwrap();
    v.sync_all().unwrap();
    drop(v);
    reads_as(&a.join("victim"), &new);
    reads_as(&b.join("victim"), &new);
    h.unmount_all().unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    let w = std::fs::read(fresh.join("w")).unwrap();
    same_floor(&w, &floor);
    assert!(
        w[1 << 20..].iter().all(|&c| c == b'a' || c == 0),
        "w: stale bytes"
    );
    assert_eq!(std::fs::read(fresh.join("victim")).unwrap(), new);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
