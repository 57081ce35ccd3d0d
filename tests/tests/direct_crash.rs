//! A direct mount and a server killed with SIGKILL: what a close committed is there after
//! the restart, as on a server mount, though the server had not made the commit durable.

use rwxfs_tests::{assert_fsck_clean, data, harness, reads_as};

#[test]
fn data_closed_on_a_direct_mount_survives_the_server_killed_right_after_the_close() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let m = h.mount_remote_with(&addr, &["--direct"]).unwrap();
    std::fs::write(m.join("before"), b"made durable by the next").unwrap();
    let data = data(7, 300);
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
