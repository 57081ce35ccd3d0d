//! The Direct backend (direct mode): metadata through the server as a remote mount sends it,
//! file data straight to and from the shared volume at the blocks the server's layouts give.
//!
//! - A read reads the extents of a read layout from the image (holes are zeros); the layout
//!   is asked for ahead of the read and kept until recalled (`read`).
//! - A write is answered once its data is copied (`behind`: write-behind, as a remote
//!   mount's); a worker asks for a write layout (the server reserves the range's holes for
//!   this session, zeroing a block it will write only in part) and writes the data there
//!   (`write`). The ranges written wait, per file, for their commit: before any other call
//!   on the file from this mount (so its answer comes after them), at flush and fsync, and
//!   once 16 MiB of a file (by the commit thread, the writes going on meanwhile) or 128 MiB
//!   of the mount's (by the writer, before it goes on) are pending (`pending`). A commit
//!   first makes the image's data durable (`fdatasync`), then sends `LayoutCommit`: ordered
//!   mode, as the server's own writes. One commit of a file at a time: an fsync waits for
//!   one under way.
//! - Attributes the server answers (a lookup, a listing, a create) are raised to the end of
//!   this mount's writes it does not know of yet, as a remote mount's are to its writes on
//!   their way.
//! - The data written waits with its ranges: if the server restarted since the layouts were
//!   given, their reserved blocks went with it, and the commit writes the data through the
//!   server instead, as a remote mount would have. If the session ended instead (the mount
//!   was away a whole lease, and did not answer recalls meanwhile), its layouts were taken:
//!   the data never appears, and every flush or fsync of the file fails (EIO) until its
//!   last close on this mount: any close reports it, a forked child's exec closing the
//!   descriptors it inherited included, so no one close may take the error from the rest.
//! - A recall from the server (`Push::LayoutRecall`: another mount truncates the file,
//!   punches a hole in it, removes or renames over its last name, or asks for a layout
//!   that conflicts) is answered on a thread of its own: the file's writes committed, then
//!   its layouts returned, while no read or write of the file through layouts is under way
//!   on this mount (`in_use`), so none uses a block after it was given back.
//! - The last close of a file (the link counts the mount's opens) returns its layouts, after
//!   its commit.
//! - Appends, and writes the server refuses a layout for (another mount's uncommitted
//!   blocks in the range, no room in the file's quota tree or the volume, or setuid, setgid
//!   or capabilities on the file that the writer may not keep) go through the server. A
//!   write by one who may not keep them goes directly once the file has none; its commit
//!   drops any set since, as a write through the server would.
//! - Before any read or write on the volume through a layout, the mount checks it may still
//!   use it (`fence`): the volume fences no one, so a mount that may have lost its layouts
//!   (a recall unanswered half a lease, no call answered for half a lease, another session
//!   or server since) goes through the server instead.
//! - A commit's writes stay with the link's kept calls until the server says the commit is
//!   durable; a restarted server that cannot make it again gets them as writes in its place
//!   (`kept::Redo`).

mod behind;
mod fence;
mod pending;
mod rados;
mod read;
mod store;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use protocol::{Request, Response, VolumeAt};
use rados_store::CephOptions;
use volume::{FsError, FsResult};

use crate::backend::{ask, Backend, LockArgs, WriteHow};
use crate::remote::RemoteBackend;
use behind::Behind;
use pending::{Pending, Writes};
use store::{DataStore, LocalImage};

/// A direct mount's backend: the server's `RemoteBackend` for metadata, the volume's data
/// store for data.
pub struct DirectBackend {
    remote: RemoteBackend,
    store: Box<dyn DataStore>,
    /// Writes answered and not yet made, and the threads that make and commit them.
    behind: Behind,
    /// Writes on the image not yet committed, by file, and the commits under way.
    pending: Pending,
    /// A commit that failed, by file: every flush or fsync of it reports it, until the
    /// file's last close on this mount.
    failed: Mutex<HashMap<u64, i32>>,
    /// Held shared by reads and writes through a file's layouts, by the file's stripe
    /// (`stripe`), and alone by the answer to a recall of its layouts.
    in_use: Vec<RwLock<()>>,
    /// Recalls not yet answered: with the session's lease, whether a layout may still be
    /// used (`fence`).
    fence: fence::Fence,
    /// The read layouts kept until recalled (`read`).
    reads: read::ReadLayouts,
}

