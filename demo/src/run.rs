//! One workload, run three times — through the server, with every client's own engine on one
//! shared image, and direct (metadata through the server, file data on the shared image
//! itself) — then verified from a fresh single mount and with fsck.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use volume::fsck;
use volume::{FileStore, Volume};

use crate::harness::Harness;
use crate::picture;
use crate::report::{explain, DemoReport, SideReport};
use crate::workload::{layout, run_all, verify, ClientResult, Verification};
use volume::Ino;

#[derive(Debug, Clone)]
/// What `rwxfs demo` runs.
pub struct DemoOptions {
    /// The rwxfs binary to start servers and mounts with.
    pub bin: PathBuf,
    /// Clients writing at once.
    pub clients: usize,
    /// Files each client writes.
    pub files: usize,
    /// The image's size, as mkfs takes it.
    pub image_size: String,
    /// Show progress while it runs.
    pub progress: bool,
    /// Where to write each run's block map (SVG and PNG), if anywhere.
    pub picture_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Where the engine runs.
pub enum Placement {
    /// One server owns the image; every client mounts it over TCP.
    Shared,
    /// Every client runs its own engine directly on the one image.
    Raw,
    /// One server owns the metadata; every client reads and writes file data on the image
    /// itself at the blocks the server's layouts give it.
    Direct,
}

fn prepare(image: &Path, clients: usize) -> Result<(), String> {
    let store = FileStore::open(image).map_err(|e| e.to_string())?;
    let mut v = Volume::open(store).map_err(|e| e.to_string())?;
    for d in layout(clients) {
        v.mkdir(Ino::ROOT, d.as_bytes(), 0o777, 0, 0)
            .map_err(|e| e.to_string())?;
    }
    v.commit().map_err(|e| e.to_string())
}

/// Run the workload in one placement and judge the result.
pub fn run_side(
    h: &mut Harness,
    placement: Placement,
    opts: &DemoOptions,
    stop: &Arc<AtomicBool>,
) -> Result<SideReport, String> {
    let name = match placement {
        Placement::Shared => "shared.img",
        Placement::Raw => "raw.img",
        Placement::Direct => "direct.img",
    };
    let image = h.mkfs(name, &opts.image_size)?;
    prepare(&image, opts.clients)?;
    let mounts = mount_all(h, placement, &image, opts.clients)?;
    let label = match placement {
        Placement::Shared => "shared (server)",
        Placement::Raw => "raw (one image)",
        Placement::Direct => "direct",
    };
    let progress = Progress::start(opts, label);
    let started = Instant::now();
    let results = run_all(
        &mounts,
        opts.clients,
        opts.files,
        progress.count.clone(),
        stop.clone(),
    );
    let seconds = started.elapsed().as_secs_f64();
    let bar = progress.stop();
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    if let Some(b) = &bar {
        b.set_message("verifying");
    }
    h.unmount_all()?;
    h.stop_server()?;

    // fsck first (it only reads), then a fresh single mount: the honest engine alone.
    let (fsck_report, block_map) = match FileStore::open_read_only(&image) {
        Ok(s) => (fsck::check(&s), fsck::block_map(&s).ok()),
        Err(e) => (Err(volume::FsError::from(e)), None),
    };
    let verification = verify_alone(h, &image, &results, opts.clients)?;
    if let Some(b) = bar {
        b.finish_with_message(format!("done in {seconds:.1} s"));
    }
    let mut side = side_report(&results, &verification, fsck_report, seconds);
    if let (Some(dir), Some(map)) = (&opts.picture_dir, &block_map) {
        let name = name.trim_end_matches(".img");
        side.picture = Some(picture::write(map, dir, name, label)?);
    }
    side.block_map = block_map;
    Ok(side)
}

/// `clients` mounts of `image` in `placement`: each through a server started for them (direct
/// or not), or each with its own engine on the image.
fn mount_all(
    h: &mut Harness,
    placement: Placement,
    image: &Path,
    clients: usize,
) -> Result<Vec<PathBuf>, String> {
    let mut mounts = Vec::new();
    if placement == Placement::Raw {
        for _ in 0..clients {
            mounts.push(h.mount_raw(image)?);
        }
        return Ok(mounts);
    }
    let addr = h.start_server(image, &[])?;
    let extra: &[&str] = match placement {
        Placement::Direct => &["--direct"],
        _ => &[],
    };
    for _ in 0..clients {
        mounts.push(h.mount_remote_with(&addr, extra)?);
    }
    Ok(mounts)
}

/// The files written so far, counted by the clients and shown on a progress bar (when the
/// options ask for one) by a thread of its own.
struct Progress {
    count: Arc<AtomicU64>,
    bar: Option<indicatif::ProgressBar>,
    done: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(opts: &DemoOptions, label: &str) -> Progress {
        let total = (opts.clients * opts.files) as u64;
        let bar = opts.progress.then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>16} [{bar:40}] {pos}/{len} files {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b
        });
        let count = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let ticker = bar.clone().map(|b| {
            let p = count.clone();
            let d = done.clone();
            std::thread::spawn(move || {
                while !d.load(Ordering::Relaxed) {
                    b.set_position(p.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Progress {
            count,
            bar,
            done,
            ticker,
        }
    }

    /// Stops the thread that moves the bar; the bar, for what follows.
    fn stop(self) -> Option<indicatif::ProgressBar> {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker {
            let _ = t.join();
        }
        self.bar
    }
}

/// What a fresh single mount of `image` (the honest engine alone) finds of what the clients
/// wrote; every file unreadable if it does not mount any more.
fn verify_alone(
    h: &mut Harness,
    image: &Path,
    results: &[ClientResult],
    clients: usize,
) -> Result<Verification, String> {
    Ok(match h.mount_raw(image) {
        Ok(mp) => {
            let v = verify(&mp, results, &layout(clients));
            h.unmount(&mp)?;
            v
        }
        Err(e) => {
            let n: u64 = results.iter().map(|r| r.expected.len() as u64).sum();
            Verification {
                expected: n,
                unreadable: n,
                unreadable_examples: vec![format!("the volume does not mount any more: {e}")],
                missing_by_client: vec![0; results.len()],
                ..Default::default()
            }
        }
    })
}

/// One side's numbers and explanations, from what the clients did, what was found afterwards
/// and fsck's report (or why fsck could not read the volume).
fn side_report(
    results: &[ClientResult],
    verification: &Verification,
    fsck_report: Result<fsck::Report, volume::FsError>,
    seconds: f64,
) -> SideReport {
    let bytes: u64 = results.iter().map(|r| r.bytes_written).sum();
    let mut side = SideReport {
        files_written: results.iter().map(|r| r.files_written).sum(),
        expected_files: verification.expected,
        missing: verification.missing,
        wrong_content: verification.wrong_content,
        unreadable: verification.unreadable,
        op_errors: results.iter().map(|r| r.op_errors).sum(),
        seconds,
        mb_per_s: bytes as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        ..Default::default()
    };
    match fsck_report {
        Ok(r) => {
            side.fsck_errors = r.errors();
            for (k, n) in &r.by_kind {
                let key = serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                side.fsck_by_kind.insert(key, *n);
            }
            side.explanations = explain(&r, verification);
        }
        Err(e) => {
            side.fsck_errors = 1;
            side.fsck_by_kind.insert("unreadable_image".into(), 1);
            side.explanations = vec![format!("fsck cannot even read the volume: {e}")];
            side.explanations
                .extend(explain(&fsck::Report::default(), verification));
        }
    }
    side
}

/// The whole demo: the three placements, one after the other, each in its own scratch image.
pub fn run_demo(opts: &DemoOptions) -> Result<DemoReport, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    if let Some(dir) = &opts.picture_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("the pictures' directory {}: {e}", dir.display()))?;
    }
    let mut h = Harness::new(opts.bin.clone()).map_err(|e| format!("scratch directory: {e}"))?;
    let shared = run_side(&mut h, Placement::Shared, opts, &stop)?;
    let raw = run_side(&mut h, Placement::Raw, opts, &stop)?;
    let direct = run_side(&mut h, Placement::Direct, opts, &stop)?;
    Ok(DemoReport {
        clients: opts.clients,
        files_per_client: opts.files,
        shared,
        raw,
        direct,
    })
}
