//! What the engine tells callers about files: attributes, directory entries, statfs.

/// What kind of file an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    RegularFile,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    NamedPipe,
    /// A Unix domain socket.
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

impl FileKind {
    /// The kind a mode's `S_IFMT` bits name; None for none.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::RegularFile,
            libc::S_IFDIR => FileKind::Directory,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::NamedPipe,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::RegularFile => libc::S_IFREG,
            FileKind::Directory => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::NamedPipe => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
            FileKind::CharDevice => libc::S_IFCHR,
            FileKind::BlockDevice => libc::S_IFBLK,
        }
    }

    /// The one-byte code stored in directory entries.
    pub fn code(self) -> u8 {
        match self {
            FileKind::RegularFile => 1,
            FileKind::Directory => 2,
            FileKind::Symlink => 3,
            FileKind::NamedPipe => 4,
            FileKind::Socket => 5,
            FileKind::CharDevice => 6,
            FileKind::BlockDevice => 7,
        }
    }

    /// The kind a directory entry's type byte names; None for an unknown byte.
    pub fn from_code(c: u8) -> Option<FileKind> {
        Some(match c {
            1 => FileKind::RegularFile,
            2 => FileKind::Directory,
            3 => FileKind::Symlink,
            4 => FileKind::NamedPipe,
            5 => FileKind::Socket,
            6 => FileKind::CharDevice,
            7 => FileKind::BlockDevice,
            _ => return None,
        })
    }
}

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeSpec {
    /// Seconds since the epoch (negative before it).
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
}

impl TimeSpec {
    /// The engine's clock now.
    pub fn now() -> TimeSpec {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        TimeSpec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }
}

/// An inode number as the engine's callers name a file: its slot and generation
/// (`layout::make_ino`). A type of its own, so that a call cannot be given an offset, a
/// length or a count where the inode goes, nor the inode where one of those goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(u64);

impl Ino {
    /// The root directory.
    pub const ROOT: Ino = Ino(crate::layout::ROOT_INO);

    /// The inode number `raw`, as the wire or a test names it.
    pub const fn new(raw: u64) -> Ino {
        Ino(raw)
    }

    /// The number, for the wire, for the kernel and for the engine's own tables.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Ino {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What stat reports about an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number, generation included (`layout::make_ino`).
    pub ino: Ino,
    /// The generation of the inode's slot.
    pub generation: u32,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte units, as stat reports.
    pub blocks: u64,
    /// Last access.
    pub atime: TimeSpec,
    /// Last change of the data.
    pub mtime: TimeSpec,
    /// Last change of the inode.
    pub ctime: TimeSpec,
    /// The kind of file.
    pub kind: FileKind,
    /// Permission bits, setuid/setgid/sticky included.
    pub perm: u16,
    /// Hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node; 0 otherwise.
    pub rdev: u32,
}

/// A time to set: a given one, or the engine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// This time.
    At(TimeSpec),
    /// The engine's clock at the call.
    Now,
}

/// The attributes a setattr changes: those that are Some.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// Permission bits (the file kind is kept).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size: truncate or extend.
    pub size: Option<u64>,
    /// Access time.
    pub atime: Option<SetTime>,
    /// Data change time.
    pub mtime: Option<SetTime>,
    /// Inode change time (otherwise now, if anything changes).
    pub ctime: Option<TimeSpec>,
    /// A truncation by a caller who may not keep setuid, setgid and capabilities: they go.
    pub kill_priv: bool,
}

/// One directory entry as readdir returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode it names.
    pub ino: Ino,
    /// Cookie to resume after this entry; stable while other entries come and go.
    pub offset: u64,
    /// The kind of that inode.
    pub kind: FileKind,
    /// The name, without a terminator.
    pub name: Vec<u8>,
}

/// What statfs reports about the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Data blocks in all.
    pub blocks: u64,
    /// Free data blocks.
    pub bfree: u64,
    /// Free data blocks an unprivileged caller may use.
    pub bavail: u64,
    /// Inodes in all.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size in bytes.
    pub bsize: u32,
    /// Longest name in bytes.
    pub namelen: u32,
}
