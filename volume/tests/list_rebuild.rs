//! The lists of files unlinked while open and of quota trees, and each tree's kept use, are
//! made again (at an older image's first open, and by `fsck --repair`) in steps that each
//! fit the journal, however many orphans and trees the volume holds. The format's number is
//! written last: a power cut in the middle leaves an image whose next open makes them again.

mod common;
use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use volume::fsck::Kind;
use volume::layout::{seal, Superblock, BLOCK_SIZE, FORMAT_VERSION};
use volume::store::{CrashStore, Survivors};
use volume::{fsck, BlockStore, Ino, MemStore, Quota, Usage, Volume};

const ROOT: Ino = Ino::ROOT;

fn read_block(store: &MemStore, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    store.read_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
    buf
}

fn superblock(store: &MemStore) -> Superblock {
    Superblock::decode(&read_block(store, 0)).unwrap()
}

/// A volume with a 32-block journal holding `trees` quota trees (every third with a file of
/// data in it) and `orphans` files unlinked while open, dropped with them open; each tree's
/// use, by name.
fn build(size: u64, trees: usize, orphans: usize) -> (Arc<MemStore>, BTreeMap<String, Usage>) {
    let base = fresh_with_journal(size, 32);
    let mut v = open(&base);
    let mut uses = BTreeMap::new();
    for i in 0..trees {
        let name = format!("t{i}");
        let t = v.mkdir(ROOT, name.as_bytes(), 0o755, 0, 0).unwrap().ino;
        let q = Quota {
            max_blocks: 1000,
            max_inodes: 100,
            tag: i as u32,
        };
        v.set_quota(t, q).unwrap();
        if i % 3 == 0 {
            let f = v.create(t, b"f", 0o644, 0, 0).unwrap().ino;
            v.write(f, 0, &vec![7u8; 5000 + i * 100]).unwrap();
        }
        uses.insert(name, v.quota_of(t).unwrap().unwrap().2);
    }
    for i in 0..orphans {
        let name = format!("o{i}");
        let ino = v.create(ROOT, name.as_bytes(), 0o644, 0, 0).unwrap().ino;
        v.write(ino, 0, b"held").unwrap();
        v.open_file(ino).unwrap();
        v.unlink(ROOT, name.as_bytes()).unwrap();
    }
    v.commit().unwrap();
    (base, uses)
}

/// Make `store` look as a format 2 build left it after a clean stop: no transaction to
/// replay, no list heads, no free counts, and no list links or kept use in any inode record.
fn make_format_2(store: &MemStore) {
    let mut sb = superblock(store);
    let g = sb.geometry;
    store
        .write_at(
            &vec![0u8; 2 * BLOCK_SIZE],
            g.journal_start * BLOCK_SIZE as u64,
        )
        .unwrap();
    for b in g.itable_start..g.itable_start + g.itable_blocks {
        let mut img = read_block(store, b);
        if img.iter().all(|&x| x == 0) {
            continue;
        }
        for rec in img[..volume::layout::PAYLOAD].chunks_exact_mut(256) {
            rec[172..196].fill(0);
        }
        seal(&mut img, b);
        store.write_at(&img, b * BLOCK_SIZE as u64).unwrap();
    }
    sb.version = 2;
    sb.orphan_head = 0;
    sb.tree_head = 0;
    sb.free_blocks = 0;
    sb.free_inodes = 0;
    store.write_at(&sb.encode(), 0).unwrap();
}

/// Every finding but the orphans (lost: nothing holds them) that the next open frees.
fn damage(store: &MemStore) -> Vec<fsck::Finding> {
    fsck::check(store)
        .unwrap()
        .findings
        .into_iter()
        .filter(|f| f.kind != Kind::Orphan)
        .collect()
}

/// The use of every tree, by name, as an open volume has it (a directory it knows as no
/// tree's root left out).
fn uses<S: BlockStore>(v: &mut Volume<S>) -> BTreeMap<String, Usage> {
    let mut out = BTreeMap::new();
    for e in v.readdir(ROOT, 0, usize::MAX).unwrap() {
        if !e.name.starts_with(b"t") {
            continue;
        }
        if let Some((_, _, u)) = v.quota_of(e.ino).unwrap() {
            out.insert(String::from_utf8(e.name).unwrap(), u);
        }
    }
    out
}

#[test]
fn more_orphans_and_trees_than_a_transaction_holds_are_listed_in_steps() {
    let (base, want) = build(64 * MIB, 300, 300);
    // fsck --repair of the format 3 image: every list member is rewritten.
    let commits = {
        let mut v = Volume::open_rebuilding_lists(base.clone()).unwrap();
        assert_eq!(v.orphans().len(), 300, "kept: a session may hold them");
        assert_eq!(uses(&mut v), want);
        v.commits()
    };
    assert!(commits > 1, "one transaction held it all: {commits}");
    assert!(damage(&base).is_empty(), "{:#?}", damage(&base));
    assert_eq!(superblock(&base).version, FORMAT_VERSION);
    // The upgrade of the same volume as a format 2 build left it.
    make_format_2(&base);
    let mut v = open(&base);
    assert!(v.orphans().is_empty(), "freed at open");
    assert_eq!(uses(&mut v), want);
    drop(v);
    assert_clean(&base);
    assert_eq!(superblock(&base).version, FORMAT_VERSION);
}

