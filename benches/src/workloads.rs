//! The workloads, each timed and then verified (a benchmark that also catches wrong data):
//! every byte written is a pattern of its stream and offset (`pattern`), read back through
//! another mount than the one that wrote it whenever there is one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::cluster::Cluster;
use crate::pattern::{fill, first_mismatch};

const MIB: u64 = 1 << 20;
const IO: usize = 1 << 20;
const SMALL: usize = 4096;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent writers (each through its own mount where there are enough).
    pub writers: usize,
    /// Bytes of the large file; the multi-writer workloads share this total.
    pub size: u64,
    /// Small files per process.
    pub files: usize,
    /// Length of the random-write run.
    pub seconds: u64,
    /// Writer counts for the scaling curve.
    pub scaling: Vec<usize>,
}

/// One measured figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The workload's name.
    pub workload: String,
    /// The figure.
    pub value: f64,
    /// Its unit (MB/s, files/s, ...).
    pub unit: &'static str,
    /// `None` when verified; the first thing found wrong otherwise.
    pub wrong: Option<String>,
    /// How it was measured, for the reader.
    pub note: String,
    /// For the scaling curve: the number of writers.
    pub writers: Option<usize>,
}

impl Outcome {
    pub(crate) fn new(workload: impl Into<String>, value: f64, unit: &'static str) -> Outcome {
        Outcome {
            workload: workload.into(),
            value,
            unit,
            wrong: None,
            note: String::new(),
            writers: None,
        }
    }

    pub(crate) fn checked(mut self, r: Result<(), String>) -> Outcome {
        self.wrong = r.err();
        self
    }
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64().max(1e-9)
}

fn ops_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Write `len` bytes of `stream` at `start` of the open file, in 1 MiB writes.
fn write_range(
    f: &File,
    stream: u64,
    start: u64,
    len: u64,
    bar: &ProgressBar,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; IO];
    let mut at = start;
    while at < start + len {
        let n = (start + len - at).min(IO as u64) as usize;
        fill(&mut buf[..n], stream, at);
        f.write_all_at(&buf[..n], at)?;
        bar.inc(n as u64);
        at += n as u64;
    }
    Ok(())
}

/// A new file of `len` bytes of `stream`, fsynced.
fn write_file(p: &Path, stream: u64, len: u64, bar: &ProgressBar) -> std::io::Result<()> {
    let f = File::create(p)?;
    write_range(&f, stream, 0, len, bar)?;
    f.sync_all()
}

/// Check `len` bytes at `start` of `p` against `stream`.
pub(crate) fn verify_range(p: &Path, stream: u64, start: u64, len: u64) -> Result<(), String> {
    let f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut buf = vec![0u8; IO];
    let mut at = start;
    while at < start + len {
        let n = (start + len - at).min(IO as u64) as usize;
        f.read_exact_at(&mut buf[..n], at)
            .map_err(|e| format!("{} at {at}: {e}", p.display()))?;
        if let Some(bad) = first_mismatch(&buf[..n], stream, at) {
            return Err(format!("{}: wrong byte at offset {bad}", p.display()));
        }
        at += n as u64;
    }
    Ok(())
}

pub(crate) fn verify_len(p: &Path, len: u64) -> Result<(), String> {
    let got = std::fs::metadata(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .len();
    if got != len {
        return Err(format!("{}: {got} bytes, expected {len}", p.display()));
    }
    Ok(())
}

/// Empty the page caches, so a read is cold (needs root). False if it could not.
fn drop_caches() -> bool {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// A work directory of this run as seen through every mount.
pub struct WorkDir {
    /// The directory's name under each mount's root.
    pub name: String,
}

impl WorkDir {
    /// Make a fresh directory, under a random name, through the first mount.
    pub fn create(c: &Cluster) -> Result<WorkDir, String> {
        let mut r = [0u8; 4];
        let _ = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut r));
        let name = format!("rwxfs-bench-{}", u32::from_le_bytes(r));
        std::fs::create_dir(c.mount(0).join(&name))
            .map_err(|e| format!("{}: {e}", c.mount(0).display()))?;
        Ok(WorkDir { name })
    }

    /// The directory as `mount` (round robin) sees it.
    pub fn on(&self, c: &Cluster, mount: usize) -> PathBuf {
        c.mount(mount).join(&self.name)
    }

    /// Remove it and all it holds.
    pub fn remove(&self, c: &Cluster) {
        let _ = std::fs::remove_dir_all(self.on(c, 0));
    }
}

