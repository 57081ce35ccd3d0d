//! A direct mount's write-behind: a write is answered once its data is copied, as a remote
//! mount's is once it is on its way to the server, and a worker asks for its layout and
//! writes it on the image while the application goes on; a file's writes due for their
//! commit are committed by a thread of their own while the workers go on writing. What keeps
//! it honest is `WriteBehind`'s bookkeeping, as for a remote mount:
//! - the writes to one file go to one worker, in the order they were made, and a write
//!   never overtakes an earlier one it overlaps;
//! - anything else on the file (a read, any call, a flush, an fsync, a lock) first waits
//!   for its writes (`DirectBackend::settle`);
//! - a write that fails is reported by the file's next write, and, as a failed commit is,
//!   by every flush and fsync of the file until its last close on this mount;
//! - at most `BYTES` of data are on their way at once (then a write waits), and the data
//!   of writes not yet committed stays bounded as before (`pending::KEPT_AT_MOST`): past it,
//!   a worker commits in its own path.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Weak;

use crate::write_behind::WriteBehind;

use super::DirectBackend;

/// Most bytes of written data one mount has answered and not yet written at once.
const BYTES: usize = 32 << 20;
/// Workers a mount writes with; the writes of a file all go to one of them.
const WORKERS: usize = 2;

/// A write answered and not yet made: its data, its token in the bookkeeping, and whom it
/// is made for (the server checks its layout's permissions as that caller).
pub(super) struct Job {
    pub ino: u64,
    pub offset: u64,
    pub data: Vec<u8>,
    pub token: u64,
    pub caller: Option<protocol::Cred>,
    /// The writer may not keep setuid, setgid and capabilities (`WriteHow::kill_priv`).
    pub kill_priv: bool,
}

/// The queues to the workers and to the commit thread, and the writes on their way.
pub(super) struct Behind {
    pub wb: WriteBehind,
    lanes: Vec<Sender<Job>>,
    commits: Sender<u64>,
}

/// The other ends, for the threads `spawn` starts.
pub(super) struct Ends {
    lanes: Vec<Receiver<Job>>,
    commits: Receiver<u64>,
}

impl Behind {
    pub(super) fn new() -> (Behind, Ends) {
        let (lanes, ends): (Vec<_>, Vec<_>) = (0..WORKERS).map(|_| channel()).unzip();
        let (commits, due) = channel();
        let behind = Behind {
            wb: WriteBehind::new(BYTES),
            lanes,
            commits,
        };
        (
            behind,
            Ends {
                lanes: ends,
                commits: due,
            },
        )
    }

    /// Queue a write of `data` at `offset` to `ino` (dropping privileges if `kill_priv`),
    /// once it overlaps no write on its way and the budget has room; the file's unreported
    /// failure instead, if it has one.
    pub(super) fn submit(
        &self,
        ino: u64,
        offset: u64,
        data: &[u8],
        kill_priv: bool,
    ) -> Result<(), i32> {
        let token = self.wb.begin(ino, offset, data.len())?;
        let job = Job {
            ino,
            offset,
            data: data.to_vec(),
            token,
            caller: crate::caller::current(),
            kill_priv,
        };
        let lane = &self.lanes[(ino % WORKERS as u64) as usize];
        if let Err(e) = lane.send(job) {
            // The workers are gone (the mount is going away): nothing will make it.
            let job = e.0;
            self.wb.end(ino, job.token, job.data.len(), Err(libc::EIO));
            return Err(libc::EIO);
        }
        Ok(())
    }

    /// Have `ino`'s writes committed by the commit thread.
    pub(super) fn commit_soon(&self, ino: u64) {
        let _ = self.commits.send(ino);
    }
}

/// Start the workers and the commit thread; each ends when the backend is gone.
pub(super) fn spawn(backend: &Weak<DirectBackend>, ends: Ends) -> Result<(), String> {
    for (i, jobs) in ends.lanes.into_iter().enumerate() {
        let b = backend.clone();
        std::thread::Builder::new()
            .name(format!("rwxfs-direct-{i}"))
            .spawn(move || work(b, jobs))
            .map_err(|e| format!("a direct write thread: {e}"))?;
    }
    let b = backend.clone();
    std::thread::Builder::new()
        .name("rwxfs-commits".into())
        .spawn(move || commit(b, ends.commits))
        .map_err(|e| format!("the direct commit thread: {e}"))?;
    Ok(())
}

fn work(backend: Weak<DirectBackend>, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let Some(b) = backend.upgrade() else { return };
        let _as = job.caller.clone().map(crate::caller::acting_for);
        b.write_queued(job);
    }
}

fn commit(backend: Weak<DirectBackend>, due: Receiver<u64>) {
    while let Ok(ino) = due.recv() {
        let Some(b) = backend.upgrade() else { return };
        // A failure is kept for the file's flushes and fsyncs (`DirectBackend::commit`).
        let _ = b.commit(ino);
    }
}