/// The volume opened at `image` (a path, or `rados://POOL/NAME`), or where the server says
/// it is.
fn open_store(
    remote: &RemoteBackend,
    image: Option<&std::path::Path>,
    ceph: &CephOptions,
    read_only: bool,
) -> Result<Box<dyn DataStore>, String> {
    let at = match image {
        Some(p) => match rados_store::ImageName::parse(&p.to_string_lossy()) {
            Err(e) => return Err(e.to_string()),
            Ok(None) => return Ok(Box::new(LocalImage::open(p, read_only)?)),
            Ok(Some(n)) => VolumeAt::Rados {
                pool: n.pool,
                name: n.name,
            },
        },
        None => ask(remote, Request::VolumeLocation, &[]).map_err(|e| {
            format!("the server does not say where its volume is ({e}): give --direct-image")
        })?,
    };
    Ok(match at {
        VolumeAt::Local(path) => Box::new(LocalImage::open(path.as_ref(), read_only)?),
        VolumeAt::Rados { pool, name } => {
            Box::new(rados::RadosVolume::open(&pool, &name, ceph, read_only)?)
        }
    })
}

/// Stripes of `DirectBackend::in_use`.
const STRIPES: usize = 64;

fn stripe(ino: u64) -> usize {
    (ino % STRIPES as u64) as usize
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DirectBackend {
    /// Direct mode over `remote`: the volume opened at `image` (a path, or
    /// `rados://POOL/NAME`), or where the server says it is; a RADOS volume reached as
    /// `ceph` says. Read-only mounts open it read-only. A mount whose store can fence it
    /// tells the server its address there, on this session and every new one.
    pub fn new(
        remote: RemoteBackend,
        image: Option<&std::path::Path>,
        ceph: &CephOptions,
        read_only: bool,
    ) -> Result<Arc<DirectBackend>, String> {
        let image = open_store(&remote, image, ceph, read_only)?;
        if let Some(address) = image.client_address() {
            let req = Request::StoreClient {
                address: address.to_string(),
            };
            ask::<(), _>(&remote, req.clone(), &[]).map_err(|e| {
                format!("the server cannot fence this mount at {address} ({e}): not mounted")
            })?;
            remote.on_new_session(req);
        }
        let (behind, ends) = Behind::new();
        let me = Arc::new(DirectBackend {
            remote,
            store: image,
            behind,
            pending: Pending::default(),
            failed: Mutex::default(),
            in_use: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            fence: fence::Fence::default(),
            reads: read::ReadLayouts::default(),
        });
        let (to_answer, recalls) = std::sync::mpsc::channel();
        let weak = Arc::downgrade(&me);
        // Noted on the link's reader as it comes, before a layout answered after it is
        // handed to its caller (which checks the fence); answered on a thread of its own,
        // as it may wait behind another's answer.
        me.remote.on_recall(move |r: crate::link::Recall| {
            if let Some(b) = weak.upgrade() {
                b.fence.recalled(r.ino, r.since);
            }
            let _ = to_answer.send(r.ino);
        });
        let weak = Arc::downgrade(&me);
        std::thread::Builder::new()
            .name("rwxfs-recalls".into())
            .spawn(move || answer_recalls(weak, recalls))
            .map_err(|e| format!("the recall thread: {e}"))?;
        behind::spawn(&Arc::downgrade(&me), ends)?;
        Ok(me)
    }

    /// Shared use of `ino`'s layouts: a recall waits for it to end.
    fn using(&self, ino: u64) -> std::sync::RwLockReadGuard<'_, ()> {
        self.in_use[stripe(ino)]
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `ino`'s writes made (those answered so far and still on their way) and committed.
    fn settle(&self, ino: u64) -> FsResult<()> {
        self.behind.wb.settle_begun(ino);
        self.commit(ino)
    }

    /// The server recalls this mount's layouts on `ino`: give them back.
    fn answer_recall(&self, ino: u64) {
        // The writes answered before the recall came are made first, so the call that
        // recalls comes after them, as it would after writes made at once.
        self.behind.wb.settle_begun(ino);
        // A commit that fails is reported at the file's flushes and fsyncs (`failed`); a
        // return that fails leaves the recall unanswered (`fence`) until it is pushed again.
        if let Err(e) = self.give_back(ino, false) {
            tracing::warn!("layouts of inode {ino} recalled: {e}");
        }
    }

    /// True if layouts on `ino` given in `given` may no longer be used (`fence`): the
    /// read or write goes through the server instead.
    fn fenced(&self, ino: u64, given: (u64, u64)) -> bool {
        let Some(why) = self.fence.lost(&self.remote, ino, given) else {
            return false;
        };
        tracing::warn!("layouts of inode {ino} may have been taken ({why}): through the server");
        true
    }

    /// With no read or write through `ino`'s layouts under way, commit what was written
    /// through them and return them (at a close, only if it is the mount's last open of the
    /// file: the kernel sends a close after the next open may have begun writing).
    fn give_back(&self, ino: u64, at_close: bool) -> FsResult<()> {
        let _alone = self.in_use[stripe(ino)]
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let committed = self.commit(ino);
        if at_close && self.remote.open_count(ino) > 1 {
            return committed;
        }
        if at_close {
            // Its last close: every flush before this one reported the failure.
            lock(&self.failed).remove(&ino);
            self.behind.wb.forget_error(ino);
        }
        self.reads.forget(ino);
        self.server::<()>(Request::LayoutReturn { ino })?;
        // Given back: a recall of them is answered (not before: until then the server may
        // take them once the recall has waited its lease).
        self.fence.answered(ino);
        committed
    }

    /// The server's answer to `req`, not through this backend's own rules.
    fn server<T: protocol::Answer>(&self, req: Request) -> FsResult<T> {
        ask(&self.remote, req, &[])
    }

    /// Commit the writes made to `ino` through layouts: their data made durable on the
    /// image, then the server told. A failure is kept for the next flush or fsync too. A
    /// commit of the file under way is waited for: it is over when this returns.
    fn commit(&self, ino: u64) -> FsResult<()> {
        let taken = self.pending.take(ino);
        let Some(p) = &taken.writes else {
            return Ok(());
        };
        // For whom the writes were made, not whoever asks (another user's call on the file,
        // the commit thread, a recall's answer, all anonymous to the server).
        let _as = p.writer.clone().map(crate::caller::acting_for);
        let r = if p.sessions_lost != self.remote.lock_epoch() {
            Err(self.lost(ino, p))
        } else if p.incarnation == self.remote.incarnation() {
            self.commit_layouts(ino, p)
        } else {
            self.write_again(ino, p)
        };
        if let Err(e) = &r {
            tracing::error!("commit of writes to inode {ino} failed: {e}");
            lock(&self.failed).insert(ino, e.errno());
        }
        r
    }

    /// The data on the image made durable, then the server told to map it. If the server's
    /// incarnation changed meanwhile, the commit may have reached one that no longer held
    /// the reservations: the data goes through the server (after a restart), or is lost
    /// (with the session).
    fn commit_layouts(&self, ino: u64, p: &Writes) -> FsResult<()> {
        self.store.make_durable().map_err(FsError::Io)?;
        let ranges = p.written.iter().map(|(at, d)| (*at, d.len() as u64));
        let req = Request::LayoutCommit {
            ino,
            written: merged(ranges.collect()),
            size: p.end,
            mtime: None,
            kill_priv: p.kill_priv,
        };
        // Answered before the server made it durable, a crash may still lose it: the
        // restarted server cannot map blocks whose reservation died with it, so the link
        // keeps the writes, to make them through the server in its place (`kept::Redo`).
        let again = (p.written.iter())
            .map(|(at, d)| {
                let w = Request::Write {
                    ino,
                    offset: *at,
                    kill_priv: p.kill_priv,
                };
                (w, d.clone())
            })
            .collect();
        let r = self.remote.call_or_redo(req, again).map(|_| ());
        if self.remote.lock_epoch() != p.sessions_lost {
            // Reached a new session, which holds none of them.
            return Err(self.lost(ino, p));
        }
        if self.remote.incarnation() != p.incarnation && r.is_err() {
            // Refused by the restarted server it reached: never answered before, so no
            // replay makes it either.
            return self.write_again(ino, p);
        }
        r
    }

    /// The session the writes' layouts were given in ended (the mount was away a whole
    /// lease): the server took them, and what was written through them never appears.
    fn lost(&self, ino: u64, p: &Writes) -> FsError {
        tracing::error!(
            "{} bytes written to inode {ino} are lost: the session their layouts were given in \
             ended",
            p.bytes
        );
        FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))
    }

    /// The writes through the server, as a remote mount makes them, in their order.
    fn write_again(&self, ino: u64, p: &Writes) -> FsResult<()> {
        tracing::info!(
            "the server lost the blocks of {} bytes written to inode {ino}: written through it",
            p.bytes
        );
        let how = WriteHow {
            kill_priv: p.kill_priv,
            ..WriteHow::default()
        };
        // As any write through the server: the next read asks for a layout (`write_now`).
        self.reads.forget(ino);
        for (at, data) in &p.written {
            self.remote.write(ino, *at, &data[..], how)?;
        }
        self.remote.settled(ino)
    }

    /// Attributes in an answer raised to the end of this mount's writes the server does
    /// not know of yet: those answered before the answer came (not those answered since,
    /// which a busy writer would never let end).
    fn made_current(&self, resp: &mut Response) {
        let begun = self.behind.wb.mark();
        let raise = |a: &mut protocol::Attr| {
            self.behind.wb.settle_upto(a.ino, begun);
            if let Some(end) = self.pending.end_of(a.ino) {
                a.size = a.size.max(end);
            }
        };
        match resp {
            Response::Attr(a) => raise(a),
            Response::EntriesPlus(es) => es.iter_mut().for_each(|(_, a)| raise(a)),
            _ => {}
        }
    }
}

