//! Opening a volume costs what its lists hold, not what the volume holds: the files left
//! unlinked while open and the quota trees are lists on disk, each tree keeping its use.
//! fsck checks the lists and the kept use; a rebuild (`fsck --repair`) mends them; a power
//! cut at any moment leaves them exact.

mod common;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use volume::fsck::Kind;
use volume::layout::{Superblock, BLOCK_SIZE};
use volume::store::{CrashStore, Survivors};
use volume::{fsck, BlockStore, Ino, MemStore, Quota, Volume};

const ROOT: Ino = Ino::ROOT;

/// A store that counts the inode-table blocks read through it.
struct Counting {
    inner: Arc<MemStore>,
    itable: (u64, u64),
    reads: AtomicU64,
}

impl BlockStore for Counting {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let (from, to) = self.itable;
        let b = offset / BLOCK_SIZE as u64;
        if b >= from && b < to {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

fn superblock(store: &MemStore) -> Superblock {
    let mut b0 = vec![0u8; BLOCK_SIZE];
    store.read_at(&mut b0, 0).unwrap();
    Superblock::decode(&b0).unwrap()
}

/// Rewrite block 0 after a clean stop, the journal cleared so no replay undoes it.
fn rewrite_superblock(store: &MemStore, f: impl FnOnce(&mut Superblock)) {
    let mut sb = superblock(store);
    store
        .write_at(
            &vec![0u8; 2 * BLOCK_SIZE],
            sb.geometry.journal_start * BLOCK_SIZE as u64,
        )
        .unwrap();
    f(&mut sb);
    store.write_at(&sb.encode(), 0).unwrap();
}

/// Leave `names` unlinked while open, the volume dropped with them open (as a crash does);
/// their inode numbers.
fn leave_orphans(store: &Arc<MemStore>, names: &[&str]) -> Vec<Ino> {
    let mut v = open(store);
    let mut out = Vec::new();
    for n in names {
        let ino = v.create(ROOT, n.as_bytes(), 0o644, 0, 0).unwrap().ino;
        v.write(ino, 0, b"kept while open").unwrap();
        v.open_file(ino).unwrap();
        v.unlink(ROOT, n.as_bytes()).unwrap();
        out.push(ino);
    }
    v.commit().unwrap();
    out
}

fn quota() -> Quota {
    Quota {
        max_blocks: 10_000,
        max_inodes: 10_000,
        tag: 0,
    }
}

fn kinds(store: &Arc<MemStore>, kind: Kind) -> Vec<String> {
    let r = fsck::check(store).unwrap();
    r.findings
        .into_iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.detail)
        .collect()
}

#[test]
fn an_open_reads_the_listed_orphans_and_the_trees_roots_not_every_inode() {
    let base = fresh_with_inodes(256 * MIB, 20_000);
    let tree_use = {
        let mut v = open(&base);
        let t = v.mkdir(ROOT, b"t", 0o755, 0, 0).unwrap().ino;
        v.set_quota(t, quota()).unwrap();
        for i in 0..3000 {
            let dir = if i % 2 == 0 { ROOT } else { t };
            let f = v
                .create(dir, format!("f{i}").as_bytes(), 0o644, 0, 0)
                .unwrap();
            if i % 100 == 1 {
                v.write(f.ino, 0, &[7u8; 9000]).unwrap();
            }
        }
        v.commit().unwrap();
        v.quota_of(t).unwrap().unwrap().2
    };
    let orphans = leave_orphans(&base, &["o1", "o2"]);
    let geo = superblock(&base).geometry;
    let counting = Arc::new(Counting {
        inner: base.clone(),
        itable: (geo.itable_start, geo.itable_start + geo.itable_blocks),
        reads: AtomicU64::new(0),
    });
    let mut v = Volume::open_keeping_orphans(counting.clone()).unwrap();
    let read = counting.reads.load(Ordering::Relaxed);
    // 3000 files fill 200 inode-table blocks; the open needs those of the two orphans and
    // of the tree's root.
    assert!(read <= 4, "the open read {read} inode-table blocks");
    let mut found: Vec<u32> = v.orphans().to_vec();
    found.sort_unstable();
    let mut want: Vec<u32> = orphans.iter().map(|i| i.get() as u32).collect();
    want.sort_unstable();
    assert_eq!(found, want);
    let t = v.lookup(ROOT, b"t").unwrap().ino;
    assert_eq!(v.quota_of(t).unwrap().unwrap().2, tree_use);
    assert_eq!(v.reclaim_orphans().unwrap(), 2);
    drop(v);
    assert_clean(&base);
}

#[test]
fn an_open_takes_the_free_counts_the_superblock_keeps_and_fsck_checks_them() {
    let base = fresh_with_inodes(256 * MIB, 20_000);
    let before = {
        let mut v = open(&base);
        for i in 0..50 {
            let f = v
                .create(ROOT, format!("f{i}").as_bytes(), 0o644, 0, 0)
                .unwrap();
            v.write(f.ino, 0, &[1u8; 10_000]).unwrap();
        }
        v.unlink(ROOT, b"f3").unwrap();
        v.commit().unwrap();
        v.statfs()
    };
    let geo = superblock(&base).geometry;
    // The bitmaps: what counting the free space reads.
    let counting = Arc::new(Counting {
        inner: base.clone(),
        itable: (geo.ibitmap_start, geo.itable_start),
        reads: AtomicU64::new(0),
    });
    let mut v = Volume::open_keeping_orphans(counting.clone()).unwrap();
    assert_eq!(
        counting.reads.load(Ordering::Relaxed),
        0,
        "bitmap blocks read"
    );
    assert_eq!(v.statfs(), before);
    drop(v);
    assert_clean(&base);
    rewrite_superblock(&base, |sb| sb.free_blocks += 1);
    let r = fsck::check(&base).unwrap();
    assert_eq!(r.errors(), 1, "{:?}", r.findings);
    assert!(r.findings[0].detail.contains("keeps"), "{:?}", r.findings);
    drop(Volume::open_rebuilding_lists(base.clone()).unwrap());
    assert_clean(&base);
    assert_eq!(open(&base).statfs(), before);
}

#[test]
fn fsck_finds_an_orphan_off_the_list_and_a_member_that_is_none_and_a_rebuild_mends_both() {
    let base = fresh(64 * MIB);
    let linked = {
        let mut v = open(&base);
        let f = v.create(ROOT, b"linked", 0o644, 0, 0).unwrap().ino;
        v.commit().unwrap();
        f
    };
    let orphans = leave_orphans(&base, &["a", "b"]);
    assert!(kinds(&base, Kind::OrphanList).is_empty());
    // The head skips the newest orphan: the one before it stays listed, this one is lost.
    rewrite_superblock(&base, |sb| {
        assert_eq!(sb.orphan_head as u64, orphans[1].get() & 0xffff_ffff);
        sb.orphan_head = orphans[0].get() as u32;
    });
    let found = kinds(&base, Kind::OrphanList);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("not on the orphan list"), "{found:?}");
    // A linked file at the head: a member that is no orphan (and the list behind it lost).
    rewrite_superblock(&base, |sb| sb.orphan_head = linked.get() as u32);
    let found = kinds(&base, Kind::OrphanList);
    assert!(
        found.iter().any(|f| f.contains("which is linked 1 times")),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
    // The rebuild keeps the orphans (a session may hold them) and lists them again.
    let v = Volume::open_rebuilding_lists(base.clone()).unwrap();
    assert_eq!(v.orphans().len(), 2);
    drop(v);
    let found = kinds(&base, Kind::OrphanList);
    assert!(found.is_empty(), "after the rebuild: {found:?}");
    let mut v = open(&base);
    assert!(v.orphans().is_empty(), "open reclaimed them");
    assert_eq!(v.lookup(ROOT, b"linked").unwrap().ino, linked);
    drop(v);
    assert_clean(&base);
}

#[test]
fn a_list_in_a_loop_is_refused_at_open_naming_the_repair() {
    let base = fresh(64 * MIB);
    let orphans = leave_orphans(&base, &["a"]);
    let geo = superblock(&base).geometry;
    // The orphan's link names itself.
    let index = orphans[0].get() as u32;
    let (b, off) = geo.inode_location(index);
    let mut img = vec![0u8; BLOCK_SIZE];
    base.read_at(&mut img, b * BLOCK_SIZE as u64).unwrap();
    img[off + 172..off + 176].copy_from_slice(&index.to_le_bytes());
    volume::layout::seal(&mut img, b);
    rewrite_superblock(&base, |_| {});
    base.write_at(&img, b * BLOCK_SIZE as u64).unwrap();
    let found = kinds(&base, Kind::OrphanList);
    assert!(found.iter().any(|f| f.contains("loop")), "{found:?}");
    match Volume::open(base.clone()) {
        Err(volume::FsError::Corrupt(why)) => {
            assert!(why.contains("fsck --repair"), "{why}")
        }
        Err(e) => panic!("refused with {e}"),
        Ok(_) => panic!("opened a volume whose orphan list runs in a loop"),
    }
    drop(Volume::open_rebuilding_lists(base.clone()).unwrap());
    let found = kinds(&base, Kind::OrphanList);
    assert!(found.is_empty(), "after the rebuild: {found:?}");
    drop(open(&base));
    assert_clean(&base);
}

#[test]
fn a_trees_kept_use_that_is_wrong_is_found_and_mended() {
    let base = fresh(64 * MIB);
    let t = {
        let mut v = open(&base);
        let t = v.mkdir(ROOT, b"t", 0o755, 0, 0).unwrap().ino;
        v.set_quota(t, quota()).unwrap();
        let f = v.create(t, b"f", 0o644, 0, 0).unwrap().ino;
        v.write(f, 0, &[1u8; 20_000]).unwrap();
        v.commit().unwrap();
        t
    };
    assert_clean(&base);
    let geo = superblock(&base).geometry;
    let (b, off) = geo.inode_location(t.get() as u32);
    let mut img = vec![0u8; BLOCK_SIZE];
    base.read_at(&mut img, b * BLOCK_SIZE as u64).unwrap();
    img[off + 180..off + 188].copy_from_slice(&1u64.to_le_bytes());
    volume::layout::seal(&mut img, b);
    rewrite_superblock(&base, |_| {});
    base.write_at(&img, b * BLOCK_SIZE as u64).unwrap();
    let found = kinds(&base, Kind::QuotaTree);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("keeps a use of 1 blocks"), "{found:?}");
    drop(Volume::open_rebuilding_lists(base.clone()).unwrap());
    assert_clean(&base);
    // A root taken off the list of trees is found too.
    rewrite_superblock(&base, |sb| sb.tree_head = 0);
    let found = kinds(&base, Kind::QuotaTree);
    assert!(found[0].contains("not on the list of trees"), "{found:?}");
}

