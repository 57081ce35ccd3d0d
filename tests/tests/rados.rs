//! The volume in Ceph RADOS, against a real cluster (`rwxfs_tests::ceph`): mkfs, serve,
//! mount, write, read and fsck of `rados://POOL/NAME`; a server killed with SIGKILL and
//! started again on the same RADOS volume; the engine's power cuts with RADOS as the disk;
//! and the errors for a bad name, a missing pool or image and an unreachable monitor.
//! Built with `--features ceph` (`.ci/run` installs Ceph and runs them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use demo::workload::contents;
use rados_store::{CephOptions, Cluster, Header, ImageName, RadosStore};
use rwxfs_tests::ceph::{image, CephCluster, POOL};
use rwxfs_tests::{bin, harness, ok};
use volume::store::{CrashStore, Survivors};
use volume::{fsck, mkfs, BlockStore, MemStore, MkfsOptions, Volume};

/// How long any one event may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(180);

/// Write `path` whole and fsync it, starting over after an error (the server may be
/// restarting); true once the fsync and the close returned.
fn write_durably(path: &Path, data: &[u8], stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::SeqCst) {
        let done = std::fs::File::create(path).and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        });
        if done.is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50)); // back off while the server is away
    }
    false
}

#[test]
fn mkfs_serve_mount_write_read_and_fsck_on_rados() {
    let cluster = CephCluster::start();
    let out = ok(cluster.rwxfs(&["mkfs", &image("vol"), "--size", "1G"]));
    assert!(out.contains("rados://rwxfs/vol: 1024 MiB"), "mkfs: {out}");
    // The objects are RBD's shape: a header, and data objects by index.
    let listed = cluster.rados(&["-p", POOL, "ls"]);
    assert!(listed.lines().any(|l| l == "vol.header"), "{listed}");
    assert!(
        listed.lines().any(|l| l == "vol.0000000000000000"),
        "{listed}"
    );
    let again = cluster.rwxfs(&["mkfs", &image("vol"), "--size", "1G"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds an rwxfs volume"));

    let mut h = harness();
    let conf = cluster.conf();
    let extra = ["--ceph-conf", conf.to_str().unwrap()];
    let addr = h.start_server(Path::new(&image("vol")), &extra).unwrap();
    let (a, b) = (
        h.mount_remote(&addr).unwrap(),
        h.mount_remote(&addr).unwrap(),
    );
    std::fs::create_dir(a.join("d")).unwrap();
    // Files from a few bytes to several objects of 4 MiB, so writes cross object boundaries.
    let sizes = [1usize, 4095, 4097, 1 << 20, (9 << 20) + 12345];
    for (j, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = contents(j, j).into_iter().cycle().take(n).collect();
        std::fs::write(a.join(format!("d/f{j}")), &data).unwrap();
        assert_eq!(
            std::fs::read(b.join(format!("d/f{j}"))).unwrap(),
            data,
            "f{j}"
        );
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    cluster.assert_fsck_clean(&image("vol"));
    // The on-disk lists made again: the same volume, still clean.
    let out = cluster.rwxfs(&["fsck", "--repair", &image("vol")]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        ok(out).contains(": clean,") && said.contains("made again"),
        "{said}"
    );
    // A fresh server on the same objects reads everything back.
    let addr = h.start_server(Path::new(&image("vol")), &extra).unwrap();
    let c = h.mount_remote(&addr).unwrap();
    for (j, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = contents(j, j).into_iter().cycle().take(n).collect();
        assert_eq!(
            std::fs::read(c.join(format!("d/f{j}"))).unwrap(),
            data,
            "f{j}"
        );
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
}

#[test]
fn a_killed_server_restarts_on_the_same_rados_volume_with_every_fsynced_file() {
    let cluster = CephCluster::start();
    ok(cluster.rwxfs(&["mkfs", &image("vol"), "--size", "512M"]));
    let mut h = harness();
    let state = h.path("vol.sessions");
    let conf = cluster.conf();
    let extra = [
        "--ceph-conf",
        conf.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
    ];
    let img = PathBuf::from(image("vol"));
    let addr = h.start_server(&img, &extra).unwrap();
    let m = h.mount_remote(&addr).unwrap();
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut j = 0;
            while write_durably(&m.join(format!("f{j}")), &contents(0, j), &stop) {
                let _ = tx.send(j);
                j += 1;
            }
        })
    };
    let acked_before = rx.iter().take(20).count();
    h.kill_server();
    let again = h.start_server_in(&[], &img, &addr, &extra).unwrap();
    assert_eq!(again, addr);
    // The writer carries on through the same mount: ten more files acknowledged.
    for _ in 0..10 {
        rx.recv_timeout(PATIENCE)
            .expect("the writer makes progress after the restart");
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let acked: Vec<usize> = (0..acked_before + 10).chain(rx.try_iter()).collect();
    let fresh = h.mount_remote(&addr).unwrap();
    for j in acked {
        let got = std::fs::read(fresh.join(format!("f{j}")))
            .unwrap_or_else(|e| panic!("f{j} was acknowledged and is gone: {e}"));
        assert_eq!(got, contents(0, j), "f{j}");
    }
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    cluster.assert_fsck_clean(&image("vol"));
}

#[test]
fn names_pools_images_and_monitors_that_are_not_there_are_named() {
    let cluster = CephCluster::start();
    let err = |out: Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err(cluster.rwxfs(&["mkfs", "rados://justapool", "--size", "1G"]));
    assert!(e.contains("expected rados://POOL/NAME"), "{e}");
    let e = err(cluster.rwxfs(&["mkfs", "rados://nopool/v", "--size", "1G"]));
    assert!(e.contains("pool \"nopool\" does not exist"), "{e}");
    let e = err(cluster.rwxfs(&["fsck", &image("never-made")]));
    assert!(e.contains("no rwxfs image there"), "{e}");
    let mut h = harness();
    let conf = cluster.conf();
    let extra = ["--ceph-conf", conf.to_str().unwrap()];
    let e = h
        .start_server(Path::new(&image("never-made")), &extra)
        .unwrap_err();
    assert!(e.contains("no rwxfs image there"), "{e}");
    // A monitor nobody listens on: connecting gives up and says where it tried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let lonely = h.path("lonely.conf");
    let text = std::fs::read_to_string(cluster.conf()).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l.starts_with("mon_host") {
            true => format!("mon_host = v2:127.0.0.1:{port}\nclient_mount_timeout = 3\n"),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&lonely, text).unwrap();
    let out = Command::new(bin())
        .args(["fsck", &image("vol"), "--ceph-conf"])
        .arg(&lonely)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "fsck's operational error");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("cannot connect to the Ceph cluster as client.admin"),
        "{e}"
    );
    assert!(e.contains(&lonely.display().to_string()), "{e}");
}

