//! Directory indexes are bounded: past the bound the least recently used are dropped and
//! built again from their blocks when next used, and every operation sees the same entries.

mod common;
use common::*;
use volume::Ino;

const ROOT: Ino = Ino::ROOT;
/// Past the engine's bound (128 Ki entries) in two directories.
const PER_DIR: u32 = 70_000;

#[test]
fn a_directory_whose_index_was_dropped_is_the_same_when_used_again() {
    let base = fresh_with_inodes(1024 * MIB, 2 * PER_DIR as u64 + 100);
    let mut v = open(&base);
    let a = v.mkdir(ROOT, b"a", 0o755, 0, 0).unwrap().ino;
    let b = v.mkdir(ROOT, b"b", 0o755, 0, 0).unwrap().ino;
    for dir in [a, b] {
        for i in 0..PER_DIR {
            v.create(dir, format!("f{i}").as_bytes(), 0o644, 0, 0)
                .unwrap();
        }
    }
    // `a`'s index went when `b`'s grew past the bound: it is built again from its blocks.
    assert!(v.lookup(a, b"f0").is_ok());
    assert!(v.lookup(a, format!("f{}", PER_DIR - 1).as_bytes()).is_ok());
    assert!(matches!(
        v.create(a, b"f5", 0o644, 0, 0),
        Err(volume::FsError::Exists)
    ));
    v.unlink(a, b"f7").unwrap();
    v.create(a, b"new", 0o644, 0, 0).unwrap();
    assert_eq!(v.dir_len(a).unwrap(), PER_DIR as usize);
    assert!(v.lookup(b, b"f7").is_ok());
    assert_eq!(v.dir_len(b).unwrap(), PER_DIR as usize);
    v.commit().unwrap();
    drop(v);
    assert_clean(&base);
}
