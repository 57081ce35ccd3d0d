//! Engine operations one by one, each followed by fsck.

mod common;
use common::*;
use volume::fs::{FALLOC_KEEP_SIZE, FALLOC_PUNCH_HOLE, XATTR_CREATE, XATTR_REPLACE};
use volume::Ino;
use volume::{FileKind, FsError, RenameFlags, SetAttr};

const ROOT: Ino = Ino::ROOT;

#[test]
fn create_write_read_survives_reopen() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"hello", 0o644, 1000, 1000).unwrap();
    assert_eq!(a.kind, FileKind::RegularFile);
    assert_eq!(v.write(a.ino, 0, b"hello world").unwrap(), 11);
    v.commit().unwrap();
    drop(v);
    let mut v = open(&s);
    let a2 = v.lookup(ROOT, b"hello").unwrap();
    assert_eq!(a2.ino, a.ino);
    assert_eq!(a2.size, 11);
    assert_eq!(a2.uid, 1000);
    assert_eq!(v.read(a.ino, 0, 100).unwrap(), b"hello world");
    assert_eq!(v.read(a.ino, 6, 3).unwrap(), b"wor");
    assert_clean(&s);
}

#[test]
fn sparse_files_and_offsets_past_4gib() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"sparse", 0o644, 0, 0).unwrap();
    let far = 5 * 1024 * MIB + 123;
    v.write(a.ino, far, b"far away").unwrap();
    v.write(a.ino, 10, b"near").unwrap();
    let at = v.getattr(a.ino).unwrap();
    assert_eq!(at.size, far + 8);
    assert_eq!(v.read(a.ino, far, 8).unwrap(), b"far away");
    assert_eq!(v.read(a.ino, 0, 14).unwrap(), b"\0\0\0\0\0\0\0\0\0\0near");
    assert!(v
        .read(a.ino, 1 << 30, 4096)
        .unwrap()
        .iter()
        .all(|&b| b == 0));
    v.setattr(
        a.ino,
        SetAttr {
            size: Some(12),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(v.read(a.ino, 0, 100).unwrap(), b"\0\0\0\0\0\0\0\0\0\0ne");
    v.setattr(
        a.ino,
        SetAttr {
            size: Some(100),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        v.read(a.ino, 10, 4).unwrap(),
        b"ne\0\0",
        "truncate must zero the tail"
    );
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn directories_rename_and_errors() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let d1 = v.mkdir(ROOT, b"d1", 0o755, 0, 0).unwrap();
    let d2 = v.mkdir(d1.ino, b"d2", 0o755, 0, 0).unwrap();
    let f = v.create(d2.ino, b"f", 0o644, 0, 0).unwrap();
    assert_eq!(v.getattr(ROOT).unwrap().nlink, 3);
    assert_eq!(v.getattr(d1.ino).unwrap().nlink, 3);
    assert!(matches!(v.rmdir(ROOT, b"d1"), Err(FsError::NotEmpty)));
    assert!(matches!(
        v.rename(ROOT, b"d1", d2.ino, b"loop", RenameFlags::default()),
        Err(FsError::Invalid)
    ));
    assert!(matches!(
        v.create(ROOT, b"d1", 0o644, 0, 0),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        v.create(ROOT, &[b'x'; 256], 0o644, 0, 0),
        Err(FsError::NameTooLong)
    ));
    v.rename(d1.ino, b"d2", ROOT, b"d2moved", RenameFlags::default())
        .unwrap();
    assert_eq!(v.getattr(ROOT).unwrap().nlink, 4);
    assert_eq!(v.getattr(d1.ino).unwrap().nlink, 2);
    assert_eq!(v.lookup(d2.ino, b"..").unwrap().ino, ROOT);
    let g = v.create(ROOT, b"g", 0o644, 0, 0).unwrap();
    assert!(matches!(
        v.rename(
            ROOT,
            b"g",
            d2.ino,
            b"f",
            RenameFlags {
                noreplace: true,
                exchange: false
            }
        ),
        Err(FsError::Exists)
    ));
    v.rename(
        ROOT,
        b"g",
        d2.ino,
        b"f",
        RenameFlags {
            noreplace: false,
            exchange: true,
        },
    )
    .unwrap();
    assert_eq!(v.lookup(d2.ino, b"f").unwrap().ino, g.ino);
    assert_eq!(v.lookup(ROOT, b"g").unwrap().ino, f.ino);
    v.rename(ROOT, b"g", d2.ino, b"f", RenameFlags::default())
        .unwrap();
    assert!(
        matches!(v.getattr(g.ino), Err(FsError::Stale)),
        "replaced target is freed"
    );
    v.link(f.ino, ROOT, b"hard").unwrap();
    assert_eq!(v.getattr(f.ino).unwrap().nlink, 2);
    v.unlink(d2.ino, b"f").unwrap();
    assert_eq!(v.getattr(f.ino).unwrap().nlink, 1);
    let l = v.symlink(ROOT, b"ln", b"/some/where", 0, 0).unwrap();
    assert_eq!(v.readlink(l.ino).unwrap(), b"/some/where");
    let names: Vec<Vec<u8>> = v
        .readdir(ROOT, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.len(), 6, "{names:?}"); // . .. d1 d2moved hard ln
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn reused_inode_numbers_go_stale() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"a", 0o644, 0, 0).unwrap();
    v.unlink(ROOT, b"a").unwrap();
    let mut b = v.create(ROOT, b"b", 0o644, 0, 0).unwrap();
    for _ in 0..10_000 {
        if a.ino.get() & 0xffff_ffff == b.ino.get() & 0xffff_ffff {
            break;
        }
        v.unlink(ROOT, b"b").unwrap();
        b = v.create(ROOT, b"b", 0o644, 0, 0).unwrap();
    }
    assert_eq!(
        a.ino.get() & 0xffff_ffff,
        b.ino.get() & 0xffff_ffff,
        "slot is reused"
    );
    assert_ne!(a.ino, b.ino);
    assert!(matches!(v.getattr(a.ino), Err(FsError::Stale)));
}

#[test]
fn unlinked_open_file_lives_until_release() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"a", 0o644, 0, 0).unwrap();
    v.open_file(a.ino).unwrap();
    v.write(a.ino, 0, b"still here").unwrap();
    v.unlink(ROOT, b"a").unwrap();
    assert_eq!(v.read(a.ino, 0, 100).unwrap(), b"still here");
    v.release_file(a.ino).unwrap();
    assert!(v.getattr(a.ino).is_err());
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn readdir_cookies_stay_valid_while_entries_change() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    for i in 0..300 {
        v.create(ROOT, format!("f{i:03}").as_bytes(), 0o644, 0, 0)
            .unwrap();
    }
    let first = v.readdir(ROOT, 0, 102).unwrap();
    let cookie = first.last().unwrap().offset;
    for i in (0..300).step_by(3) {
        v.unlink(ROOT, format!("f{i:03}").as_bytes()).unwrap();
    }
    let mut seen: Vec<Vec<u8>> = first.iter().map(|e| e.name.clone()).collect();
    let mut off = cookie;
    loop {
        let more = v.readdir(ROOT, off, 50).unwrap();
        if more.is_empty() {
            break;
        }
        off = more.last().unwrap().offset;
        seen.extend(more.into_iter().map(|e| e.name));
    }
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), seen.len(), "no entry returned twice");
    for i in 0..300 {
        let n = format!("f{i:03}").into_bytes();
        if i % 3 != 0 {
            assert!(seen.contains(&n), "surviving entry f{i:03} was skipped");
        }
    }
}

