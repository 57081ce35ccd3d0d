//! The FUSE adapter: each callback calls the backend once and replies, or maps the error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use protocol::{Attr, FileKind, RenameFlags, SetAttr, SetTime, TimeSpec};
use volume::FsError;

use crate::backend::{Backend, LockArgs, WriteHow};
use crate::epochs::EpochMarks;
use crate::signals::{gone, signal_pending};

/// Largest write the kernel sends in one request.
pub const MAX_WRITE: u32 = 1 << 20;

pub struct RwxFuse {
    backend: Arc<dyn Backend>,
    /// Files this mount has sent lock requests for: only their closes need to tell the
    /// server to drop the closing owner's locks (a round trip spared on every other close).
    locked: std::sync::Mutex<std::collections::HashSet<u64>>,
    /// Files locked through this mount and still open, with the lock epoch they were locked
    /// in: if the epoch moved on, the server dropped those locks (lease over) and I/O on the
    /// file fails with EIO rather than go on unprotected.
    lock_epochs: Arc<EpochMarks>,
    /// Tells the kernel to drop what it caches of an inode (set once the session exists).
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// How long the kernel may trust attributes and entries without asking again.
    ttl: Duration,
    read_only: bool,
}

impl RwxFuse {
    pub fn new(
        backend: Arc<dyn Backend>,
        ttl: Duration,
        read_only: bool,
        notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    ) -> RwxFuse {
        RwxFuse {
            backend,
            locked: Default::default(),
            lock_epochs: Default::default(),
            notifier,
            ttl,
            read_only,
        }
    }
}

fn eio() -> FsError {
    FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))
}

fn errno(e: FsError) -> Errno {
    match &e {
        FsError::Corrupt(_) | FsError::Io(_) | FsError::NotAnImage(_) => tracing::error!("{e}"),
        _ => tracing::debug!("{e}"),
    }
    Errno::from_i32(e.errno())
}

fn to_time(t: TimeSpec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + Duration::from_nanos(t.nsec as u64)
    }
}

fn from_time(t: SystemTime) -> TimeSpec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => TimeSpec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let mut sec = -(d.as_secs() as i64);
            let mut nsec = d.subsec_nanos();
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            TimeSpec { sec, nsec }
        }
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::RegularFile => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::NamedPipe => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: to_time(a.atime),
        mtime: to_time(a.mtime),
        ctime: to_time(a.ctime),
        crtime: to_time(a.ctime),
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

/// How the kernel should treat an open file. O_APPEND files bypass the page cache: through
/// the cache the kernel splits a write at the first partial page, and each piece would be
/// appended on its own, interleaved with other clients' appends; direct I/O sends the whole
/// write as one request (up to `MAX_WRITE`), which the volume appends in one piece.
fn fopen_flags(open_flags: i32) -> FopenFlags {
    if open_flags & libc::O_APPEND != 0 {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(from_time(t)),
    }
}

impl RwxFuse {
    fn entry(&self, r: Result<Attr, FsError>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(a.generation as u64)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(r: Result<(), FsError>, reply: ReplyEmpty) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn note_locked(&self, ino: u64) {
        self.locked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ino);
    }

    /// After an fsync or a close: EIO if a server restart lost changes to `ino` that could
    /// not be sent again (the backend notes them as it sends them). An fsync commits the
    /// whole volume, so it also answers for this mount's lost name changes.
    fn writes_survived(&self, ino: u64, fsync: bool) -> Result<(), FsError> {
        if self.backend.take_lost(ino, fsync) {
            tracing::warn!("changes to {ino} (or to names) were lost in a server restart");
            return Err(eio());
        }
        Ok(())
    }

    /// EIO if the locks taken on `ino` were lost with an expired session.
    fn locks_intact(&self, ino: u64) -> Result<(), FsError> {
        if self.lock_epochs.stale(ino, self.backend.lock_epoch()) {
            return Err(eio());
        }
        Ok(())
    }

