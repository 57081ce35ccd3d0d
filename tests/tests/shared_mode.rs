//! Shared mode with real FUSE mounts of one server.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use demo::workload::{contents, run_all, verify};
use rwxfs_tests::{assert_fsck_clean, harness};

#[test]
fn a_file_written_on_one_mount_reads_the_same_on_the_others() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let c = h.mount_remote(&addr).unwrap();
    let mut data = Vec::new();
    for j in 0..300 {
        data.extend(contents(7, j));
    }
    std::fs::write(a.join("big"), &data).unwrap();
    assert_eq!(std::fs::read(b.join("big")).unwrap(), data);
    assert_eq!(std::fs::read(c.join("big")).unwrap(), data);
    std::fs::create_dir(b.join("dir")).unwrap();
    std::fs::write(b.join("dir/x"), b"from b").unwrap();
    assert_eq!(std::fs::read(c.join("dir/x")).unwrap(), b"from b");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn four_mounts_times_four_writers_of_2000_files_each_lose_nothing() {
    let mut h = harness();
    let img = h.mkfs("v.img", "2G").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts: Vec<_> = (0..4).map(|_| h.mount_remote(&addr).unwrap()).collect();
    let clients = 16;
    for d in demo::workload::layout(clients) {
        std::fs::create_dir(mounts[0].join(d)).unwrap();
    }
    let results = run_all(
        &mounts,
        clients,
        2000,
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let written: u64 = results.iter().map(|r| r.files_written).sum();
    assert_eq!(written, 16 * 2000);
    assert_eq!(results.iter().map(|r| r.op_errors).sum::<u64>(), 0);
    // Attribute and entry caches expire after their TTL; then every mount agrees.
    std::thread::sleep(Duration::from_millis(1100));
    let listing = |m: &std::path::Path| {
        let mut all = Vec::new();
        for d in demo::workload::layout(clients) {
            let mut names: Vec<String> = std::fs::read_dir(m.join(&d))
                .unwrap()
                .map(|e| format!("{d}/{}", e.unwrap().file_name().to_string_lossy()))
                .collect();
            names.sort();
            all.extend(names);
        }
        all
    };
    let first = listing(&mounts[0]);
    for m in &mounts[1..] {
        assert_eq!(listing(m), first, "mounts disagree about the tree");
    }
    for m in &mounts {
        let v = verify(m, &results, &demo::workload::layout(clients));
        assert_eq!(
            (v.missing, v.wrong_content, v.unreadable),
            (0, 0, 0),
            "{v:?}"
        );
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn server_refuses_a_missing_or_foreign_image_clearly() {
    let mut h = harness();
    let junk = h.path("junk.img");
    std::fs::write(&junk, vec![7u8; 1 << 20]).unwrap();
    let e = h.start_server(&junk, &[]).unwrap_err();
    assert!(e.contains("not an rwxfs image"), "{e}");
    let e = h.start_server(&h.path("nope.img"), &[]).unwrap_err();
    assert!(e.contains("No such file"), "{e}");
}

#[test]
fn unmounting_one_of_many_mounts_leaves_the_others_serving() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts: Vec<_> = (0..11).map(|_| h.mount_remote(&addr).unwrap()).collect();
    // mnt1 is a prefix of mnt10 and mnt11: unmounting it must stop only its own process.
    h.unmount(&mounts[0]).unwrap();
    std::fs::write(mounts[9].join("still"), b"here").unwrap();
    assert_eq!(std::fs::read(mounts[10].join("still")).unwrap(), b"here");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn appends_from_many_mounts_land_whole_and_once() {
    use std::io::Write;
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts: Vec<_> = (0..4).map(|_| h.mount_remote(&addr).unwrap()).collect();
    std::fs::write(mounts[0].join("log"), b"").unwrap();
    let writers: Vec<_> = (0..16)
        .map(|c| {
            let m = mounts[c % 4].clone();
            std::thread::spawn(move || {
                for j in 0..50 {
                    // Records of odd lengths, so many straddle a page boundary.
                    let rec = format!("client {c} record {j} {}\n", "x".repeat(j * 7));
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(m.join("log"))
                        .unwrap();
                    f.write_all(rec.as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let fresh = h.mount_remote(&addr).unwrap();
    let log = std::fs::read(fresh.join("log")).unwrap();
    let mut got: Vec<&[u8]> = log.split_inclusive(|b| *b == b'\n').collect();
    got.sort();
    let want_owned: Vec<String> = (0..16)
        .flat_map(|c| {
            (0..50).map(move |j| format!("client {c} record {j} {}\n", "x".repeat(j * 7)))
        })
        .collect();
    let mut want: Vec<&[u8]> = want_owned.iter().map(|s| s.as_bytes()).collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "some records were split, lost or overlapped");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn two_mounts_on_two_hosts_behave_as_on_loopback() {
    // Three network namespaces play three machines: the server's and two clients', each
    // client with its own address and its own veth link to the server.
    let hosts = rwxfs_tests::Hosts::star(2).unwrap();
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let bound = h
        .start_server_in(
            &rwxfs_tests::Hosts::exec(&hosts.server),
            &img,
            "0.0.0.0:0",
            &[],
        )
        .unwrap();
    let port = bound.rsplit(':').next().unwrap();
    let a = h
        .mount_remote_in(
            &rwxfs_tests::Hosts::exec(&hosts.clients[0]),
            &format!("{}:{port}", hosts.server_ip_for(1)),
        )
        .unwrap();
    let b = h
        .mount_remote_in(
            &rwxfs_tests::Hosts::exec(&hosts.clients[1]),
            &format!("{}:{port}", hosts.server_ip_for(2)),
        )
        .unwrap();
    // Loopback is not a way in: the server is reachable only inside its namespace.
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err());
    let mut data = Vec::new();
    for j in 0..300 {
        data.extend(contents(9, j));
    }
    std::fs::write(a.join("big"), &data).unwrap();
    assert_eq!(std::fs::read(b.join("big")).unwrap(), data);
    let mounts = vec![a.clone(), b.clone()];
    let clients = 4;
    for d in demo::workload::layout(clients) {
        std::fs::create_dir(a.join(d)).unwrap();
    }
    let results = run_all(
        &mounts,
        clients,
        100,
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    assert_eq!(results.iter().map(|r| r.op_errors).sum::<u64>(), 0);
    std::thread::sleep(Duration::from_millis(1100));
    for m in &mounts {
        let v = verify(m, &results, &demo::workload::layout(clients));
        assert_eq!(
            (v.missing, v.wrong_content, v.unreadable),
            (0, 0, 0),
            "{v:?}"
        );
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    drop(hosts);
    assert_fsck_clean(&img);
}

#[test]
fn changes_on_one_mount_show_on_another_at_once_by_server_push() {
    // B may reuse attributes and names for an hour: only the server's invalidations can make
    // A's changes visible on B, without B reopening anything. So the test waits for each change
    // to show (however loaded the machine), and the wait's bound only keeps a broken push from
    // hanging it.
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h
        .mount_remote_with(&addr, &["--cache-secs", "3600"])
        .unwrap();
    std::fs::write(a.join("f"), b"1234").unwrap();
    std::fs::write(a.join("x"), b"moving").unwrap();
    // B looks, and so caches: the size, the names.
    assert_eq!(std::fs::metadata(b.join("f")).unwrap().len(), 4);
    assert!(b.join("x").exists());
    assert!(!b.join("y").exists());
    let seen_within = |what: &str, check: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !check() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what}: not visible on B after {:?}, with its cache valid for an hour: no push",
                t.elapsed()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        t.elapsed()
    };
    std::fs::write(a.join("f"), b"123456789").unwrap();
    let d1 = seen_within("size", &|| {
        std::fs::metadata(b.join("f")).map(|m| m.len()).ok() == Some(9)
    });
    std::fs::rename(a.join("x"), a.join("y")).unwrap();
    let d2 = seen_within("rename", &|| !b.join("x").exists() && b.join("y").exists());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(a.join("y"))
        .unwrap();
    std::io::Write::write_all(&mut f, b" on").unwrap();
    let d3 = seen_within("content", &|| {
        std::fs::read(b.join("y")).ok().as_deref() == Some(&b"moving on"[..])
    });
    println!("seen on B after {d1:?} (size), {d2:?} (rename), {d3:?} (content)");
    drop(f);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
