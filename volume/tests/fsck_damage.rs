//! fsck finds each kind of damage planted on purpose.

mod common;
use std::sync::Arc;

use common::*;
use volume::fsck::{check, Kind};
use volume::layout::{get_u32, put_u32, seal, split_ino, Superblock, BLOCK_SIZE, INODE_SIZE};
use volume::Ino;
use volume::{BlockStore, MemStore};

const ROOT: Ino = Ino::ROOT;

fn block(s: &MemStore, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    s.read_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
    buf
}

fn put_block(s: &MemStore, b: u64, img: &mut [u8], reseal: bool) {
    if reseal {
        seal(img, b);
    }
    s.write_at(img, b * BLOCK_SIZE as u64).unwrap();
}

/// A small volume with two files; returns the store and the files' inode indexes.
fn volume_with_files() -> (Arc<MemStore>, u32, u32) {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"a", 0o644, 0, 0).unwrap();
    v.write(a.ino, 0, &[1u8; 8192]).unwrap();
    let b = v.create(ROOT, b"b", 0o644, 0, 0).unwrap();
    v.write(b.ino, 0, &[2u8; 8192]).unwrap();
    v.commit().unwrap();
    assert_clean(&s);
    // Clear the journal so planted damage is not undone by replay.
    let sb = Superblock::decode(&block(&s, 0)).unwrap();
    s.write_at(
        &vec![0u8; BLOCK_SIZE],
        sb.geometry.journal_start * BLOCK_SIZE as u64,
    )
    .unwrap();
    (s, split_ino(a.ino.get()).0, split_ino(b.ino.get()).0)
}

fn inode_loc(s: &MemStore, index: u32) -> (u64, usize) {
    Superblock::decode(&block(s, 0))
        .unwrap()
        .geometry
        .inode_location(index)
}

fn found(s: &MemStore, k: Kind) -> u64 {
    let r = check(s).unwrap();
    assert_eq!(r.exit_code(), if r.is_clean() { 0 } else { 4 });
    r.by_kind.get(&k).copied().unwrap_or(0)
}

#[test]
fn block_given_to_two_files() {
    let (s, a, b) = volume_with_files();
    let (ba, oa) = inode_loc(&s, a);
    let first_of_a = get_u32(&block(&s, ba), oa + 88);
    let (bb, ob) = inode_loc(&s, b);
    let mut img = block(&s, bb);
    put_u32(&mut img, ob + 88, first_of_a);
    put_block(&s, bb, &mut img, true);
    assert!(found(&s, Kind::BlockClaimedTwice) >= 1);
}

#[test]
fn bitmap_bit_flipped() {
    let (s, _, _) = volume_with_files();
    let g = Superblock::decode(&block(&s, 0)).unwrap().geometry;
    let mut img = block(&s, g.bbitmap_start);
    let bit = g.data_start + 100;
    img[(bit / 8) as usize] ^= 1 << (bit % 8);
    put_block(&s, g.bbitmap_start, &mut img, true);
    // The bit itself, and the free count the superblock keeps, which it no longer matches.
    assert_eq!(found(&s, Kind::BlockBitmap), 2);
}

#[test]
fn entry_naming_a_free_inode() {
    let (s, a, _) = volume_with_files();
    let (ba, oa) = inode_loc(&s, a);
    let mut img = block(&s, ba);
    img[oa..oa + 4].fill(0); // mode 0: the inode is free, its entry still names it
    put_block(&s, ba, &mut img, true);
    assert!(found(&s, Kind::BadEntry) >= 1);
}

#[test]
fn wrong_link_count() {
    let (s, a, _) = volume_with_files();
    let (ba, oa) = inode_loc(&s, a);
    let mut img = block(&s, ba);
    put_u32(&mut img, oa + 12, 5);
    put_block(&s, ba, &mut img, true);
    assert_eq!(found(&s, Kind::LinkCount), 1);
}

#[test]
fn bad_checksum() {
    let (s, a, _) = volume_with_files();
    let (ba, oa) = inode_loc(&s, a);
    let mut img = block(&s, ba);
    img[oa + INODE_SIZE - 1] ^= 0x55; // a byte no field uses: only the checksum notices
    put_block(&s, ba, &mut img, false);
    assert_eq!(found(&s, Kind::BadChecksum), 1);
}

#[test]
fn truncated_image() {
    let (s, _, _) = volume_with_files();
    let short = MemStore::new(8 * MIB);
    let mut buf = vec![0u8; 8 * MIB as usize];
    s.read_at(&mut buf, 0).unwrap();
    short.write_at(&buf, 0).unwrap();
    assert_eq!(found(&short, Kind::Truncated), 1);
}

#[test]
fn not_an_image_is_an_operational_error() {
    let s = MemStore::new(MIB);
    s.write_at(b"hello", 0).unwrap();
    let e = check(&s).unwrap_err();
    assert!(e.to_string().contains("not an rwxfs image"), "{e}");
    let tiny = MemStore::new(10);
    assert!(check(&tiny).is_err());
}
