//! Errors on the wire: a numeric code per condition. The codes are Linux's errno numbers for
//! those conditions (as NFS's status codes are), written out here rather than taken from the
//! build's libc, so the wire never follows a platform. Append-only: a code, once given, keeps
//! its number; a new condition gets a new code. A code the receiver does not know (a newer
//! peer's) reads as `Io`. The one conversion from and to the engine's `FsError` is in
//! `engine_types`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a call failed, as the wire says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// EPERM: the caller may not do this at all (not the owner, a sticky directory, an immutable file).
    NotPermitted = 1,
    /// ENOENT: no such name, or no such inode.
    NotFound = 2,
    /// EINTR: the caller gave up waiting (a lock wait cancelled).
    Interrupted = 4,
    /// An I/O error, damaged metadata, or a code this side does not know.
    Io = 5,
    /// ENXIO: no data at or after an offset, or the offset is past the file's end (lseek).
    PastEnd = 6,
    /// EAGAIN: a lock held by someone else, asked for without waiting.
    WouldBlock = 11,
    /// EACCES: the permission bits refuse the caller.
    AccessDenied = 13,
    /// EEXIST: the name is taken (or an extended attribute exists, with `XATTR_CREATE`).
    Exists = 17,
    /// EXDEV: a rename or link that would move a file into another quota tree (export).
    CrossDevice = 18,
    /// ENOTDIR: a directory was needed.
    NotDir = 20,
    /// EISDIR: a directory where one is not allowed.
    IsDir = 21,
    /// EINVAL: arguments that make no sense together (a backwards lock range, a rename into itself).
    Invalid = 22,
    /// EFBIG: past the largest file the volume can hold.
    FileTooBig = 27,
    /// ENOSPC: no free blocks or inodes left.
    NoSpace = 28,
    /// EROFS: a change on a read-only mount or export.
    ReadOnly = 30,
    /// EMLINK: the file has as many names as it may.
    TooManyLinks = 31,
    /// ERANGE: a value larger than the caller's buffer or the volume's limit (extended attributes).
    Range = 34,
    /// EDEADLK: waiting for this lock would close a cycle of owners waiting for each other.
    Deadlock = 35,
    /// ENAMETOOLONG: a name longer than a directory entry holds.
    NameTooLong = 36,
    /// ENOLCK: no lock to be had: past the session's lock limit, or a reclaim after the grace period.
    NoLock = 37,
    /// ENOTEMPTY: a directory that still has entries.
    NotEmpty = 39,
    /// ENODATA: no such extended attribute.
    NoAttr = 61,
    /// EOPNOTSUPP: an operation or flag the volume does not support.
    NotSupported = 95,
    /// ESTALE: the inode was freed (and perhaps reused) since the handle was given.
    Stale = 116,
    /// EDQUOT: the quota of the export (quota tree) the file is in is used up.
    DiskQuota = 122,
}

impl ErrorCode {
    /// Every code, in the order of their numbers.
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::NotPermitted,
        ErrorCode::NotFound,
        ErrorCode::Interrupted,
        ErrorCode::Io,
        ErrorCode::PastEnd,
        ErrorCode::WouldBlock,
        ErrorCode::AccessDenied,
        ErrorCode::Exists,
        ErrorCode::CrossDevice,
        ErrorCode::NotDir,
        ErrorCode::IsDir,
        ErrorCode::Invalid,
        ErrorCode::FileTooBig,
        ErrorCode::NoSpace,
        ErrorCode::ReadOnly,
        ErrorCode::TooManyLinks,
        ErrorCode::Range,
        ErrorCode::Deadlock,
        ErrorCode::NameTooLong,
        ErrorCode::NoLock,
        ErrorCode::NotEmpty,
        ErrorCode::NoAttr,
        ErrorCode::NotSupported,
        ErrorCode::Stale,
        ErrorCode::DiskQuota,
    ];

    /// The code's number on the wire.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The condition a number names; `Io` for one this side does not know.
    pub fn from_code(code: u32) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .unwrap_or(ErrorCode::Io)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        u32::deserialize(d).map(ErrorCode::from_code)
    }
}
