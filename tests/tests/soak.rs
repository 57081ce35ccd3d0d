//! A bounded soak: 8 mounts, each with a writer doing a mix of creates, appends, renames,
//! unlinks, directory churn and reads (its own files and the others'), while the server is
//! killed with SIGKILL and restarted twice. Everything a writer had acknowledged (its fsync
//! returned) must be there afterwards, exactly once, and fsck must be clean.
//!
//! `RWXFS_SOAK_SECS` sets the length (default 90 s). The figures go to stdout (`--nocapture`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use demo::workload::contents;
use rwxfs_tests::{assert_fsck_clean, harness};

const MOUNTS: usize = 8;

/// What one writer knows to be durable, and what it did.
#[derive(Default)]
struct Ledger {
    /// Names whose state was acknowledged: `Some(content)` must exist, `None` must not.
    names: HashMap<String, Option<Vec<u8>>>,
    /// Records appended to the writer's log and acknowledged by fsync, in order.
    records: Vec<u64>,
    /// Records whose append or fsync failed: each may be in the log at most once.
    unsure: Vec<u64>,
    ops: u64,
    errors: u64,
    reads_checked: u64,
}

fn synced(p: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(p)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Files other writers may read: (path relative to the mount, content), never renamed.
type Keepers = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn writer(w: usize, mounts: Vec<PathBuf>, stop: Arc<AtomicBool>, keepers: Keepers) -> Ledger {
    let m = &mounts[w];
    let dir = format!("w{w}");
    let mut l = Ledger::default();
    let mut log: Option<File> = None;
    let mut record = 0u64;
    let mut renamed: Vec<String> = Vec::new();
    let mut j = 0usize;
    while !stop.load(Ordering::SeqCst) {
        j += 1;
        l.ops += 1;
        // A new file, durable.
        let keep = j.is_multiple_of(4);
        let name = format!("{dir}/{}{j}", if keep { "k" } else { "f" });
        let data = contents(w, j);
        match synced(&m.join(&name), &data) {
            Ok(()) => {
                l.names.insert(name.clone(), Some(data.clone()));
                if keep {
                    keepers.lock().unwrap().push((name.clone(), data.clone()));
                }
                // Read-your-writes, through the same mount.
                let got = std::fs::read(m.join(&name)).expect("a file just written");
                assert!(got == data, "{name} read back wrong through its own mount");
                l.reads_checked += 1;
            }
            Err(_) => {
                l.errors += 1;
                l.names.remove(&name);
            }
        }
        // An append to the writer's log, durable.
        record += 1;
        l.ops += 1;
        let appended = (|| {
            if log.is_none() {
                log = Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(m.join(format!("{dir}/log")))?,
                );
            }
            let f = log.as_mut().unwrap();
            f.write_all(format!("{record}\n").as_bytes())?;
            f.sync_all()
        })();
        match appended {
            Ok(()) => l.records.push(record),
            Err(_) => {
                l.errors += 1;
                l.unsure.push(record);
                // Start over with a fresh descriptor (its unsynced marks cleared).
                log = None;
            }
        }
        // Rename an acknowledged file, then make it durable with an fsync.
        if j.is_multiple_of(3)
            && l.names
                .get(&format!("{dir}/f{}", j - 1))
                .is_some_and(|c| c.is_some())
        {
            l.ops += 1;
            let (from, to) = (format!("{dir}/f{}", j - 1), format!("{dir}/r{}", j - 1));
            let content = l.names[&from].clone();
            let r = std::fs::rename(m.join(&from), m.join(&to))
                .and_then(|_| File::open(m.join(&to))?.sync_all());
            match r {
                Ok(()) => {
                    l.names.insert(from, None);
                    l.names.insert(to.clone(), content);
                    renamed.push(to);
                }
                Err(_) => {
                    l.errors += 1;
                    l.names.remove(&from);
                    l.names.remove(&to);
                }
            }
        }
        // Unlink the oldest renamed file.
        if j.is_multiple_of(5) && !renamed.is_empty() {
            l.ops += 1;
            let victim = renamed.remove(0);
            let r = std::fs::remove_file(m.join(&victim))
                .and_then(|_| File::open(m.join(format!("{dir}/k4")))?.sync_all());
            match r {
                Ok(()) => {
                    l.names.insert(victim, None);
                }
                Err(_) => {
                    l.errors += 1;
                    l.names.remove(&victim);
                }
            }
        }
        // Directory churn.
        if j.is_multiple_of(7) {
            l.ops += 1;
            let d = m.join(format!("{dir}/d{j}"));
            if std::fs::create_dir(&d)
                .and_then(|_| std::fs::write(d.join("x"), b"x"))
                .and_then(|_| std::fs::remove_file(d.join("x")))
                .and_then(|_| std::fs::remove_dir(&d))
                .is_err()
            {
                l.errors += 1;
            }
        }
        // Another writer's kept file, through this mount.
        if j.is_multiple_of(2) {
            let pick = {
                let k = keepers.lock().unwrap();
                (!k.is_empty()).then(|| k[(j * 7919 + w) % k.len()].clone())
            };
            if let Some((name, data)) = pick {
                l.ops += 1;
                let got = std::fs::read(m.join(&name))
                    .unwrap_or_else(|e| panic!("{name} acknowledged but unreadable: {e}"));
                assert!(got == data, "{name} read wrong through mount {w}");
                l.reads_checked += 1;
            }
        }
    }
    l
}

