//! The Remote backend: every operation is a call to the server over the mount's `Link`,
//! which keeps many calls in flight on one connection and carries them across reconnects.

use protocol::{Attr, Request, Response};
use volume::{FsError, FsResult};

use std::sync::Arc;

use crate::backend::{ask, Backend, LockArgs, WriteHow};
use crate::link::{Link, LinkError};
use crate::write_behind::WriteBehind;

/// The shared placement's transport: each call goes to the server over the mount's link.
pub struct RemoteBackend {
    link: Link,
    /// Writes answered before the server has them (see `write_behind`).
    wb: Arc<WriteBehind>,
    /// Files found without file capabilities, and when: the kernel asks before every write
    /// (to drop them), and the answer is kept for as long as attributes are (`CAPS_TTL`).
    no_caps: std::sync::Mutex<std::collections::HashMap<u64, std::time::Instant>>,
}

const CAPS: &[u8] = b"security.capability";
const CAPS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Most bytes of written data one mount has on their way to the server at once: the same
/// budget as for calls kept until durable.
const WRITE_BEHIND_BYTES: usize = crate::link::KEPT_BYTES;

fn io_err() -> FsError {
    FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))
}

impl RemoteBackend {
    /// Connect and say hello; a refusal comes back as its reason. `pending` hears why the
    /// server makes the mount wait, if it does.
    pub fn connect(
        addr: &str,
        opts: &crate::link::ConnectOptions,
        pending: &dyn Fn(&str),
    ) -> Result<RemoteBackend, String> {
        Ok(RemoteBackend {
            link: Link::connect(addr, opts, pending).map_err(|e| e.to_string())?,
            wb: Arc::new(WriteBehind::new(WRITE_BEHIND_BYTES)),
            no_caps: Default::default(),
        })
    }

    /// An attribute reply for a file with writes still on their way may predate them (its
    /// size short of what this mount wrote): wait for them and ask again.
    fn current(&self, a: Attr) -> FsResult<Attr> {
        if !self.wb.pending(a.ino) {
            return Ok(a);
        }
        self.wb.settle(a.ino);
        match self.send(Request::Getattr { ino: a.ino }, &[])? {
            (Response::Attr(a), _) => Ok(a),
            _ => Err(io_err()),
        }
    }

    /// Attributes in an answer, each as current as this mount's writes (see `current`).
    fn made_current(&self, resp: Response) -> FsResult<Response> {
        Ok(match resp {
            Response::Attr(a) => Response::Attr(self.current(a)?),
            Response::EntriesPlus(es) => Response::EntriesPlus(
                es.into_iter()
                    .map(|(d, a)| Ok((d, self.current(a)?)))
                    .collect::<FsResult<_>>()?,
            ),
            resp => resp,
        })
    }

