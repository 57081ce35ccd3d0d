//! Images written before the journal's checksum covered payloads (format 1): their journal is
//! replayed as written, not ignored, and their first open brings them to this build's format.
//! A format newer than the build is refused, naming the cause and the fix.

mod common;
use std::sync::Arc;

use common::*;
use volume::layout::{
    get_u32, get_u64, put_u32, seal, split_ino, Superblock, BLOCK_SIZE, FORMAT_VERSION,
};
use volume::Ino;
use volume::{fsck, BlockStore, FsError, MemStore, Volume};

const ROOT: Ino = Ino::ROOT;

fn read_block(store: &MemStore, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    store.read_at(&mut buf, b * BLOCK_SIZE as u64).unwrap();
    buf
}

fn write_block(store: &MemStore, b: u64, buf: &mut [u8]) {
    seal(buf, b);
    store.write_at(buf, b * BLOCK_SIZE as u64).unwrap();
}

/// Stamp a sealed superblock image as format `version`.
fn set_version(img: &mut [u8], version: u32) {
    put_u32(img, 8, version);
    seal(img, 0);
}

/// Rewrite the transaction in the journal as a format-1 build wrote it: its superblock
/// image says format 1, and the commit block's checksum runs over the whole images, seals
/// included, descriptor left out. One descriptor: the transaction is small.
fn make_journal_format_1(store: &MemStore, sb: &Superblock) {
    let j = sb.geometry.journal_start;
    let desc = read_block(store, j);
    assert_eq!(&desc[0..8], b"RWXJDESC");
    let n = get_u32(&desc, 16) as u64;
    let mut crc = 0u32;
    for i in 0..n {
        let mut img = read_block(store, j + 1 + i);
        if get_u64(&desc, 24 + i as usize * 8) == 0 {
            set_version(&mut img, 1);
            store
                .write_at(&img, (j + 1 + i) * BLOCK_SIZE as u64)
                .unwrap();
        }
        crc = crc32c::crc32c_append(crc, &img);
    }
    let mut commit = read_block(store, j + 1 + n);
    assert_eq!(&commit[0..8], b"RWXJCMIT");
    put_u32(&mut commit, 20, crc);
    write_block(store, j + 1 + n, &mut commit);
}

/// A format-1 image stopped by a crash while its last transaction (a create of `f`) was
/// going home: the directory entry is home, the inode table block is not. Only a replay
/// of that transaction makes it whole.
fn format_1_image_torn_at_home() -> (Arc<MemStore>, Ino) {
    let base = fresh(64 * MIB);
    drop(open(&base));
    let before = base.snapshot();
    let f = {
        let mut v = open(&base);
        let f = v.create(ROOT, b"f", 0o644, 0, 0).unwrap().ino;
        v.commit().unwrap();
        f
    };
    let sb = Superblock::decode(&read_block(&base, 0)).unwrap();
    make_journal_format_1(&base, &sb);
    let mut b0 = read_block(&base, 0);
    set_version(&mut b0, 1);
    base.write_at(&b0, 0).unwrap();
    let (itable_block, _) = sb.geometry.inode_location(split_ino(f.get()).0);
    let mut old = read_block(&before, itable_block);
    base.write_at(&old, itable_block * BLOCK_SIZE as u64)
        .unwrap();
    old.clear();
    (base, f)
}

#[test]
fn a_format_1_journal_is_replayed_and_the_image_brought_to_this_format() {
    let (base, f) = format_1_image_torn_at_home();
    let r = fsck::check(&base).unwrap();
    assert!(r.is_clean(), "a format-1 image: {:?}", r.findings);
    let mut v = open(&base);
    assert_eq!(v.lookup(ROOT, b"f").unwrap().ino, f);
    v.write(f, 0, b"still here").unwrap();
    v.commit().unwrap();
    drop(v);
    assert_clean(&base);
    assert_eq!(get_u32(&read_block(&base, 0), 8), FORMAT_VERSION);
    let mut v = open(&base);
    assert_eq!(v.read(f, 0, 64).unwrap(), b"still here");
}

#[test]
fn a_format_newer_than_the_build_is_refused_naming_the_cause_and_the_fix() {
    let base = fresh(64 * MIB);
    let mut b0 = read_block(&base, 0);
    set_version(&mut b0, FORMAT_VERSION + 1);
    base.write_at(&b0, 0).unwrap();
    match Volume::open(base.clone()) {
        Err(FsError::NotAnImage(why)) => {
            assert!(
                why.contains("newer") && why.contains("use a newer rwxfs"),
                "{why}"
            )
        }
        Err(e) => panic!("refused with {e}"),
        Ok(_) => panic!("opened an image of a newer format"),
    }
}

/// A format-2 image (no on-disk lists, no kept use) with a quota tree and a file left
/// unlinked while open: its first open makes the lists and counts the tree's use, once.
#[test]
fn a_format_2_image_gets_its_lists_and_kept_use_at_its_first_open() {
    let base = fresh(64 * MIB);
    let (t, used) = {
        let mut v = open(&base);
        let t = v.mkdir(ROOT, b"t", 0o755, 0, 0).unwrap().ino;
        let q = volume::Quota {
            max_blocks: 1000,
            max_inodes: 100,
            tag: 0,
        };
        v.set_quota(t, q).unwrap();
        let f = v.create(t, b"f", 0o644, 0, 0).unwrap().ino;
        v.write(f, 0, &[5u8; 40_000]).unwrap();
        let o = v.create(t, b"o", 0o644, 0, 0).unwrap().ino;
        v.open_file(o).unwrap();
        v.unlink(t, b"o").unwrap();
        v.commit().unwrap();
        (t, v.quota_of(t).unwrap().unwrap().2)
    };
    // As format 2 left it: no journal to replay, no list heads, no kept use.
    let mut sb = Superblock::decode(&read_block(&base, 0)).unwrap();
    base.write_at(
        &vec![0u8; 2 * BLOCK_SIZE],
        sb.geometry.journal_start * BLOCK_SIZE as u64,
    )
    .unwrap();
    let (b, off) = sb.geometry.inode_location(split_ino(t.get()).0);
    let mut itb = read_block(&base, b);
    itb[off + 172..off + 196].fill(0);
    write_block(&base, b, &mut itb);
    sb.version = 2;
    sb.orphan_head = 0;
    sb.tree_head = 0;
    base.write_at(&sb.encode(), 0).unwrap();
    let r = fsck::check(&base).unwrap();
    assert_eq!(r.errors(), 1, "only the orphan: {:?}", r.findings);
    let mut v = open(&base);
    assert_eq!(v.orphans().len(), 0, "freed at open");
    let now = v.quota_of(t).unwrap().unwrap().2;
    assert_eq!(now.inodes, used.inodes - 1);
    assert_eq!(now.blocks, used.blocks, "the orphan held no block");
    assert!(now.blocks >= 10, "{now:?}");
    drop(v);
    assert_clean(&base);
    assert_eq!(get_u32(&read_block(&base, 0), 8), FORMAT_VERSION);
    let mut v = open(&base);
    assert_eq!(v.quota_of(t).unwrap().unwrap().2, now);
}