    fn ever_locked(&self, ino: u64) -> bool {
        self.locked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ino)
    }

    fn writable(&self) -> Result<(), FsError> {
        if self.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
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
        match self.backend.lookup(parent.0, name.as_bytes()) {
            // A name that is not there is cached as absent for the TTL, like a name that
            // is: the create that usually follows spares a lookup, and a create on another
            // mount drops the negative entry here (the server pushes entry invalidations).
            Err(FsError::NotFound) => {
                let absent = FileAttr {
                    ino: INodeNo(0),
                    size: 0,
                    blocks: 0,
                    atime: UNIX_EPOCH,
                    mtime: UNIX_EPOCH,
                    ctime: UNIX_EPOCH,
                    crtime: UNIX_EPOCH,
                    kind: FileType::RegularFile,
                    perm: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                    blksize: 4096,
                    flags: 0,
                };
                reply.entry(&self.ttl, &absent, Generation(0))
            }
            r => self.entry(r, reply),
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _as = crate::caller::acting_as(req);
        match self.backend.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
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
        match self
            .writable()
            .and_then(|_| self.backend.setattr(ino.0, set))
        {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _as = crate::caller::acting_as(req);
        match self.backend.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
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
        let r = self.writable().and_then(|_| {
            {
                self.backend
                    .mknod(parent.0, name.as_bytes(), mode, rdev, req.uid(), req.gid())
            }
        });
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
        let r = self.writable().and_then(|_| {
            {
                self.backend
                    .mkdir(parent.0, name.as_bytes(), mode, req.uid(), req.gid())
            }
        });
        self.entry(r, reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        Self::empty(
            self.writable()
                .and_then(|_| self.backend.unlink(parent.0, name.as_bytes())),
            reply,
        )
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        Self::empty(
            self.writable()
                .and_then(|_| self.backend.rmdir(parent.0, name.as_bytes())),
            reply,
        )
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
        let r = self.writable().and_then(|_| {
            {
                self.backend.symlink(
                    parent.0,
                    link_name.as_bytes(),
                    target.as_os_str().as_bytes(),
                    req.uid(),
                    req.gid(),
                )
            }
        });
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
            return reply.error(Errno::from_i32(libc::EINVAL));
        }
        let f = RenameFlags {
            noreplace: flags.contains(fuser::RenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(fuser::RenameFlags::RENAME_EXCHANGE),
        };
        let r = self.writable().and_then(|_| {
            {
                self.backend.rename(
                    parent.0,
                    name.as_bytes(),
                    newparent.0,
                    newname.as_bytes(),
                    f,
                )
            }
        });
        Self::empty(r, reply)
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
        let r = self
            .writable()
            .and_then(|_| self.backend.link(ino.0, newparent.0, newname.as_bytes()));
        self.entry(r, reply)
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _as = crate::caller::acting_as(req);
        let wants_write =
            flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        if wants_write && self.read_only {
            return reply.error(Errno::from_i32(libc::EROFS));
        }
        match self.backend.open(ino.0, flags.0) {
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
        match self
            .locks_intact(ino.0)
            .and_then(|_| self.backend.read(ino.0, offset, size))
        {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
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
            under_lock: self.lock_epochs.marked(ino.0),
        };
        match self
            .writable()
            .and_then(|_| self.locks_intact(ino.0))
            .and_then(|_| {
                if flags.0 & libc::O_APPEND != 0 {
                    self.backend.append(ino.0, data, how)
                } else {
                    self.backend.write(ino.0, offset, data, how)
                }
            }) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
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
        // POSIX: any close by a process drops that process's locks on the file.
        let r = self.backend.flush(ino.0);
        let r = r.and_then(|_| self.writes_survived(ino.0, false));
        let r = r.and_then(|_| {
            if self.ever_locked(ino.0) {
                self.backend.release_locks(ino.0, lock_owner.0)
            } else {
                Ok(())
            }
        });
        Self::empty(r, reply)
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
        // Its locks went with the close; a lost lock no longer poisons the next open.
        self.lock_epochs.clear(ino.0);
        // The last close of an open file drops its flock (the kernel names the owner then).
        if let Some(owner) = lock_owner.filter(|_| self.ever_locked(ino.0)) {
            if let Err(e) = self.backend.release_locks(ino.0, owner.0) {
                tracing::warn!("dropping the flock on {} failed: {e}", ino.0);
            }
        }
        Self::empty(self.backend.release(ino.0), reply)
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
        let r = r.and_then(|_| self.writes_survived(ino.0, true));
        Self::empty(r, reply)
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _as = crate::caller::acting_as(req);
        match self.backend.readdir(ino.0, offset, 512) {
            Ok(entries) => {
                for e in entries {
                    if reply.add(
                        INodeNo(e.ino),
                        e.offset,
                        file_type(e.kind),
                        OsStr::from_bytes(&e.name),
                    ) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _as = crate::caller::acting_as(req);
        match self.backend.readdirplus(ino.0, offset, 256) {
            Ok(entries) => {
                for (e, a) in entries {
                    let full = reply.add(
                        INodeNo(e.ino),
                        e.offset,
                        OsStr::from_bytes(&e.name),
                        &self.ttl,
                        &file_attr(&a),
                        Generation(a.generation as u64),
                    );
                    if full {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(errno(e)),
        }
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
        Self::empty(self.backend.fsync(ino.0), reply)
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
        let r = self.writable().and_then(|_| {
            self.backend
                .setxattr(ino.0, name.as_bytes(), value, flags as u32)
        });
        Self::empty(r, reply)
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _as = crate::caller::acting_as(req);
        match self.backend.getxattr(ino.0, name.as_bytes()) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::from_i32(libc::ERANGE)),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _as = crate::caller::acting_as(req);
        match self.backend.listxattr(ino.0) {
            Ok(names) => {
                let mut buf = Vec::new();
                for n in names {
                    buf.extend_from_slice(&n);
                    buf.push(0);
                }
                if size == 0 {
                    reply.size(buf.len() as u32)
                } else if buf.len() > size as usize {
                    reply.error(Errno::from_i32(libc::ERANGE))
                } else {
                    reply.data(&buf)
                }
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        let r = self
            .writable()
            .and_then(|_| self.backend.removexattr(ino.0, name.as_bytes()));
        Self::empty(r, reply)
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let _as = crate::caller::acting_as(req);
        // The kernel checks permissions (default_permissions); this only confirms existence
        // and refuses writes on a read-only mount.
        if self.read_only && mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::from_i32(libc::EROFS));
        }
        Self::empty(self.backend.getattr(ino.0).map(|_| ()), reply)
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
        let r = self.writable().and_then(|_| {
            match self
                .backend
                .create(parent.0, name.as_bytes(), mode, req.uid(), req.gid())
            {
                // Another client created the name since the kernel looked it up: without
                // O_EXCL, open(O_CREAT) opens the existing file (truncating it for O_TRUNC,
                // which the kernel leaves to us once it asked to create).
                Err(FsError::Exists) if flags & libc::O_EXCL == 0 => {
                    let a = self.backend.lookup(parent.0, name.as_bytes())?;
                    let a = self.backend.open(a.ino, flags)?;
                    if flags & libc::O_TRUNC != 0 && a.size != 0 {
                        let truncate = SetAttr {
                            size: Some(0),
                            ..SetAttr::default()
                        };
                        if let Err(e) = self.backend.setattr(a.ino, truncate) {
                            let _ = self.backend.release(a.ino);
                            return Err(e);
                        }
                    }
                    Ok(a)
                }
                r => r,
            }
        });
        match r {
            Ok(a) => reply.created(
                &self.ttl,
                &file_attr(&a),
                Generation(a.generation as u64),
                FileHandle(0),
                fopen_flags(flags),
            ),
            Err(e) => reply.error(errno(e)),
        }
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
        let r = self
            .writable()
            .and_then(|_| self.backend.fallocate(ino.0, offset, length, mode as u32));
        Self::empty(r, reply)
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
        let r = self.writable().and_then(|_| {
            let mut done = 0u64;
            while done < len {
                let chunk = (len - done).min(MAX_WRITE as u64) as u32;
                let data = self.backend.read(ino_in.0, offset_in + done, chunk)?;
                if data.is_empty() {
                    break;
                }
                let how = WriteHow {
                    kill_priv: req.uid() != 0,
                    under_lock: self.lock_epochs.marked(ino_out.0),
                };
                let n = self
                    .backend
                    .write(ino_out.0, offset_out + done, &data, how)?;
                done += n as u64;
                if (n as usize) < data.len() {
                    break;
                }
            }
            Ok(done)
        });
        match r {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
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
        let lock = LockArgs {
            owner: lock_owner.0,
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
        self.note_locked(ino.0);
        let lock = LockArgs {
            owner: lock_owner.0,
            start,
            end,
            typ,
            pid,
        };
        // Taking a lock revalidates, as NFS does: what this node caches of the file (its
        // pages, its size) may predate the last holder's writes.
        let revalidate = {
            let notifier = self.notifier.clone();
            move || {
                if typ != libc::F_UNLCK {
                    if let Some(n) = notifier.get() {
                        let _ = n.inval_inode(ino, 0, 0);
                    }
                }
            }
        };
        if !sleep {
            let r = self.backend.setlk(ino.0, lock, false, &|| false);
            if r.is_ok() {
                if typ != libc::F_UNLCK {
                    self.lock_epochs.mark(ino.0, self.backend.lock_epoch());
                }
                revalidate();
            }
            return Self::empty(r, reply);
        }
        // A blocked F_SETLKW must not hold one of the few FUSE threads: it waits on a thread
        // of its own. fuser does not pass FUSE_INTERRUPT on, so the waiter watches the
        // requesting thread for a pending signal (EINTR) or its end.
        let backend = self.backend.clone();
        let epochs = self.lock_epochs.clone();
        let tid = req.pid();
        let spawned = std::thread::Builder::new()
            .name("rwxfs-lock-wait".into())
            .spawn(move || {
                let r = backend.setlk(ino.0, lock, true, &|| signal_pending(tid) || gone(tid));
                if r.is_ok() && gone(tid) {
                    // Granted to a process that died waiting: give it back.
                    let unlock = LockArgs {
                        typ: libc::F_UNLCK,
                        ..lock
                    };
                    let _ = backend.setlk(ino.0, unlock, false, &|| false);
                } else if r.is_ok() {
                    if typ != libc::F_UNLCK {
                        epochs.mark(ino.0, backend.lock_epoch());
                    }
                    revalidate();
                }
                Self::empty(r, reply)
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a lock waiter: {e}");
        }
    }
}