    fn known_without_caps(&self, ino: u64) -> bool {
        let m = self.no_caps.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ino).is_some_and(|t| t.elapsed() < CAPS_TTL)
    }

    fn note_without_caps(&self, ino: u64) {
        let mut m = self.no_caps.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= 1 << 16 {
            m.clear();
        }
        m.insert(ino, std::time::Instant::now());
    }

    fn forget_caps(&self, ino: u64) {
        self.no_caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ino);
    }

    /// The connection to the server while it is up, `None` while it is broken
    /// (`Link::connection`).
    pub fn connection(&self) -> Option<u64> {
        self.link.connection()
    }

    /// Changes each time what the server holds for this mount in memory alone (direct
    /// mode's reserved blocks) may be gone: a server restart, or the session lost.
    pub fn incarnation(&self) -> u64 {
        self.link.restarts() + self.link.sessions_lost()
    }

    /// How long ago the latest call that got its reply was made: the server kept this
    /// mount's session until at least a lease after it.
    pub fn renewed_ago(&self) -> std::time::Duration {
        self.link.renewed_ago()
    }

    /// The session's lease.
    pub fn lease(&self) -> std::time::Duration {
        self.link.lease()
    }

    /// Where the server's layout recalls go (direct mode): see `Link::on_recall`.
    pub fn on_recall(&self, sink: impl Fn(crate::link::Recall) + Send + Sync + 'static) {
        self.link.on_recall(sink);
    }

    /// Make `req` first on every new session and after every server restart (see
    /// `Link::on_new_session`).
    pub fn on_new_session(&self, req: Request) {
        self.link.on_new_session(req);
    }

    /// Opens of `ino` this mount holds.
    pub fn open_count(&self, ino: u64) -> usize {
        self.link.open_count(ino)
    }

    /// The call on the link, its error as the engine's.
    fn send(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        self.send_or_redo(req, bulk, None)
    }

    /// `call` of `req` (its bulk bytes none), with the calls to make in its place if a
    /// restarted server cannot make it again (`kept::Redo`).
    pub(crate) fn call_or_redo(&self, req: Request, redo: crate::kept::Redo) -> FsResult<Response> {
        if let Some(ino) = req.meta().inode {
            self.wb.settle(ino);
        }
        let (resp, _) = self.send_or_redo(req, &[], Some(redo))?;
        self.made_current(resp)
    }

    /// `req` to the server as it is, with the calls to make in its place if a restarted
    /// server cannot make it again (`kept::Redo`), and its answer.
    fn send_or_redo(
        &self,
        req: Request,
        bulk: &[u8],
        redo: Option<crate::kept::Redo>,
    ) -> FsResult<(Response, Vec<u8>)> {
        match self.link.call_or_redo(req, bulk, redo) {
            Ok((Ok(resp), data)) => Ok((resp, data)),
            Ok((Err(errno), _)) => Err(FsError::from_errno(errno)),
            Err(LinkError::Closed) => Err(io_err()),
            Err(LinkError::Encode) => Err(FsError::Invalid),
        }
    }
}

/// What a call is to the mount's cache of files known to have no file capabilities.
enum Caps {
    /// It asks for them.
    Asks(u64),
    /// It may set or remove them.
    Changes(u64),
    Other,
}

impl Caps {
    fn of(req: &Request) -> Caps {
        match req {
            Request::Getxattr { ino, name } if name == CAPS => Caps::Asks(*ino),
            Request::Setxattr { ino, name, .. } | Request::Removexattr { ino, name }
                if name == CAPS =>
            {
                Caps::Changes(*ino)
            }
            _ => Caps::Other,
        }
    }
}

impl Backend for RemoteBackend {
    /// A call to the server. Before it, this mount's writes to the inode it acts on reach
    /// the server (its answer or change comes after them); after it, attributes it answers
    /// are as current as those writes, and the link notes a close's dropped locks (it
    /// reclaims the rest after a restart). A file known to have no capabilities is answered
    /// so here: the kernel asks often.
    fn call(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        let caps = Caps::of(&req);
        match caps {
            Caps::Asks(ino) if self.known_without_caps(ino) => return Err(FsError::NoAttr),
            Caps::Changes(ino) => self.forget_caps(ino),
            _ => {}
        }
        if let Some(ino) = req.meta().inode {
            self.wb.settle(ino);
        }
        let released = match req {
            Request::ReleaseLocks { ino, owner } => Some((ino, owner)),
            _ => None,
        };
        let closed = match req {
            Request::Release { ino } => Some(ino),
            _ => None,
        };
        let r = self.send(req, bulk);
        if let Some(ino) = closed.filter(|i| self.link.open_count(*i) == 0) {
            // The file's last close on this mount: every flush before it reported what was
            // lost or refused.
            self.wb.forget_error(ino);
            self.link.forget_lost(ino);
        }
        if let (Caps::Asks(ino), Err(FsError::NoAttr)) = (&caps, &r) {
            self.note_without_caps(*ino);
        }
        let (resp, out) = r?;
        if let Some((ino, owner)) = released {
            self.link.note_release(ino, owner);
        }
        Ok((self.made_current(resp)?, out))
    }

    fn settled(&self, ino: u64) -> FsResult<()> {
        self.wb.settle_and_report(ino).map_err(FsError::from_errno)
    }

