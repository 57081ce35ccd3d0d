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
            let want = contents(w, j);
            let got = std::fs::read(mounts[(w + 1) % 3].join(format!("w{w}/f{j}")))
                .unwrap_or_else(|e| panic!("w{w}/f{j} acknowledged but unreadable: {e}"));
            if got != want {
                // What every mount sees, to tell a lost write from a stale cache.
                let seen: Vec<String> = mounts
                    .iter()
                    .map(|m| match std::fs::read(m.join(format!("w{w}/f{j}"))) {
                        Ok(b) => format!(
                            "{} bytes, first difference at {:?}",
                            b.len(),
                            b.iter().zip(&want).position(|(x, y)| x != y)
                        ),
                        Err(e) => e.to_string(),
                    })
                    .collect();
                panic!(
                    "w{w}/f{j} has the wrong content (want {} bytes); per mount: {seen:?}",
                    want.len()
                );
            }
        }
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// A helper in the mount's namespace: opens `log` for appending, then on "go" appends a
/// record and unlinks `x` from two threads at once, and prints how each ended.
const REPEATER: &str = r#"
import os, sys, threading
d = sys.argv[1]
fd = os.open(os.path.join(d, "log"), os.O_WRONLY | os.O_APPEND)
os.stat(os.path.join(d, "x"))
print("ready", flush=True)
sys.stdin.readline()
os.stat(os.path.join(d, "x"))
out = {}
def append():
    try:
        os.write(fd, b"record\n"); out["append"] = "ok"
    except OSError as e:
        out["append"] = os.strerror(e.errno)
def unlink():
    try:
        os.unlink(os.path.join(d, "x")); out["unlink"] = "ok"
    except OSError as e:
        out["unlink"] = os.strerror(e.errno)
ts = [threading.Thread(target=append), threading.Thread(target=unlink)]
for t in ts: t.start()
for t in ts: t.join()
print("append", out["append"], "unlink", out["unlink"], flush=True)
"#;

#[test]
fn calls_whose_replies_died_with_the_server_take_effect_once_after_its_restart() {
    use std::io::{BufRead, BufReader};
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let proxy = rwxfs_tests::Proxy::start(&addr).unwrap();
    let a = h.mount_remote(&proxy.addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    for name in ["log", "x"] {
        let f = std::fs::File::create(a.join(name)).unwrap();
        f.sync_all().unwrap();
    }
    let (mut cmd, inner) = h.command_in(&a, "python3").unwrap();
    let mut child = cmd
        .args(["-c", REPEATER])
        .arg(&inner)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "ready");
    // From here the server's replies to A are lost; its calls still arrive and run.
    proxy.set_mute(true);
    stdin.write_all(b"go\n").unwrap();
    let ran = Instant::now();
    loop {
        let appended = std::fs::read(b.join("log")).unwrap_or_default() == b"record\n";
        let unlinked = !b.join("x").exists();
        if appended && unlinked {
            break;
        }
        assert!(
            ran.elapsed() < Duration::from_secs(10),
            "A's calls never ran (appended {appended}, unlinked {unlinked})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Make their changes durable (an fsync through B commits everything), then kill.
    std::fs::File::open(b.join("log"))
        .unwrap()
        .sync_all()
        .unwrap();
    h.kill_server();
    proxy.set_mute(false);
    h.start_server_in(&[], &img, &addr, &[]).unwrap();
    // A resends both calls; the restarted server must answer them from its kept replies.
    let line = out.next().unwrap().unwrap();
    let _ = child.wait();
    assert_eq!(
        line, "append ok unlink ok",
        "a call repeated after the restart ran again"
    );
    let log = std::fs::read(b.join("log")).unwrap();
    assert_eq!(
        log,
        b"record\n",
        "the append took effect {} times",
        log.len() / 7
    );
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