/// The details of every finding but the orphans', sorted.
fn details(store: &MemStore) -> Vec<String> {
    let mut d: Vec<String> = damage(store).into_iter().map(|f| f.detail).collect();
    d.sort();
    d
}

/// Run `make` (an open that makes the lists again) on copies of `base` cut by a power
/// failure at every write and flush, each with several choices of the writes that survive.
/// The next open of what is left succeeds, and leaves it in this format, clean, with every
/// tree's use `want`; or, if `base` was damaged (its findings `before`) and the cut came
/// before any of the rebuild was durable, leaves that damage as it was, for a repair run
/// again to mend.
fn cut_at_every_event(
    base: &Arc<MemStore>,
    want: &BTreeMap<String, Usage>,
    before: &[String],
    make: fn(Arc<CrashStore<Arc<MemStore>>>) -> volume::FsResult<()>,
) {
    let probe = Arc::new(CrashStore::new(Arc::new(base.snapshot()), u64::MAX));
    make(probe.clone()).unwrap();
    let events = probe.writes();
    assert!(probe.flushes().len() > 4, "the rebuild took one commit");
    let survivors = [
        Survivors::All,
        Survivors::Nothing,
        Survivors::Seeded(1),
        Survivors::Seeded(6),
    ];
    let mut untouched = 0;
    for n in 0..=events {
        for s in survivors {
            let disk = Arc::new(base.snapshot());
            let cs = Arc::new(CrashStore::with_survivors(disk.clone(), n, s));
            make(cs).unwrap();
            let open_next = || {
                Volume::open(disk.clone())
                    .unwrap_or_else(|e| panic!("cut at {n} ({s:?}): the next open failed: {e}"))
            };
            let mut v = open_next();
            let found = uses(&mut v);
            drop(v);
            if !before.is_empty() && found != *want {
                assert_eq!(details(&disk), before, "cut at {n} ({s:?}): new damage");
                untouched += 1;
                drop(Volume::open_rebuilding_lists(disk.clone()).unwrap());
                let mut v = open_next();
                assert_eq!(uses(&mut v), *want, "cut at {n} ({s:?}), repaired again");
            } else {
                assert_eq!(found, *want, "cut at {n} ({s:?})");
            }
            let r = fsck::check(&disk).unwrap();
            assert!(r.is_clean(), "cut at {n} ({s:?}): {:#?}", r.findings);
            assert_eq!(superblock(&disk).version, FORMAT_VERSION, "cut at {n}");
        }
    }
    // The cuts before the rebuild's first commit was durable, and no more.
    assert!(
        untouched < 8 * survivors.len(),
        "{untouched} cuts left it as it was"
    );
}

#[test]
fn a_power_cut_anywhere_in_an_upgrade_leaves_an_image_the_next_open_upgrades() {
    let (base, want) = build(16 * MIB, 200, 200);
    make_format_2(&base);
    cut_at_every_event(&base, &want, &[], |s| {
        Volume::open_keeping_orphans(s).map(drop)
    });
}

#[test]
fn a_power_cut_anywhere_in_a_repair_leaves_an_image_the_next_open_repairs() {
    let (base, want) = build(16 * MIB, 200, 200);
    // Both lists lost: the repair must find every member again.
    let mut sb = superblock(&base);
    base.write_at(
        &vec![0u8; 2 * BLOCK_SIZE],
        sb.geometry.journal_start * BLOCK_SIZE as u64,
    )
    .unwrap();
    sb.orphan_head = 0;
    sb.tree_head = 0;
    base.write_at(&sb.encode(), 0).unwrap();
    let before = details(&base);
    assert!(!before.is_empty());
    cut_at_every_event(&base, &want, &before, |s| {
        Volume::open_rebuilding_lists(s).map(drop)
    });
}

#[test]
fn more_list_members_to_drop_at_open_than_a_transaction_holds_are_dropped_in_steps() {
    // Members that are no orphans any more (as a file linked again left them, before that
    // took it off): an open drops each from the list.
    let (base, _) = build(64 * MIB, 0, 600);
    let g = superblock(&base).geometry;
    base.write_at(
        &vec![0u8; 2 * BLOCK_SIZE],
        g.journal_start * BLOCK_SIZE as u64,
    )
    .unwrap();
    let mut relinked = 0;
    for b in g.itable_start..g.itable_start + g.itable_blocks {
        let mut img = read_block(&base, b);
        for rec in img[..volume::layout::PAYLOAD].chunks_exact_mut(256) {
            if rec[0..4] != [0; 4] && rec[12..16] == [0; 4] {
                rec[12..16].copy_from_slice(&1u32.to_le_bytes());
                relinked += 1;
            }
        }
        seal(&mut img, b);
        base.write_at(&img, b * BLOCK_SIZE as u64).unwrap();
    }
    assert_eq!(relinked, 600);
    assert_ne!(superblock(&base).orphan_head, 0);
    let v = Volume::open_keeping_orphans(base.clone()).unwrap();
    assert!(v.orphans().is_empty());
    assert!(v.commits() > 1, "one transaction held it all");
    drop(v);
    assert_eq!(superblock(&base).orphan_head, 0);
}