/// Sequential write of one large file through mount 0, then a cold read of it through
/// another mount.
pub fn sequential(c: &Cluster, w: &WorkDir, s: &Settings, bar: &ProgressBar) -> Vec<Outcome> {
    bar.set_length(s.size * 2);
    let p = w.on(c, 0).join("sequential");
    let t = Instant::now();
    let r = write_file(&p, 1, s.size, bar);
    let write = Outcome::new(
        "sequential write, 1 MiB I/O",
        mib_s(s.size, t.elapsed()),
        "MiB/s",
    );
    if let Err(e) = r {
        return vec![write.checked(Err(format!("write: {e}")))];
    }
    let cold = drop_caches();
    let q = w.on(c, 1).join("sequential");
    let t = Instant::now();
    let read = (|| -> std::io::Result<u64> {
        let mut f = File::open(&q)?;
        let mut buf = vec![0u8; IO];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            bar.inc(n as u64);
        }
    })();
    let took = t.elapsed();
    let mut read_o = Outcome::new("sequential read, cold cache", mib_s(s.size, took), "MiB/s");
    if !cold {
        read_o.note = "caches not dropped (needs root): not cold".into();
    }
    let verified = match read {
        Err(e) => Err(format!("read: {e}")),
        Ok(n) if n != s.size => Err(format!("read {n} bytes of {}", s.size)),
        Ok(_) => verify_range(&q, 1, 0, s.size),
    };
    vec![write.checked(verified.clone()), read_o.checked(verified)]
}

/// `k` writers at once, writer i through mount i: each its own file, or (`shared`) each its
/// own region of one file. The total is `total` bytes.
fn writers(
    c: &Cluster,
    w: &WorkDir,
    k: usize,
    total: u64,
    shared: bool,
    tag: &str,
    bar: &ProgressBar,
) -> (Duration, Result<(), String>) {
    let per = (total / k as u64 / MIB).max(1) * MIB;
    bar.set_length(bar.length().unwrap_or(0) + per * k as u64);
    let shared_name = format!("{tag}-shared");
    if shared {
        let r = File::create(w.on(c, 0).join(&shared_name)).and_then(|f| {
            f.set_len(per * k as u64)?;
            f.sync_all()
        });
        if let Err(e) = r {
            return (
                Duration::ZERO,
                Err(format!("creating the shared file: {e}")),
            );
        }
    }
    let start = Arc::new(Barrier::new(k + 1));
    let threads: Vec<_> = (0..k)
        .map(|i| {
            let (p, stream) = if shared {
                (w.on(c, i).join(&shared_name), 200)
            } else {
                (w.on(c, i).join(format!("{tag}-{i}")), 100 + i as u64)
            };
            let (start, bar) = (start.clone(), bar.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                let f = if shared {
                    OpenOptions::new().write(true).open(&p)?
                } else {
                    File::create(&p)?
                };
                start.wait();
                let from = if shared { per * i as u64 } else { 0 };
                write_range(&f, stream, from, per, &bar)?;
                f.sync_all()
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    let results: Vec<std::io::Result<()>> = threads
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")))
        })
        .collect();
    let took = t.elapsed();
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        return (took, Err(format!("a writer failed: {e}")));
    }
    // Read back through mounts the writers did not use where there are such.
    let verified = if shared {
        let p = w.on(c, k).join(&shared_name);
        verify_len(&p, per * k as u64).and_then(|_| verify_range(&p, 200, 0, per * k as u64))
    } else {
        (0..k).try_for_each(|i| {
            let p = w.on(c, i + 1).join(format!("{tag}-{i}"));
            verify_len(&p, per).and_then(|_| verify_range(&p, 100 + i as u64, 0, per))
        })
    };
    (took, verified)
}

/// Many writers at once, each on its own file, spread over the mounts: MB/s in all.
pub fn many_writers(c: &Cluster, w: &WorkDir, s: &Settings, bar: &ProgressBar) -> Vec<Outcome> {
    let n = s.writers;
    let (t1, v1) = writers(c, w, n, s.size, false, "own", bar);
    let (t2, v2) = writers(c, w, n, s.size, true, "one", bar);
    let per = (s.size / n as u64 / MIB).max(1) * MIB * n as u64;
    vec![
        Outcome::new(
            format!("{n} writers, own mounts, own files"),
            mib_s(per, t1),
            "MiB/s",
        )
        .checked(v1),
        Outcome::new(
            format!("{n} writers, one file, disjoint regions"),
            mib_s(per, t2),
            "MiB/s",
        )
        .checked(v2),
    ]
}

