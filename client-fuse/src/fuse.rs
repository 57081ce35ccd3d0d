//! The FUSE adapter: each callback acts as its caller, calls the backend once (after the
//! checks in `checks`, or through a step beside it: `create`, `copy`, `locking`), and
//! replies — a result becomes its reply and an error its errno in one place (`reply`).

mod checks;
mod convert;
mod copy;
mod create;
mod epochs;
mod locking;
mod reply;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, FileHandle, Filesystem, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use protocol::{RenameFlags, SetAttr};
use volume::FsError;

use crate::backend::{Backend, LockArgs, WriteHow};
use convert::{fopen_flags, from_time, set_time};
use locking::{LockMarks, Setlk};
use reply::{data, empty, entries, errno, position, written, xattr};

/// Largest write the kernel sends in one request.
pub const MAX_WRITE: u32 = 1 << 20;

/// The `fuser::Filesystem` a mount runs: each kernel request becomes a call on the backend, and its
/// answer the reply.
pub struct RwxFuse {
    backend: Arc<dyn Backend>,
    /// Which files this mount locked, and in which lock epoch (`locking`).
    locks: Arc<LockMarks>,
    /// Tells the kernel to drop what it caches of an inode (set once the session exists).
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// How long the kernel may trust attributes and entries without asking again.
    ttl: Duration,
    read_only: bool,
}

impl RwxFuse {
    /// An adapter over `backend`; the kernel may keep attributes and entries for `ttl`, `notifier`
    /// reaches it once the session exists.
    pub fn new(
        backend: Arc<dyn Backend>,
        ttl: Duration,
        read_only: bool,
        notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    ) -> RwxFuse {
        RwxFuse {
            backend,
            locks: Default::default(),
            notifier,
            ttl,
            read_only,
        }
    }
}

