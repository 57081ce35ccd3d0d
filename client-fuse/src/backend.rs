//! What the FUSE adapter needs from wherever the file system lives: a transport that runs
//! one `Request` (`Backend::call`), and the typed calls over it, written once here — each
//! builds its request and takes its answer (`protocol::Answer`). A raw mount's transport
//! runs the table of operations in this process (`raw`), a remote one sends the call to the
//! server (`remote`); the remote one adds what only it needs through the hooks below (its
//! writes on their way, its locks, its session). Errors are the engine's, so errno is
//! decided in one place (`FsError::errno`).

use protocol::{
    Answer, Attr, DirEntry, LockKind, LockState, RenameFlags, Request, Response, SetAttr, StatFs,
};
use volume::{FsError, FsResult};

/// What comes with a write besides its data.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteHow {
    /// The writer may not keep setuid, setgid and capabilities: they go.
    pub kill_priv: bool,
    /// Made under a lock this mount holds on the file: if the session (and with it the
    /// lock) is lost before the write reaches the server, it must fail, not be sent again
    /// on a new session where nothing protects it.
    pub under_lock: bool,
}

/// Run `req` (with `bulk`, a write's data) on `b` and take its answer as `T`; an answer of
/// another kind than the request gets is an I/O error.
pub fn ask<T: Answer, B: Backend + ?Sized>(b: &B, req: Request, bulk: &[u8]) -> FsResult<T> {
    let (resp, out) = b.call(req, bulk)?;
    T::take(resp, out).ok_or_else(|| FsError::Io(std::io::Error::from_raw_os_error(libc::EIO)))
}

impl dyn Backend {
    /// `ask` on a backend behind a pointer: any request, its answer as the type it carries.
    pub fn ask<T: Answer>(&self, req: Request) -> FsResult<T> {
        ask(self, req, &[])
    }
}

