//! A full volume through a real mount and a real server: a call refused with ENOSPC leaves the
//! files where they were, and the image is consistent.

use std::io::Write;
use std::os::fd::IntoRawFd;
use std::path::Path;

use rwxfs_tests::{assert_fsck_clean, harness, statvfs};

const FILES: usize = 400;

/// Append `chunk`s to a new file at `path` until the volume refuses one (ENOSPC).
fn fill(path: &Path, chunk: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let data = vec![0xA5u8; chunk];
    loop {
        match f.write_all(&data).and_then(|_| f.sync_all()) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                return;
            }
        }
    }
}

/// Fill the volume mounted at `mp` to its last block: a big file (`hog`), then single
/// blocks in files made before it (`pads/`: a new file may find no room for its entry).
fn fill_up(mp: &Path) {
    std::fs::create_dir(mp.join("pads")).unwrap();
    for i in 0..300 {
        std::fs::File::create(mp.join("pads").join(i.to_string())).unwrap();
    }
    fill(&mp.join("hog"), 1 << 20);
    for i in 0..300 {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(mp.join("pads").join(i.to_string()))
            .unwrap();
        if f.write_all(&[1u8; 4096])
            .and_then(|_| f.sync_all())
            .is_err()
        {
            break;
        }
    }
    assert_eq!(statvfs(mp).f_bavail, 0, "the volume did not fill up");
}

/// close(2) on `f`: its result, as an I/O error.
fn close(f: std::fs::File) -> std::io::Result<()> {
    // SAFETY: the descriptor is `f`'s own, given up here and closed once.
    match unsafe { libc::close(f.into_raw_fd()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Every file is listed in `src` with its contents, and `dst` is empty.
fn assert_every_file_in_src(mp: &Path) {
    let listed: std::collections::HashSet<String> = std::fs::read_dir(mp.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let lost: Vec<String> = (0..FILES)
        .map(|i| format!("file-{i:03}"))
        .filter(|n| !listed.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {FILES} files lost from src, first {:?}",
        lost.len(),
        lost.first()
    );
    assert_eq!(listed.len(), FILES);
    for i in 0..FILES {
        let data = std::fs::read(mp.join(format!("src/file-{i:03}"))).unwrap();
        assert_eq!(data, format!("contents of {i}").as_bytes());
    }
    assert_eq!(std::fs::read_dir(mp.join("dst")).unwrap().count(), 0);
}

#[test]
fn mv_of_400_files_into_a_directory_on_a_full_volume_fails_with_enospc_and_loses_none() {
    let mut h = harness();
    let img = h.mkfs("v.img", "32M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.mount_remote(&addr).unwrap();
    std::fs::create_dir(mp.join("src")).unwrap();
    // An empty directory has no block yet: the first entry moved into it needs one.
    std::fs::create_dir(mp.join("dst")).unwrap();
    for i in 0..FILES {
        std::fs::write(
            mp.join("src").join(format!("file-{i:03}")),
            format!("contents of {i}"),
        )
        .unwrap();
    }
    fill_up(&mp);

    // All of them with mv, as a user would.
    let (mut mv, inner) = h.command_in(&mp, "mv").unwrap();
    mv.args((0..FILES).map(|i| inner.join(format!("src/file-{i:03}"))))
        .arg(inner.join("dst"));
    let out = mv.output().unwrap();
    assert!(!out.status.success(), "mv into a full volume succeeded");
    assert_every_file_in_src(&mp);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let refused = stderr
        .lines()
        .filter(|l| l.contains("No space left on device"))
        .count();
    assert_eq!(refused, FILES, "mv said: {stderr}");
    // One rename by hand: the errno is ENOSPC, and the file stays.
    let e = std::fs::rename(mp.join("src/file-000"), mp.join("dst/file-000")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    assert_every_file_in_src(&mp);

    // The server's image agrees after a clean stop, and again after a restart.
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.mount_remote(&addr).unwrap();
    assert_every_file_in_src(&mp);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// A write answered at once and refused on its way (write-behind: the volume is full) is
/// reported by every flush and fsync of the file until its last close on the mount: the
/// close of a copy of the descriptor (as a forked child's exec closes it) does not take the
/// error from the writer, whose fsync and close report it too. The file opened again after
/// that starts clean.
#[test]
fn a_refused_write_is_reported_by_every_flush_and_fsync_until_the_last_close() {
    let mut h = harness();
    let img = h.mkfs("v.img", "32M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let mp = h.mount_remote(&addr).unwrap();
    let late = mp.join("late");
    let mut f = std::fs::File::create(&late).unwrap();
    fill_up(&mp);
    f.write_all(&[7u8; 4096])
        .expect("answered before the server has it");
    let copy = f.try_clone().unwrap();
    let e = close(copy).expect_err("the close of the copy reports the refused write");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    let e = f.sync_all().expect_err("the writer's fsync reports it too");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    let e = close(f).expect_err("and its close");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    std::fs::remove_file(mp.join("hog")).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&late).unwrap();
    f.sync_all()
        .expect("opened again after the last close: clean");
    f.write_all(&[8u8; 4096]).unwrap();
    f.sync_all().unwrap();
    close(f).unwrap();
    assert_eq!(std::fs::read(&late).unwrap(), vec![8u8; 4096]);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
