//! The Remote backend: every operation is a call to the server over the mount's `Link`,
//! which keeps many calls in flight on one connection and carries them across reconnects.

use protocol::{Attr, DirEntry, LockKind, RenameFlags, Request, Response, SetAttr, StatFs};
use volume::{FsError, FsResult};

use std::sync::Arc;

use crate::backend::{Backend, LockArgs, WriteHow};
use crate::link::{Link, LinkError};
use crate::write_behind::WriteBehind;

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
        self.attr(Request::Getattr { ino: a.ino })
    }

    fn known_without_caps(&self, ino: u64) -> bool {
        let m = self.no_caps.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ino).is_some_and(|t| t.elapsed() < CAPS_TTL)
    }

    fn forget_caps(&self, ino: u64, name: &[u8]) {
        if name == CAPS {
            self.no_caps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ino);
        }
    }

    /// Wait for `ino`'s writes to reach the server; report a refused one.
    fn settled(&self, ino: u64) -> FsResult<()> {
        self.wb.settle_and_report(ino).map_err(FsError::from_errno)
    }

    fn call_bulk(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)> {
        match self.link.call(req, bulk) {
            Ok((Ok(resp), data)) => Ok((resp, data)),
            Ok((Err(errno), _)) => Err(FsError::from_errno(errno)),
            Err(LinkError::Closed) => Err(io_err()),
            Err(LinkError::Encode) => Err(FsError::Invalid),
        }
    }

    fn call(&self, req: Request) -> FsResult<Response> {
        self.call_bulk(req, &[]).map(|(r, _)| r)
    }

    fn attr(&self, req: Request) -> FsResult<Attr> {
        match self.call(req)? {
            Response::Attr(a) => Ok(a),
            _ => Err(io_err()),
        }
    }

    fn empty(&self, req: Request) -> FsResult<()> {
        self.call(req).map(|_| ())
    }
}

