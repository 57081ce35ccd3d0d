//! Failover time on a RADOS volume: from `kill -9` of the active server to the first write
//! acknowledged (create, write, fsync) on a client that was writing all along, through a mount
//! of both servers' addresses. Each run kills the active; the standby takes over, and a new
//! standby is started where the killed one listened. Prints each run and the median. Starts a
//! throwaway one-monitor, one-OSD cluster on loopback (`rwxfs_tests::ceph`); needs root and
//! /dev/fuse for the mount.
//!
//! cargo build --release --bins && \
//!   cargo run --release -p rwxfs-tests --example failover_time [-- RUNS [LEASE_SECS]]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwxfs_tests::ceph::{CephCluster, POOL};
use rwxfs_tests::rados_server::Server;

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args
        .next()
        .map_or(10, |a| a.parse().expect("RUNS: a number"));
    let lease: u64 = args
        .next()
        .map_or(5, |a| a.parse().expect("LEASE_SECS: a number"));
    let started = Instant::now();
    let cluster = CephCluster::start();
    eprintln!("cluster up in {:.1} s", started.elapsed().as_secs_f64());
    let image = format!("rados://{POOL}/failover");
    let out = std::process::Command::new(rwxfs_tests::bin())
        .args(["mkfs", &image, "--size", "1G", "--ceph-conf"])
        .arg(cluster.conf())
        .output()
        .expect("rwxfs mkfs runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let extra = ["--owner-lease-secs".to_string(), lease.to_string()];
    let start = |addr: Option<&str>| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        match addr {
            Some(a) => Server::start_at_with(&cluster, &image, a, &extra),
            None => Server::start_with(&cluster, &image, &extra),
        }
    };
    let mut active = start(None);
    active.wait_for(&["rwxfs: serving"]);
    let mut standby = start(None);
    standby.wait_for(&["standby for"]);
    let mut h = rwxfs_tests::harness();
    let m = h
        .mount_remote(&format!("{},{}", active.addr, standby.addr))
        .expect("a mount of both servers");
    let acks: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acks, stop, m) = (acks.clone(), stop.clone(), m.clone());
        std::thread::spawn(move || {
            let mut j = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let done =
                    std::fs::File::create(m.join(format!("f{}", j % 64))).and_then(|mut f| {
                        f.write_all(&j.to_le_bytes().repeat(512))?;
                        f.sync_all()
                    });
                if done.is_ok() {
                    acks.lock().unwrap().push(Instant::now());
                }
                j += 1;
            }
        })
    };
    let mut times = Vec::new();
    for run in 1..=runs {
        // The client is writing: wait for a few acknowledgements first.
        let from = acks.lock().unwrap().len();
        while acks.lock().unwrap().len() < from + 5 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let addr = active.addr.clone();
        let killed = Instant::now();
        drop(active); // SIGKILL
        standby.wait_for(&["rwxfs: serving"]);
        let first = loop {
            if let Some(t) = acks.lock().unwrap().iter().find(|t| **t > killed) {
                break *t;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let secs = (first - killed).as_secs_f64();
        println!("run {run}: {secs:.2} s from kill -9 to the first fsync acknowledged");
        times.push(secs);
        active = standby;
        standby = start(Some(&addr));
        standby.wait_for(&["standby for"]);
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    h.unmount_all().expect("unmount");
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "failover time, {runs} runs, owner lease {lease} s: median {median:.2} s, min {:.2} s, max {:.2} s",
        times[0],
        times[times.len() - 1]
    );
}