#[test]
fn large_directory_lookups() {
    let s = fresh_with_inodes(512 * MIB, 110_000);
    let mut v = open(&s);
    let d = v.mkdir(ROOT, b"big", 0o755, 0, 0).unwrap();
    for i in 0..100_000 {
        v.create(d.ino, format!("entry-{i}").as_bytes(), 0o644, 0, 0)
            .unwrap();
    }
    v.commit().unwrap();
    drop(v);
    let mut v = open(&s);
    assert_eq!(v.dir_len(d.ino).unwrap(), 100_000);
    for i in (0..100_000).step_by(997) {
        v.lookup(d.ino, format!("entry-{i}").as_bytes()).unwrap();
    }
    assert_clean(&s);
}

#[test]
fn xattrs() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"a", 0o644, 0, 0).unwrap();
    assert!(matches!(v.getxattr(a.ino, b"user.x"), Err(FsError::NoAttr)));
    assert!(matches!(
        v.setxattr(a.ino, b"user.x", b"1", XATTR_REPLACE),
        Err(FsError::NoAttr)
    ));
    v.setxattr(a.ino, b"user.x", b"1", XATTR_CREATE).unwrap();
    assert!(matches!(
        v.setxattr(a.ino, b"user.x", b"2", XATTR_CREATE),
        Err(FsError::Exists)
    ));
    v.setxattr(a.ino, b"user.y", b"22", 0).unwrap();
    assert_eq!(v.getxattr(a.ino, b"user.y").unwrap(), b"22");
    assert_eq!(v.listxattr(a.ino).unwrap().len(), 2);
    v.removexattr(a.ino, b"user.x").unwrap();
    v.removexattr(a.ino, b"user.y").unwrap();
    assert!(v.listxattr(a.ino).unwrap().is_empty());
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn fallocate_and_punch_hole() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"a", 0o644, 0, 0).unwrap();
    v.write(a.ino, 0, &vec![7u8; 5 * 4096]).unwrap();
    v.fallocate(a.ino, 100, 3 * 4096, FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE)
        .unwrap();
    let d = v.read(a.ino, 0, 5 * 4096).unwrap();
    assert!(d[..100].iter().all(|&b| b == 7));
    assert!(d[100..100 + 3 * 4096].iter().all(|&b| b == 0));
    assert!(d[100 + 3 * 4096..].iter().all(|&b| b == 7));
    v.fallocate(a.ino, 0, 10 * 4096, 0).unwrap();
    assert_eq!(v.getattr(a.ino).unwrap().size, 10 * 4096);
    v.commit().unwrap();
    assert_clean(&s);
}

