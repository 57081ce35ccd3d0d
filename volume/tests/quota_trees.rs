//! Quota trees: a directory's tree is capped in blocks and inodes; passing a cap is refused
//! with `DiskQuota` before anything changes (a write that does not fit is refused whole, and its file's size
//! is what was written); no name moves an inode into another tree; the use is counted again
//! at open and matches; fsck checks it all.

mod common;
use common::*;

use volume::layout::BLOCK_SIZE;
use volume::{FsError, Quota, RenameFlags, Usage};

const ROOT: volume::Ino = volume::Ino::ROOT;
const BS: u64 = BLOCK_SIZE as u64;

fn quota(max_blocks: u64, max_inodes: u64) -> Quota {
    Quota {
        max_blocks,
        max_inodes,
        tag: 3,
    }
}

#[test]
fn a_write_past_the_cap_is_refused_whole_and_the_size_is_what_was_written() {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let e = v.mkdir(ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    v.set_quota(e, quota(40, 100)).unwrap();
    let f = v.create(e, b"big", 0o644, 0, 0).unwrap().ino;
    let chunk = vec![7u8; 64 * 1024];
    let mut off = 0u64;
    let refused = loop {
        match v.write(f, off, &chunk) {
            Ok(n) => off += n as u64,
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, FsError::DiskQuota), "{refused}");
    let (_, q, used) = v.quota_of(f).unwrap().unwrap();
    assert_eq!(q, quota(40, 100));
    assert!(used.blocks <= 40, "past the cap: {used:?}");
    assert!(
        used.blocks > 40 - 17,
        "a write that fit was refused: {used:?}"
    );
    // What is left is taken by writes that fit.
    let room = (40 - used.blocks) as usize * BLOCK_SIZE;
    assert_eq!(v.write(f, off, &vec![9u8; room]).unwrap(), room);
    off += room as u64;
    let used = v.quota_of(f).unwrap().unwrap().2;
    assert_eq!(
        used.blocks, 40,
        "the tree is filled to its cap, not past it"
    );
    assert_eq!(v.getattr(f).unwrap().size, off);
    let st = v.statfs_at(f).unwrap();
    assert_eq!((st.blocks, st.bfree, st.files), (40, 0, 100));
    assert_eq!(st.ffree, 100 - used.inodes);
    // Outside the tree the volume is as large as ever.
    assert!(v.statfs_at(ROOT).unwrap().blocks > 1000);
    let outside = v.create(ROOT, b"outside", 0o644, 0, 0).unwrap().ino;
    assert!(v.write(outside, 0, &chunk).is_ok());
    v.commit().unwrap();
    assert_clean(&s);
    v.unlink(e, b"big").unwrap();
    assert_eq!(
        v.quota_of(e).unwrap().unwrap().2,
        Usage {
            blocks: 1,
            inodes: 1
        }
    );
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn the_inode_cap_refuses_a_create_and_leaves_no_entry() {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let e = v.mkdir(ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    v.set_quota(e, quota(100, 3)).unwrap();
    v.create(e, b"a", 0o644, 0, 0).unwrap();
    v.mkdir(e, b"d", 0o755, 0, 0).unwrap();
    assert!(matches!(
        v.create(e, b"c", 0o644, 0, 0),
        Err(FsError::DiskQuota)
    ));
    assert!(matches!(
        v.symlink(e, b"l", b"a", 0, 0),
        Err(FsError::DiskQuota)
    ));
    assert!(matches!(v.lookup(e, b"c"), Err(FsError::NotFound)));
    assert_eq!(v.quota_of(e).unwrap().unwrap().2.inodes, 3);
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn names_never_cross_into_another_tree() {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let a = v.mkdir(ROOT, b"a", 0o755, 0, 0).unwrap().ino;
    let b = v.mkdir(ROOT, b"b", 0o755, 0, 0).unwrap().ino;
    v.set_quota(a, quota(100, 100)).unwrap();
    v.set_quota(b, quota(100, 100)).unwrap();
    let f = v.create(a, b"f", 0o644, 0, 0).unwrap().ino;
    v.mkdir(a, b"sub", 0o755, 0, 0).unwrap();
    let plain = RenameFlags::default();
    fn xdev<T>(r: Result<T, FsError>) -> bool {
        matches!(r, Err(FsError::CrossDevice))
    }
    assert!(xdev(v.rename(a, b"f", b, b"f", plain)));
    assert!(xdev(v.rename(a, b"sub", ROOT, b"sub", plain)));
    assert!(xdev(v.link(f, b, b"f")));
    assert!(xdev(v.link(f, ROOT, b"f")));
    v.create(b, b"g", 0o644, 0, 0).unwrap();
    let swap = RenameFlags {
        exchange: true,
        ..plain
    };
    assert!(xdev(v.rename(a, b"f", b, b"g", swap)));
    // Within a tree names move freely, and a tree's root may move outside every tree.
    v.rename(a, b"f", a, b"sub2", plain).unwrap();
    let outer = v.mkdir(ROOT, b"outer", 0o755, 0, 0).unwrap().ino;
    v.rename(ROOT, b"a", outer, b"a", plain).unwrap();
    assert!(xdev(v.rename(ROOT, b"b", a, b"b", plain)));
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn only_an_empty_directory_outside_every_tree_becomes_a_root_and_a_cap_never_falls_below_use() {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let e = v.mkdir(ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    v.create(e, b"x", 0o644, 0, 0).unwrap();
    let invalid = |r: Result<(), FsError>| matches!(r, Err(FsError::Invalid));
    assert!(invalid(v.set_quota(e, quota(100, 100))), "not empty");
    assert!(
        invalid(v.set_quota(ROOT, quota(100, 100))),
        "the volume's root"
    );
    v.unlink(e, b"x").unwrap();
    v.set_quota(e, quota(100, 100)).unwrap();
    let inner = v.mkdir(e, b"inner", 0o755, 0, 0).unwrap().ino;
    assert!(invalid(v.set_quota(inner, quota(10, 10))), "inside a tree");
    let f = v.create(e, b"f", 0o644, 0, 0).unwrap().ino;
    v.write(f, 0, &vec![1u8; 10 * BLOCK_SIZE]).unwrap();
    let used = v.quota_of(e).unwrap().unwrap().2;
    assert!(matches!(
        v.set_quota(e, quota(used.blocks - 1, 100)),
        Err(FsError::DiskQuota)
    ));
    assert_eq!(
        v.quota_of(e).unwrap().unwrap().1,
        quota(100, 100),
        "unchanged"
    );
    v.set_quota(e, quota(used.blocks, used.inodes)).unwrap();
    assert!(matches!(
        v.write(f, 10 * BS, b"more"),
        Err(FsError::DiskQuota)
    ));
    v.set_quota(e, quota(1000, 1000)).unwrap();
    assert_eq!(v.write(f, 10 * BS, b"more").unwrap(), 4);
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn the_use_counted_at_open_is_the_use_kept_and_a_removed_root_is_no_tree() {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let e = v.mkdir(ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    v.set_quota(e, quota(500, 50)).unwrap();
    for i in 0..5 {
        let f = v
            .create(e, format!("f{i}").as_bytes(), 0o644, 0, 0)
            .unwrap()
            .ino;
        v.write(f, 0, &vec![i as u8; (i + 1) * BLOCK_SIZE + 1])
            .unwrap();
        v.setxattr(f, b"user.k", b"v", 0).unwrap();
    }
    v.unlink(e, b"f2").unwrap();
    let before = v.quota_of(e).unwrap().unwrap();
    v.commit().unwrap();
    drop(v);
    let mut v = open(&s);
    assert_eq!(v.quota_of(e).unwrap().unwrap(), before);
    for i in [0, 1, 3, 4] {
        v.unlink(e, format!("f{i}").as_bytes()).unwrap();
    }
    v.rmdir(ROOT, b"e").unwrap();
    let again = v.mkdir(ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    assert!(v.quota_of(again).unwrap().is_none());
    v.commit().unwrap();
    assert_clean(&s);
}

/// A file unlinked while open outlives its tree's root: once the root is gone, the file's
/// blocks count to no tree, and it takes writes as a file outside every tree does (the tree
/// does not come back with no room).
#[test]
fn a_file_open_in_a_removed_tree_keeps_taking_writes() {
    let s = fresh(16 * MIB);
    let mut v = open(&s);
    let e = v.mkdir(ROOT, b"e", 0o755, 0, 0).unwrap().ino;
    v.set_quota(e, quota(500, 50)).unwrap();
    let f = v.create(e, b"f", 0o644, 0, 0).unwrap().ino;
    v.open_file(f).unwrap();
    v.write(f, 0, &[1u8; BLOCK_SIZE]).unwrap();
    v.unlink(e, b"f").unwrap();
    v.rmdir(ROOT, b"e").unwrap();
    for i in 1..4u64 {
        let at = i * 4 * BS;
        assert_eq!(
            v.write(f, at, &[2u8; BLOCK_SIZE]).unwrap(),
            BLOCK_SIZE,
            "write {i}"
        );
    }
    v.release_file(f).unwrap();
    v.commit().unwrap();
    assert_clean(&s);
}
