//! A file whose blocks lie under more bitmap blocks than one transaction can hold: a truncate
//! or an unlink goes in steps, each committed whole (never a transaction larger than the
//! journal), and gives every block back; a write that allocates them goes in parts.

mod common;
use std::sync::Arc;

use common::*;
use volume::layout::{seal, Geometry, Superblock, BITS_PER_BITMAP_BLOCK, BLOCK_SIZE};
use volume::store::{CrashStore, Survivors};
use volume::Ino;
use volume::{fsck, mkfs, BlockStore, MemStore, MkfsOptions, SetAttr, SharedVolume, Volume};

const ROOT: Ino = Ino::ROOT;
/// Blocks of the file, each allocated under a bitmap block of its own (one more goes to the
/// indirect block): freeing them changes 37 bitmap blocks, and a 32-block journal holds 29.
const FILE_BLOCKS: u64 = 36;

fn read_block(store: &MemStore, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    store.read_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
    buf
}

fn write_block(store: &MemStore, b: u64, buf: &mut [u8]) {
    seal(buf, b);
    store.write_at(buf, b * BLOCK_SIZE as u64).unwrap();
}

/// A volume with a 32-block journal and an empty file `f`, whose free blocks are one under
/// each bitmap block (`Fragmented::release` frees the rest again).
struct Fragmented {
    base: Arc<MemStore>,
    f: Ino,
    /// Free blocks while the file was empty, before the fillers.
    free_before: u64,
    g: Geometry,
    /// Per bitmap block, the bits set to fill it.
    fillers: Vec<Vec<u8>>,
}

fn fragmented() -> Fragmented {
    let bits = BITS_PER_BITMAP_BLOCK;
    let base = Arc::new(MemStore::new((FILE_BLOCKS + 4) * bits * BLOCK_SIZE as u64));
    let opts = MkfsOptions {
        inodes: Some(256),
        journal_blocks: Some(32),
        ..Default::default()
    };
    mkfs(&base, &opts).unwrap();
    let (f, free_before) = {
        let mut v = open(&base);
        let f = v.create(ROOT, b"f", 0o644, 0, 0).unwrap().ino;
        v.commit().unwrap();
        (f, v.statfs().bfree)
    };
    let g = Superblock::decode(&read_block(&base, 0)).unwrap().geometry;
    clear_journal(&base, &g);
    // Mark every data block in use but the last one under each bitmap block, so that each
    // block the file gets lies under a bitmap block of its own.
    let mut fillers = Vec::new();
    for k in 0..g.bbitmap_blocks {
        let mut blk = read_block(&base, g.bbitmap_start + k);
        let mut filler = vec![0u8; BLOCK_SIZE];
        for bit in 0..bits - 1 {
            let b = k * bits + bit;
            let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
            if g.is_data_block(b) && blk[byte] & mask == 0 {
                blk[byte] |= mask;
                filler[byte] |= mask;
            }
        }
        write_block(&base, g.bbitmap_start + k, &mut blk);
        fillers.push(filler);
    }
    Fragmented {
        base,
        f,
        free_before,
        g,
        fillers,
    }
}

/// The journal's copy of the last transaction goes before a bitmap is written home by hand:
/// replayed, it would take that back.
fn clear_journal(base: &MemStore, g: &Geometry) {
    base.write_at(&[0u8; BLOCK_SIZE], g.journal_start * BLOCK_SIZE as u64)
        .unwrap();
}

impl Fragmented {
    /// Take the fillers back (the volume closed): the image must then be clean.
    fn release(&self) {
        clear_journal(&self.base, &self.g);
        for (k, filler) in self.fillers.iter().enumerate() {
            let b = self.g.bbitmap_start + k as u64;
            let mut blk = read_block(&self.base, b);
            for (x, m) in blk.iter_mut().zip(filler) {
                *x &= !m;
            }
            write_block(&self.base, b, &mut blk);
        }
        assert_clean(&self.base);
    }
}

/// A volume with a 32-block journal and a file `f` of `FILE_BLOCKS` blocks, each under a
/// different bitmap block; and the volume's free blocks while the file was empty.
fn scattered_file() -> (Arc<MemStore>, Ino, u64) {
    let fr = fragmented();
    {
        let mut v = open(&fr.base);
        // A block a write: the engine commits between them as the bitmap blocks add up.
        for k in 0..FILE_BLOCKS {
            assert_eq!(v.write(fr.f, k * 4096, &[0xA5u8; 4096]).unwrap(), 4096);
        }
        v.commit().unwrap();
    }
    fr.release();
    (fr.base.clone(), fr.f, fr.free_before)
}

/// Blocks the file holds, its indirect block included.
fn held(v: &mut Volume<Arc<MemStore>>, f: Ino) -> u64 {
    v.getattr(f).unwrap().blocks / 8
}

#[test]
fn a_truncate_to_zero_of_a_file_scattered_past_the_journal_goes_in_steps() {
    let (base, f, free_before) = scattered_file();
    let mut v = open(&base);
    assert_eq!(held(&mut v, f), FILE_BLOCKS + 1);
    let commits = v.commits();
    let zero = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    let a = v.setattr(f, zero).unwrap();
    assert_eq!((a.size, a.blocks), (0, 0));
    assert!(v.commits() - commits >= 2, "one transaction for all");
    v.unlink(ROOT, b"f").unwrap();
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free_before);
    drop(v);
    assert_clean(&base);
}