impl Backend for RemoteBackend {
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let a = self.attr(Request::Lookup {
            parent,
            name: name.to_vec(),
        })?;
        self.current(a)
    }
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        self.wb.settle(ino);
        self.attr(Request::Getattr { ino })
    }
    fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        self.wb.settle(ino);
        self.attr(Request::Setattr { ino, set })
    }
    fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.attr(Request::Mknod {
            parent,
            name: name.to_vec(),
            mode,
            rdev,
            uid,
            gid,
        })
    }
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        self.attr(Request::Mkdir {
            parent,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })
    }
    fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.attr(Request::Symlink {
            parent,
            name: name.to_vec(),
            target: target.to_vec(),
            uid,
            gid,
        })
    }
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        self.attr(Request::Link {
            ino,
            newparent,
            newname: newname.to_vec(),
        })
    }
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.empty(Request::Unlink {
            parent,
            name: name.to_vec(),
        })
    }
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.empty(Request::Rmdir {
            parent,
            name: name.to_vec(),
        })
    }
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.empty(Request::Rename {
            parent,
            name: name.to_vec(),
            newparent,
            newname: newname.to_vec(),
            flags,
        })
    }
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        match self.call(Request::Readlink { ino })? {
            Response::Bytes(b) => Ok(b),
            _ => Err(io_err()),
        }
    }
    fn readdir(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        match self.call(Request::Readdir {
            ino,
            offset,
            max: max as u32,
        })? {
            Response::Entries(e) => Ok(e),
            _ => Err(io_err()),
        }
    }
    fn readdirplus(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<(DirEntry, Attr)>> {
        match self.call(Request::Readdirplus {
            ino,
            offset,
            max: max as u32,
        })? {
            Response::EntriesPlus(e) => e
                .into_iter()
                .map(|(d, a)| Ok((d, self.current(a)?)))
                .collect(),
            _ => Err(io_err()),
        }
    }
    fn create(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        self.attr(Request::Create {
            parent,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        })
    }
    fn open(&self, ino: u64, flags: i32) -> FsResult<Attr> {
        let a = self.attr(Request::Open { ino, flags })?;
        self.current(a)
    }
    fn release(&self, ino: u64) -> FsResult<()> {
        self.wb.settle(ino);
        self.empty(Request::Release { ino })
    }
    fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        self.wb.settle(ino);
        match self.call_bulk(Request::Read { ino, offset, size }, &[])? {
            (Response::Data, d) => Ok(d),
            _ => Err(io_err()),
        }
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
        match self.link.call_async(
            Request::Write {
                ino,
                offset,
                kill_priv: how.kill_priv,
            },
            data,
            done,
            how.under_lock,
        ) {
            Ok(()) => Ok(len as u32),
            Err(LinkError::Closed) => Err(io_err()),
            Err(LinkError::Encode) => Err(FsError::Invalid),
        }
    }
    fn append(&self, ino: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        self.settled(ino)?;
        let req = Request::Append {
            ino,
            kill_priv: how.kill_priv,
        };
        match self.call_bulk(req, data)? {
            (Response::Written(n), _) => Ok(n),
            _ => Err(io_err()),
        }
    }
    fn flush(&self, ino: u64) -> FsResult<()> {
        // Close-to-open: by the time close returns, the file's writes are on the server.
        self.settled(ino)
    }
    fn fsync(&self, ino: u64) -> FsResult<()> {
        self.settled(ino)?;
        self.empty(Request::Fsync { ino })
    }
    fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        self.settled(ino)?;
        self.empty(Request::Fallocate {
            ino,
            offset,
            len,
            mode,
        })
    }
    fn statfs(&self) -> FsResult<StatFs> {
        match self.call(Request::Statfs)? {
            Response::StatFs(s) => Ok(s),
            _ => Err(io_err()),
        }
    }
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let caps = name == CAPS;
        if caps && self.known_without_caps(ino) {
            return Err(FsError::NoAttr);
        }
        let r = match self.call(Request::Getxattr {
            ino,
            name: name.to_vec(),
        }) {
            Ok(Response::Bytes(b)) => Ok(b),
            Ok(_) => Err(io_err()),
            Err(e) => Err(e),
        };
        if caps && matches!(r, Err(FsError::NoAttr)) {
            let mut m = self.no_caps.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= 1 << 16 {
                m.clear();
            }
            m.insert(ino, std::time::Instant::now());
        }
        r
    }
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        self.forget_caps(ino, name);
        self.empty(Request::Setxattr {
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            flags,
        })
    }
    fn listxattr(&self, ino: u64) -> FsResult<Vec<Vec<u8>>> {
        match self.call(Request::Listxattr { ino })? {
            Response::Names(n) => Ok(n),
            _ => Err(io_err()),
        }
    }
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        self.forget_caps(ino, name);
        self.empty(Request::Removexattr {
            ino,
            name: name.to_vec(),
        })
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

    fn take_lost(&self, ino: u64, names: bool) -> bool {
        self.link.take_lost(ino, names)
    }

    fn on_invalidate(&self, sink: std::sync::mpsc::Sender<crate::backend::Invalidate>) {
        self.link.on_invalidate(sink);
    }

    fn getlk(&self, ino: u64, l: LockArgs) -> FsResult<(u64, u64, i32, u32)> {
        self.wb.settle(ino);
        match self.call(Request::Getlk {
            ino,
            owner: l.owner,
            range: l.range(),
            kind: LockKind::from_raw(l.typ),
            pid: l.pid,
        })? {
            Response::Lock { range, kind, pid } => Ok((range.start, range.end, kind.raw(), pid)),
            _ => Err(io_err()),
        }
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
        let r = self.setlk_on_server(ino, l, wait, interrupted);
        if r.is_ok() {
            self.link
                .note_lock(ino, l.owner, l.typ, l.start, l.end, l.pid);
        }
        r
    }

    fn release_locks(&self, ino: u64, owner: u64) -> FsResult<()> {
        self.wb.settle(ino);
        self.empty(Request::ReleaseLocks { ino, owner })?;
        self.link.note_release(ino, owner);
        Ok(())
    }
}

impl RemoteBackend {
    fn setlk_on_server(
        &self,
        ino: u64,
        l: LockArgs,
        wait: bool,
        interrupted: &dyn Fn() -> bool,
    ) -> FsResult<()> {
        let req = Request::Setlk {
            ino,
            owner: l.owner,
            range: l.range(),
            kind: LockKind::from_raw(l.typ),
            pid: l.pid,
            wait,
        };
        if !wait {
            return self.empty(req);
        }
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
            match self.call(Request::CancelLock { wait: id })? {
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
