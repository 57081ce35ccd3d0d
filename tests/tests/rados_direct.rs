//! Direct mounts of a volume in Ceph RADOS, against a real cluster (`rwxfs_tests::ceph`):
//! metadata through the server, file data read and written by each mount on the volume's
//! objects itself; and a mount that lost its layouts without giving them back fenced by the
//! cluster's OSD blocklist. Built with `--features ceph` (`.ci/run` runs them).

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rados_store::{CephOptions, Cluster};
use rwxfs_tests::ceph::{CephCluster, POOL};
use rwxfs_tests::dropped::Dropped;
use rwxfs_tests::filler::{fill, filled_intact};
use rwxfs_tests::{data, harness, ok, reads_as, text, wait_for, write_synced, Lan, Proxy, Stopped};

const BLOCK: usize = 4096;

/// One test cluster at a time: the machine is small.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn two_direct_mounts_of_a_rados_volume_write_and_read_each_others_files_past_the_server() {
    let _one = one_cluster();
    let cluster = CephCluster::start();
    let image = format!("rados://{POOL}/vol");
    ok(cluster.rwxfs(&["mkfs", &image, "--size", "1G"]));
    let mut h = harness();
    let conf = cluster.conf();
    let conf = conf.to_str().unwrap();
    let addr = h
        .start_server(Path::new(&image), &["--ceph-conf", conf])
        .unwrap();
    // Every byte between the mounts and the server crosses this proxy, and is counted.
    let proxy = Proxy::start(&addr).unwrap();
    let direct = ["--direct", "--ceph-conf", conf];
    let a = h.mount_remote_with(&proxy.addr, &direct).unwrap();
    let b = h.mount_remote_with(&proxy.addr, &direct).unwrap();
    let before = proxy.captured().len();
    // 16 MiB from one mount, read on the other: none of it passes through the server.
    let big = data(1, 4096);
    assert!(big.len() >= 16 << 20, "{}", big.len());
    std::fs::write(a.join("big"), &big).unwrap();
    reads_as(&b.join("big"), &big);
    let through = proxy.captured().len() - before;
    assert!(
        through < 2 << 20,
        "{through} bytes crossed to and from the server for 16 MiB written and read directly"
    );
    // The other way, across object boundaries (4 MiB objects), then cut by the first mount.
    let two = data(2, 2000);
    std::fs::write(b.join("two"), &two).unwrap();
    reads_as(&a.join("two"), &two);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.join("two"))
        .unwrap();
    f.set_len(5 << 20).unwrap();
    f.write_all_at(b"tail", (9 << 20) - 4).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut two_after = two[..5 << 20].to_vec();
    two_after.resize(9 << 20, 0);
    two_after[(9 << 20) - 4..].copy_from_slice(b"tail");
    reads_as(&b.join("two"), &two_after);
    h.unmount_all().unwrap();
    // A fresh mount through the server reads what the direct mounts wrote.
    let c = h.mount_remote(&addr).unwrap();
    assert_eq!(std::fs::read(c.join("big")).unwrap(), big);
    assert_eq!(std::fs::read(c.join("two")).unwrap(), two_after);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    cluster.assert_fsck_clean(&image);
}

/// The test's own client of the cluster. No process is started while a mount is stopped: the
/// child's exec would close the descriptor it inherited of a file on that mount, and wait.
fn client(cluster: &CephCluster) -> std::sync::Arc<Cluster> {
    let opts = CephOptions {
        conf: Some(cluster.conf()),
        id: None,
    };
    Cluster::connect(&opts).unwrap()
}

/// Blocks of the objects of the volume `name` (of `size` bytes in 4 MiB objects) that hold
/// exactly `block`: where they are.
fn blocks_holding(c: &std::sync::Arc<Cluster>, name: &str, size: u64, block: &[u8]) -> Vec<String> {
    let pool = c.pool(POOL).unwrap();
    let mut found = Vec::new();
    for index in 0..size.div_ceil(4 << 20) {
        let oid = format!("{name}.{index:016x}");
        let bytes = pool.read_all(&oid).unwrap();
        for (i, b) in bytes.chunks(BLOCK).enumerate() {
            if b == block {
                found.push(format!("{oid} at {}", i * BLOCK));
            }
        }
    }
    found
}

