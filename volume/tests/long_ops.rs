//! Operations larger than the journal: cut into steps that each leave the volume consistent
//! and are each committed whole, so a power cut in the middle leaves the file as one step
//! left it (its size and its allocation agreeing), never a half-applied transaction.

mod common;
use std::sync::Arc;

use common::*;
use volume::store::{CrashStore, Survivors};
use volume::Ino;
use volume::{Attr, MemStore, SharedVolume, Volume};

const ROOT: Ino = Ino::ROOT;
/// A 32-block journal holds 29 metadata blocks; a fallocate of this much maps one indirect
/// block per 4 MiB: about 32 of them, more than one transaction can hold.
const LEN: u64 = 128 * MIB;

fn sparse_file() -> (Arc<MemStore>, Ino) {
    let base = fresh_with_journal(192 * MIB, 32);
    let mut v = open(&base);
    let f = v.create(ROOT, b"big", 0o644, 0, 0).unwrap().ino;
    v.commit().unwrap();
    (base, f)
}

/// Every byte below the size has a block, and no data block lies past it.
fn assert_allocation_matches_size(a: &Attr, what: &str) {
    let data_blocks = a.size.div_ceil(4096);
    let held = a.blocks / 8;
    let indirect = held.saturating_sub(data_blocks);
    assert!(
        held >= data_blocks && indirect <= data_blocks / 1000 + 3,
        "{what}: size {} with {held} blocks",
        a.size
    );
}

/// Power cuts at every flush of `op` on the file `f` of `base` (and just before each),
/// keeping all, none or some of what was not yet flushed; `check` sees the file after replay.
fn crash_sweep(
    base: &Arc<MemStore>,
    op: impl Fn(&mut Volume<Arc<CrashStore<Arc<MemStore>>>>) -> volume::FsResult<()>,
    check: impl Fn(&mut Volume<Arc<MemStore>>, &str),
    every: usize,
) {
    let run = |store: &Arc<CrashStore<Arc<MemStore>>>| {
        let mut v = Volume::open(store.clone())?;
        op(&mut v)?;
        v.commit()
    };
    let probe = Arc::new(CrashStore::new(Arc::new(base.snapshot()), u64::MAX));
    run(&probe).unwrap();
    let total = probe.writes();
    let flushes = probe.flushes();
    let points = flushes
        .iter()
        .step_by(every)
        .flat_map(|&f| [f.saturating_sub(1), f]);
    for (k, n) in points.enumerate() {
        let seeded = Survivors::Seeded(k as u64);
        let kinds = if every == 1 {
            vec![Survivors::All, Survivors::Nothing, seeded]
        } else {
            vec![Survivors::All, seeded]
        };
        for survivors in kinds {
            let disk = Arc::new(base.snapshot());
            let cs = Arc::new(CrashStore::with_survivors(disk.clone(), n, survivors));
            run(&cs).unwrap();
            let what = format!("crash at event {n} of {total} ({survivors:?})");
            let r = volume::fsck::check(&disk).unwrap();
            assert!(r.is_clean(), "{what}: fsck: {:?}", r.by_kind);
            let mut v = open(&disk);
            check(&mut v, &what);
        }
    }
}

#[test]
fn a_hole_punched_over_more_than_the_journal_holds_survives_a_crash_in_the_middle() {
    // One block every 4 MiB: each in its own indirect block. Punching the whole range clears
    // a pointer in each of them, about 40 blocks, more than one transaction holds.
    let (base, f) = sparse_file();
    {
        let mut v = open(&base);
        for k in 0..40u64 {
            v.write(f, 16 * 4096 + k * 4 * MIB, &[0xD7; 4096]).unwrap();
        }
        v.commit().unwrap();
    }
    let size = 16 * 4096 + 39 * 4 * MIB + 4096;
    let punch = |v: &mut Volume<_>| v.fallocate(f, 0, size, 0x01 | 0x02);
    crash_sweep(
        &base,
        punch,
        |v, what| {
            let a = v.getattr(f).unwrap();
            assert_eq!(a.size, size, "{what}");
            // A prefix of the bytes is punched, the rest still there: steps go in order.
            let left: Vec<bool> = (0..40u64)
                .map(|k| v.read(f, 16 * 4096 + k * 4 * MIB, 1).unwrap() == [0xD7])
                .collect();
            let punched = left.iter().take_while(|&&l| !l).count();
            assert!(left[punched..].iter().all(|&l| l), "{what}: {left:?}");
            assert_eq!(a.blocks / 8 - 40 + punched as u64, 40 + 1, "{what}: blocks");
        },
        1,
    );
}

#[test]
fn a_fallocate_larger_than_the_journal_survives_a_crash_in_the_middle_as_whole_steps() {
    let (base, f) = sparse_file();
    crash_sweep(
        &base,
        |v| v.fallocate(f, 0, LEN, 0),
        |v, what| {
            let a = v.getattr(f).unwrap();
            assert!(a.size <= LEN, "{what}: size {}", a.size);
            assert_allocation_matches_size(&a, what);
        },
        5,
    );
}

#[test]
fn a_fallocate_larger_than_the_journal_goes_through_a_shared_volume_in_steps() {
    let (base, f) = sparse_file();
    let vol = SharedVolume::new(open(&base));
    let before = vol.with(|v| v.commits());
    vol.run(|v| v.fallocate(f, 0, LEN, 0)).unwrap();
    let steps = vol.with(|v| v.commits()) - before;
    assert!(
        steps >= 2,
        "{steps} commits for a fallocate the journal cannot hold"
    );
    vol.commit().unwrap();
    drop(vol);
    assert_clean(&base);
    let mut v = open(&base);
    let a = v.getattr(f).unwrap();
    assert_eq!(a.size, LEN);
    assert_allocation_matches_size(&a, "after the fallocate");
}
