//! A direct mount on a local image, which nothing can fence, stops touching the image once it
//! may have lost its layouts: a mount stalled between a layout's answer and its write, whose
//! layouts were taken meanwhile (a recall it did not answer, or its session's end) and whose
//! blocks went to another file, writes not one byte of that file when it goes on.
//!
//! The mount under test reaches the server through a proxy that holds back the server's
//! answer to its write layout request (`rwxfs_tests::LayoutHold`): the layout is given, its
//! blocks reserved, and the mount does not see it until the test lets it go: the stall a
//! paused VM or a slow network makes at the worst moment, at a moment the test can name.

use std::path::PathBuf;
use std::thread::JoinHandle;

use rwxfs_tests::filler::{fill, filled_intact};
use rwxfs_tests::{data, finish, harness, statvfs, wait_for, Harness, LayoutHold, Stopped};

/// A direct mount stalled mid-write: the server gave the layout for its write of 1 MiB at
/// 1 MiB into `f`, and the answer is held on its way.
struct Stalled {
    /// The proxy the direct mount reaches the server through.
    hold: LayoutHold,
    h: Harness,
    img: PathBuf,
    addr: String,
    /// A mount through the server, beside the direct one.
    watch: PathBuf,
    /// The direct mount.
    direct: PathBuf,
    /// The volume's free blocks before the stalled write asked for its layout.
    free: u64,
    writer: JoinHandle<std::io::Result<()>>,
}

/// A server with a 2 s lease, `f` ("kept") made through a mount of it, and a direct mount's
/// write into `f` stalled once its layout is given.
fn stalled_writer() -> Stalled {
    let mut h = harness();
    let img = h.mkfs("v.img", "32M").unwrap();
    let addr = h.start_server(&img, &["--lease-secs", "2"]).unwrap();
    let watch = h.mount_remote(&addr).unwrap();
    let hold = LayoutHold::start(&addr).unwrap();
    let direct = h.mount_remote_with(&hold.addr, &["--direct"]).unwrap();
    std::fs::write(watch.join("f"), b"kept").unwrap();
    let free = statvfs(&watch).f_bfree;
    hold.hold();
    let path = direct.join("f");
    let writer = std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        std::os::unix::fs::FileExt::write_all_at(&f, &data(9, 256)[..1 << 20], 1 << 20)
    });
    hold.wait_held();
    assert!(
        statvfs(&watch).f_bfree < free,
        "the layout reserved no block"
    );
    Stalled {
        hold,
        h,
        img,
        addr,
        watch,
        direct,
        free,
        writer,
    }
}

impl Stalled {
    /// Fill the volume through the other mount (the stalled mount's blocks included, if they
    /// were let go), let the held layout reach the stalled mount, `wake` it, and check that
    /// it wrote nothing into the filler and that `f` still starts with `kept`.
    fn fill_then_wake(self, wake: impl FnOnce(), kept: &[u8]) {
        let Stalled {
            hold,
            mut h,
            img,
            addr,
            watch,
            writer,
            ..
        } = self;
        let size = fill(&watch.join("g"));
        hold.release();
        wake();
        // Its write goes on as it may (through the server, on a full volume): it must not
        // land in g's blocks.
        let _ = writer.join().unwrap();
        h.unmount_all().unwrap();
        let fresh = h.mount_remote(&addr).unwrap();
        assert_eq!(std::fs::metadata(fresh.join("g")).unwrap().len(), size);
        filled_intact(&fresh.join("g"));
        assert!(std::fs::read(fresh.join("f")).unwrap().starts_with(kept));
        finish(h, &img);
    }
}

#[test]
fn a_mount_stopped_past_its_lease_mid_write_writes_nothing_into_blocks_given_to_another_file() {
    let s = stalled_writer();
    let stopped = Stopped::new(s.h.mount_pid(&s.direct).unwrap());
    // Silent a whole lease, its session ends, and its reserved blocks are free again.
    wait_for("the stopped mount's session to end", || {
        statvfs(&s.watch).f_bfree == s.free
    });
    s.fill_then_wake(|| drop(stopped), b"kept");
}

#[test]
fn a_mount_that_answers_no_recall_mid_write_writes_nothing_into_blocks_given_to_another_file() {
    let s = stalled_writer();
    // Alive (its heartbeats go on) but its write is stuck: the recall a truncate makes is
    // not answered within the lease, its layouts are taken, and the truncate goes on.
    let t = std::fs::OpenOptions::new()
        .write(true)
        .open(s.watch.join("f"))
        .unwrap();
    t.set_len(2).unwrap();
    drop(t);
    s.fill_then_wake(|| {}, b"ke");
}
