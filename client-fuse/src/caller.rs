//! Who the FUSE request being served is for: its uid, gid and supplementary groups, sent
//! with every call it makes (`ClientMsg::CallAs`) so the server checks permissions as that
//! caller. Groups come from `/proc/PID/status`, at most `MAX_GROUPS`, cached briefly.
//! Writes the kernel sends on its own (write-back, pid 0) go as the file's last writer.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use protocol::{Cred, MAX_GROUPS};

/// How long a process's groups are taken as read.
const GROUPS_TTL: Duration = Duration::from_secs(2);
/// Most processes whose groups are kept.
const GROUPS_KEPT: usize = 4096;

thread_local! {
    static CURRENT: RefCell<Option<Cred>> = const { RefCell::new(None) };
    static CREATING: Cell<Option<i32>> = const { Cell::new(None) };
}

/// While alive, calls made on this thread are made for its caller.
pub struct Acting {
    before: Option<Cred>,
}

impl Drop for Acting {
    fn drop(&mut self) {
        let before = self.before.take();
        CURRENT.with(|c| *c.borrow_mut() = before);
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn act(cred: Cred) -> Acting {
    Acting {
        before: CURRENT.with(|c| c.borrow_mut().replace(cred)),
    }
}

/// Calls made on this thread until the guard drops are made for `req`'s caller.
pub fn acting_as(req: &fuser::Request) -> Acting {
    act(cred_of(req.uid(), req.gid(), req.pid()))
}

/// Calls made on this thread until the guard drops are made for `cred`.
pub fn acting_for(cred: Cred) -> Acting {
    act(cred)
}

/// As `acting_as`, for a write of `ino`: a write the kernel sends on its own (pid 0: page
/// write-back) goes as the last process that wrote the file.
pub fn acting_as_writer(req: &fuser::Request, ino: u64) -> Acting {
    let writers = WRITERS.get_or_init(Default::default);
    if req.pid() == 0 {
        if let Some(c) = relock(writers).get(&ino).cloned() {
            return act(c);
        }
    }
    let c = cred_of(req.uid(), req.gid(), req.pid());
    let mut w = relock(writers);
    if w.len() >= GROUPS_KEPT {
        w.clear();
    }
    w.insert(ino, c.clone());
    drop(w);
    act(c)
}

/// The caller calls on this thread are made for, if any.
pub fn current() -> Option<Cred> {
    CURRENT.with(|c| c.borrow().clone())
}

/// While alive, a create made on this thread opens its file with the access mode of
/// open(2)'s `flags` (a create's request does not carry it): the mode the file is opened
/// with again on a new session.
pub struct Creating {
    before: Option<i32>,
}

impl Drop for Creating {
    fn drop(&mut self) {
        CREATING.with(|c| c.set(self.before));
    }
}

/// A create made on this thread until the guard drops opens its file with `flags`' access
/// mode.
pub fn creating_with(flags: i32) -> Creating {
    let mode = flags & libc::O_ACCMODE;
    Creating {
        before: CREATING.with(|c| c.replace(Some(mode))),
    }
}

/// The access mode a create made on this thread opens its file with: `O_RDONLY`,
/// `O_WRONLY` or `O_RDWR` (read-only if no `creating_with` said).
pub fn create_access() -> i32 {
    CREATING.with(|c| c.get()).unwrap_or(libc::O_RDONLY)
}

/// Groups by process, with when they were read.
type GroupCache = HashMap<u32, (Instant, Vec<u32>)>;

static GROUPS: OnceLock<Mutex<GroupCache>> = OnceLock::new();
static WRITERS: OnceLock<Mutex<HashMap<u64, Cred>>> = OnceLock::new();

fn cred_of(uid: u32, gid: u32, pid: u32) -> Cred {
    Cred {
        uid,
        gid,
        groups: groups_of(pid),
    }
}

/// The supplementary groups of process `pid` (none if it is gone or unknown).
fn groups_of(pid: u32) -> Vec<u32> {
    if pid == 0 {
        return Vec::new();
    }
    let cache = GROUPS.get_or_init(Default::default);
    if let Some((at, g)) = relock(cache).get(&pid) {
        if at.elapsed() < GROUPS_TTL {
            return g.clone();
        }
    }
    let g = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| parse_groups(&s))
        .unwrap_or_default();
    let mut c = relock(cache);
    if c.len() >= GROUPS_KEPT {
        c.clear();
    }
    c.insert(pid, (Instant::now(), g.clone()));
    g
}

/// The `Groups:` line of a `/proc/PID/status`, at most `MAX_GROUPS` of them.
fn parse_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|g| g.parse().ok())
                .take(MAX_GROUPS)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_from_proc_and_capped() {
        let many: Vec<String> = (1..40).map(|g| g.to_string()).collect();
        let status = format!("Name:\tx\nGroups:\t{}\nNgid:\t0\n", many.join(" "));
        let g = parse_groups(&status);
        assert_eq!(g.len(), MAX_GROUPS);
        assert_eq!(g[..3], [1, 2, 3]);
        assert!(parse_groups("Name:\tx\nGroups:\t\n").is_empty());
        assert!(parse_groups("").is_empty());
        // This process's own line parses.
        let mine = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(mine.contains("Groups:"));
        let _ = parse_groups(&mine);
    }

    #[test]
    fn acting_sets_and_restores_the_caller() {
        assert_eq!(current(), None);
        {
            let _a = act(cred_of(5, 6, 0));
            assert_eq!(current().map(|c| (c.uid, c.gid)), Some((5, 6)));
            {
                let _b = act(cred_of(7, 8, 0));
                assert_eq!(current().map(|c| c.uid), Some(7));
            }
            assert_eq!(current().map(|c| c.uid), Some(5));
        }
        assert_eq!(current(), None);
    }
}