/// Where a mount's file system lives, as the FUSE adapter sees it: a transport (`call`), hooks, and
/// the typed calls written once over it.
pub trait Backend: Send + Sync + 'static {
    /// The transport: run `req` (with its bulk bytes) wherever the file system lives; its
    /// response and bulk bytes (read data).
    fn call(&self, req: Request, bulk: &[u8]) -> FsResult<(Response, Vec<u8>)>;

    // ---- hooks: what a transport adds around the typed calls ----

    /// Writes this mount made to `ino` are on the volume; one that was refused on its way
    /// is this call's error (and every later one's, until the file's last close here).
    /// Nothing to wait for where writes are made in place.
    fn settled(&self, _ino: u64) -> FsResult<()> {
        Ok(())
    }
    /// The mount is going away: make everything durable.
    fn shutdown(&self) -> FsResult<()>;
    /// True if locks are this backend's to keep; otherwise the kernel keeps them, locally.
    fn supports_locks(&self) -> bool {
        false
    }
    /// Where to send invalidations the backend learns of (another client changed something
    /// this mount may cache). Backends that cannot learn of any ignore it.
    fn on_invalidate(&self, _sink: std::sync::mpsc::Sender<Invalidate>) {}
    /// Counts the times this mount's locks were all lost at once (its session expired, or
    /// they could not be reclaimed after a server restart).
    fn lock_epoch(&self) -> u64 {
        0
    }
    /// True if a server restart lost changes made through this mount to `ino` that nothing
    /// could bring back, or with `names`, to the volume's names: every fsync and close of
    /// the file says EIO until its last close on this mount (a close of a copy of the
    /// descriptor, as a forked child's exec makes, takes it from no one); the next fsync
    /// says so of the names.
    fn lost(&self, _ino: u64, _names: bool) -> bool {
        false
    }

    // ---- the typed calls ----

    /// `name` in directory `parent`.
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        let name = name.to_vec();
        ask(self, Request::Lookup { parent, name }, &[])
    }
    /// An inode's attributes.
    fn getattr(&self, ino: u64) -> FsResult<Attr> {
        ask(self, Request::Getattr { ino }, &[])
    }
    /// Change an inode's attributes (chmod, chown, utimes, truncate); its attributes after.
    fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        ask(self, Request::Setattr { ino, set }, &[])
    }
    #[allow(clippy::too_many_arguments)]
    /// Make a device, FIFO, socket or regular file `name` in `parent`, owned by (`uid`, `gid`).
    fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let name = name.to_vec();
        let req = Request::Mknod {
            parent,
            name,
            mode,
            rdev,
            uid,
            gid,
        };
        ask(self, req, &[])
    }
    /// Make directory `name` in `parent`.
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let name = name.to_vec();
        let req = Request::Mkdir {
            parent,
            name,
            mode,
            uid,
            gid,
        };
        ask(self, req, &[])
    }
    /// Make symbolic link `name` in `parent` pointing at `target`.
    fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let (name, target) = (name.to_vec(), target.to_vec());
        let req = Request::Symlink {
            parent,
            name,
            target,
            uid,
            gid,
        };
        ask(self, req, &[])
    }
    /// Give inode `ino` another name, `newname` in `newparent`.
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        let newname = newname.to_vec();
        let req = Request::Link {
            ino,
            newparent,
            newname,
        };
        ask(self, req, &[])
    }
    /// Remove the name `name` from `parent` (not a directory).
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let name = name.to_vec();
        ask(self, Request::Unlink { parent, name }, &[])
    }
    /// Remove the empty directory `name` from `parent`.
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()> {
        let name = name.to_vec();
        ask(self, Request::Rmdir { parent, name }, &[])
    }
    /// Move `name` in `parent` to `newname` in `newparent` (or exchange the two, by `flags`).
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        let (name, newname) = (name.to_vec(), newname.to_vec());
        let req = Request::Rename {
            parent,
            name,
            newparent,
            newname,
            flags,
        };
        ask(self, req, &[])
    }
    /// A symbolic link's target.
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        ask(self, Request::Readlink { ino }, &[])
    }
    /// At most `max` entries of directory `ino` from position `offset`.
    fn readdir(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        let max = max.min(u32::MAX as usize) as u32;
        ask(self, Request::Readdir { ino, offset, max }, &[])
    }
    /// As `readdir`, each entry with its attributes.
    fn readdirplus(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<(DirEntry, Attr)>> {
        let max = max.min(u32::MAX as usize) as u32;
        ask(self, Request::Readdirplus { ino, offset, max }, &[])
    }
    /// Create and open in one step.
    fn create(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let name = name.to_vec();
        let req = Request::Create {
            parent,
            name,
            mode,
            uid,
            gid,
        };
        ask(self, req, &[])
    }
    /// Open `ino` with open(2)'s `flags`; its attributes.
    fn open(&self, ino: u64, flags: i32) -> FsResult<Attr> {
        ask(self, Request::Open { ino, flags }, &[])
    }
    /// Close one open of `ino`.
    fn release(&self, ino: u64) -> FsResult<()> {
        ask(self, Request::Release { ino }, &[])
    }
    /// At most `size` bytes of `ino` from `offset` (fewer at its end).
    fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        ask(self, Request::Read { ino, offset, size }, &[])
    }
    /// Write `data` to `ino` at `offset`; the bytes written.
    fn write(&self, ino: u64, offset: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        let kill_priv = how.kill_priv;
        let req = Request::Write {
            ino,
            offset,
            kill_priv,
        };
        ask(self, req, data)
    }
    /// Write at the file's current end on the volume (O_APPEND), atomically.
    fn append(&self, ino: u64, data: &[u8], how: WriteHow) -> FsResult<u32> {
        self.settled(ino)?;
        let kill_priv = how.kill_priv;
        ask(self, Request::Append { ino, kill_priv }, data)
    }
    /// Written data reaches the volume (close-to-open); not necessarily the disk.
    fn flush(&self, ino: u64) -> FsResult<()> {
        self.settled(ino)
    }
    /// Durable on disk.
    fn fsync(&self, ino: u64) -> FsResult<()> {
        self.settled(ino)?;
        ask(self, Request::Fsync { ino }, &[])
    }
    /// fallocate(2) on `ino`: reserve or punch `len` bytes from `offset`, by `mode`;
    /// `kill_priv` as for a write.
    fn fallocate(
        &self,
        ino: u64,
        offset: u64,
        len: u64,
        mode: u32,
        kill_priv: bool,
    ) -> FsResult<()> {
        self.settled(ino)?;
        let req = Request::Fallocate {
            ino,
            offset,
            len,
            mode,
            kill_priv,
        };
        ask(self, req, &[])
    }
    /// The volume's sizes and what is free.
    fn statfs(&self) -> FsResult<StatFs> {
        ask(self, Request::Statfs, &[])
    }
    /// Extended attribute `name` of `ino`.
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let name = name.to_vec();
        ask(self, Request::Getxattr { ino, name }, &[])
    }
    /// Set extended attribute `name` of `ino` (create or replace only, by `flags`).
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        let (name, value) = (name.to_vec(), value.to_vec());
        let req = Request::Setxattr {
            ino,
            name,
            value,
            flags,
        };
        ask(self, req, &[])
    }
    /// The names of `ino`'s extended attributes.
    fn listxattr(&self, ino: u64) -> FsResult<Vec<Vec<u8>>> {
        ask(self, Request::Listxattr { ino }, &[])
    }
    /// Remove extended attribute `name` of `ino`.
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()> {
        let name = name.to_vec();
        ask(self, Request::Removexattr { ino, name }, &[])
    }

    // ---- locks, where the backend holds them for every client (the server) ----

    /// F_GETLK: the conflicting lock (start, end, type, pid), or type F_UNLCK.
    fn getlk(&self, ino: u64, lock: LockArgs) -> FsResult<(u64, u64, i32, u32)> {
        let l: LockState = ask(self, lock.getlk(ino), &[])?;
        Ok((l.range.start, l.range.end, l.kind.raw(), l.pid))
    }
    /// F_SETLK, or F_SETLKW when `wait`: then `interrupted` is polled while blocked, and a
    /// true answer ends the wait with `FsError::Interrupted`.
    fn setlk(
        &self,
        ino: u64,
        lock: LockArgs,
        wait: bool,
        _interrupted: &dyn Fn() -> bool,
    ) -> FsResult<()> {
        ask(self, lock.setlk(ino, wait), &[])
    }
    /// A close by `owner`: its locks on `ino` go.
    fn release_locks(&self, ino: u64, owner: u64) -> FsResult<()> {
        ask(self, Request::ReleaseLocks { ino, owner }, &[])
    }
}

