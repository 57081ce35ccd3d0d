//! A full volume: an operation refused for want of space changes nothing (no entry removed, no
//! block or inode taken, no byte of the image different), and the image stays consistent.

mod common;
use common::*;

use std::sync::Arc;

use volume::fs::FALLOC_KEEP_SIZE;
use volume::layout::BLOCK_SIZE;
use volume::Ino;
use volume::{BlockStore, FsError, MemStore, RenameFlags, Volume};

const ROOT: Ino = Ino::ROOT;
const BS: u64 = BLOCK_SIZE as u64;

type Vol = Volume<Arc<MemStore>>;
type FsResult = Result<(), FsError>;

/// A volume made by `setup`, then filled so that exactly `free` blocks are left.
fn full_volume(free: usize, setup: impl FnOnce(&mut Vol)) -> (Arc<MemStore>, Vol) {
    let s = fresh_with_inodes(8 * MIB, 1024);
    let mut v = open(&s);
    setup(&mut v);
    // One-block files, deleted once the volume is full to leave exactly `free` blocks.
    for i in 0..free {
        let a = v
            .create(ROOT, format!("spare{i}").as_bytes(), 0o644, 0, 0)
            .unwrap();
        assert_eq!(v.write(a.ino, 0, b"s").unwrap(), 1);
    }
    // Empty files whose first block takes whatever single blocks the filler could not use.
    let pads: Vec<Ino> = (0..32)
        .map(|i| {
            v.create(ROOT, format!("pad{i}").as_bytes(), 0o644, 0, 0)
                .unwrap()
                .ino
        })
        .collect();
    let filler = v.create(ROOT, b"filler", 0o644, 0, 0).unwrap().ino;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut off = 0u64;
    loop {
        match v.write(filler, off, &chunk) {
            Ok(n) => off += n as u64,
            Err(FsError::NoSpace) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    for p in pads {
        match v.write(p, 0, b"p") {
            Ok(_) => {}
            Err(FsError::NoSpace) => break,
            Err(e) => panic!("padding: {e}"),
        }
    }
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, 0, "the volume is not full");
    for i in 0..free {
        v.unlink(ROOT, format!("spare{i}").as_bytes()).unwrap();
    }
    v.commit().unwrap();
    assert_eq!(v.statfs().bfree, free as u64);
    (s, v)
}

/// The image past the journal (bitmaps, inode table, data), after a commit: what a refused
/// call must leave byte for byte as it was.
fn image(s: &Arc<MemStore>, v: &mut Vol) -> Vec<u8> {
    v.commit().unwrap();
    let g = v.superblock().geometry;
    let start = g.ibitmap_start * BS;
    let mut out = vec![0u8; (g.total_blocks * BS - start) as usize];
    s.read_at(&mut out, start).unwrap();
    out
}

fn assert_same_image(before: &[u8], after: &[u8], what: &str) {
    if let Some(at) = before.iter().zip(after).position(|(a, b)| a != b) {
        panic!(
            "{what}: the refused call changed the image (first difference {} blocks past the \
             journal)",
            at as u64 / BS
        );
    }
}

/// Fill directory `dir` with names linked to `target` until its twelve direct blocks are
/// full, to the last byte (31 records of 132 bytes tile a block): the next entry, whatever its
/// name, needs an indirect block and a directory block.
fn fill_direct_blocks(v: &mut Vol, dir: Ino, target: Ino) {
    let name = |i: usize| format!("{i:0>120}");
    let mut n = 0;
    while v.getattr(dir).unwrap().size <= BS {
        v.link(target, dir, name(n).as_bytes()).unwrap();
        n += 1;
    }
    // The entry that opened the second block is the first that did not fit in the first.
    let per_block = n - 1;
    while n < 12 * per_block {
        v.link(target, dir, name(n).as_bytes()).unwrap();
        n += 1;
    }
    assert_eq!(per_block, 31);
    assert_eq!(v.getattr(dir).unwrap().size, 12 * BS);
}

#[test]
fn rename_into_a_directory_needing_a_block_keeps_every_file_where_it_was() {
    let (s, mut v) = full_volume(0, |v: &mut Vol| {
        let src = v.mkdir(ROOT, b"src", 0o755, 0, 0).unwrap().ino;
        v.mkdir(ROOT, b"dst", 0o755, 0, 0).unwrap();
        for i in 0..400 {
            let f = v
                .create(src, format!("f{i}").as_bytes(), 0o644, 0, 0)
                .unwrap();
            v.write(f.ino, 0, format!("file {i}").as_bytes()).unwrap();
        }
    });
    let src = v.lookup(ROOT, b"src").unwrap().ino;
    let dst = v.lookup(ROOT, b"dst").unwrap().ino;
    let before = image(&s, &mut v);
    let mut refused = 0;
    for i in 0..400 {
        let name = format!("f{i}");
        match v.rename(
            src,
            name.as_bytes(),
            dst,
            name.as_bytes(),
            RenameFlags::default(),
        ) {
            Err(FsError::NoSpace) => refused += 1,
            other => panic!("rename {name}: {other:?}, expected ENOSPC"),
        }
    }
    assert_eq!(refused, 400);
    let mut lost = Vec::new();
    for i in 0..400 {
        match v.lookup(src, format!("f{i}").as_bytes()) {
            Ok(a) => assert_eq!(
                v.read(a.ino, 0, 64).unwrap(),
                format!("file {i}").as_bytes()
            ),
            Err(_) => lost.push(i),
        }
    }
    assert!(lost.is_empty(), "{} of 400 files lost", lost.len());
    assert_eq!(v.dir_len(dst).unwrap(), 0);
    assert_same_image(&before, &image(&s, &mut v), "rename");
    drop(v);
    assert_clean(&s);
}

#[test]
fn rename_within_a_full_directory_keeps_the_file() {
    let (s, mut v) = full_volume(0, |v: &mut Vol| {
        let d = v.mkdir(ROOT, b"d", 0o755, 0, 0).unwrap().ino;
        let t = v.create(ROOT, b"t", 0o644, 0, 0).unwrap().ino;
        fill_direct_blocks(v, d, t);
        let f = v.create(ROOT, b"f", 0o644, 0, 0).unwrap();
        v.write(f.ino, 0, b"precious").unwrap();
    });
    let d = v.lookup(ROOT, b"d").unwrap().ino;
    let before = image(&s, &mut v);
    let r = v.rename(ROOT, b"f", d, b"f", RenameFlags::default());
    assert!(matches!(r, Err(FsError::NoSpace)), "{r:?}");
    let f = v
        .lookup(ROOT, b"f")
        .expect("the file is gone from where it was");
    assert_eq!(v.read(f.ino, 0, 64).unwrap(), b"precious");
    assert_same_image(&before, &image(&s, &mut v), "rename");
    drop(v);
    assert_clean(&s);
}

#[test]
fn link_needing_an_indirect_block_with_one_block_free_changes_nothing() {
    let (s, mut v) = full_volume(1, |v: &mut Vol| {
        let d = v.mkdir(ROOT, b"d", 0o755, 0, 0).unwrap().ino;
        let t = v.create(ROOT, b"t", 0o644, 0, 0).unwrap().ino;
        fill_direct_blocks(v, d, t);
    });
    let d = v.lookup(ROOT, b"d").unwrap().ino;
    let t = v.lookup(ROOT, b"t").unwrap();
    let before = image(&s, &mut v);
    let r = v.link(t.ino, d, b"one more");
    assert!(matches!(r, Err(FsError::NoSpace)), "{r:?}");
    assert_eq!(v.getattr(t.ino).unwrap().nlink, t.nlink);
    assert_eq!(v.statfs().bfree, 1, "a block was taken by a refused link");
    assert_same_image(&before, &image(&s, &mut v), "link");
    drop(v);
    assert_clean(&s);
}

#[test]
fn creates_needing_an_indirect_block_with_one_block_free_change_nothing() {
    let (s, mut v) = full_volume(1, |v: &mut Vol| {
        let d = v.mkdir(ROOT, b"d", 0o755, 0, 0).unwrap().ino;
        let t = v.create(ROOT, b"t", 0o644, 0, 0).unwrap().ino;
        fill_direct_blocks(v, d, t);
    });
    let d = v.lookup(ROOT, b"d").unwrap().ino;
    let before = image(&s, &mut v);
    let dir_before = v.getattr(d).unwrap();
    let ffree = v.statfs().ffree;
    let tries: [(&str, FsResult); 4] = [
        ("create", v.create(d, b"new file", 0o644, 0, 0).map(drop)),
        (
            "mknod",
            v.mknod(d, b"new fifo", libc::S_IFIFO | 0o644, 0, 0, 0)
                .map(drop),
        ),
        ("mkdir", v.mkdir(d, b"new dir", 0o755, 0, 0).map(drop)),
        ("symlink", v.symlink(d, b"new link", b"t", 0, 0).map(drop)),
    ];
    for (what, r) in tries {
        assert!(matches!(r, Err(FsError::NoSpace)), "{what}: {r:?}");
    }
    let dir_after = v.getattr(d).unwrap();
    assert_eq!(
        (dir_after.size, dir_after.blocks, dir_after.nlink),
        (dir_before.size, dir_before.blocks, dir_before.nlink),
        "a refused create changed its directory"
    );
    assert_eq!(v.statfs().bfree, 1, "a block was taken by a refused create");
    assert_eq!(
        v.statfs().ffree,
        ffree,
        "an inode was taken by a refused create"
    );
    assert_same_image(&before, &image(&s, &mut v), "create");
    drop(v);
    assert_clean(&s);
}

#[test]
fn creates_into_a_directory_needing_a_block_on_a_full_volume_change_nothing() {
    let (s, mut v) = full_volume(0, |v: &mut Vol| {
        v.mkdir(ROOT, b"empty", 0o755, 0, 0).unwrap();
    });
    let d = v.lookup(ROOT, b"empty").unwrap().ino;
    let before = image(&s, &mut v);
    let tries: [(&str, FsResult); 3] = [
        ("create", v.create(d, b"f", 0o644, 0, 0).map(drop)),
        ("mkdir", v.mkdir(d, b"sub", 0o755, 0, 0).map(drop)),
        ("symlink", v.symlink(d, b"l", b"f", 0, 0).map(drop)),
    ];
    for (what, r) in tries {
        assert!(matches!(r, Err(FsError::NoSpace)), "{what}: {r:?}");
    }
    assert_same_image(&before, &image(&s, &mut v), "create");
    drop(v);
    assert_clean(&s);
}

#[test]
fn symlink_whose_entry_needs_a_block_with_one_block_free_leaks_nothing() {
    let (s, mut v) = full_volume(1, |v: &mut Vol| {
        v.mkdir(ROOT, b"empty", 0o755, 0, 0).unwrap();
    });
    let d = v.lookup(ROOT, b"empty").unwrap().ino;
    let before = image(&s, &mut v);
    let target = vec![b'x'; 100];
    let r = v.symlink(d, b"l", &target, 0, 0);
    assert!(matches!(r, Err(FsError::NoSpace)), "{r:?}");
    assert_eq!(v.statfs().bfree, 1, "a refused symlink kept a block");
    assert_same_image(&before, &image(&s, &mut v), "symlink");
    drop(v);
    assert_clean(&s);
}

#[test]
fn setxattr_on_a_full_volume_changes_nothing() {
    let (s, mut v) = full_volume(0, |v: &mut Vol| {
        v.create(ROOT, b"f", 0o644, 0, 0).unwrap();
    });
    let f = v.lookup(ROOT, b"f").unwrap().ino;
    let before = image(&s, &mut v);
    let r = v.setxattr(f, b"user.k", b"v", 0);
    assert!(matches!(r, Err(FsError::NoSpace)), "{r:?}");
    assert!(matches!(v.getxattr(f, b"user.k"), Err(FsError::NoAttr)));
    assert_same_image(&before, &image(&s, &mut v), "setxattr");
    drop(v);
    assert_clean(&s);
}

#[test]
fn write_needing_an_indirect_block_with_one_block_free_changes_nothing() {
    let (s, mut v) = full_volume(1, |v: &mut Vol| {
        let f = v.create(ROOT, b"f", 0o644, 0, 0).unwrap();
        v.write(f.ino, 0, &vec![7u8; 12 * BLOCK_SIZE]).unwrap();
    });
    let f = v.lookup(ROOT, b"f").unwrap();
    let before = image(&s, &mut v);
    let r = v.write(f.ino, 12 * BS, b"past the direct blocks");
    assert!(matches!(r, Err(FsError::NoSpace)), "{r:?}");
    let a = v.getattr(f.ino).unwrap();
    assert_eq!((a.size, a.blocks), (f.size, f.blocks));
    assert_eq!(v.statfs().bfree, 1, "a refused write kept a block");
    assert_same_image(&before, &image(&s, &mut v), "write");
    drop(v);
    assert_clean(&s);
}

#[test]
fn fallocate_larger_than_the_free_space_changes_nothing() {
    let (s, mut v) = full_volume(3, |v: &mut Vol| {
        v.create(ROOT, b"f", 0o644, 0, 0).unwrap();
    });
    let f = v.lookup(ROOT, b"f").unwrap().ino;
    let before = image(&s, &mut v);
    for mode in [0, FALLOC_KEEP_SIZE] {
        let r = v.fallocate(f, 0, 10 * BS, mode);
        assert!(matches!(r, Err(FsError::NoSpace)), "mode {mode}: {r:?}");
    }
    let a = v.getattr(f).unwrap();
    assert_eq!((a.size, a.blocks), (0, 0));
    assert_eq!(v.statfs().bfree, 3, "a refused fallocate kept blocks");
    assert_same_image(&before, &image(&s, &mut v), "fallocate");
    drop(v);
    assert_clean(&s);
}

#[test]
fn operations_that_fit_still_succeed_on_a_nearly_full_volume() {
    // The checks refuse only what cannot be done: with exactly the blocks needed, it is done.
    let (s, mut v) = full_volume(2, |v: &mut Vol| {
        let d = v.mkdir(ROOT, b"d", 0o755, 0, 0).unwrap().ino;
        let t = v.create(ROOT, b"t", 0o644, 0, 0).unwrap().ino;
        fill_direct_blocks(v, d, t);
        v.create(ROOT, b"f", 0o644, 0, 0).unwrap();
    });
    let d = v.lookup(ROOT, b"d").unwrap().ino;
    v.rename(ROOT, b"f", d, b"f", RenameFlags::default())
        .unwrap();
    assert_eq!(v.statfs().bfree, 0);
    assert!(v.lookup(d, b"f").is_ok());
    assert!(matches!(v.lookup(ROOT, b"f"), Err(FsError::NotFound)));
    v.commit().unwrap();
    drop(v);
    assert_clean(&s);
}