#[test]
fn the_store_crosses_objects_reads_holes_as_zeros_and_refuses_past_its_end() {
    let cluster = CephCluster::start();
    let opts = CephOptions {
        conf: Some(cluster.conf()),
        id: None,
    };
    let c = Cluster::connect(&opts).unwrap();
    let name = ImageName::parse(&image("small")).unwrap().unwrap();
    let header = Header {
        size: 1 << 20,
        object_size: 64 << 10,
    };
    rados_store::create(&c.pool(POOL).unwrap(), &name, header).unwrap();
    let s = RadosStore::open_in(c.pool(POOL).unwrap(), &name, false).unwrap();
    assert_eq!(s.len(), 1 << 20);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write_at(&data, 60_000).unwrap(); // objects 0 to 3
    let mut back = vec![1u8; data.len() + 10_000];
    s.read_at(&mut back, 55_000).unwrap(); // read before any flush
    assert!(
        back[..5_000].iter().all(|&b| b == 0),
        "a hole before the write"
    );
    assert_eq!(&back[5_000..5_000 + data.len()], &data[..]);
    assert!(back[5_000 + data.len()..].iter().all(|&b| b == 0));
    s.flush().unwrap();
    let e = s.write_at(&[1; 10], (1 << 20) - 5).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    let mut tail = vec![7u8; 100];
    s.read_at(&mut tail, (1 << 20) - 50).unwrap();
    assert!(tail.iter().all(|&b| b == 0), "past the end reads as zeros");
    drop(s);
    // A second open, through a new connection, sees what the first flushed.
    let c2 = Cluster::connect(&opts).unwrap();
    let s2 = RadosStore::open_in(c2.pool(POOL).unwrap(), &name, true).unwrap();
    let mut again = vec![0u8; data.len()];
    s2.read_at(&mut again, 60_000).unwrap();
    assert_eq!(again, data);
    let e = s2.write_at(&[1], 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let listed = cluster.rados(&["-p", POOL, "ls"]);
    let mut objects: Vec<&str> = listed.lines().filter(|l| l.starts_with("small.")).collect();
    objects.sort();
    assert_eq!(
        objects,
        [
            "small.0000000000000000",
            "small.0000000000000001",
            "small.0000000000000002",
            "small.0000000000000003",
            "small.header"
        ]
    );
}

const ROOT: volume::Ino = volume::Ino::ROOT;

/// The engine's power-cut workload (volume/tests/crash.rs): (events so far, name, contents)
/// of each file whose fsync returned.
fn workload<S: BlockStore>(
    v: &mut Volume<Arc<CrashStore<S>>>,
    store: &CrashStore<S>,
) -> Vec<(u64, String, Vec<u8>)> {
    let mut acked = Vec::new();
    let d = v.mkdir(ROOT, b"d", 0o755, 0, 0).unwrap();
    for j in 0..12u8 {
        let name = format!("f{j}");
        let a = v.create(d.ino, name.as_bytes(), 0o644, 0, 0).unwrap();
        // Large enough that files span the image's 64 KiB objects.
        let data = vec![j; 30_000 + j as usize * 10_000];
        v.write(a.ino, 0, &data).unwrap();
        if j % 3 == 0 {
            v.fsync(a.ino).unwrap();
            acked.push((store.writes(), name.clone(), data));
        }
        if j == 7 {
            v.unlink(d.ino, b"f2").unwrap();
        }
    }
    v.commit().unwrap();
    acked
}

#[test]
fn power_cuts_with_rados_as_the_disk_replay_clean_with_every_fsynced_file() {
    const SIZE: u64 = 32 << 20;
    // A dry run in memory counts the events and finds the flushes (the engine is
    // deterministic: the same workload issues the same writes on any store).
    let base = MemStore::new(SIZE);
    mkfs(&base, &MkfsOptions::default()).unwrap();
    let probe = Arc::new(CrashStore::new(base, u64::MAX));
    let mut v = Volume::open(probe.clone()).unwrap();
    let start = probe.writes();
    workload(&mut v, &probe);
    drop(v);
    let (total, flushes) = (probe.writes(), probe.flushes());
    assert!(total - start > 20, "workload too small");
    // Every flush of the workload and its neighbours, and points between: at most ~40.
    let mut cuts: Vec<u64> = flushes
        .iter()
        .filter(|&&f| f >= start)
        .flat_map(|&f| [f, f + 1])
        .chain((start..total).step_by(((total - start) / 8).max(1) as usize))
        .collect();
    cuts.sort();
    cuts.dedup();

    let cluster = CephCluster::start();
    let opts = CephOptions {
        conf: Some(cluster.conf()),
        id: None,
    };
    let header = Header {
        size: SIZE,
        object_size: 64 << 10,
    };
    for (k, &n) in cuts.iter().enumerate() {
        let survivors = [Survivors::All, Survivors::Nothing, Survivors::Seeded(n)][k % 3];
        let name = ImageName::parse(&image(&format!("cut{n}")))
            .unwrap()
            .unwrap();
        let c = Cluster::connect(&opts).unwrap();
        rados_store::create(&c.pool(POOL).unwrap(), &name, header).unwrap();
        let disk = RadosStore::open_in(c.pool(POOL).unwrap(), &name, false).unwrap();
        mkfs(&disk, &MkfsOptions::default()).unwrap();
        let cs = Arc::new(CrashStore::with_survivors(disk, n, survivors));
        let mut v = Volume::open(cs.clone()).unwrap();
        let acked = workload(&mut v, &cs);
        drop(v);
        drop(cs); // what reached RADOS stays there; the rest is lost with the "power"
                  // Reboot, on another connection: replay on what RADOS holds.
        let c2 = Cluster::connect(&opts).unwrap();
        let disk = RadosStore::open_in(c2.pool(POOL).unwrap(), &name, false).unwrap();
        let mut v =
            Volume::open(disk).unwrap_or_else(|e| panic!("cut at {n} ({survivors:?}): open: {e}"));
        v.commit().unwrap();
        for (w, file, data) in acked.iter().filter(|(w, _, _)| *w <= n) {
            let d = v.lookup(ROOT, b"d").unwrap();
            let a = v.lookup(d.ino, file.as_bytes()).unwrap_or_else(|e| {
                panic!("cut at {n} ({survivors:?}): {file} (fsynced at {w}) lost: {e}")
            });
            assert_eq!(
                &v.read(a.ino, 0, data.len()).unwrap(),
                data,
                "cut at {n}: {file}"
            );
        }
        drop(v);
        let disk = RadosStore::open_in(c2.pool(POOL).unwrap(), &name, true).unwrap();
        let r = fsck::check(&disk).unwrap();
        assert!(
            r.is_clean(),
            "cut at {n} ({survivors:?}): {:#?}",
            r.findings
        );
    }
}