/// One lock request as the kernel gives it: its owner, inclusive range, type and pid.
#[derive(Debug, Clone, Copy)]
pub struct LockArgs {
    /// The lock's owner as the kernel names it (one per open file description, or process).
    pub owner: u64,
    /// First byte covered.
    pub start: u64,
    /// Last byte covered (inclusive).
    pub end: u64,
    /// F_RDLCK, F_WRLCK or F_UNLCK.
    pub typ: i32,
    /// The process asking, as F_GETLK reports it.
    pub pid: u32,
}

impl LockArgs {
    /// The bytes the lock covers, as the wire says it.
    pub fn range(&self) -> protocol::LockRange {
        protocol::LockRange {
            start: self.start,
            end: self.end,
        }
    }

    /// F_GETLK for this lock on `ino`, as a request.
    pub fn getlk(&self, ino: u64) -> Request {
        Request::Getlk {
            ino,
            owner: self.owner,
            range: self.range(),
            kind: LockKind::from_raw(self.typ),
            pid: self.pid,
        }
    }

    /// F_SETLK (F_SETLKW with `wait`) of this lock on `ino`, as a request.
    pub fn setlk(&self, ino: u64, wait: bool) -> Request {
        Request::Setlk {
            ino,
            owner: self.owner,
            range: self.range(),
            kind: LockKind::from_raw(self.typ),
            pid: self.pid,
            wait,
        }
    }
}

/// Something another client changed that this mount's kernel may cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalidate {
    /// Attributes and data of an inode.
    Inode(u64),
    /// A name in a directory.
    Entry {
        /// The directory.
        parent: u64,
        /// The name in it.
        name: Vec<u8>,
    },
}