    fn write(&self, ino: u64, offset: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let len = data.len();
        let token = self
            .wb
            .begin(ino, offset, len)
            .map_err(FsError::from_errno)?;
        let wb = self.wb.clone();
        let done = Box::new(move |(result, _): crate::link::Reply| {
            let r = match result {
                Ok(Response::Written(n)) if n as usize == len => Ok(()),
                // Short: the volume filled up part way.
                Ok(Response::Written(_)) => Err(libc::ENOSPC),
                Ok(_) => Err(libc::EIO),
                Err(errno) => Err(errno),
            };
            wb.end(ino, token, len, r);
        });
        let req = Request::Write {
            ino,
            offset,
            kill_priv: how.kill_priv,
        };
        match self.link.call_async(req, data, done, how.under_lock) {
            Ok(()) => Ok(len as u32),
            Err(LinkError::Closed) => Err(io_err()),
            Err(LinkError::Encode) => Err(FsError::Invalid),
        }
    }

    fn shutdown(&self) -> FsResult<()> {
        // Unmounting: give writes on their way time to land; a server that stays away
        // cannot hold the unmount forever (what is left is reported, and lost).
        let left = self.wb.settle_all(std::time::Duration::from_secs(20));
        if left > 0 {
            tracing::error!("unmounting with {left} writes the server never acknowledged: lost");
        }
        self.link.close();
        Ok(())
    }

    fn supports_locks(&self) -> bool {
        true
    }

    fn lock_epoch(&self) -> u64 {
        self.link.sessions_lost()
    }

    fn lost(&self, ino: u64, names: bool) -> bool {
        self.link.lost(ino, names)
    }

    fn on_invalidate(&self, sink: std::sync::mpsc::Sender<crate::backend::Invalidate>) {
        self.link.on_invalidate(sink);
    }

    fn setlk(
        &self,
        ino: u64,
        l: LockArgs,
        wait: bool,
        interrupted: &dyn Fn() -> bool,
    ) -> FsResult<()> {
        // What was written under a lock is on the server before the lock changes hands.
        self.wb.settle(ino);
        let r = match wait {
            false => ask(self, l.setlk(ino, false), &[]),
            true => self.wait_for_lock(l.setlk(ino, true), interrupted),
        };
        if r.is_ok() {
            self.link.note_lock(ino, &l);
        }
        r
    }
}

impl RemoteBackend {
    /// Wait until the writes to `ino` begun so far (answered before they were made) are on
    /// the server, reporting nothing: a reader that does not ask the server itself must not
    /// read around them.
    pub(crate) fn settle_begun(&self, ino: u64) {
        self.wb.settle_begun(ino);
    }

    /// F_SETLKW on the server: queued there if it cannot be granted now, then granted by a
    /// push, or cancelled when `interrupted` says so.
    fn wait_for_lock(&self, req: Request, interrupted: &dyn Fn() -> bool) -> FsResult<()> {
        let ((result, _), id, granted) = self.link.call_lock_wait(req).map_err(|e| match e {
            LinkError::Closed => io_err(),
            LinkError::Encode => FsError::Invalid,
        })?;
        match result {
            Ok(Response::LockQueued) => {}
            Ok(_) => {
                self.link.forget_wait(id);
                return Ok(());
            }
            Err(errno) => {
                self.link.forget_wait(id);
                return Err(FsError::from_errno(errno));
            }
        }
        loop {
            match granted.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(r) => return r.map_err(FsError::from_errno),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(io_err()),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !interrupted() {
                continue;
            }
            match self.send(Request::CancelLock { wait: id }, &[])?.0 {
                Response::Cancelled(true) => {
                    self.link.forget_wait(id);
                    return Err(FsError::Interrupted);
                }
                // Granted before the cancel arrived: the wait is over, the lock is ours.
                _ => {
                    return match granted.recv_timeout(std::time::Duration::from_secs(30)) {
                        Ok(r) => r.map_err(FsError::from_errno),
                        Err(_) => Err(io_err()),
                    }
                }
            }
        }
    }
}