/// Answer the server's recalls as they come, while the backend lives.
fn answer_recalls(backend: Weak<DirectBackend>, recalls: std::sync::mpsc::Receiver<u64>) {
    while let Ok(ino) = recalls.recv() {
        match backend.upgrade() {
            Some(b) => b.answer_recall(ino),
            None => return,
        }
    }
}

/// Forgets a file's read layouts when dropped: at the end of a call that changes the file
/// (`read::ReadLayouts::forget`), however it ends.
struct ForgetAtEnd<'a>(&'a read::ReadLayouts, u64);

impl Drop for ForgetAtEnd<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

/// Ranges joined where they touch or overlap, in order: what a commit names.
fn merged(mut written: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    written.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(written.len());
    for (at, len) in written {
        match out.last_mut() {
            Some((s, l)) if at <= *s + *l => *l = (*l).max(at + len - *s),
            _ => out.push((at, len)),
        }
    }
    out
}

impl Backend for DirectBackend {
    /// A read goes to the image; any other call on a file goes to the server after this
    /// mount's writes to it are committed, so its answer (attributes, a truncation, a lock
    /// handed on) comes after them. The last close returns the file's layouts.
    fn call(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        if let Request::Read { ino, offset, size } = req {
            self.settle(ino)?;
            // Writes this mount sent through the server (dropping setuid, refused a layout,
            // fenced) are answered before they are made: a read from a kept layout's blocks
            // waits for them, as a read asked of the server would.
            self.remote.settle_begun(ino);
            if let Some(data) = self.read_direct(ino, offset, size)? {
                return Ok((Response::Data, data));
            }
            return self.remote.call(req, bulk);
        }
        let m = req.meta();
        // A change this mount makes recalls none of its own layouts; an open starts afresh
        // (close-to-open), as a lock does. Forgotten again at the answer: a layout the
        // server gave before the change ran may have come after it was sent.
        let forgets = m
            .inode
            .filter(|_| m.mutates || m.opens.is_some() || m.asks_lock);
        if let Some(ino) = forgets {
            self.reads.forget(ino);
        }
        let _forget = forgets.map(|ino| ForgetAtEnd(&self.reads, ino));
        let lets_go = m.unlocks || matches!(m.opens, Some(protocol::Opens::Releases(_)));
        let settled = m.inode.map_or(Ok(()), |ino| self.settle(ino));
        let mut settled = match (settled, lets_go) {
            (Err(e), false) => return Err(e),
            (r, _) => r,
        };
        if let Request::Release { ino } = req {
            // Returned whether or not the commit went: a failed one's writes are lost.
            settled = settled.and(self.give_back(ino, true));
        }
        // A close or an unlock goes to the server whatever became of the commit, so the
        // file is not held open nor the lock held on; the failure is its answer.
        let (mut resp, out) = self.remote.call(req, bulk)?;
        settled?;
        self.made_current(&mut resp);
        Ok((resp, out))
    }

