//! Sparse files on real mounts: lseek's SEEK_DATA and SEEK_HOLE find a file's data and its
//! holes (what cp, tar and qemu-img use to copy a sparse file without reading its zeros), on
//! a raw mount and on shared ones, where another mount's writes count as soon as they are
//! made.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use rwxfs_tests::{assert_fsck_clean, harness};

const MIB: u64 = 1 << 20;
/// Past 4 GiB: under the block map's double indirect tree, with nothing mapped before it.
const FAR: u64 = 5 << 30;
const SIZE: u64 = FAR + 8 * MIB;

/// lseek(2): the offset it answers, or its errno.
fn seek(f: &File, offset: u64, whence: i32) -> Result<u64, i32> {
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset as libc::off_t, whence) };
    match r {
        -1 => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        at => Ok(at as u64),
    }
}

/// Data at [0, 4 KiB), at [1 MiB, 1 MiB + 10) and at [FAR, FAR + 3); holes between and up
/// to the end (SIZE). Written through `f`, without closing it.
fn make_sparse(f: &mut File) {
    f.write_all(&[1u8; 4096]).unwrap();
    f.seek(SeekFrom::Start(MIB)).unwrap();
    f.write_all(b"0123456789").unwrap();
    f.seek(SeekFrom::Start(FAR)).unwrap();
    f.write_all(b"far").unwrap();
    f.set_len(SIZE).unwrap();
}

/// What SEEK_DATA and SEEK_HOLE say of the file `make_sparse` made.
fn assert_data_and_holes(f: &File, on: &str) {
    let (data, hole) = (libc::SEEK_DATA, libc::SEEK_HOLE);
    assert_eq!(seek(f, 0, data), Ok(0), "{on}");
    assert_eq!(seek(f, 0, hole), Ok(4096), "{on}");
    assert_eq!(seek(f, 100, hole), Ok(4096), "{on}");
    assert_eq!(seek(f, 4096, hole), Ok(4096), "{on}");
    assert_eq!(seek(f, 4096, data), Ok(MIB), "{on}");
    assert_eq!(seek(f, MIB + 5, data), Ok(MIB + 5), "{on}");
    assert_eq!(seek(f, MIB, hole), Ok(MIB + 4096), "{on}");
    // Across 5 GiB of holes, most of them unmapped indirect trees.
    assert_eq!(seek(f, MIB + 4096, data), Ok(FAR), "{on}");
    assert_eq!(seek(f, FAR, hole), Ok(FAR + 4096), "{on}");
    // No data after the last: ENXIO; the hole before the end is where it is asked.
    assert_eq!(seek(f, FAR + 4096, data), Err(libc::ENXIO), "{on}");
    assert_eq!(seek(f, SIZE - 1, hole), Ok(SIZE - 1), "{on}");
    assert_eq!(seek(f, SIZE, data), Err(libc::ENXIO), "{on}");
    assert_eq!(seek(f, SIZE, hole), Err(libc::ENXIO), "{on}");
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

#[test]
fn seek_data_and_seek_hole_find_a_sparse_files_data_on_a_raw_mount() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let mp = h.mount_raw(&img).unwrap();
    let mut f = open_rw(&mp.join("sparse"));
    make_sparse(&mut f);
    assert_data_and_holes(&f, "the raw mount");
    drop(f);
    h.unmount_all().unwrap();
    assert_fsck_clean(&img);
}

/// Through the writer's own descriptor right after its writes (still on their way to the
/// server), and through another mount.
#[test]
fn seek_data_and_seek_hole_see_every_mounts_writes_on_shared_mounts() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let mut f = open_rw(&a.join("sparse"));
    make_sparse(&mut f);
    assert_data_and_holes(&f, "the writer's mount");
    let other = File::open(b.join("sparse")).unwrap();
    assert_data_and_holes(&other, "another mount");
    // A hole filled on one mount is data on the other at once.
    f.seek(SeekFrom::Start(2 * MIB)).unwrap();
    f.write_all(b"filled").unwrap();
    f.sync_all().unwrap();
    assert_eq!(seek(&other, MIB + 4096, libc::SEEK_DATA), Ok(2 * MIB));
    drop((f, other));
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
