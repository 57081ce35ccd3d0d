//! The block map: who holds each block, as `rwxfs demo` draws it.

mod common;

use common::*;
use volume::fsck::{block_map, Cell};
use volume::layout::{get_u32, put_u32, seal, split_ino, Superblock, BLOCK_SIZE};
use volume::{BlockStore, Ino, MemStore};

fn block(s: &MemStore, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    s.read_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
    buf
}

/// A volume with two files of two blocks each, its journal cleared so planted damage stays;
/// the store and the two inode indexes.
fn two_files() -> (std::sync::Arc<MemStore>, u32, u32) {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let a = v.create(Ino::ROOT, b"a", 0o644, 0, 0).unwrap();
    v.write(a.ino, 0, &[1u8; 8192]).unwrap();
    let b = v.create(Ino::ROOT, b"b", 0o644, 0, 0).unwrap();
    v.write(b.ino, 0, &[2u8; 8192]).unwrap();
    v.commit().unwrap();
    let g = Superblock::decode(&block(&s, 0)).unwrap().geometry;
    let zero = vec![0u8; BLOCK_SIZE];
    s.write_at(&zero, g.journal_start * BLOCK_SIZE as u64)
        .unwrap();
    (s, split_ino(a.ino.get()).0, split_ino(b.ino.get()).0)
}

/// Inode `index`'s first direct pointer: where it is, and what it says.
fn first_block(s: &MemStore, index: u32) -> (u64, usize, u64) {
    let g = Superblock::decode(&block(s, 0)).unwrap().geometry;
    let (b, off) = g.inode_location(index);
    (b, off + 88, get_u32(&block(s, b), off + 88) as u64)
}

#[test]
fn a_clean_image_has_nothing_claimed_twice() {
    let (s, a, b) = two_files();
    let m = block_map(&s).unwrap();
    assert_eq!(m.len(), 16 * MIB / BLOCK_SIZE as u64);
    assert_eq!((m.twice(), m.count(Cell::Leaked)), (0, 0));
    assert_eq!(m.cells[0], Cell::System);
    assert_eq!(m.count(Cell::Data(a)), 2);
    assert_eq!(m.count(Cell::Data(b)), 2);
    // The root directory's block is metadata, not data.
    assert_eq!(m.count(Cell::Meta(1)), 1);
    let (_, _, first_of_a) = first_block(&s, a);
    assert_eq!(m.cells[first_of_a as usize], Cell::Data(a));
    assert!(m.extent() > first_of_a && m.extent() < m.len());
}

#[test]
fn a_block_two_files_hold_is_claimed_twice_and_only_it() {
    let (s, a, b) = two_files();
    let (_, _, first_of_a) = first_block(&s, a);
    let (bb, off, _) = first_block(&s, b);
    let mut img = block(&s, bb);
    put_u32(&mut img, off, first_of_a as u32);
    seal(&mut img, bb);
    s.write_at(&img, bb * BLOCK_SIZE as u64).unwrap();
    let m = block_map(&s).unwrap();
    assert_eq!(m.cells[first_of_a as usize], Cell::Twice);
    assert_eq!(m.twice(), 1);
    // b's old first block is held by no one now, though the bitmap still marks it.
    assert_eq!(m.count(Cell::Leaked), 1);
}

#[test]
fn a_block_a_file_holds_and_the_bitmap_calls_free_is_claimed_twice() {
    let (s, a, _) = two_files();
    let (_, _, first_of_a) = first_block(&s, a);
    let g = Superblock::decode(&block(&s, 0)).unwrap().geometry;
    let mut img = block(&s, g.bbitmap_start);
    img[(first_of_a / 8) as usize] &= !(1 << (first_of_a % 8));
    seal(&mut img, g.bbitmap_start);
    s.write_at(&img, g.bbitmap_start * BLOCK_SIZE as u64)
        .unwrap();
    let m = block_map(&s).unwrap();
    assert_eq!(m.cells[first_of_a as usize], Cell::Twice);
    assert_eq!(m.twice(), 1);
}

#[test]
fn something_not_an_image_is_an_error() {
    let s = MemStore::new(BLOCK_SIZE as u64 * 4);
    assert!(block_map(&s).is_err());
}