    fn settled(&self, ino: u64) -> FsResult<()> {
        let queued = self.behind.wb.settle_and_report(ino);
        self.remote.settled(ino)?;
        let r = self.commit(ino);
        if let Some(errno) = lock(&self.failed).get(&ino).copied() {
            return Err(FsError::from_errno(errno));
        }
        queued.map_err(FsError::from_errno)?;
        r
    }

    /// Answered once the data is copied (`behind`). A write that must drop privileges goes
    /// directly too while the file has none (the server refuses it a layout otherwise), and
    /// its commit drops any set since.
    fn write(&self, ino: u64, offset: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let len = u32::try_from(data.len()).map_err(|_| FsError::Invalid)?;
        self.behind
            .submit(ino, offset, data, how.kill_priv)
            .map_err(FsError::from_errno)?;
        Ok(len)
    }

    fn shutdown(&self) -> FsResult<()> {
        let left = self
            .behind
            .wb
            .settle_all(std::time::Duration::from_secs(20));
        if left > 0 {
            tracing::error!("unmounting with {left} direct writes never made: lost");
        }
        for ino in self.pending.files() {
            let _ = self.commit(ino);
        }
        self.remote.shutdown()
    }

    fn supports_locks(&self) -> bool {
        true
    }

    fn lock_epoch(&self) -> u64 {
        self.remote.lock_epoch()
    }

