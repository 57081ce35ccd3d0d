//! A direct mount's writes on the image not yet committed, by file, with their running
//! total, and the commits under way: one commit of a file at a time, and whoever wants the
//! file's writes committed (an fsync, a close, a call on the file) waits for one under way
//! before it looks, so it never returns while a commit it did not see is still in flight.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Bytes written to one file past which its commit is not put off any longer.
pub(super) const COMMIT_AFTER: u64 = 16 << 20;
/// Bytes written on the whole mount and not yet committed past which a writer commits its
/// file's writes.
pub(super) const KEPT_AT_MOST: u64 = 128 << 20;

/// Whether a file's writes are due for their commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    Not,
    /// The file's budget is reached: commit it, the writer going on meanwhile.
    Soon,
    /// The mount's is: the writer commits before it goes on, which bounds the data kept.
    Now,
}

/// One file's writes since its last commit.
#[derive(Debug)]
pub(super) struct Writes {
    /// Each write: where, and its data (written again through the server if its layouts
    /// were lost; shared with the commit's kept call, which may need it for the same).
    pub written: Vec<(u64, Arc<Vec<u8>>)>,
    /// The end of the furthest one.
    pub end: u64,
    pub bytes: u64,
    /// The server's incarnation (`RemoteBackend::incarnation`) when the first was written.
    pub incarnation: u64,
    /// The sessions this mount had lost (`RemoteBackend::lock_epoch`) by then.
    pub sessions_lost: u64,
    /// Whom the latest was made for: the commit is made for them, whoever asks for it (the
    /// server checks it as it checked their layouts).
    pub writer: Option<protocol::Cred>,
    /// One was a write that drops setuid, setgid and capabilities (`WriteHow::kill_priv`):
    /// the commit drops them too.
    pub kill_priv: bool,
}

#[derive(Default)]
struct State {
    files: HashMap<u64, Writes>,
    /// Bytes of all files' writes together.
    total: u64,
    /// Files whose commit is under way, with the end of what it commits.
    committing: HashMap<u64, u64>,
}

/// The writes waiting for their commit, and the commits under way.
#[derive(Default)]
pub(super) struct Pending {
    state: Mutex<State>,
    /// Signalled when a commit ends.
    ended: Condvar,
}

/// A file's writes taken for its commit: while it lives, no other commit of the file starts.
pub(super) struct Taken<'a> {
    table: &'a Pending,
    ino: u64,
    /// `None` if nothing was waiting (nothing was taken, nothing is held).
    pub writes: Option<Writes>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.writes.is_some() {
            self.table.lock().committing.remove(&self.ino);
            self.table.ended.notify_all();
        }
    }
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note a write of `data` at `at` to `ino`, made for `writer` (dropping privileges if
    /// `kill_priv`) through layouts the server gave in `given` (its incarnation and
    /// sessions lost, `Writes`): whether its writes are due for their commit (the file's
    /// budget or the mount's is reached).
    pub(super) fn note(
        &self,
        ino: u64,
        (at, data): (u64, Vec<u8>),
        (writer, kill_priv): (Option<protocol::Cred>, bool),
        given: (u64, u64),
    ) -> Due {
        let (incarnation, sessions_lost) = given;
        let mut s = self.lock();
        let len = data.len() as u64;
        s.total += len;
        let w = s.files.entry(ino).or_insert_with(|| Writes {
            written: Vec::new(),
            end: 0,
            bytes: 0,
            incarnation,
            sessions_lost,
            writer: None,
            kill_priv: false,
        });
        w.writer = writer;
        w.kill_priv |= kill_priv;
        // Layouts given by an older incarnation than the pending writes' are lost too.
        w.incarnation = w.incarnation.min(incarnation);
        w.sessions_lost = w.sessions_lost.min(sessions_lost);
        w.written.push((at, Arc::new(data)));
        w.end = w.end.max(at + len);
        w.bytes += len;
        let file = w.bytes;
        if s.total >= KEPT_AT_MOST {
            Due::Now
        } else if file >= COMMIT_AFTER {
            Due::Soon
        } else {
            Due::Not
        }
    }

    /// Take `ino`'s writes for their commit, after any commit of it under way has ended.
    pub(super) fn take(&self, ino: u64) -> Taken<'_> {
        let mut s = self.lock();
        while s.committing.contains_key(&ino) {
            s = self.ended.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        let writes = s.files.remove(&ino);
        if let Some(w) = &writes {
            s.total -= w.bytes;
            s.committing.insert(ino, w.end);
        }
        Taken {
            table: self,
            ino,
            writes,
        }
    }

    /// The end of what this mount wrote to `ino` and the server may not know of yet
    /// (waiting, or in a commit under way).
    pub(super) fn end_of(&self, ino: u64) -> Option<u64> {
        let s = self.lock();
        let waiting = s.files.get(&ino).map(|w| w.end);
        waiting.max(s.committing.get(&ino).copied())
    }

    /// The files with writes waiting.
    pub(super) fn files(&self) -> Vec<u64> {
        self.lock().files.keys().copied().collect()
    }

    /// Bytes waiting, all files together.
    #[cfg(test)]
    fn total(&self) -> u64 {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn whoever_looks_for_a_files_writes_waits_for_the_commit_under_way() {
        let p = Pending::default();
        p.note(5, (0, b"data".to_vec()), (None, false), (0, 0));
        let (started, on_started) = channel();
        let (finish, on_finish) = channel::<()>();
        let (fsynced, on_fsynced) = channel();
        std::thread::scope(|s| {
            let p = &p;
            s.spawn(move || {
                let t = p.take(5);
                assert!(t.writes.is_some());
                started.send(()).unwrap();
                // The commit's call to the server, in flight until told.
                on_finish.recv().unwrap();
            });
            on_started.recv().unwrap();
            s.spawn(move || {
                // An fsync: nothing left to take, but it must wait for the commit.
                let t = p.take(5);
                assert!(t.writes.is_none());
                fsynced.send(()).unwrap();
            });
            let early = on_fsynced.recv_timeout(Duration::from_millis(300));
            finish.send(()).unwrap();
            assert!(
                early.is_err(),
                "the fsync returned while the commit was in flight"
            );
            on_fsynced.recv_timeout(Duration::from_secs(10)).unwrap();
        });
    }

    #[test]
    fn the_mounts_total_is_kept_as_writes_come_and_go() {
        let p = Pending::default();
        assert_eq!(
            p.note(1, (0, vec![0; 100]), (None, false), (0, 0)),
            Due::Not
        );
        assert_eq!(p.note(2, (0, vec![0; 50]), (None, false), (0, 0)), Due::Not);
        assert_eq!(p.total(), 150);
        drop(p.take(1));
        assert_eq!(p.total(), 50);
        assert_eq!(p.files(), vec![2]);
        let big = vec![0u8; COMMIT_AFTER as usize];
        assert_eq!(
            p.note(3, (0, big), (None, false), (0, 0)),
            Due::Soon,
            "a file past its budget"
        );
        assert_eq!(p.end_of(3), Some(COMMIT_AFTER));
        let t = p.take(3);
        // Taken for a commit, not yet committed: its end still counts.
        assert_eq!(p.end_of(3), Some(COMMIT_AFTER));
        drop(t);
        assert_eq!(p.end_of(3), None);
    }
}
