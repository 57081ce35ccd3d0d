//! The server restarted under writing mounts, once planned (SIGTERM, as an upgrade or a node
//! drain) and once crashed (SIGKILL): how long until it serves again, and until a new call
//! has returned on every mount. Every mount keeps appending to its own file through the
//! restart and never fsyncs; afterwards every byte each writer was told it wrote is read back
//! through another mount. Only on the benchmark's own cluster (it restarts its server).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::cluster::Cluster;
use crate::pattern::fill;
use crate::workloads::{verify_len, verify_range, Outcome, Settings, WorkDir};

const CHUNK: usize = 64 << 10;
/// A writer's pace, one chunk each (about 1.3 MB/s a mount): a steady load, which the probes
/// measure the restart against, not a flood that fills the volume while they wait.
const PACE: Duration = Duration::from_millis(50);
/// Each writer writes this much before the restart, and again after it, before the run ends.
const PROGRESS: u64 = 1 << 20;
/// A writer that makes no progress for this long has stalled: the run reports it.
const STALLED: Duration = Duration::from_secs(120);

/// Both restarts, planned then crashed.
pub fn restarts(c: &Cluster, w: &WorkDir, _s: &Settings, bar: &ProgressBar) -> Vec<Outcome> {
    if !c.restartable() {
        eprintln!("  restart: skipped (it restarts the benchmark's own server; not with --mounts)");
        return Vec::new();
    }
    let mut out = Vec::new();
    for crash in [false, true] {
        out.extend(restart(c, w, crash, bar));
    }
    out
}

/// One mount's writer: appends the pattern of `stream` to `path` until told to stop.
struct Writer {
    path: PathBuf,
    stream: u64,
    written: Arc<AtomicU64>,
    thread: JoinHandle<Result<(), String>>,
}

fn start_writer(path: PathBuf, stream: u64, stop: Arc<AtomicBool>, bar: ProgressBar) -> Writer {
    let written = Arc::new(AtomicU64::new(0));
    let (p, n) = (path.clone(), written.clone());
    let thread = std::thread::spawn(move || {
        let f = File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut buf = vec![0u8; CHUNK];
        while !stop.load(Ordering::Relaxed) {
            let at = n.load(Ordering::Relaxed);
            fill(&mut buf, stream, at);
            f.write_all_at(&buf, at)
                .map_err(|e| format!("{} at {at}: {e}", p.display()))?;
            n.store(at + CHUNK as u64, Ordering::Relaxed);
            bar.inc(CHUNK as u64);
            std::thread::sleep(PACE);
        }
        Ok(())
    });
    Writer {
        path,
        stream,
        written,
        thread,
    }
}

/// Wait until every writer has written `more` bytes past `from[i]`, or one stalls.
fn progressed(ws: &[Writer], from: &[u64], more: u64) -> Result<(), String> {
    let start = Instant::now();
    while ws
        .iter()
        .zip(from)
        .any(|(w, f)| w.written.load(Ordering::Relaxed) < f + more && !w.thread.is_finished())
    {
        if start.elapsed() > STALLED {
            return Err(format!("a writer made no progress for {STALLED:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A new file written and fsynced through each mount at once: how long after `t0` the last
/// of them returned.
fn probe_all(c: &Cluster, w: &WorkDir, tag: &str, t0: Instant) -> Result<Duration, String> {
    let probes: Vec<_> = (0..c.mounts.len())
        .map(|i| {
            let p = w.on(c, i).join(format!("probe-{tag}-{i}"));
            std::thread::spawn(move || {
                let f = OpenOptions::new().create_new(true).write(true).open(&p);
                f.and_then(|f| f.write_all_at(b"probe", 0).and_then(|_| f.sync_all()))
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                Ok::<_, String>(t0.elapsed())
            })
        })
        .collect();
    let mut last = Duration::ZERO;
    for p in probes {
        last = last.max(p.join().map_err(|_| "a probe panicked".to_string())??);
    }
    Ok(last)
}

fn restart(c: &Cluster, w: &WorkDir, crash: bool, bar: &ProgressBar) -> Vec<Outcome> {
    let (kind, tag) = if crash {
        ("crash (SIGKILL)", "crash")
    } else {
        ("planned (SIGTERM)", "planned")
    };
    let n = c.mounts.len();
    let stop = Arc::new(AtomicBool::new(false));
    let ws: Vec<Writer> = (0..n)
        .map(|i| {
            let path = w.on(c, i).join(format!("restart-{tag}-{i}"));
            start_writer(
                path,
                9000 + 100 * crash as u64 + i as u64,
                stop.clone(),
                bar.clone(),
            )
        })
        .collect();
    let zero = vec![0; n];
    let mut wrong = progressed(&ws, &zero, PROGRESS).err();
    // The same probe under the same load without a restart: what the restart adds is the
    // difference.
    let t = Instant::now();
    let steady = probe_all(c, w, &format!("{tag}-steady"), t).unwrap_or_else(|e| {
        first(&mut wrong, e);
        Duration::ZERO
    });
    let t0 = Instant::now();
    let (serving, answered) = match c.restart_server(crash) {
        Ok(()) => {
            let serving = t0.elapsed();
            let answered = probe_all(c, w, tag, t0);
            (serving, answered)
        }
        Err(e) => (t0.elapsed(), Err(e)),
    };
    let answered = answered.unwrap_or_else(|e| {
        first(&mut wrong, e);
        Duration::ZERO
    });
    // The writers go on after it: each writes as much again before they stop.
    let after: Vec<u64> = ws
        .iter()
        .map(|w| w.written.load(Ordering::Relaxed))
        .collect();
    if let Err(e) = progressed(&ws, &after, PROGRESS) {
        first(&mut wrong, e);
    }
    stop.store(true, Ordering::Relaxed);
    for (i, wr) in ws.into_iter().enumerate() {
        match wr.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first(&mut wrong, format!("writer {i}: {e}")),
            Err(_) => first(&mut wrong, format!("writer {i} panicked")),
        }
        let len = wr.written.load(Ordering::Relaxed);
        // Read back through another mount than the one that wrote it.
        let there = w.on(c, i + 1).join(wr.path.file_name().unwrap_or_default());
        let check = verify_len(&there, len).and_then(|_| verify_range(&there, wr.stream, 0, len));
        if let Err(e) = check {
            first(&mut wrong, e);
        }
        let _ = std::fs::remove_file(&wr.path);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let verdict = wrong.map_or(Ok(()), Err);
    vec![
        Outcome::new(
            format!("restart, {kind}: a call returned on all {n} mounts, before it"),
            ms(steady),
            "ms",
        ),
        Outcome::new(format!("restart, {kind}: serving again"), ms(serving), "ms"),
        Outcome::new(
            format!("restart, {kind}: a call returned on all {n} mounts, after it"),
            ms(answered),
            "ms",
        )
        .checked(verdict),
    ]
}

/// Keep the first thing found wrong.
fn first(wrong: &mut Option<String>, e: String) {
    wrong.get_or_insert(e);
}