#[test]
fn an_unlink_of_a_file_scattered_past_the_journal_frees_it_in_steps_behind_a_shared_volume() {
    let (base, f, free_before) = scattered_file();
    let vol = SharedVolume::new(open(&base));
    let commits = vol.with(|v| v.commits());
    vol.run(|v| v.unlink(ROOT, b"f")).unwrap();
    // Gone at once for every caller, though its blocks are still being freed.
    assert!(matches!(
        vol.with(|v| v.getattr(f)),
        Err(volume::FsError::Stale)
    ));
    vol.commit().unwrap();
    assert!(vol.with(|v| v.commits()) - commits >= 2);
    assert_eq!(vol.with(|v| v.statfs().bfree), free_before);
    drop(vol);
    assert_clean(&base);
}

#[test]
fn a_truncate_of_a_file_scattered_past_the_journal_goes_through_a_shared_volume_in_steps() {
    let (base, f, free_before) = scattered_file();
    let vol = SharedVolume::new(open(&base));
    let commits = vol.with(|v| v.commits());
    let one_block = SetAttr {
        size: Some(4096),
        ..Default::default()
    };
    let a = vol.run(|v| v.setattr(f, one_block)).unwrap();
    assert!(vol.with(|v| v.commits()) - commits >= 2);
    assert_eq!((a.size, a.blocks), (4096, 8));
    assert_eq!(
        vol.with(|v| v.read(f, 0, 4096 * FILE_BLOCKS as usize))
            .unwrap(),
        vec![0xA5u8; 4096]
    );
    vol.run(|v| v.unlink(ROOT, b"f")).unwrap();
    vol.commit().unwrap();
    assert_eq!(vol.with(|v| v.statfs().bfree), free_before);
    drop(vol);
    let r = fsck::check(&base).unwrap();
    assert!(r.is_clean(), "{:?}", r.findings);
}

#[test]
fn an_unlink_freed_in_steps_survives_a_power_cut_at_every_flush() {
    let (base, f, free_before) = scattered_file();
    let run = |store: &Arc<CrashStore<Arc<MemStore>>>| -> volume::FsResult<()> {
        let mut v = Volume::open(store.clone())?;
        v.unlink(ROOT, b"f")?;
        v.commit()
    };
    let probe = Arc::new(CrashStore::new(Arc::new(base.snapshot()), u64::MAX));
    run(&probe).unwrap();
    let flushes = probe.flushes();
    assert!(flushes.len() >= 6, "{} flushes: no steps", flushes.len());
    for (k, &n) in flushes.iter().enumerate() {
        // Every cut keeping all that was issued; every other one keeping a seeded subset.
        let seeded = (k % 2 == 0).then_some(Survivors::Seeded(k as u64));
        for survivors in [Survivors::All].into_iter().chain(seeded) {
            let disk = Arc::new(base.snapshot());
            let cs = Arc::new(CrashStore::with_survivors(disk.clone(), n, survivors));
            run(&cs).unwrap();
            let what = format!("power cut at event {n} ({survivors:?})");
            // Cut between steps, the file is an orphan (no name, no link) until the next open
            // reclaims it: nothing else may be wrong.
            let r = fsck::check(&disk).unwrap();
            let orphan = |k: &fsck::Finding| k.kind == fsck::Kind::Orphan;
            assert!(r.findings.iter().all(orphan), "{what}: {:?}", r.findings);
            // The file is whole, or gone; if gone, opening frees what a step had not.
            let mut v = open(&disk);
            match v.lookup(ROOT, b"f") {
                Ok(a) => assert_eq!((a.ino, held(&mut v, f)), (f, FILE_BLOCKS + 1), "{what}"),
                Err(volume::FsError::NotFound) => assert_eq!(v.statfs().bfree, free_before),
                Err(e) => panic!("{what}: {e}"),
            }
            drop(v);
            assert_clean(&disk);
        }
    }
}

#[test]
fn a_write_whose_blocks_scatter_past_the_journal_goes_in_parts() {
    let fr = fragmented();
    let data: Vec<u8> = (0..FILE_BLOCKS * 4096).map(|i| (i / 4096) as u8).collect();
    let mut v = open(&fr.base);
    let commits = v.commits();
    assert_eq!(v.write(fr.f, 0, &data).unwrap(), data.len());
    v.commit().unwrap();
    assert!(v.commits() - commits >= 2, "one transaction for all");
    drop(v);
    fr.release();
    let mut v = open(&fr.base);
    assert_eq!(v.read(fr.f, 0, data.len()).unwrap(), data);
}

#[test]
fn a_write_whose_blocks_scatter_past_the_journal_goes_through_a_shared_volume_in_parts() {
    let fr = fragmented();
    let data: Vec<u8> = (0..FILE_BLOCKS * 4096)
        .map(|i| (i / 4096) as u8 ^ 0x5A)
        .collect();
    let vol = SharedVolume::new(open(&fr.base));
    let mut told = 0;
    let n = vol.write(fr.f, 0, &data, |_, n| {
        told = n;
        Ok(())
    });
    assert_eq!((n.unwrap(), told), (data.len(), data.len()));
    vol.commit().unwrap();
    drop(vol);
    fr.release();
    let mut v = open(&fr.base);
    assert_eq!(v.read(fr.f, 0, data.len()).unwrap(), data);
}