#[test]
fn a_power_cut_at_any_moment_leaves_the_lists_and_the_kept_use_exact() {
    // Files made, written, unlinked while open and closed in a quota tree, and the tree's
    // root removed at the end; the power goes at every event, unflushed writes kept or
    // lost. fsck of what is left (the lists and the kept use included) is clean, and so
    // is the volume after an open that reclaims the orphans.
    let base = fresh(32 * MIB);
    {
        let mut v = open(&base);
        let t = v.mkdir(ROOT, b"t", 0o755, 0, 0).unwrap().ino;
        v.set_quota(t, quota()).unwrap();
        v.commit().unwrap();
    }
    let run = |store: &Arc<CrashStore<Arc<MemStore>>>| -> volume::FsResult<()> {
        let mut v = Volume::open(store.clone())?;
        let t = v.lookup(ROOT, b"t")?.ino;
        let held = v.create(t, b"held", 0o644, 0, 0)?.ino;
        v.write(held, 0, &[3u8; 50_000])?;
        v.open_file(held)?;
        v.commit()?;
        v.unlink(t, b"held")?;
        let g = v.create(t, b"g", 0o644, 0, 0)?.ino;
        v.write(g, 0, &[4u8; 30_000])?;
        v.commit()?;
        v.release_file(held)?;
        v.unlink(t, b"g")?;
        v.rmdir(ROOT, b"t")?;
        v.commit()
    };
    let probe = Arc::new(CrashStore::new(Arc::new(base.snapshot()), u64::MAX));
    run(&probe).unwrap();
    for n in 0..=probe.writes() {
        for seed in 0..4 {
            let disk = Arc::new(base.snapshot());
            let cs = Arc::new(CrashStore::with_survivors(
                disk.clone(),
                n,
                Survivors::Seeded(seed),
            ));
            run(&cs).unwrap();
            let r = fsck::check(&disk).unwrap();
            let damage: Vec<_> = r
                .findings
                .iter()
                .filter(|f| f.kind != Kind::Orphan)
                .collect();
            assert!(damage.is_empty(), "crash at {n} (seed {seed}): {damage:#?}");
            drop(Volume::open(disk.clone()).unwrap());
            let r = fsck::check(&disk).unwrap();
            assert!(
                r.is_clean(),
                "crash at {n} (seed {seed}), reopened: {:#?}",
                r.findings
            );
        }
    }
}

#[test]
fn a_file_unlinked_while_open_and_linked_again_leaves_the_orphan_list() {
    // As linkat of an open file's descriptor gives it a name again.
    let base = fresh(64 * MIB);
    let mut v = open(&base);
    let f = v.create(ROOT, b"f", 0o644, 0, 0).unwrap().ino;
    v.write(f, 0, b"named again").unwrap();
    v.open_file(f).unwrap();
    v.unlink(ROOT, b"f").unwrap();
    v.commit().unwrap();
    assert_eq!(superblock(&base).orphan_head as u64, f.get() & 0xffff_ffff);
    assert_eq!(v.link(f, ROOT, b"back").unwrap().nlink, 1);
    v.commit().unwrap();
    let found = kinds(&base, Kind::OrphanList);
    assert!(found.is_empty(), "after the link: {found:?}");
    assert_eq!(superblock(&base).orphan_head, 0);
    // Dropped with the file open, as a crash leaves it: the next open keeps it.
    drop(v);
    let mut v = open(&base);
    assert!(v.orphans().is_empty());
    assert_eq!(v.lookup(ROOT, b"back").unwrap().ino, f);
    assert_eq!(v.read(f, 0, 100).unwrap(), b"named again");
    drop(v);
    assert_clean(&base);
}
