//! What the server remembers of its sessions, end to end through real mounts: a call resent
//! while its first copy still runs is answered on the connection the client has now; files
//! held open (unlinked ones included) live through a server restart, planned or crash, and
//! are freed once no session that may hold them is left.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use rwxfs_tests::{assert_fsck_clean, harness, Proxy};

/// Wait for `cond`, panicking with `what` if it has not held after `secs`.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_call_resent_while_its_first_copy_runs_returns() {
    let mut h = harness();
    let img = h.mkfs("v.img", "8G").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let a = h.mount_remote(&proxy.addr).unwrap();
    let f = std::fs::File::create(a.join("big")).unwrap();
    f.sync_all().unwrap();
    let on_disk = || std::fs::metadata(&img).map(|m| m.blocks()).unwrap_or(0);
    let before = on_disk();
    // A fallocate large enough to run for a while on the server: each block it takes is
    // zeroed in the image, which is how the test sees it running.
    let len: i64 = 3 << 30;
    let call = std::thread::spawn(move || {
        // SAFETY: fallocate on an open descriptor with plain integer arguments.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
        (r, std::io::Error::last_os_error())
    });
    wait_for(60, "the fallocate never reached the server", || {
        on_disk() > before + 64 * 1024 * 2
    });
    let connections = proxy.accepted();
    proxy.cut();
    assert!(
        !call.is_finished(),
        "the fallocate ended before the cut: the test proves nothing (make it larger)"
    );
    wait_for(60, "the mount never reconnected", || {
        proxy.accepted() > connections
    });
    // The client resends the call on its new connection while the first copy still runs;
    // the first copy's reply must reach the application.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !call.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the fallocate resent during the reconnect never returned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (r, err) = call.join().unwrap();
    assert_eq!(r, 0, "fallocate failed: {err}");
    assert_eq!(std::fs::metadata(a.join("big")).unwrap().len(), len as u64);
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
