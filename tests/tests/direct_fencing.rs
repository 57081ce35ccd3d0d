//! A direct mount on a local image, which nothing can fence, stops touching the image once it
//! may have lost its layouts: a mount stalled between a layout's answer and its write, whose
//! layouts were taken meanwhile (a recall it did not answer, or its session's end) and whose
//! blocks went to another file, writes not one byte of that file when it wakes.
//!
//! Each mount under test waits at a gate (`RWXFS_TEST_HOLD_DIRECT_WRITES`, a file whose
//! presence holds its direct writes after their layout is given, before they touch the
//! image): the stall a paused VM or a long page fault makes at the worst moment, placed where
//! a test can wait for it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use demo::workload::contents;
use rwxfs_tests::{assert_fsck_clean, harness, Stopped};

/// Blocks the volume at `path` can still give.
fn blocks_free(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bfree
}

/// Wait until `cond` holds, or panic naming `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The byte a filler file holds at `at`: unlike anything the stalled mount writes.
fn fill_byte(at: u64) -> u8 {
    0x80 | ((at / 4096) % 127) as u8
}

/// Write `path` with `fill_byte` until the volume is full: every block it can take, the
/// stalled mount's included if they were let go. Its size.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = 256 * 1024u64;
    let mut at = 0u64;
    loop {
        let buf: Vec<u8> = (at..at + chunk).map(fill_byte).collect();
        if f.write_all(&buf).is_err() {
            break;
        }
        at += chunk;
    }
    let _ = f.sync_all();
    drop(f);
    std::fs::metadata(path).unwrap().len()
}

/// The filler at `path` holds what `fill` wrote, to the byte.
fn filled_intact(path: &Path) {
    let got = std::fs::read(path).unwrap();
    assert!(
        got.len() > 1 << 20,
        "the filler took only {} bytes",
        got.len()
    );
    if let Some(at) = (0..got.len()).find(|&k| got[k] != fill_byte(k as u64)) {
        panic!(
            "{} bytes into the other file, a byte not its own: {:#x} (the stalled mount wrote \
             blocks given to it)",
            at, got[at]
        );
    }
}

/// A direct mount of `addr` whose direct writes wait while `gate` exists.
fn gated_direct_mount(h: &mut demo::Harness, addr: &str, gate: &Path) -> PathBuf {
    let env = format!("RWXFS_TEST_HOLD_DIRECT_WRITES={}", gate.display());
    h.mount_remote_in_with(&["env", &env], addr, &["--direct"])
        .unwrap()
}

/// A write of 1 MiB at 1 MiB into `path` on its own thread, which the gate holds.
fn write_in_background(path: PathBuf) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        let data: Vec<u8> = (0..256).flat_map(|j| contents(9, j)).collect();
        std::os::unix::fs::FileExt::write_all_at(&f, &data[..1 << 20], 1 << 20)
    })
}

#[test]
fn a_mount_stopped_past_its_lease_mid_write_writes_nothing_into_blocks_given_to_another_file() {
    let mut h = harness();
    let img = h.mkfs("v.img", "32M").unwrap();
    let addr = h.start_server(&img, &["--lease-secs", "2"]).unwrap();
    let watch = h.mount_remote(&addr).unwrap();
    let gate = h.path("gate");
    let a = gated_direct_mount(&mut h, &addr, &gate);
    std::fs::write(watch.join("f"), b"kept").unwrap();
    let free = blocks_free(&watch);
    std::fs::write(&gate, b"").unwrap();
    let writer = write_in_background(a.join("f"));
    // Its layout given (blocks reserved for it), its write held at the gate: stop it there.
    wait_for("a layout for the write", || blocks_free(&watch) < free);
    let stopped = Stopped::new(h.mount_pid(&a).unwrap());
    // Silent a whole lease, its session ends, and its reserved blocks are free again.
    wait_for("the stopped mount's session to end", || {
        blocks_free(&watch) == free
    });
    let size = fill(&watch.join("g"));
    std::fs::remove_file(&gate).unwrap();
    drop(stopped);
    // Its write goes on as it may (through the server, on a full volume): it must not land
    // in g's blocks.
    let _ = writer.join().unwrap();
    h.unmount_all().unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    assert_eq!(std::fs::metadata(fresh.join("g")).unwrap().len(), size);
    filled_intact(&fresh.join("g"));
    assert!(std::fs::read(fresh.join("f")).unwrap().starts_with(b"kept"));
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_mount_that_answers_no_recall_mid_write_writes_nothing_into_blocks_given_to_another_file() {
    let mut h = harness();
    let img = h.mkfs("v.img", "32M").unwrap();
    let addr = h.start_server(&img, &["--lease-secs", "2"]).unwrap();
    let watch = h.mount_remote(&addr).unwrap();
    let gate = h.path("gate");
    let a = gated_direct_mount(&mut h, &addr, &gate);
    std::fs::write(watch.join("f"), b"kept").unwrap();
    let free = blocks_free(&watch);
    std::fs::write(&gate, b"").unwrap();
    let writer = write_in_background(a.join("f"));
    wait_for("a layout for the write", || blocks_free(&watch) < free);
    // Alive (its heartbeats go on) but its write is stuck: the recall a truncate makes is
    // not answered within the lease, its layouts are taken, and the truncate goes on.
    let t = std::fs::OpenOptions::new()
        .write(true)
        .open(watch.join("f"))
        .unwrap();
    t.set_len(2).unwrap();
    drop(t);
    let size = fill(&watch.join("g"));
    std::fs::remove_file(&gate).unwrap();
    let _ = writer.join().unwrap();
    h.unmount_all().unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    assert_eq!(std::fs::metadata(fresh.join("g")).unwrap().len(), size);
    filled_intact(&fresh.join("g"));
    assert!(std::fs::read(fresh.join("f")).unwrap().starts_with(b"ke"));
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
