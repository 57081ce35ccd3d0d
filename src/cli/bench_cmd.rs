//! `rwxfs bench [--mounts M1,M2,...] [--writers N] [--size S] [--files N] [--seconds N]
//! [--only W,...] [--json] [--plot FILE.svg]`

use std::path::PathBuf;

use rwxfs_benches::workloads::Settings;
use rwxfs_benches::Options;

pub struct Args {
    pub mounts: Vec<PathBuf>,
    pub writers: usize,
    pub size: u64,
    pub files: usize,
    pub seconds: u64,
    pub only: Vec<String>,
    pub json: bool,
    pub plot: Option<PathBuf>,
}

pub fn run(a: Args) -> i32 {
    if a.mounts.is_empty() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "rwxfs bench: its own mounts need root (CAP_SYS_ADMIN) here; run it as root, \
                 or give --mounts"
            );
            return 1;
        }
        if std::fs::metadata("/dev/fuse").is_err() {
            eprintln!("rwxfs bench: FUSE is unavailable: /dev/fuse does not exist");
            return 1;
        }
    }
    let bin = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rwxfs"));
    let mut scaling: Vec<usize> = [1, 2, 4, 8]
        .into_iter()
        .filter(|k| *k <= a.writers.max(8))
        .collect();
    if !scaling.contains(&a.writers) {
        scaling.push(a.writers);
        scaling.sort_unstable();
    }
    rwxfs_benches::run(Options {
        mounts: a.mounts,
        settings: Settings {
            writers: a.writers,
            size: a.size,
            files: a.files,
            seconds: a.seconds,
            scaling,
        },
        json: a.json,
        plot: a.plot,
        only: a.only,
        bin,
    })
}
