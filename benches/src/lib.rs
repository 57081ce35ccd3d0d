//! `rwxfs bench`: the benchmark users run. On mount points of any file system (`--mounts`),
//! so the same command measures rwxfs, sshfs, MooseFS or a local disk; or, without them, on a
//! cluster of its own (image, server, mounts) that it removes afterwards. Every workload
//! verifies what it wrote. The criterion micro-benchmarks of the engine, codec and lock table
//! are in `benches/`.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod cluster;
pub mod pattern;
pub mod report;
pub mod restart;
pub mod workloads;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use cluster::Cluster;
use workloads::{Outcome, Settings, WorkDir};

/// What `rwxfs bench` was asked to do.
pub struct Options {
    /// Existing mount points; none: a cluster of the benchmark's own.
    pub mounts: Vec<PathBuf>,
    /// The workloads' sizes (writers, files, bytes).
    pub settings: Settings,
    /// Print the figures as JSON instead of a table.
    pub json: bool,
    /// Draw the scaling curve into this file.
    pub plot: Option<PathBuf>,
    /// Which workloads (names from `WORKLOADS`); empty: all.
    pub only: Vec<String>,
    /// The rwxfs binary, for a cluster of its own.
    pub bin: PathBuf,
    /// Run it twice on clusters of its own, side by side: mounts through the server, then
    /// direct mounts (`rwxfs mount --direct`).
    pub direct: bool,
}

type Workload = fn(&Cluster, &WorkDir, &Settings, &ProgressBar) -> Vec<Outcome>;

/// The workloads, by the names `--only` takes.
pub const WORKLOADS: [(&str, Workload); 6] = [
    ("sequential", workloads::sequential),
    ("writers", workloads::many_writers),
    ("small", workloads::small),
    ("random", workloads::random_writes),
    ("scaling", workloads::scaling),
    ("restart", restart::restarts),
];

/// Run the benchmark; the process exit code (0: ran and every workload's data verified).
pub fn run(o: Options) -> i32 {
    match run_inner(o) {
        Ok(all_verified) => {
            if all_verified {
                0
            } else {
                2
            }
        }
        Err(e) => {
            eprintln!("rwxfs bench: {e}");
            1
        }
    }
}

fn run_inner(o: Options) -> Result<bool, String> {
    for w in &o.only {
        if !WORKLOADS.iter().any(|(n, _)| n == w) {
            let names: Vec<&str> = WORKLOADS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown workload {w:?}; there are: {}",
                names.join(", ")
            ));
        }
    }
    if let Some(p) = &o.plot {
        if p.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(format!(
                "{}: the plot is written as SVG: name it FILE.svg",
                p.display()
            ));
        }
    }
    let s = &o.settings;
    if s.writers == 0 || s.size < (1 << 20) || s.files == 0 {
        return Err("--writers and --files must be at least 1, --size at least 1M".into());
    }
    if o.direct && !o.mounts.is_empty() {
        return Err("--direct runs on clusters of the benchmark's own: leave out --mounts".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let placements: &[bool] = if o.direct { &[false, true] } else { &[false] };
    let mut runs = Vec::new();
    for &direct in placements {
        runs.push(run_on(&o, direct, &stop)?);
    }
    let curve = match runs.as_slice() {
        [server, direct] => report::curve(&server.1, &direct.1),
        _ => Vec::new(),
    };
    if o.json {
        match runs.as_slice() {
            [one] => println!("{}", report::json(&one.0, &one.1, one.2)),
            [server, direct] => println!(
                "{{\"server\": {}, \"direct\": {}, \"scaling\": {}}}",
                report::json(&server.0, &server.1, server.2),
                report::json(&direct.0, &direct.1, direct.2),
                serde_json::to_string_pretty(&curve).unwrap_or_default()
            ),
            _ => {}
        }
    } else {
        for (system, outcomes, rss) in &runs {
            println!("{}", report::table(system, outcomes, *rss));
        }
        if !curve.is_empty() {
            println!("{}", report::curve_table(&curve));
        }
    }
    if let Some(p) = &o.plot {
        let (title, series): (String, Vec<(&str, &[workloads::Outcome])>) = match runs.as_slice() {
            [server, direct] => (
                "rwxfs: aggregate write throughput against concurrent writers".into(),
                vec![
                    ("through the server", &server.1[..]),
                    ("direct", &direct.1[..]),
                ],
            ),
            runs => (
                runs.first()
                    .map(|r| format!("{}: throughput against concurrent writers", r.0))
                    .unwrap_or_default(),
                runs.iter().map(|r| (r.0.as_str(), &r.1[..])).collect(),
            ),
        };
        report::plot(p, &title, &series)?;
        eprintln!("rwxfs bench: plot written to {}", p.display());
    }
    Ok(runs.iter().all(|r| r.1.iter().all(|o| o.wrong.is_none())))
}

/// One placement's run: its system's name, every workload's outcome, its peak memory.
type Run = (String, Vec<Outcome>, Option<(u64, u64)>);

/// The workloads on the given mounts, or on a cluster of the benchmark's own whose mounts
/// go through the server or (`direct`) read and write file data on the image themselves.
fn run_on(o: &Options, direct: bool, stop: &AtomicBool) -> Result<Run, String> {
    let s = &o.settings;
    let (cluster, system) = if o.mounts.is_empty() {
        let n = s.writers.max(s.scaling.iter().copied().max().unwrap_or(1)) + 1;
        // Room for every workload's files at once, and then some.
        let image = (s.size * 4 + (512 << 20)).next_power_of_two();
        let c = Cluster::own(o.bin.clone(), image, n, direct)?;
        let how = if direct { "direct mounts" } else { "mounts" };
        eprintln!(
            "rwxfs bench: a server on {} and {n} {how} of a {} MiB image",
            c.addr.as_deref().unwrap_or("?"),
            image >> 20
        );
        (c, format!("rwxfs (own server, {n} {how})"))
    } else {
        let names: Vec<String> = o.mounts.iter().map(|m| m.display().to_string()).collect();
        (Cluster::given(o.mounts.clone())?, names.join(", "))
    };
    let dir = WorkDir::create(&cluster)?;
    let mut outcomes = Vec::new();
    for (name, run) in WORKLOADS {
        if !o.only.is_empty() && !o.only.iter().any(|w| w == name) {
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            eprintln!("rwxfs bench: interrupted; cleaning up");
            break;
        }
        outcomes.extend(run_one(name, run, &cluster, &dir, s));
    }
    let rss = cluster.peak_rss_kib();
    dir.remove(&cluster);
    cluster.finish()?;
    Ok((system, outcomes, rss))
}

/// One workload, with a progress bar, its figures told as they come.
fn run_one(
    name: &str,
    run: Workload,
    cluster: &Cluster,
    dir: &WorkDir,
    s: &Settings,
) -> Vec<Outcome> {
    let bar = ProgressBar::new(0).with_message(name.to_string());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<10} [{bar:30}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let got = run(cluster, dir, s, &bar);
    bar.finish_and_clear();
    for g in &got {
        let status = if g.wrong.is_some() {
            "WRONG DATA"
        } else {
            "verified"
        };
        eprintln!(
            "  {:<45} {:>10.1} {:<9} {status}",
            g.workload, g.value, g.unit
        );
    }
    got
}