/// Aggregate throughput against the number of concurrent writers, each on its own mount.
pub fn scaling(c: &Cluster, w: &WorkDir, s: &Settings, bar: &ProgressBar) -> Vec<Outcome> {
    let total = (s.size / 2).max(MIB);
    s.scaling
        .iter()
        .map(|&k| {
            let (t, v) = writers(c, w, k, total, false, &format!("scale{k}"), bar);
            let per = (total / k as u64 / MIB).max(1) * MIB * k as u64;
            let who = if k == 1 {
                "1 writer".to_string()
            } else {
                format!("{k} writers")
            };
            let mut o = Outcome::new(format!("scaling: {who}"), mib_s(per, t), "MiB/s").checked(v);
            o.writers = Some(k);
            if k > c.mounts.len() {
                o.note = format!("{} mounts shared among {k} writers", c.mounts.len());
            }
            // Free the space for the next point.
            for i in 0..k {
                let _ = std::fs::remove_file(w.on(c, 0).join(format!("scale{k}-{i}")));
            }
            o
        })
        .collect()
}

fn small_stream(proc_: usize, j: usize) -> u64 {
    (1 << 40) | (proc_ as u64) << 24 | j as u64
}

/// Process `i` of `small_files` in `dir`: its `files` files created, stat'ed, listed and
/// unlinked, each phase between two waits on `barrier` so the caller times it alone.
fn small_worker(
    dir: &Path,
    i: usize,
    files: usize,
    barrier: &Barrier,
    bar: &ProgressBar,
) -> Result<(), String> {
    let mut buf = vec![0u8; SMALL];
    let name = |j: usize| dir.join(format!("f{j}"));
    barrier.wait();
    for j in 0..files {
        fill(&mut buf, small_stream(i, j), 0);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(name(j))
            .map_err(|e| format!("create: {e}"))?;
        f.write_all(&buf).map_err(|e| format!("write: {e}"))?;
        drop(f);
        bar.inc(1);
    }
    barrier.wait();
    barrier.wait();
    for j in 0..files {
        let m = std::fs::metadata(name(j)).map_err(|e| format!("stat: {e}"))?;
        if m.len() != SMALL as u64 {
            return Err(format!("f{j}: {} bytes", m.len()));
        }
        bar.inc(1);
    }
    barrier.wait();
    barrier.wait();
    let n = std::fs::read_dir(dir)
        .map_err(|e| format!("readdir: {e}"))?
        .count();
    if n != files {
        return Err(format!("readdir listed {n} of {files} files"));
    }
    bar.inc(files as u64);
    barrier.wait();
    barrier.wait();
    for j in 0..files {
        std::fs::remove_file(name(j)).map_err(|e| format!("unlink: {e}"))?;
        bar.inc(1);
    }
    barrier.wait();
    Ok(())
}

/// Every file process `i` of `small_files` wrote, read back from `dir` (seen through
/// another mount) and compared with what it wrote.
fn check_small(dir: &Path, i: usize, files: usize) -> Result<(), String> {
    let mut buf = vec![0u8; SMALL];
    (0..files).try_for_each(|j| {
        let p = dir.join(format!("f{j}"));
        let mut f = File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        f.read_exact(&mut buf)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        match first_mismatch(&buf, small_stream(i, j), 0) {
            Some(at) => Err(format!("{}: wrong byte at {at}", p.display())),
            None => Ok(()),
        }
    })
}

/// Small files, by `procs` processes at once (process i through mount i, its own
/// directory): create (open, write 4 KiB, close), stat, readdir, unlink.
fn small_files(
    c: &Cluster,
    w: &WorkDir,
    procs: usize,
    files: usize,
    bar: &ProgressBar,
) -> Vec<Outcome> {
    let label = if procs == 1 {
        "small files, 1 mount".to_string()
    } else {
        format!("small files, {procs} mounts")
    };
    bar.set_length(bar.length().unwrap_or(0) + (procs * files * 4) as u64);
    let dirs: Vec<String> = (0..procs).map(|i| format!("small{procs}-{i}")).collect();
    for d in &dirs {
        if let Err(e) = std::fs::create_dir(w.on(c, 0).join(d)) {
            return vec![Outcome::new(label, 0.0, "ops/s").checked(Err(e.to_string()))];
        }
    }
    // Phases separated by a barrier; each phase's rate is all its operations over its wall
    // time.
    let barrier = Arc::new(Barrier::new(procs + 1));
    let threads: Vec<_> = (0..procs)
        .map(|i| {
            let dir = w.on(c, i).join(&dirs[i]);
            let (barrier, bar) = (barrier.clone(), bar.clone());
            std::thread::spawn(move || small_worker(&dir, i, files, &barrier, &bar))
        })
        .collect();
    let mut phases = Vec::new();
    let mut verified = Ok(());
    for phase in 0..4 {
        barrier.wait();
        let t = Instant::now();
        barrier.wait();
        phases.push(t.elapsed());
        if phase == 0 {
            // Between create and stat (untimed): every file's content, through another mount.
            verified =
                (0..procs).try_for_each(|i| check_small(&w.on(c, i + 1).join(&dirs[i]), i, files));
        }
    }
    for t in threads {
        let r = t.join().unwrap_or_else(|_| Err("a worker panicked".into()));
        if verified.is_ok() {
            verified = r;
        }
    }
    for d in &dirs {
        let _ = std::fs::remove_dir(w.on(c, 0).join(d));
    }
    let n = procs * files;
    let names = ["create", "stat", "readdir", "unlink"];
    names
        .iter()
        .zip(&phases)
        .map(|(what, t)| {
            let unit = if *what == "readdir" {
                "entries/s"
            } else {
                "ops/s"
            };
            Outcome::new(format!("{label}: {what}"), ops_s(n, *t), unit).checked(verified.clone())
        })
        .collect()
}

