//! A RADOS volume against a local image through real mounts, in one run, side by side: W1 (one
//! sequential writer, 1 MiB I/O), W3 (four writers, each on its own mount and file) and small
//! files (creates, stats, readdirs, unlinks from one mount and from four), each measured by
//! `rwxfs bench --mounts` on four mounts of a server of each volume (every byte verified, read
//! back through another mount), the two volumes in turn, REPS times, medians printed. Also the
//! throwaway cluster's start time and its daemons' memory (idle after start, and peak).
//! Needs root, /dev/fuse and Debian's ceph-mon and ceph-osd (`bash .ci/setup --ceph`).
//!
//! cargo build --bins && \
//!   cargo run -p rwxfs-tests --example rados_mounts [-- REPS [SIZE [FILES]]]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use rwxfs_tests::ceph::{CephCluster, POOL};
use rwxfs_tests::rados_server::Server;

/// One `rwxfs bench --mounts` run: each figure by workload, with its unit.
fn bench(mounts: &[PathBuf], size: &str, files: &str) -> Vec<(String, f64, String)> {
    let list: Vec<String> = mounts.iter().map(|m| m.display().to_string()).collect();
    let out = Command::new(rwxfs_tests::bin())
        .args(["bench", "--mounts", &list.join(","), "--writers", "4"])
        .args(["--only", "sequential,writers,small", "--size", size])
        .args(["--files", files, "--json"])
        .output()
        .expect("rwxfs bench runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rwxfs bench: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["all_verified"], true, "data found wrong: {v}");
    v["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|o| {
            (
                o["workload"].as_str().unwrap_or("?").to_string(),
                o["value"].as_f64().unwrap_or(0.0),
                o["unit"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let reps: usize = args
        .next()
        .map_or(3, |a| a.parse().expect("REPS: a number"));
    let size = args.next().unwrap_or_else(|| "256M".into());
    let files = args.next().unwrap_or_else(|| "500".into());

    let t = Instant::now();
    let cluster = CephCluster::start();
    let up = t.elapsed().as_secs_f64();
    let idle = cluster.memory_kib();
    let image = format!("rados://{POOL}/bench");
    let made = Command::new(rwxfs_tests::bin())
        .args(["mkfs", &image, "--size", "4G", "--ceph-conf"])
        .arg(cluster.conf())
        .output()
        .expect("rwxfs mkfs runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = Server::start(&cluster, &image);
    server.wait_for(&["rwxfs: serving"]);
    let mut on_rados = rwxfs_tests::harness();
    let rados: Vec<PathBuf> = (0..4)
        .map(|_| on_rados.mount_remote(&server.addr).expect("a mount"))
        .collect();
    let mut on_local = rwxfs_tests::harness();
    let img = on_local.mkfs("bench.img", "4G").expect("a local image");
    let addr = on_local.start_server(&img, &[]).expect("a local server");
    let local: Vec<PathBuf> = (0..4)
        .map(|_| on_local.mount_remote(&addr).expect("a mount"))
        .collect();

    // Each workload's figures on each volume, in the order first seen.
    let mut order: Vec<String> = Vec::new();
    let mut figures: BTreeMap<(String, &str), (Vec<f64>, String)> = BTreeMap::new();
    for rep in 0..reps {
        let mut turns = [("local", &local), ("RADOS", &rados)];
        if rep % 2 == 1 {
            turns.reverse();
        }
        for (which, mounts) in turns {
            eprintln!("repetition {}: {which}", rep + 1);
            for (w, value, unit) in bench(mounts, &size, &files) {
                if !order.contains(&w) {
                    order.push(w.clone());
                }
                let e = figures.entry((w, which)).or_insert((Vec::new(), unit));
                e.0.push(value);
            }
        }
    }
    let peak = cluster.memory_kib();
    on_rados.unmount_all().expect("unmount");
    on_local.unmount_all().expect("unmount");
    on_local.stop_server().expect("stop the local server");
    drop(server);

    println!(
        "rwxfs bench --mounts (4 mounts each; --size {size} --files {files}), medians of {reps}"
    );
    println!("| workload | local image | RADOS | unit | RADOS / local |");
    println!("|---|---|---|---|---|");
    for w in &order {
        let get = |which| figures.get(&(w.clone(), which));
        let (Some((l, unit)), Some((r, _))) = (get("local"), get("RADOS")) else {
            continue;
        };
        let (l, r) = (median(l.clone()), median(r.clone()));
        println!("| {w} | {l:.1} | {r:.1} | {unit} | {:.2} |", r / l);
    }
    println!("\ncluster (one monitor, one bluestore OSD) up and its pool writable in {up:.1} s");
    for ((name, now, _), (_, _, hwm)) in idle.iter().zip(&peak) {
        println!(
            "{name}: {:.0} MiB resident when up, {:.0} MiB at its peak",
            mib(*now),
            mib(*hwm)
        );
    }
}
