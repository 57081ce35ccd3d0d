//! `rwxfs bench [--mounts M1,M2,...] [--writers N] [--size S] [--files N] [--seconds N]
//! [--only W,...] [--json] [--plot FILE.svg]`

use std::path::PathBuf;

use rwxfs_benches::workloads::Settings;
use rwxfs_benches::Options;

// The command's arguments (no doc comment here: clap would take it as the subcommand's help).
#[derive(clap::Args)]
pub struct Args {
    /// Mount points of one shared volume, comma-separated (writer i uses mount i, reads
    /// back go through another); default: start an image, a server and mounts.
    #[arg(long, value_delimiter = ',', value_name = "M1,M2,...")]
    pub mounts: Vec<PathBuf>,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Size of the large file (K, M, G suffixes); the multi-writer runs share it.
    #[arg(long, default_value = "512M", value_parser = super::parse_bytes)]
    pub size: u64,
    /// Small files per process.
    #[arg(long, default_value_t = 2000)]
    pub files: usize,
    /// Seconds of random 4 KiB writes.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Only these workloads: sequential, writers, small, random, scaling.
    #[arg(long, value_delimiter = ',', value_name = "W,...")]
    pub only: Vec<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Plot throughput against concurrent writers to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Run on two clusters of its own, side by side: mounts through the server, then direct
    /// mounts (file data on the image itself); the writers curve of both in one table, and in
    /// one plot with --plot.
    #[arg(long, conflicts_with = "mounts")]
    pub direct: bool,
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
        direct: a.direct,
    })
}
