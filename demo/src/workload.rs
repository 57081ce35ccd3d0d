//! What users do on a shared volume, from several clients at once: files created in a shared
//! directory and in each client's own, per-client logs that grow by appends (each record
//! fsynced, as a log is), files that grow,
//! renames and deletes. Every client records what the volume should hold afterwards.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What the volume should hold: relative path → exact contents.
pub type Expected = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Default)]
/// What one client wrote.
pub struct ClientResult {
    /// Each file it wrote and what is in it.
    pub expected: Expected,
    /// Files it wrote.
    pub files_written: u64,
    /// Bytes it wrote.
    pub bytes_written: u64,
    /// Records this client appended to the one log every client shares.
    pub shared_log: Vec<Vec<u8>>,
    /// Operations the mount refused (damage already visible while writing).
    pub op_errors: u64,
}

/// The log all clients append to at once.
pub const SHARED_LOG: &str = "shared/log";

/// Deterministic contents for client `c`, file `j`: 1 to 16 KiB.
pub fn contents(c: usize, j: usize) -> Vec<u8> {
    let mut x = (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (j as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 1024 + (next() % (15 * 1024)) as usize;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Directories the workload needs, made before any client starts.
pub fn layout(clients: usize) -> Vec<String> {
    let mut d = vec!["shared".to_string()];
    d.extend((0..clients).map(|c| format!("c{c}")));
    d
}

/// Run client `c`'s share of the workload on mount `root`.
pub fn run_client(
    root: &Path,
    c: usize,
    files: usize,
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> ClientResult {
    let mut client = Client {
        root,
        c,
        r: ClientResult::default(),
        names: Vec::with_capacity(files),
        log: format!("shared/log-c{c}"),
        log_data: Vec::new(),
    };
    for j in 0..files {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        client.write_file(j);
        if j % 10 == 9 {
            client.append_own_log(j);
        }
        if j % 10 == 4 {
            client.append_shared_log(j);
        }
        if j % 5 == 4 {
            client.rename(j);
        }
        if j % 7 == 6 && j >= 3 {
            client.delete(j - 3);
        }
        if j % 20 == 19 && j >= 10 {
            client.grow(j - 10, j);
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    client.r
}

/// One client's workload in progress: what it has done so far, and what the volume should
/// hold because of it.
struct Client<'a> {
    root: &'a Path,
    c: usize,
    r: ClientResult,
    /// The name of the file written at each step, as renamed since; `None` once deleted or
    /// if it could not be written.
    names: Vec<Option<String>>,
    /// This client's own log, and what it should hold.
    log: String,
    log_data: Vec<u8>,
}

impl Client<'_> {
    /// Step `j`'s file, alternately in the shared directory and the client's own.
    fn write_file(&mut self, j: usize) {
        let c = self.c;
        let rel = if j.is_multiple_of(2) {
            format!("shared/c{c}-f{j}")
        } else {
            format!("c{c}/f{j}")
        };
        let data = contents(c, j);
        // Like an editor or a database, some files are made durable as soon as written.
        let write = |p: &Path| -> std::io::Result<()> {
            let mut f = fs::File::create(p)?;
            f.write_all(&data)?;
            if j % 25 == 24 {
                f.sync_all()?;
            }
            Ok(())
        };
        match write(&self.root.join(&rel)) {
            Ok(()) => {
                self.r.files_written += 1;
                self.r.bytes_written += data.len() as u64;
                self.r.expected.insert(rel.clone(), data);
                self.names.push(Some(rel));
            }
            Err(_) => {
                self.r.op_errors += 1;
                self.names.push(None);
            }
        }
    }

    /// A record appended to the client's own log, fsynced.
    fn append_own_log(&mut self, j: usize) {
        let rec = format!("client {} record {j}\n", self.c).into_bytes();
        let ok = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(&self.log))
            .and_then(|mut f| f.write_all(&rec).and_then(|_| f.sync_all()));
        match ok {
            Ok(()) => {
                self.log_data.extend_from_slice(&rec);
                self.r
                    .expected
                    .insert(self.log.clone(), self.log_data.clone());
                self.r.bytes_written += rec.len() as u64;
            }
            Err(_) => self.r.op_errors += 1,
        }
    }

    /// A record appended to the log every client shares.
    fn append_shared_log(&mut self, j: usize) {
        let rec = format!("shared log: client {} record {j}\n", self.c).into_bytes();
        let ok = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(SHARED_LOG))
            .and_then(|mut f| f.write_all(&rec));
        match ok {
            Ok(()) => {
                self.r.bytes_written += rec.len() as u64;
                self.r.shared_log.push(rec);
            }
            Err(_) => self.r.op_errors += 1,
        }
    }

    /// Step `j`'s file renamed to `NAME.renamed`.
    fn rename(&mut self, j: usize) {
        let Some(Some(old)) = self.names.get(j).cloned() else {
            return;
        };
        let new = format!("{old}.renamed");
        match fs::rename(self.root.join(&old), self.root.join(&new)) {
            Ok(()) => {
                if let Some(d) = self.r.expected.remove(&old) {
                    self.r.expected.insert(new.clone(), d);
                }
                self.names[j] = Some(new);
            }
            Err(_) => self.r.op_errors += 1,
        }
    }

    /// Step `k`'s file deleted.
    fn delete(&mut self, k: usize) {
        let Some(Some(victim)) = self.names.get(k).cloned() else {
            return;
        };
        match fs::remove_file(self.root.join(&victim)) {
            Ok(()) => {
                self.r.expected.remove(&victim);
                self.names[k] = None;
            }
            Err(_) => self.r.op_errors += 1,
        }
    }

    /// Step `k`'s file grown at step `j` by appending more of this client's contents.
    fn grow(&mut self, k: usize, j: usize) {
        let Some(Some(grow)) = self.names.get(k).cloned() else {
            return;
        };
        let extra = contents(self.c + 1000, j);
        let ok = OpenOptions::new()
            .append(true)
            .open(self.root.join(&grow))
            .and_then(|mut f| f.write_all(&extra));
        match ok {
            Ok(()) => {
                if let Some(d) = self.r.expected.get_mut(&grow) {
                    d.extend_from_slice(&extra);
                }
                self.r.bytes_written += extra.len() as u64;
            }
            Err(_) => self.r.op_errors += 1,
        }
    }
}

/// Run `clients` clients at once; client `c` works through `mounts[c % mounts.len()]`.
pub fn run_all(
    mounts: &[PathBuf],
    clients: usize,
    files: usize,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<ClientResult> {
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let root = mounts[c % mounts.len()].clone();
            let p = progress.clone();
            let s = stop.clone();
            std::thread::spawn(move || run_client(&root, c, files, &p, &s))
        })
        .collect();
    handles
        .into_iter()
        // A client that panicked is a bug in the workload: never let it pass as "nothing written".
        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect()
}

#[derive(Debug, Default, Clone, serde::Serialize)]
/// What a fresh mount found of what the clients wrote.
pub struct Verification {
    /// Files that should be there.
    pub expected: u64,
    /// Files that are not.
    pub missing: u64,
    /// Files whose contents differ.
    pub wrong_content: u64,
    /// Files that could not be read.
    pub unreadable: u64,
    /// Examples, at most a few per kind.
    pub missing_examples: Vec<String>,
    /// Examples of files whose contents differ.
    pub wrong_examples: Vec<String>,
    /// Examples of files that could not be read.
    pub unreadable_examples: Vec<String>,
    /// Missing files per client.
    pub missing_by_client: Vec<u64>,
}

/// Compare what `root` holds with what every client expects; directories that cannot be
/// listed count as unreadable too.
pub fn verify(root: &Path, results: &[ClientResult], dirs: &[String]) -> Verification {
    let mut v = Verification {
        missing_by_client: vec![0; results.len()],
        ..Default::default()
    };
    for d in dirs {
        if let Err(e) = fs::read_dir(root.join(d)).and_then(|it| it.collect::<Result<Vec<_>, _>>())
        {
            v.unreadable += 1;
            if v.unreadable_examples.len() < 5 {
                v.unreadable_examples.push(format!("directory {d}: {e}"));
            }
        }
    }
    // The shared log: every record exactly once, whole, in any order.
    let records: Vec<&Vec<u8>> = results.iter().flat_map(|r| r.shared_log.iter()).collect();
    if !records.is_empty() {
        v.expected += 1;
        match fs::read(root.join(SHARED_LOG)) {
            Ok(got) => {
                let mut lines: Vec<&[u8]> = got.split_inclusive(|b| *b == b'\n').collect();
                let mut want: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
                lines.sort();
                want.sort();
                if lines != want {
                    v.wrong_content += 1;
                    if v.wrong_examples.len() < 5 {
                        let odd = lines
                            .iter()
                            .find(|l| !want.contains(l))
                            .map(|l| String::from_utf8_lossy(l).into_owned())
                            .unwrap_or_default();
                        v.wrong_examples.push(format!(
                            "{SHARED_LOG}: {} records found, {} appended; e.g. {odd:?}",
                            lines.len(),
                            want.len()
                        ));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                v.missing += 1;
                v.missing_examples.push(SHARED_LOG.into());
            }
            Err(e) => {
                v.unreadable += 1;
                v.unreadable_examples.push(format!("{SHARED_LOG}: {e}"));
            }
        }
    }
    for (c, r) in results.iter().enumerate() {
        for (rel, want) in &r.expected {
            v.expected += 1;
            match fs::read(root.join(rel)) {
                Ok(got) if &got == want => {}
                Ok(got) => {
                    v.wrong_content += 1;
                    if v.wrong_examples.len() < 5 {
                        v.wrong_examples.push(format!(
                            "{rel}: {} bytes, expected {} (crc {:08x} vs {:08x})",
                            got.len(),
                            want.len(),
                            crc32c::crc32c(&got),
                            crc32c::crc32c(want)
                        ));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    v.missing += 1;
                    v.missing_by_client[c] += 1;
                    if v.missing_examples.len() < 5 {
                        v.missing_examples.push(rel.clone());
                    }
                }
                Err(e) => {
                    v.unreadable += 1;
                    if v.unreadable_examples.len() < 5 {
                        v.unreadable_examples.push(format!("{rel}: {e}"));
                    }
                }
            }
        }
    }
    v
}
