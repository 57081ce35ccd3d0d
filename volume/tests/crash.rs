//! Power cuts: every block write after the Nth is dropped, for N swept over a workload; after
//! replay the image is fsck-clean and everything acknowledged by fsync is there.

mod common;
use std::sync::Arc;

use common::*;
use volume::store::CrashStore;
use volume::{fsck, mkfs, MemStore, MkfsOptions, Volume};

const ROOT: u64 = 1;

/// The workload; returns (name, contents) of files whose fsync returned, with the write count
/// at that moment.
fn workload(
    v: &mut Volume<Arc<CrashStore<Arc<MemStore>>>>,
    store: &CrashStore<Arc<MemStore>>,
) -> Vec<(u64, String, Vec<u8>)> {
    let mut acked = Vec::new();
    let d = v.mkdir(ROOT, b"d", 0o755, 0, 0).unwrap();
    for j in 0..12u8 {
        let name = format!("f{j}");
        let a = v.create(d.ino, name.as_bytes(), 0o644, 0, 0).unwrap();
        let data = vec![j; 3000 + j as usize * 1000];
        v.write(a.ino, 0, &data).unwrap();
        if j % 3 == 0 {
            v.fsync(a.ino).unwrap();
            acked.push((store.writes(), name.clone(), data));
        }
        if j % 4 == 1 {
            v.rename(
                d.ino,
                name.as_bytes(),
                ROOT,
                format!("moved{j}").as_bytes(),
                Default::default(),
            )
            .unwrap();
        }
        if j == 7 {
            v.unlink(d.ino, b"f2").unwrap();
        }
    }
    v.commit().unwrap();
    acked
}

#[test]
fn crash_at_every_write_replays_clean_with_fsynced_data() {
    // A dry run counts the writes.
    let base = Arc::new(MemStore::new(32 * MIB));
    mkfs(&base, &MkfsOptions::default()).unwrap();
    let probe = Arc::new(CrashStore::new(Arc::new(base.snapshot()), u64::MAX));
    let mut v = Volume::open(probe.clone()).unwrap();
    let start = probe.writes();
    workload(&mut v, &probe);
    let total = probe.writes();
    drop(v);
    assert!(
        total - start > 20,
        "workload too small: {} writes",
        total - start
    );
    for n in start..=total {
        let disk = Arc::new(base.snapshot());
        let cs = Arc::new(CrashStore::new(disk.clone(), n));
        let mut v = Volume::open(cs.clone()).unwrap();
        let acked = workload(&mut v, &cs);
        drop(v);
        // Reboot: replay on what reached the disk.
        let r = fsck::check(&disk).unwrap();
        let mut v = Volume::open(disk.clone())
            .unwrap_or_else(|e| panic!("crash after {n} writes: open: {e}"));
        let after = fsck::check(&disk).unwrap();
        assert!(
            after.is_clean(),
            "crash after write {n}: fsck after replay: {:#?} (before: {:?})",
            after.findings,
            r.by_kind
        );
        for (w, name, data) in acked.iter().filter(|(w, _, _)| *w <= n) {
            let d = v.lookup(ROOT, b"d").unwrap();
            let a = v
                .lookup(d.ino, name.as_bytes())
                .or_else(|_| v.lookup(ROOT, format!("moved{}", &name[1..]).as_bytes()));
            let a = a.unwrap_or_else(|e| {
                panic!("crash after {n}: {name} (fsynced at write {w}) lost: {e}")
            });
            assert_eq!(
                &v.read(a.ino, 0, data.len()).unwrap(),
                data,
                "crash after {n}: {name} content"
            );
        }
    }
}