/// SEEK_DATA and SEEK_HOLE over the block map: data is a mapped block, a hole is one that is
/// not (or the file's end); nothing at or past the end; a punched block is a hole again.
#[test]
fn seek_data_and_seek_hole_follow_the_block_map() {
    const DATA: u32 = 3;
    const HOLE: u32 = 4;
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"sparse", 0o644, 0, 0).unwrap();
    let far = 5 * 1024 * MIB; // under the double indirect tree, nothing mapped before it
    v.write(a.ino, 0, &[1u8; 3 * 4096]).unwrap();
    v.write(a.ino, 40 * 4096 + 7, b"x").unwrap();
    v.write(a.ino, far, b"far").unwrap();
    let size = far + 3;
    assert_eq!(v.lseek(a.ino, 0, DATA).unwrap(), 0);
    assert_eq!(v.lseek(a.ino, 5, HOLE).unwrap(), 3 * 4096);
    assert_eq!(v.lseek(a.ino, 3 * 4096, DATA).unwrap(), 40 * 4096);
    assert_eq!(v.lseek(a.ino, 40 * 4096 + 9, DATA).unwrap(), 40 * 4096 + 9);
    assert_eq!(v.lseek(a.ino, 40 * 4096, HOLE).unwrap(), 41 * 4096);
    assert_eq!(v.lseek(a.ino, 41 * 4096, DATA).unwrap(), far);
    // The last block is data up to the end, and the end is a hole.
    assert_eq!(v.lseek(a.ino, far, HOLE).unwrap(), size);
    assert!(matches!(v.lseek(a.ino, size, DATA), Err(FsError::PastEnd)));
    assert!(matches!(v.lseek(a.ino, size, HOLE), Err(FsError::PastEnd)));
    assert!(matches!(
        v.lseek(a.ino, u64::MAX, DATA),
        Err(FsError::PastEnd)
    ));
    assert!(matches!(v.lseek(a.ino, 0, 0), Err(FsError::Invalid)));
    // A punched block is a hole; with nothing after it but holes, no data follows.
    v.fallocate(a.ino, 4096, 4096, FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE)
        .unwrap();
    assert_eq!(v.lseek(a.ino, 0, HOLE).unwrap(), 4096);
    assert_eq!(v.lseek(a.ino, 4096, DATA).unwrap(), 2 * 4096);
    v.setattr(
        a.ino,
        SetAttr {
            size: Some(50 * 4096),
            ..SetAttr::default()
        },
    )
    .unwrap();
    assert!(matches!(
        v.lseek(a.ino, 41 * 4096, DATA),
        Err(FsError::PastEnd)
    ));
    assert_eq!(v.lseek(a.ino, 41 * 4096, HOLE).unwrap(), 41 * 4096);
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn running_out_of_space_harms_nothing() {
    let s = fresh(8 * MIB);
    let mut v = open(&s);
    let keep = v.create(ROOT, b"keep", 0o644, 0, 0).unwrap();
    v.write(keep.ino, 0, b"precious").unwrap();
    let a = v.create(ROOT, b"fill", 0o644, 0, 0).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let mut off = 0;
    loop {
        match v.write(a.ino, off, &chunk) {
            Ok(n) => off += n as u64,
            Err(FsError::NoSpace) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(v.statfs().bfree < 4);
    v.commit().unwrap();
    assert_clean(&s);
    assert_eq!(v.read(keep.ino, 0, 8).unwrap(), b"precious");
    v.unlink(ROOT, b"fill").unwrap();
    v.commit().unwrap();
    let b = v.create(ROOT, b"again", 0o644, 0, 0).unwrap();
    assert_eq!(v.write(b.ino, 0, &chunk).unwrap(), chunk.len());
    v.commit().unwrap();
    assert_clean(&s);
}

#[test]
fn inode_numbers_lost_in_a_crash_are_never_handed_out_again() {
    // A file created and never committed, then a crash: the next incarnation must not give its
    // number to another file, or a client still holding it would read and write that one.
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    v.create(ROOT, b"kept", 0o644, 0, 0).unwrap();
    v.commit().unwrap();
    let lost = v.create(ROOT, b"lost", 0o644, 0, 0).unwrap().ino;
    drop(v); // crash: "lost" was never committed
    let mut v = open(&s);
    let again = v.create(ROOT, b"new", 0o644, 0, 0).unwrap().ino;
    assert_ne!(again, lost, "an inode number was handed out twice");
    assert!(v.getattr(lost).is_err());
    assert_eq!(
        again.get() & 0xFFFF_FFFF,
        lost.get() & 0xFFFF_FFFF,
        "the same slot, reused"
    );
    drop(v);
    assert_clean(&s);
}

#[test]
fn unprivileged_writes_truncations_and_chown_drop_setuid_setgid_and_capabilities() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let a = v.create(ROOT, b"tool", 0o6755, 1000, 1000).unwrap();
    v.setxattr(a.ino, b"security.capability", b"caps", 0)
        .unwrap();
    let mode = |v: &mut volume::Volume<_>| v.getattr(a.ino).unwrap().perm;
    // A privileged write keeps everything.
    v.write(a.ino, 0, b"x").unwrap();
    assert_eq!(mode(&mut v), 0o6755);
    // An unprivileged one drops setuid, setgid (group may execute) and the capabilities.
    v.write(a.ino, 0, b"y").unwrap();
    v.kill_priv(a.ino).unwrap();
    assert_eq!(mode(&mut v), 0o755);
    assert!(matches!(
        v.getxattr(a.ino, b"security.capability"),
        Err(FsError::NoAttr)
    ));
    // setgid without group execute is mandatory locking, not privilege: it stays.
    let set = |mode: Option<u32>, uid: Option<u32>, size: Option<u64>, kill_priv: bool| SetAttr {
        mode,
        uid,
        size,
        kill_priv,
        ..SetAttr::default()
    };
    v.setattr(a.ino, set(Some(0o6745), None, None, false))
        .unwrap();
    v.setattr(a.ino, set(None, None, Some(0), true)).unwrap();
    assert_eq!(mode(&mut v), 0o2745);
    // A privileged truncation keeps them; a change of owner drops setuid...
    v.setattr(a.ino, set(Some(0o6755), None, None, false))
        .unwrap();
    v.setattr(a.ino, set(None, None, Some(10), false)).unwrap();
    assert_eq!(mode(&mut v), 0o6755);
    v.setattr(a.ino, set(None, Some(7), None, false)).unwrap();
    assert_eq!(mode(&mut v), 0o755);
    // ...unless the same call sets the mode.
    v.setattr(a.ino, set(Some(0o4755), Some(8), None, false))
        .unwrap();
    assert_eq!(mode(&mut v), 0o4755);
    v.commit().unwrap();
    drop(v);
    assert_clean(&s);
}
