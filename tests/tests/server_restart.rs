//! The server killed with SIGKILL in the middle of writes from several mounts, then started
//! again on the same image and address: the journal replays, the mounts reconnect by
//! themselves, the applications carry on without a remount, every file whose fsync returned is
//! there with its content, and fsck is clean.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use demo::workload::contents;
use rwxfs_tests::{assert_fsck_clean, harness};

/// Write `name` whole and fsync it; on any error start the file over (the server may be
/// down), up to a bound. Returns true once the fsync (and close) returned.
fn write_durably(path: &std::path::Path, data: &[u8]) -> bool {
    for _ in 0..50 {
        let ok = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .and_then(|mut f| {
                f.write_all(data)?;
                f.sync_all()
            });
        if ok.is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_killed_server_restarts_and_mounts_carry_on_with_nothing_acknowledged_lost() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts: Vec<PathBuf> = (0..3).map(|_| h.mount_remote(&addr).unwrap()).collect();
    for w in 0..3 {
        std::fs::create_dir(mounts[0].join(format!("w{w}"))).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (m, stop) = (mounts[w].clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut j = 0;
                while !stop.load(Ordering::SeqCst) {
                    let p = m.join(format!("w{w}/f{j}"));
                    if write_durably(&p, &contents(w, j)) {
                        acked.push((j, Instant::now()));
                    }
                    j += 1;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    h.kill_server();
    std::thread::sleep(Duration::from_millis(500));
    let again = h.start_server_in(&[], &img, &addr, &[]).unwrap();
    let restarted = Instant::now();
    assert_eq!(again, addr);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<Vec<(usize, Instant)>> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: usize = acked.iter().map(|a| a.len()).sum();
    let after: Vec<usize> = acked
        .iter()
        .map(|a| a.iter().filter(|(_, t)| *t > restarted).count())
        .collect();
    println!("fsync-acknowledged files: {total}, after the restart per writer: {after:?}");
    assert!(
        after.iter().all(|n| *n > 0),
        "a writer made no progress after the restart: {after:?}"
    );
    // Every acknowledged file, read through a mount that lived through the restart.
    for (w, js) in acked.iter().enumerate() {
        for &(j, _) in js {
            let got = std::fs::read(mounts[(w + 1) % 3].join(format!("w{w}/f{j}")))
                .unwrap_or_else(|e| panic!("w{w}/f{j} acknowledged but unreadable: {e}"));
            assert!(got == contents(w, j), "w{w}/f{j} has the wrong content");
        }
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
