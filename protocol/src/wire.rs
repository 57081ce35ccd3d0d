//! The protocol's own words for what the engine tells and is told: attributes, changes to
//! them, directory entries, statistics, rename flags, lock ranges and kinds. They mirror the
//! engine's types field for field today, but they are the wire's: a change to the engine
//! changes nothing here until `engine_types` is told, and golden-byte tests pin every one.
//!
//! Structs are encoded field by field in declaration order; enums by variant index. Both are
//! append-only: new fields and variants go at the end, with a protocol version bump.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The type of a file. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// A file of data.
    RegularFile,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    NamedPipe,
    /// A Unix domain socket's name.
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeSpec {
    /// Whole seconds (before the epoch if negative).
    pub sec: i64,
    /// Nanoseconds past `sec`, below one billion.
    pub nsec: u32,
}

/// A file's attributes, as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    /// The inode number, its generation in the high bits: a handle every call names it by.
    pub ino: u64,
    /// The generation its number carries: a reused inode slot gets a new one, so an old
    /// handle reads ESTALE instead of naming another file.
    pub generation: u32,
    /// Length in bytes.
    pub size: u64,
    /// 512-byte units, as stat reports.
    pub blocks: u64,
    /// Last read of its data.
    pub atime: TimeSpec,
    /// Last change of its data.
    pub mtime: TimeSpec,
    /// Last change of its data or attributes.
    pub ctime: TimeSpec,
    /// What kind of file it is.
    pub kind: FileKind,
    /// Permission bits, setuid/setgid/sticky included.
    pub perm: u16,
    /// Names it has (a directory: 2 plus its subdirectories).
    pub nlink: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// A device node's device number; 0 otherwise.
    pub rdev: u32,
}

/// A time to set: a given one, or the server's clock. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTime {
    /// This time, as the caller gives it.
    At(TimeSpec),
    /// The server's clock when the change is made.
    Now,
}

/// The attributes a `Setattr` changes; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SetAttr {
    /// New permission bits (chmod).
    pub mode: Option<u32>,
    /// New owner (chown).
    pub uid: Option<u32>,
    /// New group (chown, chgrp).
    pub gid: Option<u32>,
    /// New length (truncate): cut, or extended with zeros.
    pub size: Option<u64>,
    /// New access time (utimes).
    pub atime: Option<SetTime>,
    /// New modification time (utimes).
    pub mtime: Option<SetTime>,
    /// New change time, as the kernel sets it alongside another change.
    pub ctime: Option<TimeSpec>,
    /// A truncation by a caller who may not keep setuid, setgid and capabilities: they go.
    pub kill_priv: bool,
}

/// One name in a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The inode the name names.
    pub ino: u64,
    /// Cookie to resume after this entry; stable while other entries come and go.
    pub offset: u64,
    /// What kind of file it names, without a lookup.
    pub kind: FileKind,
    /// The name (bytes, with no `/` and no NUL).
    pub name: Vec<u8>,
}

/// The volume's size and use, as `statfs` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFs {
    /// Data blocks of the volume, in `bsize` units.
    pub blocks: u64,
    /// Of those, free.
    pub bfree: u64,
    /// Of those, free for anyone to use (no blocks are reserved: as `bfree`).
    pub bavail: u64,
    /// Inodes of the volume.
    pub files: u64,
    /// Of those, free.
    pub ffree: u64,
    /// Block size in bytes.
    pub bsize: u32,
    /// Longest name a directory entry holds.
    pub namelen: u32,
}

/// How a rename treats an existing target (renameat2's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RenameFlags {
    /// Fail with EEXIST rather than replace an existing target.
    pub noreplace: bool,
    /// Swap the two names atomically.
    pub exchange: bool,
}

/// The bytes of a file a lock covers: `start` to `end` inclusive (`u64::MAX`: to the end of
/// the file, whatever its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRange {
    /// First byte covered.
    pub start: u64,
    /// Last byte covered (inclusive).
    pub end: u64,
}

/// A lock's kind, encoded as Linux's `F_RDLCK`, `F_WRLCK` and `F_UNLCK` values (an `i32`).
/// `Other` is any other value that arrived: a newer peer's kind, or garbage; it is refused
/// (EINVAL) rather than failing the frame. Append-only, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// A shared lock: other readers may hold the bytes too.
    Read,
    /// An exclusive lock.
    Write,
    /// In a request, unlock; in an answer to a test, no lock stands in the way.
    Unlock,
    /// Any other value, kept as it came (see above).
    Other(i32),
}

impl LockKind {
    /// The kind a `F_*LCK` value names.
    pub fn from_raw(typ: i32) -> LockKind {
        match typ {
            0 => LockKind::Read,
            1 => LockKind::Write,
            2 => LockKind::Unlock,
            other => LockKind::Other(other),
        }
    }

    /// The `F_*LCK` value of this kind.
    pub fn raw(self) -> i32 {
        match self {
            LockKind::Read => 0,
            LockKind::Write => 1,
            LockKind::Unlock => 2,
            LockKind::Other(v) => v,
        }
    }
}

impl Serialize for LockKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.raw())
    }
}

impl<'de> Deserialize<'de> for LockKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LockKind, D::Error> {
        i32::deserialize(d).map(LockKind::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_kinds_round_trip_through_their_values() {
        for (k, v) in [
            (LockKind::Read, 0),
            (LockKind::Write, 1),
            (LockKind::Unlock, 2),
            (LockKind::Other(77), 77),
        ] {
            assert_eq!((k.raw(), LockKind::from_raw(v)), (v, k));
        }
    }
}

/// Where the volume lives, for a direct mount to read and write file data on it
/// (`Request::VolumeLocation`'s answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeAt {
    /// An image file or block device, at its path as the server's machine sees it.
    Local(String),
    /// A volume in Ceph RADOS (`rados://POOL/NAME`), which the mount reaches with its own
    /// Ceph configuration and key.
    Rados {
        /// The pool it lives in.
        pool: String,
        /// The image's name (its objects' prefix).
        name: String,
    },
}

/// Where the blocks backing a range of a file are on the volume (`Request::LayoutGet`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Layout {
    /// The file's size when the layout was given.
    pub size: u64,
    /// The range's extents in file order, without gaps; for reading, only up to the size.
    pub extents: Vec<Extent>,
}

/// A run of blocks of a file that are alike: contiguous on the volume, or all a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    /// Where it starts in the file, in bytes (a block boundary).
    pub offset: u64,
    /// Its length in bytes (whole blocks).
    pub len: u64,
    /// Where its bytes are on the volume, in bytes; `None` for a hole (reads as zeros).
    pub disk: Option<u64>,
    /// Reserved for the caller's writes and not yet committed: a hole to everyone else.
    pub reserved: bool,
}
