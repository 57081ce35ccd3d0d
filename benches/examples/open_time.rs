//! What a server taking over a volume pays before it listens, against the volume's size:
//! the engine's open (superblock, journal replay, free-space count, files left unlinked while
//! open) and the reclaim of those nothing holds, and the memory the engine holds after.
//!
//! ```text
//! cargo run --release -p rwxfs-benches --example open_time -- FILES [--size GIB] [--dir PATH]
//! ```
//!
//! Builds a volume of FILES files (a thousand to a directory, through the engine, not a mount)
//! in a sparse image under `--dir` (default: the system's temp dir), with a few files unlinked
//! while open left behind as a crash would leave them, then opens it in a fresh process: once
//! with the image's pages dropped from the page cache (cold, as a standby on another machine
//! reads it) and once warm. Prints the times, the opening process's memory (resident after
//! open, and its peak), then the time and memory of one lookup in every directory (each
//! builds that directory's index), and removes the image.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use volume::{mkfs, FileStore, Ino, MkfsOptions, Volume};

const PER_DIR: u64 = 1000;
/// Files left unlinked while open, as a crash leaves them: open visits these.
const ORPHANS: u64 = 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--open") {
        let Some(image) = args.get(1) else {
            fail("--open needs an image");
        };
        open_once(Path::new(image));
        return;
    }
    let files: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| fail("usage: open_time FILES [--size GIB] [--dir PATH]"));
    let size_gib: u64 = flag(&args, "--size")
        .map(|s| s.parse().unwrap_or_else(|_| fail("--size takes GiB")))
        .unwrap_or_else(|| (files * 32 * 1024).div_ceil(1 << 30).max(1));
    let dir = flag(&args, "--dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::Builder::new()
        .prefix("rwxfs-open-time")
        .tempdir_in(&dir)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let image = tmp.path().join("image");
    let built = Instant::now();
    build(&image, files, size_gib);
    println!(
        "built: {files} files on a {size_gib} GiB volume in {:.1} s; {ORPHANS} left unlinked while open before each open",
        built.elapsed().as_secs_f64()
    );
    for cold in [true, false] {
        leave_orphans(&image);
        if cold {
            drop_cache(&image);
        }
        let out = Command::new(std::env::current_exe().expect("own path"))
            .arg("--open")
            .arg(&image)
            .output()
            .expect("run the opener");
        if !out.status.success() {
            fail(&String::from_utf8_lossy(&out.stderr));
        }
        let which = if cold { "cold" } else { "warm" };
        print!("{which}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn fail(why: &str) -> ! {
    eprintln!("open_time: {why}");
    std::process::exit(2)
}

/// A fresh sparse image of `size_gib` GiB with `files` empty files.
fn build(image: &Path, files: u64, size_gib: u64) {
    let f = File::create(image).expect("create image");
    f.set_len(size_gib << 30).expect("size image");
    drop(f);
    let store = FileStore::open(image).expect("open image");
    mkfs(&store, &MkfsOptions::default()).expect("mkfs");
    let mut v = Volume::open(store).expect("open");
    let mut dir = Ino::ROOT;
    for i in 0..files {
        if i % PER_DIR == 0 {
            let name = format!("d{}", i / PER_DIR);
            dir = v
                .mkdir(Ino::ROOT, name.as_bytes(), 0o755, 0, 0)
                .expect("mkdir")
                .ino;
        }
        let name = format!("f{i}");
        v.create(dir, name.as_bytes(), 0o644, 0, 0).expect("create");
    }
    v.commit().expect("commit");
}

/// Leave `ORPHANS` files unlinked while open, the volume dropped without closing them (as a
/// crash leaves it): the next open finds them.
fn leave_orphans(image: &Path) {
    let store = FileStore::open(image).expect("open image");
    let mut v = Volume::open(store).expect("open");
    for i in 0..ORPHANS {
        let name = format!("orphan{i}");
        let ino = v
            .create(Ino::ROOT, name.as_bytes(), 0o644, 0, 0)
            .expect("create")
            .ino;
        v.open_file(ino).expect("open file");
        v.unlink(Ino::ROOT, name.as_bytes()).expect("unlink");
    }
    v.commit().expect("commit");
}

/// Drop the image's pages from the page cache, so the open reads from the disk.
fn drop_cache(image: &Path) {
    let f = File::open(image).expect("open image");
    f.sync_all().expect("sync image");
    // SAFETY: a plain advice call on a file descriptor this function owns.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        fail(&format!("posix_fadvise: {rc}"));
    }
}

/// In the opener process: open as a server taking over does, reclaim what nothing holds,
/// print the time and the memory.
fn open_once(image: &Path) {
    let rss_before = status_kib("VmRSS:");
    let t = Instant::now();
    let store = FileStore::open(image).expect("open image");
    let mut v = Volume::open_keeping_orphans(store).expect("open volume");
    let found = v.orphans().len();
    let freed = v.reclaim_orphans().expect("reclaim");
    let took = t.elapsed();
    let rss = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    println!(
        "open {:.3} s ({found} unlinked while open found, {freed} freed); resident {:.1} MiB \
         after open ({:.1} MiB of it the open's), peak {:.1} MiB",
        took.as_secs_f64(),
        rss as f64 / 1024.0,
        rss.saturating_sub(rss_before) as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    // Then what serving costs as it goes: one lookup in every directory builds its index.
    let t = Instant::now();
    let mut dirs = 0u64;
    while let Ok(d) = v.lookup(Ino::ROOT, format!("d{dirs}").as_bytes()) {
        let first = format!("f{}", dirs * PER_DIR);
        v.lookup(d.ino, first.as_bytes()).expect("lookup");
        dirs += 1;
    }
    println!(
        "      a lookup in each of {dirs} directories {:.3} s; resident {:.1} MiB after",
        t.elapsed().as_secs_f64(),
        status_kib("VmRSS:") as f64 / 1024.0
    );
    drop(v);
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