    fn lost(&self, ino: u64, names: bool) -> bool {
        self.remote.lost(ino, names)
    }

    fn on_invalidate(&self, sink: std::sync::mpsc::Sender<crate::backend::Invalidate>) {
        self.remote.on_invalidate(sink);
    }

    fn setlk(
        &self,
        ino: u64,
        l: LockArgs,
        wait: bool,
        interrupted: &dyn Fn() -> bool,
    ) -> FsResult<()> {
        // What was written under a lock is committed before the lock changes hands. An
        // unlock goes to the server whatever became of the commit (the lock is not held on),
        // the failure its answer; no lock is taken after a failed one.
        self.reads.forget(ino);
        let _forget = ForgetAtEnd(&self.reads, ino);
        let settled = self.settle(ino);
        if settled.is_err() && l.typ != libc::F_UNLCK {
            return settled;
        }
        self.remote.setlk(ino, l, wait, interrupted)?;
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::merged;

    #[test]
    fn writes_are_committed_as_ranges_joined_where_they_meet() {
        let w = vec![(100, 10), (0, 50), (40, 20), (60, 5), (200, 1)];
        assert_eq!(merged(w), vec![(0, 65), (100, 10), (200, 1)]);
        assert_eq!(merged(Vec::new()), Vec::<(u64, u64)>::new());
    }
}
