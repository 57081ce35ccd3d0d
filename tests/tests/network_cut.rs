//! Network cuts between hosts: each client is a network namespace of its own, linked to the
//! server's by a veth pair that the test takes down and brings back up.
//! - A cut shorter than the lease: the cut-off client's calls wait, then go on where they
//!   were; its locks hold throughout; the other client works on meanwhile.
//! - A cut longer than the lease: the server ends that client's session, another client gets
//!   its lock, and the cut-off application sees EIO on the file it had locked — never I/O
//!   that silently goes on unprotected.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use demo::workload::contents;
use rwxfs_tests::{assert_fsck_clean, harness, write_synced, Harness, Hosts, Locker};

/// A server in its namespace and one mount in each of two client namespaces.
fn two_hosts(h: &mut Harness, hosts: &Hosts, lease: &str) -> (PathBuf, PathBuf, PathBuf) {
    let img = h.mkfs("v.img", "128M").unwrap();
    let bound = h
        .start_server_in(
            &Hosts::exec(&hosts.server),
            &img,
            "0.0.0.0:0",
            &["--lease-secs", lease],
        )
        .unwrap();
    let port = bound.rsplit(':').next().unwrap().to_string();
    let a = h
        .mount_remote_in(
            &Hosts::exec(&hosts.clients[0]),
            &format!("{}:{port}", hosts.server_ip_for(1)),
        )
        .unwrap();
    let b = h
        .mount_remote_in(
            &Hosts::exec(&hosts.clients[1]),
            &format!("{}:{port}", hosts.server_ip_for(2)),
        )
        .unwrap();
    (img, a, b)
}

#[test]
fn a_ten_second_cut_is_waited_out_and_the_client_resumes_with_its_locks() {
    let hosts = Hosts::star(2).unwrap();
    let mut h = harness();
    let (img, a, b) = two_hosts(&mut h, &hosts, "15");
    write_synced(&a.join("f"), b"locked").unwrap();
    let mut holder = Locker::start(&h, &a, &["holdio", "$MNT/f"]);
    assert_eq!(holder.line(10), "held");

    hosts.set_link(1, false).unwrap();
    let cut = Instant::now();
    // A write and fsync through the cut-off mount: it waits for the network.
    let data: Vec<u8> = (0..64).flat_map(|j| contents(1, j)).collect();
    let writer = {
        let (p, data) = (a.join("during"), data.clone());
        std::thread::spawn(move || write_synced(&p, &data).map(|_| Instant::now()))
    };
    // The other host works on, and A's lock holds.
    for j in 0..20 {
        write_synced(&b.join(format!("b{j}")), &contents(2, j)).unwrap();
    }
    let t = Locker::start(&h, &b, &["try", "$MNT/f", "posix", "w", "0", "0"]);
    assert_eq!(
        t.line(10),
        "EAGAIN",
        "A's lock was given away during a short cut"
    );
    std::thread::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed()));
    assert!(!writer.is_finished(), "a write went through a cut network");
    hosts.set_link(1, true).unwrap();
    let up = Instant::now();
    let done = writer
        .join()
        .unwrap()
        .expect("the write waited out the cut");
    println!(
        "cut {:.1} s; the waiting write and fsync finished {:.2} s after the link came back",
        (up - cut).as_secs_f64(),
        done.duration_since(up).as_secs_f64()
    );
    assert_eq!(std::fs::read(b.join("during")).unwrap(), data);
    holder.send("\n");
    assert_eq!(
        holder.line(20),
        "ok",
        "I/O under the lock after a short cut"
    );
    let t = Locker::start(&h, &b, &["try", "$MNT/f", "posix", "w", "0", "0"]);
    assert_eq!(t.line(10), "EAGAIN", "A's lock was lost in a short cut");
    for j in 0..20 {
        assert_eq!(
            std::fs::read(a.join(format!("b{j}"))).unwrap(),
            contents(2, j)
        );
    }
    drop(holder);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    drop(hosts);
    assert_fsck_clean(&img);
}

#[test]
fn a_cut_longer_than_the_lease_loses_the_locks_and_the_application_sees_eio() {
    let hosts = Hosts::star(2).unwrap();
    let mut h = harness();
    let (img, a, b) = two_hosts(&mut h, &hosts, "3");
    write_synced(&a.join("f"), b"locked").unwrap();
    let mut holder = Locker::start(&h, &a, &["holdio", "$MNT/f"]);
    assert_eq!(holder.line(10), "held");
    holder.send("\n");
    assert_eq!(holder.line(10), "ok");

    hosts.set_link(1, false).unwrap();
    let cut = Instant::now();
    // B waits for the lock; it gets it when A's lease runs out.
    let mut waiter = Locker::start(&h, &b, &["hold", "$MNT/f", "posix", "w", "0", "0"]);
    let got = waiter.line(20);
    assert!(got.starts_with("held"), "B never got the lock: {got}");
    let granted_after = cut.elapsed();
    println!("B got the lock {granted_after:?} into the cut (lease 3 s)");
    assert!(
        granted_after >= Duration::from_secs(2),
        "granted before the lease ran out"
    );
    std::thread::sleep(Duration::from_secs(6).saturating_sub(cut.elapsed()));
    hosts.set_link(1, true).unwrap();
    // A's next I/O on the file it had locked fails: its lock is gone.
    holder.send("\n");
    assert_eq!(
        holder.line(30),
        "EIO",
        "I/O on a file whose lock was lost must fail, not go on unprotected"
    );
    waiter.finish();
    assert!(waiter.line(10).starts_with("released"));
    // The mount itself carries on.
    write_synced(&a.join("after"), b"fine").unwrap();
    assert_eq!(std::fs::read(b.join("after")).unwrap(), b"fine");
    drop((holder, waiter));
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    drop(hosts);
    assert_fsck_clean(&img);
}
