//! A direct mount and a server killed with SIGKILL: what a close committed is there after
//! the restart, as on a server mount, though the server had not made the commit durable.

use std::path::Path;
use std::time::{Duration, Instant};

use demo::workload::contents;
use rwxfs_tests::{assert_fsck_clean, harness};

/// Wait until `path` reads as `want`, or panic with what it read.
fn reads_as(path: &Path, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = std::fs::read(path);
        match got {
            Ok(g) if g == want => return,
            g if Instant::now() > deadline => panic!(
                "{} never read as written ({} bytes): {:?} bytes",
                path.display(),
                want.len(),
                g.map(|g| g.len())
            ),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn data_closed_on_a_direct_mount_survives_the_server_killed_right_after_the_close() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let m = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(m.join("before"), b"made durable by the next").unwrap();
    let data: Vec<u8> = (0..300).flat_map(|j| contents(7, j)).collect();
    // Its close commits it; the server is killed before its next journal commit (at most
    // a second later), so the commit was answered but never made durable.
    std::fs::write(m.join("closed"), &data).unwrap();
    h.kill_server();
    h.start_server_in(&[], &img, &addr, &[]).unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    reads_as(&fresh.join("closed"), &data);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
