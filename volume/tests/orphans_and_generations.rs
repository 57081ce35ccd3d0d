//! Inode numbers never come back to name another file (generations do not wrap), and files
//! left unlinked-but-open by a run are kept at open until their holder is known.

use std::sync::Arc;

use volume::Ino;
use volume::{fsck, mkfs, FsError, MemStore, MkfsOptions, Volume};

fn fresh(size: u64, inodes: Option<u64>) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new(size));
    let opts = MkfsOptions {
        inodes,
        ..MkfsOptions::default()
    };
    mkfs(&store, &opts).unwrap();
    store
}

#[test]
fn a_slot_reused_past_its_counter_never_hands_out_an_old_number() {
    let store = fresh(16 << 20, Some(64));
    let mut v = Volume::open(store.clone()).unwrap();
    // Every slot but one taken, so each create below reuses that one.
    while v.statfs().ffree > 1 {
        let name = format!("keep{}", v.statfs().ffree);
        v.create(Ino::ROOT, name.as_bytes(), 0o100644, 0, 0)
            .unwrap();
    }
    let first = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    v.unlink(Ino::ROOT, b"f").unwrap();
    let mut seen_slot_again = 0u32;
    // More reuses of one slot than a 16-bit counter holds.
    for _ in 0..70_000u32 {
        let a = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap();
        assert_ne!(a.ino, first, "a reused inode number names a new file");
        if a.ino.get() as u32 == first.get() as u32 {
            seen_slot_again += 1;
        }
        v.unlink(Ino::ROOT, b"f").unwrap();
    }
    assert!(
        seen_slot_again > 65_536,
        "the slot was not reused: {seen_slot_again}"
    );
    assert!(matches!(v.getattr(first), Err(FsError::Stale)));
    v.commit().unwrap();
    drop(v);
    // The incarnations a slot used up are durable: after a reopen no number recurs either.
    let mut v = Volume::open(store.clone()).unwrap();
    let a = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap();
    assert_ne!(a.ino, first);
}

#[test]
fn orphans_are_kept_at_open_until_their_holders_are_known() {
    let store = fresh(16 << 20, None);
    let mut v = Volume::open(store.clone()).unwrap();
    let held = v.create(Ino::ROOT, b"held", 0o100644, 0, 0).unwrap().ino;
    let gone = v.create(Ino::ROOT, b"gone", 0o100644, 0, 0).unwrap().ino;
    for ino in [held, gone] {
        v.open_file(ino).unwrap();
        v.write(ino, 0, &vec![7u8; 64 * 1024]).unwrap();
    }
    v.unlink(Ino::ROOT, b"held").unwrap();
    v.unlink(Ino::ROOT, b"gone").unwrap();
    v.commit().unwrap();
    let free_with_both = v.statfs().bfree;
    drop(v);
    let mut v = Volume::open_keeping_orphans(store.clone()).unwrap();
    assert_eq!(v.orphans().len(), 2);
    assert_eq!(
        v.statfs().bfree,
        free_with_both,
        "an orphan was freed at open"
    );
    // The server learns that `held` is still open somewhere; `gone` is nobody's.
    v.open_file(held).unwrap();
    assert_eq!(v.reclaim_orphans().unwrap(), 1);
    assert!(matches!(v.getattr(gone), Err(FsError::Stale)));
    assert_eq!(v.read(held, 0, 4).unwrap(), vec![7u8; 4]);
    v.release_file(held).unwrap();
    v.commit().unwrap();
    assert!(matches!(v.getattr(held), Err(FsError::Stale)));
    drop(v);
    let report = fsck::check(&store).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

/// fsck tells an unlinked file that a session which may come back holds open (held: not
/// damage) from one nothing holds (lost: the next start of a server frees it).
#[test]
fn fsck_tells_a_held_orphan_from_a_lost_one() {
    let store = fresh(16 << 20, None);
    let mut v = Volume::open(store.clone()).unwrap();
    let held = v.create(Ino::ROOT, b"held", 0o100644, 0, 0).unwrap().ino;
    let lost = v.create(Ino::ROOT, b"lost", 0o100644, 0, 0).unwrap().ino;
    for ino in [held, lost] {
        v.open_file(ino).unwrap();
        v.unlink(Ino::ROOT, if ino == held { b"held" } else { b"lost" })
            .unwrap();
    }
    v.commit().unwrap();
    drop(v);
    let holders = fsck::Holders::from([(held.get(), "session 7 (node n)".to_string())]);
    let r = fsck::check_holding(&store, &holders).unwrap();
    let orphans: Vec<&fsck::Finding> = r
        .findings
        .iter()
        .filter(|f| f.kind == fsck::Kind::Orphan)
        .collect();
    assert_eq!(orphans.len(), 2, "{:#?}", r.findings);
    let (held_by, lost_by): (Vec<&fsck::Finding>, Vec<&fsck::Finding>) =
        orphans.iter().partition(|f| f.held_by.is_some());
    assert_eq!(held_by.len(), 1, "{orphans:#?}");
    assert_eq!(held_by[0].held_by.as_deref(), Some("session 7 (node n)"));
    assert!(
        held_by[0].detail.contains("held open by session 7"),
        "{held_by:?}"
    );
    assert!(lost_by[0].detail.contains("lost"), "{lost_by:?}");
    assert_eq!(r.errors(), 1, "only the lost orphan is damage");
    // A holder of another file in that slot (another generation) holds nothing here.
    let other = fsck::Holders::from([(held.get() ^ (1 << 32), "session 8".to_string())]);
    assert_eq!(fsck::check_holding(&store, &other).unwrap().errors(), 2);
    assert_eq!(fsck::check(&store).unwrap().errors(), 2);
}

/// A create made again after a crash at the slot of an orphan that nothing holds open frees
/// the orphan first: in the history being made again, that file was gone before the create
/// took its slot. An orphan held open keeps its slot.
#[test]
fn a_create_made_again_at_an_unheld_orphans_slot_frees_the_orphan() {
    use volume::layout::{make_ino, split_ino};
    let store = fresh(16 << 20, None);
    let mut v = Volume::open(store.clone()).unwrap();
    let old = v.create(Ino::ROOT, b"old", 0o100644, 0, 0).unwrap().ino;
    let held = v.create(Ino::ROOT, b"held", 0o100644, 0, 0).unwrap().ino;
    for (ino, name) in [(old, &b"old"[..]), (held, &b"held"[..])] {
        v.open_file(ino).unwrap();
        v.write(ino, 0, &[1u8; 8192]).unwrap();
        v.unlink(Ino::ROOT, name).unwrap();
    }
    v.commit().unwrap();
    drop(v);
    let mut v = Volume::open_keeping_orphans(store.clone()).unwrap();
    v.open_file(held).unwrap();
    let next = |ino: Ino| {
        let (index, generation) = split_ino(ino.get());
        Ino::new(make_ino(index, generation + 1))
    };
    let again = next(old);
    let made = v
        .create_again(again, |v| v.create(Ino::ROOT, b"new", 0o100644, 0, 0))
        .unwrap();
    assert_eq!(made.ino, again);
    assert!(matches!(v.getattr(old), Err(FsError::Stale)));
    let taken = v.create_again(next(held), |v| v.create(Ino::ROOT, b"n2", 0o100644, 0, 0));
    assert!(matches!(taken, Err(FsError::Exists)), "{taken:?}");
    assert_eq!(v.read(held, 0, 4).unwrap(), vec![1u8; 4]);
    v.release_file(held).unwrap();
    v.commit().unwrap();
    drop(v);
    let report = fsck::check(&store).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}