impl Filesystem for RwxFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let _ = config.add_capabilities(
            InitFlags::FUSE_DO_READDIRPLUS
                | InitFlags::FUSE_READDIRPLUS_AUTO
                | InitFlags::FUSE_PARALLEL_DIROPS
                | InitFlags::FUSE_BIG_WRITES
                // We drop setuid, setgid and capabilities on unprivileged writes and
                // truncations and on chown: the kernel then stops asking for
                // security.capability before every write.
                | InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        );
        // With the server keeping locks, fcntl and flock locks go to it; otherwise (one
        // engine per mount) the kernel keeps them, for this node only.
        if self.backend.supports_locks() {
            let _ =
                config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS | InitFlags::FUSE_FLOCK_LOCKS);
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _as = crate::caller::acting_as(req);
        self.entry_or_absent(self.backend.lookup(parent.0, name.as_bytes()), reply)
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _as = crate::caller::acting_as(req);
        self.attr(self.backend.getattr(ino.0), reply)
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _as = crate::caller::acting_as(req);
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
            ctime: ctime.map(from_time),
            // Only the superuser keeps setuid and setgid through a truncation.
            kill_priv: size.is_some() && req.uid() != 0,
        };
        let r = self.writing(|| self.backend.setattr(ino.0, set));
        self.attr(r, reply)
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _as = crate::caller::acting_as(req);
        data(self.backend.readlink(ino.0), reply)
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let _as = crate::caller::acting_as(req);
        let (name, uid, gid) = (name.as_bytes(), req.uid(), req.gid());
        let r = self.writing(|| self.backend.mknod(parent.0, name, mode, rdev, uid, gid));
        self.entry(r, reply)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _as = crate::caller::acting_as(req);
        let (name, uid, gid) = (name.as_bytes(), req.uid(), req.gid());
        let r = self.writing(|| self.backend.mkdir(parent.0, name, mode, uid, gid));
        self.entry(r, reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        let r = self.writing(|| self.backend.unlink(parent.0, name.as_bytes()));
        empty(r, reply)
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        let r = self.writing(|| self.backend.rmdir(parent.0, name.as_bytes()));
        empty(r, reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _as = crate::caller::acting_as(req);
        let (name, target) = (link_name.as_bytes(), target.as_os_str().as_bytes());
        let (uid, gid) = (req.uid(), req.gid());
        let r = self.writing(|| self.backend.symlink(parent.0, name, target, uid, gid));
        self.entry(r, reply)
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        if flags.contains(fuser::RenameFlags::RENAME_WHITEOUT) {
            return empty(Err(FsError::Invalid), reply);
        }
        let f = RenameFlags {
            noreplace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
        };
        let (name, newname) = (name.as_bytes(), newname.as_bytes());
        let r = self.writing(|| self.backend.rename(parent.0, name, newparent.0, newname, f));
        empty(r, reply)
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _as = crate::caller::acting_as(req);
        let r = self.writing(|| self.backend.link(ino.0, newparent.0, newname.as_bytes()));
        self.entry(r, reply)
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _as = crate::caller::acting_as(req);
        let wants_write =
            flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        let r = match wants_write {
            true => self.writable(),
            false => Ok(()),
        };
        match r.and_then(|_| self.backend.open(ino.0, flags.0)) {
            Ok(_) => reply.opened(FileHandle(0), fopen_flags(flags.0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _as = crate::caller::acting_as(req);
        let r = (self.locks_intact(ino.0)).and_then(|_| self.backend.read(ino.0, offset, size));
        data(r, reply)
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _as = crate::caller::acting_as_writer(req, ino.0);
        let how = WriteHow {
            kill_priv: write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID),
            under_lock: self.locks.under_lock(ino.0),
        };
        let r = self.writing(|| self.locks_intact(ino.0)).and_then(|_| {
            match flags.0 & libc::O_APPEND != 0 {
                true => self.backend.append(ino.0, data, how),
                false => self.backend.write(ino.0, offset, data, how),
            }
        });
        written(r, reply)
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        let r = self.backend.flush(ino.0);
        let r = r.and_then(|_| self.writes_survived(ino.0, false));
        // POSIX: any close by a process drops that process's locks on the file.
        let r = r.and_then(|_| match self.locks.ever_locked(ino.0) {
            true => self.backend.release_locks(ino.0, lock_owner.0),
            false => Ok(()),
        });
        empty(r, reply)
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        self.locks.closed(ino.0);
        // The last close of an open file drops its flock (the kernel names the owner then).
        if let Some(owner) = lock_owner.filter(|_| self.locks.ever_locked(ino.0)) {
            if let Err(e) = self.backend.release_locks(ino.0, owner.0) {
                tracing::warn!("dropping the flock on {} failed: {e}", ino.0);
            }
        }
        empty(self.backend.release(ino.0), reply)
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        let r = self.backend.fsync(ino.0);
        empty(r.and_then(|_| self.writes_survived(ino.0, true)), reply)
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let _as = crate::caller::acting_as(req);
        entries(self.backend.readdir(ino.0, offset, 512), reply)
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let _as = crate::caller::acting_as(req);
        self.entries_plus(self.backend.readdirplus(ino.0, offset, 256), reply)
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        empty(self.backend.fsync(ino.0), reply)
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _as = crate::caller::acting_as(req);
        match self.backend.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        let name = name.as_bytes();
        let r = self.writing(|| self.backend.setxattr(ino.0, name, value, flags as u32));
        empty(r, reply)
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _as = crate::caller::acting_as(req);
        xattr(self.backend.getxattr(ino.0, name.as_bytes()), size, reply)
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _as = crate::caller::acting_as(req);
        // Names, each ended by a NUL.
        let r = self.backend.listxattr(ino.0).map(|names| {
            names.into_iter().fold(Vec::new(), |mut buf, n| {
                buf.extend_from_slice(&n);
                buf.push(0);
                buf
            })
        });
        xattr(r, size, reply)
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        let r = self.writing(|| self.backend.removexattr(ino.0, name.as_bytes()));
        empty(r, reply)
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        // The kernel checks permissions (default_permissions); this only confirms existence
        // and refuses writes on a read-only mount.
        let r = match mask.contains(AccessFlags::W_OK) {
            true => self.writable(),
            false => Ok(()),
        };
        empty(
            r.and_then(|_| self.backend.getattr(ino.0).map(|_| ())),
            reply,
        )
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _as = crate::caller::acting_as(req);
        // The access mode the file is held open with, to open it again on a new session.
        let _creating = crate::caller::creating_with(flags);
        let (name, owner) = (name.as_bytes(), (req.uid(), req.gid()));
        let r = self
            .writing(|| create::create_or_open(&*self.backend, parent.0, name, mode, owner, flags));
        self.created(r, flags, reply)
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        // The kernel sends no kill flag with a fallocate: like a write by one without
        // CAP_FSETID, it drops setuid and setgid (xfstests generic/683).
        let kill = req.uid() != 0;
        let r = self.writing(|| {
            self.backend
                .fallocate(ino.0, offset, length, mode as u32, kill)
        });
        empty(r, reply)
    }

    /// SEEK_DATA and SEEK_HOLE; a negative offset is past any end (ENXIO, as on Linux).
    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let _as = crate::caller::acting_as(req);
        let (ino, offset, whence) = (ino.0, offset as u64, whence as u32);
        let seek = protocol::Request::Lseek {
            ino,
            offset,
            whence,
        };
        position(self.backend.ask(seek), reply)
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let _as = crate::caller::acting_as(req);
        let from = copy::End {
            ino: ino_in.0,
            offset: offset_in,
        };
        let to = copy::End {
            ino: ino_out.0,
            offset: offset_out,
        };
        let how = WriteHow {
            kill_priv: req.uid() != 0,
            under_lock: self.locks.under_lock(ino_out.0),
        };
        let r = self.writing(|| copy::copy_range(&*self.backend, from, to, len, how));
        written(r.map(|n| n as u32), reply)
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: fuser::ReplyLock,
    ) {
        let _as = crate::caller::acting_as(req);
        let owner = lock_owner.0;
        let lock = LockArgs {
            owner,
            start,
            end,
            typ,
            pid,
        };
        match self.backend.getlk(ino.0, lock) {
            Ok((start, end, typ, pid)) => reply.locked(start, end, typ, pid),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let _as = crate::caller::acting_as(req);
        self.locks.note_locked(ino.0);
        let owner = lock_owner.0;
        let setlk = Setlk {
            backend: self.backend.clone(),
            marks: self.locks.clone(),
            notifier: self.notifier.clone(),
            ino,
            lock: LockArgs {
                owner,
                start,
                end,
                typ,
                pid,
            },
        };
        match sleep {
            true => setlk.wait(req.pid(), reply),
            false => setlk.now(reply),
        }
    }
}