/// The cluster's blocklist entries, as the monitor lists them (JSON).
fn blocklist(c: &Cluster) -> Vec<String> {
    let out = c
        .mon_command(r#"{"prefix": "osd blocklist ls", "format": "json"}"#)
        .unwrap();
    out.split("\"addr\"").skip(1).map(str::to_owned).collect()
}

/// Wait until some block of the volume `name` holds exactly `block` (a mount's direct write
/// reached the OSDs).
fn wait_for_block(c: &std::sync::Arc<Cluster>, name: &str, size: u64, block: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while blocks_holding(c, name, size, block).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the direct write never reached the volume's objects"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `bytes`, shown short: its length and where it differs from `want`.
fn differs(bytes: &[u8], want: &[u8]) -> String {
    let at = bytes.iter().zip(want).position(|(a, b)| a != b);
    let at = at.unwrap_or(bytes.len().min(want.len()));
    let near = &bytes[at..bytes.len().min(at + 8)];
    format!(
        "{} bytes, {} wanted; first difference at {at}: {near:?}",
        bytes.len(),
        want.len()
    )
}

#[test]
fn a_stopped_direct_mount_whose_recall_times_out_is_fenced_and_writes_nothing_when_resumed() {
    let _one = one_cluster();
    let cluster = CephCluster::start();
    let image = format!("rados://{POOL}/vol");
    ok(cluster.rwxfs(&["mkfs", &image, "--size", "256M"]));
    let mut h = harness();
    let conf = cluster.conf();
    let conf = conf.to_str().unwrap();
    let extra = ["--ceph-conf", conf, "--lease-secs", "2"];
    let addr = h.start_server(Path::new(&image), &extra).unwrap();
    let direct = ["--direct", "--ceph-conf", conf];
    let a = h.mount_remote_with(&addr, &direct).unwrap();
    let b = h.mount_remote_with(&addr, &direct).unwrap();
    let me = client(&cluster);
    std::fs::write(a.join("f"), b"kept").unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(a.join("f"))
        .unwrap();
    // 1 MiB of whole blocks at 1 MiB. The write is answered once copied and made behind
    // its answer: a holds write layouts on f only once its worker made it, so wait until
    // its last block is on the volume (in blocks reserved for a, not committed yet).
    let first = data(9, 256)[..1 << 20].to_vec();
    f.write_all_at(&first, 1 << 20).unwrap();
    wait_for_block(&me, "vol", 256 << 20, &first[first.len() - BLOCK..]);
    let fenced_before = blocklist(&me);
    let stopped = Stopped::new(h.mount_pid(&a).unwrap());
    // What the server knows of f while a is stopped: its size is still 4 unless a committed
    // the write before it was stopped (nothing on a asked it to; a kernel's call on the
    // file could have), and then nothing a wrote is lost.
    let lost_first = std::fs::metadata(b.join("f")).unwrap().len() == 4;
    // b's truncate recalls a's layouts; a cannot answer: after the lease it is fenced and
    // they are taken, and the truncate goes on.
    let g = std::fs::OpenOptions::new()
        .write(true)
        .open(b.join("f"))
        .unwrap();
    g.set_len(2).unwrap();
    drop(g);
    let fenced = blocklist(&me);
    assert_eq!(
        fenced.len(),
        fenced_before.len() + 1,
        "a's RADOS client was not blocklisted: {fenced:?}"
    );
    // Blocks a had are free again: b writes a file of its own meanwhile.
    let other = data(5, 2048);
    std::fs::write(b.join("other"), &other).unwrap();
    // a wakes up and writes whole blocks of a pattern no one else writes, and fsyncs. The
    // write either fails (a's writes through the layouts it lost are reported first, or
    // the fenced RADOS client is refused) or goes through the server, into blocks the
    // server maps to f: then, and only then, the pattern is in the volume, in exactly f's
    // 64 blocks. A direct write of the fenced client that reached the OSDs would put it in
    // blocks f does not map (a count other than 0 or 64, or 64 with f not holding it).
    let marker = vec![0xa5u8; BLOCK];
    assert!(blocks_holding(&me, "vol", 256 << 20, &marker).is_empty());
    drop(stopped);
    let late: Vec<u8> = marker.repeat(64);
    let wrote = f.write_all_at(&late, 4 << 20).and_then(|()| f.sync_all());
    drop(f);
    let mut through_server = b"ke".to_vec();
    through_server.resize(4 << 20, 0);
    through_server.extend_from_slice(&late);
    let now = std::fs::read(b.join("f")).unwrap();
    let landed = blocks_holding(&me, "vol", 256 << 20, &marker);
    eprintln!(
        "a's first write lost: {lost_first}; its late write and fsync: {wrote:?}; f: {} bytes",
        now.len()
    );
    let expected = match now == through_server {
        true => 64,
        false => {
            assert!(
                now == b"ke",
                "f is neither as cut nor as written through the server: {}",
                differs(&now, b"ke")
            );
            0
        }
    };
    assert_eq!(
        landed.len(),
        expected,
        "the fenced mount wrote to the volume's objects: {landed:?}"
    );
    // What a wrote through the layouts it lost never appears, and its fsync says so.
    assert!(
        !lost_first || wrote.is_err(),
        "a's fsync succeeded after its first write was lost"
    );
    // Fenced, and its session lost, the mount goes on writing (through the server).
    let later = data(3, 128);
    write_synced(&a.join("h"), &later).expect("a new file on the fenced mount");
    h.unmount_all().unwrap();
    let fresh = h.mount_remote(&addr).unwrap();
    assert_eq!(std::fs::read(fresh.join("f")).unwrap(), now);
    assert_eq!(std::fs::read(fresh.join("other")).unwrap(), other);
    assert_eq!(std::fs::read(fresh.join("h")).unwrap(), later);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    cluster.assert_fsck_clean(&image);
}

/// The ports a Ceph OSD listens on (`ms_bind_port_min` to `ms_bind_port_max`); the test
/// cluster's monitor is on an ephemeral port, far above them.
const OSD_PORTS: (u16, u16) = (6800, 7300);

/// Blocks of the objects of the volume `name` (of `size` bytes in 4 MiB objects) that hold
/// exactly `block`, read with the `rados` tool where the cluster is.
fn blocks_holding_in(cluster: &CephCluster, name: &str, size: u64, block: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for index in 0..size.div_ceil(4 << 20) {
        let oid = format!("{name}.{index:016x}");
        let out = cluster.rados_output(&["-p", POOL, "get", &oid, "-"]);
        assert!(out.status.success(), "rados get {oid}: {}", text(&out));
        for (i, b) in out.stdout.chunks(BLOCK).enumerate() {
            if b == block {
                found.push(format!("{oid} at {}", i * BLOCK));
            }
        }
    }
    found
}

/// How many clients the cluster's blocklist holds.
fn blocklisted(cluster: &CephCluster) -> usize {
    let out = cluster.ceph(&["osd", "blocklist", "ls", "--format", "json"]);
    out.matches("\"addr\"").count()
}

/// Wait for `child` to exit, within `patience`; a panic naming `what` (the child killed) if
/// it does not.
fn exit_of(mut child: Child, what: &str, patience: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: not done within {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one stall self-fencing cannot cover, which only the store's fence closes: a direct
/// write the mount checked it may make, sent, and held up on its way to the OSD (its host's
/// segments to the OSD dropped, then retransmitted) while the mount is alive. The recall a
/// truncate makes waits for that write and goes unanswered a lease: the mount is fenced, its
/// layouts taken and their blocks let go, and another file takes every block. When the write
/// reaches the OSD, the cluster refuses it: the other file holds its own bytes only, the
/// writer's fsync fails, and the mount, fenced, goes on writing through the server.
#[test]
fn a_direct_write_stalled_past_its_last_check_is_refused_by_the_cluster() {
    let _one = one_cluster();
    // Declared first, so removed last: after the mounts, the server and the cluster.
    let lan = Lan::new(2).unwrap();
    let (server_host, mount_host) = (lan.on(1), lan.on(2));
    let cluster = CephCluster::start_in(&lan.on_hub(), &lan.hub_ip());
    let image = format!("rados://{POOL}/vol");
    ok(cluster.rwxfs(&["mkfs", &image, "--size", "32M"]));
    let mut h = harness();
    let conf = cluster.conf();
    let conf = conf.to_str().unwrap();
    let listen = format!("{}:0", lan.ip(1));
    let extra = ["--ceph-conf", conf, "--lease-secs", "2"];
    let addr = h
        .start_server_in(&server_host, Path::new(&image), &listen, &extra)
        .unwrap();
    let watch = h.mount_remote_in(&server_host, &addr).unwrap();
    let direct = ["--direct", "--ceph-conf", conf];
    let a = h.mount_remote_in_with(&mount_host, &addr, &direct).unwrap();
    std::fs::write(watch.join("f"), b"kept").unwrap();
    // A direct read: a's RADOS client is connected to the OSD before the cut.
    reads_as(&a.join("f"), b"kept");
    let before = blocklisted(&cluster);
    let hub = lan.hub_ip();
    let (first, last) = OSD_PORTS;
    let cut = Dropped::new(&mount_host, &hub, &format!("{first}:{last}"));
    // 1 MiB at 1 MiB, of a byte with the top bit clear, where every byte of the filler has
    // it set; from a process of its own, which may wait on the mount (the test's own
    // processes keep no file of a's open while its write is held).
    let marker = vec![0x5au8; BLOCK];
    let source = h.path("marker");
    std::fs::write(&source, marker.repeat(256)).unwrap();
    let dd = Command::new("dd")
        .arg(format!("if={}", source.display()))
        .arg(format!("of={}", a.join("f").display()))
        .args([
            "bs=1M",
            "seek=1",
            "count=1",
            "conv=notrunc,fsync",
            "status=none",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its layout given and checked, the write is sent: more than a keepalive waits, unsent.
    wait_for("a's write on its way to the OSD", || {
        Dropped::queued(&mount_host, &hub, first, last) > 4096
    });
    let t = std::fs::OpenOptions::new()
        .write(true)
        .open(watch.join("f"))
        .unwrap();
    t.set_len(2).unwrap();
    drop(t);
    assert_eq!(
        blocklisted(&cluster),
        before + 1,
        "a's RADOS client was not blocklisted"
    );
    let size = fill(&watch.join("g"));
    drop(cut);
    // Retransmitted, the write reaches the OSD and is refused.
    let synced = exit_of(dd, "a's write and fsync", Duration::from_secs(300));
    assert!(!synced.success(), "a's fsync succeeded after it was fenced");
    let check = h.mount_remote_in(&server_host, &addr).unwrap();
    assert_eq!(std::fs::metadata(check.join("g")).unwrap().len(), size);
    filled_intact(&check.join("g"));
    assert_eq!(std::fs::read(check.join("f")).unwrap(), b"ke");
    let landed = blocks_holding_in(&cluster, "vol", 32 << 20, &marker);
    assert!(
        landed.is_empty(),
        "the fenced write reached the volume: {landed:?}"
    );
    // Fenced, the mount goes on writing (through the server).
    std::fs::remove_file(check.join("g")).unwrap();
    let later = data(3, 128);
    write_synced(&a.join("h"), &later).expect("a new file on the fenced mount");
    h.unmount_all().unwrap();
    let fresh = h.mount_remote_in(&server_host, &addr).unwrap();
    assert_eq!(std::fs::read(fresh.join("h")).unwrap(), later);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    cluster.assert_fsck_clean(&image);
}
