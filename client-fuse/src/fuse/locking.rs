//! Locks as the FUSE adapter sees them: which files this mount has locked (only their closes
//! tell the server to drop the closing owner's locks), in which lock epoch (if the epoch
//! moved on, the server dropped them and I/O on the file fails with EIO rather than go on
//! unprotected), and blocked F_SETLKW requests, each waiting on a thread of its own.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use fuser::{INodeNo, ReplyEmpty};
use volume::FsResult;

use super::epochs::EpochMarks;
use super::reply::{eio, empty};
use crate::backend::{Backend, LockArgs};
use crate::signals::{gone, signal_pending};

#[derive(Default)]
pub(super) struct LockMarks {
    /// Files this mount has sent lock requests for.
    locked: Mutex<HashSet<u64>>,
    /// Files locked through this mount and still open, with the lock epoch they were locked
    /// in.
    epochs: EpochMarks,
}

impl LockMarks {
    /// A lock request for `ino` is about to go to the server.
    pub(super) fn note_locked(&self, ino: u64) {
        self.locked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ino);
    }

    /// True if this mount ever sent a lock request for `ino`.
    pub(super) fn ever_locked(&self, ino: u64) -> bool {
        self.locked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ino)
    }

    /// EIO if the locks taken on `ino` were lost with an expired session.
    pub(super) fn intact(&self, backend: &dyn Backend, ino: u64) -> FsResult<()> {
        // The epoch is asked for only for files locked here (most I/O is on others).
        if self.epochs.marked(ino) && self.epochs.stale(ino, backend.lock_epoch()) {
            return Err(eio());
        }
        Ok(())
    }

    /// True if I/O on `ino` is made under a lock this mount holds.
    pub(super) fn under_lock(&self, ino: u64) -> bool {
        self.epochs.marked(ino)
    }

    /// The last close of `ino`: its locks went with it, and a lost lock no longer poisons
    /// the next open.
    pub(super) fn closed(&self, ino: u64) {
        self.epochs.clear(ino);
    }

    /// A lock request of type `typ` on `ino` succeeded.
    fn granted(&self, backend: &dyn Backend, ino: u64, typ: i32) {
        if typ != libc::F_UNLCK {
            self.epochs.mark(ino, backend.lock_epoch());
        }
    }
}

/// What a lock request needs besides its arguments.
pub(super) struct Setlk {
    pub backend: Arc<dyn Backend>,
    pub marks: Arc<LockMarks>,
    pub notifier: Arc<OnceLock<fuser::Notifier>>,
    pub ino: INodeNo,
    pub lock: LockArgs,
}

impl Setlk {
    /// Taking a lock revalidates, as NFS does: what this node caches of the file (its
    /// pages, its size) may predate the last holder's writes.
    fn granted(&self) {
        self.marks
            .granted(&*self.backend, self.ino.0, self.lock.typ);
        if self.lock.typ != libc::F_UNLCK {
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(self.ino, 0, 0);
            }
        }
    }

    /// F_SETLK: answered at once.
    pub(super) fn now(self, reply: ReplyEmpty) {
        let r = self.backend.setlk(self.ino.0, self.lock, false, &|| false);
        if r.is_ok() {
            self.granted();
        }
        empty(r, reply)
    }

    /// F_SETLKW by thread `tid`: a blocked wait must not hold one of the few FUSE threads,
    /// so it waits on a thread of its own. fuser does not pass FUSE_INTERRUPT on, so the
    /// waiter watches the requesting thread for a pending signal (EINTR) or its end.
    pub(super) fn wait(self, tid: u32, reply: ReplyEmpty) {
        let spawned = std::thread::Builder::new()
            .name("rwxfs-lock-wait".into())
            .spawn(move || {
                let (ino, lock) = (self.ino.0, self.lock);
                let interrupted = || signal_pending(tid) || gone(tid);
                let r = self.backend.setlk(ino, lock, true, &interrupted);
                if r.is_ok() && gone(tid) {
                    // Granted to a process that died waiting: give it back.
                    let unlock = LockArgs {
                        typ: libc::F_UNLCK,
                        ..lock
                    };
                    let _ = self.backend.setlk(ino, unlock, false, &|| false);
                } else if r.is_ok() {
                    self.granted();
                }
                empty(r, reply)
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a lock waiter: {e}");
        }
    }
}
