//! What the FUSE adapter needs from wherever the file system lives. Every method is one
//! operation, in the protocol's vocabulary; errors are the engine's, so errno is decided in
//! one place (`FsError::errno`).

use protocol::{Attr, DirEntry, RenameFlags, SetAttr, StatFs};
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

pub trait Backend: Send + Sync + 'static {
    fn lookup(&self, parent: u64, name: &[u8]) -> FsResult<Attr>;
    fn getattr(&self, ino: u64) -> FsResult<Attr>;
    fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr>;
    #[allow(clippy::too_many_arguments)]
    fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr>;
    fn mkdir(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr>;
    fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr>;
    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr>;
    fn unlink(&self, parent: u64, name: &[u8]) -> FsResult<()>;
    fn rmdir(&self, parent: u64, name: &[u8]) -> FsResult<()>;
    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()>;
    fn readlink(&self, ino: u64) -> FsResult<Vec<u8>>;
    fn readdir(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>>;
    fn readdirplus(&self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<(DirEntry, Attr)>>;
    /// Create and open in one step.
    fn create(&self, parent: u64, name: &[u8], mode: u32, uid: u32, gid: u32) -> FsResult<Attr>;
    fn open(&self, ino: u64, flags: i32) -> FsResult<Attr>;
    fn release(&self, ino: u64) -> FsResult<()>;
    fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>>;
    fn write(&self, ino: u64, offset: u64, data: &[u8], how: WriteHow) -> FsResult<u32>;
    /// Write at the file's current end on the volume (O_APPEND), atomically.
    fn append(&self, ino: u64, data: &[u8], how: WriteHow) -> FsResult<u32>;
    /// Written data reaches the volume (close-to-open); not necessarily the disk.
    fn flush(&self, ino: u64) -> FsResult<()>;
    /// Durable on disk.
    fn fsync(&self, ino: u64) -> FsResult<()>;
    fn fallocate(&self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()>;
    fn statfs(&self) -> FsResult<StatFs>;
    fn getxattr(&self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>>;
    fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()>;
    fn listxattr(&self, ino: u64) -> FsResult<Vec<Vec<u8>>>;
    fn removexattr(&self, ino: u64, name: &[u8]) -> FsResult<()>;
    /// The mount is going away: make everything durable.
    fn shutdown(&self) -> FsResult<()>;

    // ---- locks, where the backend holds them for every client (the server) ----

    /// True if locks are this backend's to keep; otherwise the kernel keeps them, locally.
    fn supports_locks(&self) -> bool {
        false
    }
    /// F_GETLK: the conflicting lock (start, end, type, pid), or type F_UNLCK.
    fn getlk(&self, _ino: u64, _lock: LockArgs) -> FsResult<(u64, u64, i32, u32)> {
        Err(FsError::NotSupported)
    }
    /// F_SETLK, or F_SETLKW when `wait`: then `interrupted` is polled while blocked, and a
    /// true answer ends the wait with `FsError::Interrupted`.
    fn setlk(
        &self,
        _ino: u64,
        _lock: LockArgs,
        _wait: bool,
        _interrupted: &dyn Fn() -> bool,
    ) -> FsResult<()> {
        Err(FsError::NotSupported)
    }
    /// Where to send invalidations the backend learns of (another client changed something
    /// this mount may cache). Backends that cannot learn of any ignore it.
    fn on_invalidate(&self, _sink: std::sync::mpsc::Sender<Invalidate>) {}

    /// Counts the times this mount's locks were all lost at once (its session expired, or
    /// they could not be reclaimed after a server restart).
    fn lock_epoch(&self) -> u64 {
        0
    }

    /// True (once) if a server restart lost changes made through this mount to `ino` (with
    /// `names`, or to the volume's names) that nothing could bring back: the next fsync (or
    /// close) says EIO.
    fn take_lost(&self, _ino: u64, _names: bool) -> bool {
        false
    }

    /// A close by `owner`: its locks on `ino` go.
    fn release_locks(&self, _ino: u64, _owner: u64) -> FsResult<()> {
        Err(FsError::NotSupported)
    }
}

/// One lock request as the kernel gives it: its owner, inclusive range, type and pid.
#[derive(Debug, Clone, Copy)]
pub struct LockArgs {
    pub owner: u64,
    pub start: u64,
    pub end: u64,
    pub typ: i32,
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
}

/// Something another client changed that this mount's kernel may cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalidate {
    /// Attributes and data of an inode.
    Inode(u64),
    /// A name in a directory.
    Entry { parent: u64, name: Vec<u8> },
}