/// Small files written, then read back through another mount: files/s.
pub fn small(c: &Cluster, w: &WorkDir, s: &Settings, bar: &ProgressBar) -> Vec<Outcome> {
    let mut out = small_files(c, w, 1, s.files, bar);
    if s.writers > 1 {
        out.extend(small_files(c, w, s.writers, s.files, bar));
    }
    out
}

/// Random 4 KiB overwrites of a file (laid out first, untimed) for `seconds`, one writer,
/// fsync at the end; every block then checked for its last version through another mount.
pub fn random_writes(c: &Cluster, w: &WorkDir, s: &Settings, bar: &ProgressBar) -> Vec<Outcome> {
    let len = s.size.clamp(MIB, 256 * MIB);
    let blocks = (len / SMALL as u64) as usize;
    let p = w.on(c, 0).join("random");
    // The pattern carries the offset; the stream only the block's version.
    let stream = |_block: usize, version: u32| (3u64 << 40) | (version as u64) << 20 | 7;
    let laid = (|| -> std::io::Result<File> {
        let f = File::create(&p)?;
        let mut buf = vec![0u8; SMALL];
        let mut big = Vec::with_capacity(IO);
        for b in 0..blocks {
            fill(&mut buf, stream(b, 0), b as u64 * SMALL as u64);
            big.extend_from_slice(&buf);
            if big.len() == IO || b + 1 == blocks {
                let at = (b + 1) as u64 * SMALL as u64 - big.len() as u64;
                f.write_all_at(&big, at)?;
                big.clear();
            }
        }
        f.sync_all()?;
        Ok(f)
    })();
    let f = match laid {
        Ok(f) => f,
        Err(e) => {
            return vec![Outcome::new("random 4 KiB writes", 0.0, "IOPS")
                .checked(Err(format!("layout: {e}")))]
        }
    };
    let mut versions = vec![0u32; blocks];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut buf = vec![0u8; SMALL];
    let until = Duration::from_secs(s.seconds);
    bar.set_length(s.seconds * 1000);
    let t = Instant::now();
    let mut n = 0usize;
    let mut result = Ok(());
    while t.elapsed() < until {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let b = (rng % blocks as u64) as usize;
        versions[b] += 1;
        fill(&mut buf, stream(b, versions[b]), b as u64 * SMALL as u64);
        if let Err(e) = f.write_all_at(&buf, b as u64 * SMALL as u64) {
            result = Err(format!("write: {e}"));
            break;
        }
        n += 1;
        if n.is_multiple_of(256) {
            bar.set_position(t.elapsed().as_millis() as u64);
        }
    }
    if result.is_ok() {
        result = f.sync_all().map_err(|e| format!("fsync: {e}"));
    }
    let took = t.elapsed();
    drop(f);
    let verified = result.and_then(|_| {
        let q = w.on(c, 1).join("random");
        let f = File::open(&q).map_err(|e| format!("{}: {e}", q.display()))?;
        let mut big = vec![0u8; IO];
        for chunk in 0..blocks.div_ceil(IO / SMALL) {
            let first = chunk * (IO / SMALL);
            let count = (blocks - first).min(IO / SMALL);
            let part = &mut big[..count * SMALL];
            f.read_exact_at(part, first as u64 * SMALL as u64)
                .map_err(|e| format!("{}: {e}", q.display()))?;
            for k in 0..count {
                let b = first + k;
                let at = b as u64 * SMALL as u64;
                if let Some(bad) = first_mismatch(
                    &part[k * SMALL..(k + 1) * SMALL],
                    stream(b, versions[b]),
                    at,
                ) {
                    return Err(format!(
                        "{}: block {b} (written {} times) wrong at offset {bad}",
                        q.display(),
                        versions[b]
                    ));
                }
            }
        }
        Ok(())
    });
    let mut o = Outcome::new("random 4 KiB writes", ops_s(n, took), "IOPS").checked(verified);
    o.note = format!("{n} writes over {} MiB, fsync included", len >> 20);
    vec![o]
}
