//! One image, one owner: the advisory locks by which a server owns its image (and its session
//! log) for as long as it runs, raw mounts share an image only among themselves, and a refusal
//! names the process that holds the image.
//!
//! The lock is flock(2) on the image itself: exclusive for `rwxfs serve`, shared for raw mounts
//! and fsck. flock belongs to the open file description, so the engine opening and closing the
//! same file never drops it (a classic fcntl record lock goes with any close of the file by the
//! process, and never conflicts within one process); the kernel drops it when the holder dies,
//! SIGKILL included, so a crashed server never leaves a stale lock; and /proc/locks names the
//! pid that took it (an OFD lock shows -1 there, and F_OFD_GETLK reports no pid either).
//! On NFS, Linux turns flock into a whole-file lock on the server, so the refusal holds across
//! machines too; a holder there has no pid here and is reported as not visible.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How an image is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The server: nothing else may open the image.
    Owner,
    /// A raw mount or fsck: others like it may hold the image too, a server may not.
    Shared,
}

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct ImageLock {
    _file: File,
}

/// A process holding a lock on the same file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub exclusive: bool,
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// The file cannot be opened or locked at all.
    Io(String),
    /// Someone holds it: who, in words.
    InUse(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Io(e) | LockError::InUse(e) => f.write_str(e),
        }
    }
}

/// Take the lock on `path` (which must exist), without waiting.
pub fn lock(path: &Path, hold: Hold) -> Result<ImageLock, LockError> {
    let file = File::options()
        .read(true)
        .open(path)
        .map_err(|e| LockError::Io(format!("{}: {e}", path.display())))?;
    let op = match hold {
        Hold::Owner => libc::LOCK_EX,
        Hold::Shared => libc::LOCK_SH,
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Ok(ImageLock { _file: file });
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(LockError::Io(format!(
            "{}: cannot lock: {err}",
            path.display()
        )));
    }
    // /proc/locks is read in pieces while other processes take and drop locks, so one
    // reading can miss a line: read it again before saying the holder is not visible.
    let holders = (0..5)
        .find_map(|_| holders(&file).filter(|h| !h.is_empty()))
        .unwrap_or_default();
    Err(LockError::InUse(format!(
        "{} is in use: {}",
        path.display(),
        describe(&holders, std::process::id())
    )))
}

/// Take the lock on a file beside the image that exists only to be locked (a session log is
/// replaced by rename when it is compacted, so a lock on the log itself would not last).
pub fn lock_companion(path: &Path, hold: Hold) -> Result<ImageLock, LockError> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LockError::Io(format!("{}: {e}", path.display())))?;
    lock(path, hold)
}

/// The other processes holding a lock on `path`, e.g. the other raw mounts of an image:
/// empty when there are none (or none visible from here).
pub fn others(path: &Path) -> Vec<Holder> {
    let me = std::process::id();
    File::open(path)
        .ok()
        .and_then(|f| holders(&f))
        .unwrap_or_default()
        .into_iter()
        .filter(|h| h.pid != me)
        .collect()
}

/// Who holds a lock, in words: pid, host and command line of each holder.
pub fn describe(holders: &[Holder], me: u32) -> String {
    let host = host_name();
    let named: Vec<String> = holders
        .iter()
        .filter(|h| h.pid != me)
        .map(|h| {
            let how = if h.exclusive {
                "held exclusively"
            } else {
                "held shared"
            };
            format!(
                "{how} by pid {} on host {host} ({})",
                h.pid,
                command_line(h.pid)
            )
        })
        .collect();
    if named.is_empty() {
        "held by a process not visible here (on another machine, or in another PID namespace)"
            .into()
    } else {
        named.join("; ")
    }
}

/// The flock holders of `file`, from /proc/locks.
fn holders(file: &File) -> Option<Vec<Holder>> {
    let meta = file.metadata().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    Some(parse_locks(&locks, meta.dev(), meta.ino()))
}

/// The flock lines of /proc/locks for the file `dev`/`ino`:
/// `N: FLOCK  ADVISORY  WRITE 1234 fe:00:10010650 0 EOF` (device numbers in hex).
fn parse_locks(text: &str, dev: u64, ino: u64) -> Vec<Holder> {
    let file = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    let mut found: Vec<Holder> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are listed with "->" before their kind: skip them.
        let [_, "FLOCK", _, kind, pid, id, ..] = words.as_slice() else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let holder = Holder {
            pid,
            exclusive: *kind == "WRITE",
        };
        if *id == file && !found.contains(&holder) {
            found.push(holder);
        }
    }
    found
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A process's command line, shortened; "?" when it cannot be read.
fn command_line(pid: u32) -> String {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return "?".into();
    };
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let line = words.join(" ");
    if line.chars().count() > 160 {
        line.chars().take(160).collect::<String>() + "..."
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_name_the_holders_of_one_file() {
        let text = "1: FLOCK  ADVISORY  WRITE 1234 fe:00:77 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 55 fe:00:77 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 66 fe:00:77 0 EOF\n\
                    3: FLOCK  ADVISORY  READ 56 fe:00:78 0 EOF\n\
                    4: OFDLCK ADVISORY  WRITE -1 fe:00:77 0 EOF\n\
                    5: POSIX  ADVISORY  WRITE 99 fe:00:77 0 EOF\n";
        let dev = libc::makedev(0xfe, 0);
        assert_eq!(
            parse_locks(text, dev, 77),
            vec![
                Holder {
                    pid: 1234,
                    exclusive: true
                },
                Holder {
                    pid: 55,
                    exclusive: false
                }
            ]
        );
    }

    #[test]
    fn an_owner_excludes_everyone_and_shared_holders_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("v.img");
        std::fs::write(&img, b"x").unwrap();
        let a = lock(&img, Hold::Shared).unwrap();
        let b = lock(&img, Hold::Shared).unwrap();
        let refused = lock(&img, Hold::Owner).unwrap_err();
        assert!(matches!(&refused, LockError::InUse(m) if m.contains("is in use")));
        drop((a, b));
        let owner = lock(&img, Hold::Owner).unwrap();
        assert!(lock(&img, Hold::Shared).is_err());
        assert!(lock(&img, Hold::Owner).is_err());
        drop(owner);
        lock(&img, Hold::Owner).unwrap();
    }

    #[test]
    fn a_holder_in_another_process_is_named_by_pid_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("v.img");
        std::fs::write(&img, b"x").unwrap();
        // flock(1) holds the file exclusively until it is told to stop.
        let mut holder = std::process::Command::new("flock")
            .arg("-x")
            .arg(&img)
            .args(["-c", "read line"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let refused = loop {
            match lock(&img, Hold::Shared) {
                Err(e) => break e.to_string(),
                // flock(1) has not taken it yet: wait for the event.
                Ok(l) => drop(l),
            }
            if holder.try_wait().unwrap().is_some() {
                panic!("flock(1) exited");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        drop(holder.stdin.take());
        holder.wait().unwrap();
        assert!(
            refused.contains(&format!("held exclusively by pid {} ", holder.id())),
            "{refused}"
        );
        assert!(refused.contains("flock -x"), "{refused}");
    }
}