#[test]
fn eight_mounts_through_two_server_kills_lose_nothing_acknowledged() {
    let secs: u64 = std::env::var("RWXFS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let mut h = harness();
    let img = h.mkfs("v.img", "1G").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mounts: Vec<PathBuf> = (0..MOUNTS)
        .map(|_| h.mount_remote(&addr).unwrap())
        .collect();
    for w in 0..MOUNTS {
        std::fs::create_dir(mounts[0].join(format!("w{w}"))).unwrap();
    }
    std::fs::File::open(mounts[0].join("w0"))
        .unwrap()
        .sync_all()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let keepers: Keepers = Arc::default();
    let started = Instant::now();
    let writers: Vec<_> = (0..MOUNTS)
        .map(|w| {
            let (mounts, stop, keepers) = (mounts.clone(), stop.clone(), keepers.clone());
            std::thread::spawn(move || writer(w, mounts, stop, keepers))
        })
        .collect();
    let restarts = AtomicU64::new(0);
    for k in 1..=2u32 {
        std::thread::sleep(Duration::from_secs(secs) * k / 3 - started.elapsed());
        h.kill_server();
        std::thread::sleep(Duration::from_millis(500));
        h.start_server_in(&[], &img, &addr, &[]).unwrap();
        restarts.fetch_add(1, Ordering::SeqCst);
    }
    std::thread::sleep(Duration::from_secs(secs).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::SeqCst);
    let ledgers: Vec<Ledger> = writers.into_iter().map(|t| t.join().unwrap()).collect();

    // Verify every writer's acknowledged state through another mount.
    let (mut files, mut gone, mut bytes, mut records) = (0u64, 0u64, 0u64, 0u64);
    for (w, l) in ledgers.iter().enumerate() {
        let m = &mounts[(w + 3) % MOUNTS];
        for (name, want) in &l.names {
            match want {
                Some(data) => {
                    let got = std::fs::read(m.join(name))
                        .unwrap_or_else(|e| panic!("{name} acknowledged but missing: {e}"));
                    assert!(got == *data, "{name} has the wrong content");
                    files += 1;
                    bytes += data.len() as u64;
                }
                None => {
                    assert!(!m.join(name).exists(), "{name} was removed but is back");
                    gone += 1;
                }
            }
        }
        let log = std::fs::read_to_string(m.join(format!("w{w}/log"))).unwrap_or_default();
        let seen: Vec<u64> = log.lines().map(|s| s.parse().unwrap()).collect();
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for r in &seen {
            *counts.entry(*r).or_default() += 1;
        }
        for r in &l.records {
            assert_eq!(
                counts.get(r).copied().unwrap_or(0),
                1,
                "w{w}: acknowledged record {r} is in the log {} times",
                counts.get(r).copied().unwrap_or(0)
            );
            records += 1;
        }
        for (r, n) in &counts {
            assert!(*n == 1, "w{w}: record {r} is in the log {n} times");
            assert!(
                l.records.contains(r) || l.unsure.contains(r),
                "w{w}: record {r} was never written"
            );
        }
        assert!(
            seen.windows(2).all(|p| p[0] < p[1]),
            "w{w}: records out of order"
        );
    }
    let ops: u64 = ledgers.iter().map(|l| l.ops).sum();
    let errors: u64 = ledgers.iter().map(|l| l.errors).sum();
    let reads: u64 = ledgers.iter().map(|l| l.reads_checked).sum();
    println!(
        "soak {secs} s, {MOUNTS} mounts, {} server kills survived: {ops} operations \
         ({errors} failed around a restart and were not counted as acknowledged), \
         {reads} reads checked while running; verified after: {files} files \
         ({bytes} bytes), {gone} removed names absent, {records} log records each once",
        restarts.load(Ordering::SeqCst)
    );
    assert_eq!(restarts.load(Ordering::SeqCst), 2);
    assert!(files > 0 && records > 0);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
