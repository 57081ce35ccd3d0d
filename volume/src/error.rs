//! Engine errors, named by condition, and their one mapping to errno.

use thiserror::Error;

/// The result of an engine call.
pub type FsResult<T> = Result<T, FsError>;

/// Why an engine call failed; `errno` maps each to one errno.
#[derive(Debug, Error)]
pub enum FsError {
    /// No entry by that name, or no such inode.
    #[error("no such file or directory")]
    NotFound,
    /// The name (or attribute) exists already.
    #[error("file exists")]
    Exists,
    /// A directory was needed.
    #[error("not a directory")]
    NotDir,
    /// The call does not apply to a directory.
    #[error("is a directory")]
    IsDir,
    /// The directory still has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// A name or symlink target is too long.
    #[error("name too long (more than 255 bytes)")]
    NameTooLong,
    /// No free block or inode left.
    #[error("no space left on volume")]
    NoSpace,
    /// The quota of the tree the file is in is used up (`quota`).
    #[error("disk quota exceeded")]
    DiskQuota,
    /// A name may not move an inode into another quota tree (EXDEV, as across devices).
    #[error("invalid cross-device link")]
    CrossDevice,
    /// Past the largest file size.
    #[error("file too large")]
    FileTooBig,
    /// The inode number names a freed or reused inode.
    #[error("stale file handle")]
    Stale,
    /// An argument makes no sense here.
    #[error("invalid argument")]
    Invalid,
    /// No extended attribute by that name.
    #[error("no such extended attribute")]
    NoAttr,
    /// A value or name outside its allowed size.
    #[error("buffer or value too large")]
    Range,
    /// The inode has the most links it may have.
    #[error("too many links")]
    TooManyLinks,
    /// A mode or flag the engine does not implement.
    #[error("operation not supported")]
    NotSupported,
    /// Not allowed to anyone (EPERM).
    #[error("operation not permitted")]
    NotPermitted,
    /// The caller lacks the permission (EACCES).
    #[error("permission denied")]
    AccessDenied,
    /// The volume or export is read-only.
    #[error("read-only file system")]
    ReadOnly,
    /// A conflicting lock is held and the caller does not wait.
    #[error("a conflicting lock is held")]
    WouldBlock,
    /// Waiting for the lock would deadlock.
    #[error("waiting for the lock would deadlock")]
    Deadlock,
    /// The wait was interrupted.
    #[error("interrupted")]
    Interrupted,
    /// A lock held before a restart could not be reclaimed.
    #[error("the lock could not be reclaimed")]
    NoLock,
    /// No data at or after an offset, or the offset is at or past the file's end (lseek's
    /// SEEK_DATA and SEEK_HOLE).
    #[error("no data at or after the offset")]
    PastEnd,
    /// A long operation stopped at a step boundary for a commit; `SharedVolume::run` commits
    /// and calls it again. Never meant to reach a caller.
    #[error("operation stopped for a commit; call it again")]
    Again,
    /// The metadata on the image is damaged; says where.
    #[error("metadata damaged: {0}")]
    Corrupt(String),
    /// The store holds no sound rwxfs image; says why.
    #[error("not an rwxfs image: {0}")]
    NotAnImage(String),
    /// The store failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    /// The errno a caller (FUSE, the wire) reports for this error. The one place it is decided.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NoSpace => libc::ENOSPC,
            FsError::DiskQuota => libc::EDQUOT,
            FsError::CrossDevice => libc::EXDEV,
            FsError::FileTooBig => libc::EFBIG,
            FsError::Stale => libc::ESTALE,
            FsError::Invalid => libc::EINVAL,
            FsError::NoAttr => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::NotPermitted => libc::EPERM,
            FsError::AccessDenied => libc::EACCES,
            FsError::ReadOnly => libc::EROFS,
            FsError::WouldBlock => libc::EAGAIN,
            FsError::Deadlock => libc::EDEADLK,
            FsError::Interrupted => libc::EINTR,
            FsError::NoLock => libc::ENOLCK,
            FsError::PastEnd => libc::ENXIO,
            FsError::Again => libc::EAGAIN,
            FsError::Corrupt(_) | FsError::NotAnImage(_) => libc::EIO,
            FsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The error a caller sees for an errno that came back over the wire.
    pub fn from_errno(errno: i32) -> FsError {
        match errno {
            libc::ENOENT => FsError::NotFound,
            libc::EEXIST => FsError::Exists,
            libc::ENOTDIR => FsError::NotDir,
            libc::EISDIR => FsError::IsDir,
            libc::ENOTEMPTY => FsError::NotEmpty,
            libc::ENAMETOOLONG => FsError::NameTooLong,
            libc::ENOSPC => FsError::NoSpace,
            libc::EDQUOT => FsError::DiskQuota,
            libc::EXDEV => FsError::CrossDevice,
            libc::EFBIG => FsError::FileTooBig,
            libc::ESTALE => FsError::Stale,
            libc::EINVAL => FsError::Invalid,
            libc::ENODATA => FsError::NoAttr,
            libc::ERANGE => FsError::Range,
            libc::EMLINK => FsError::TooManyLinks,
            libc::EOPNOTSUPP => FsError::NotSupported,
            libc::EPERM => FsError::NotPermitted,
            libc::EACCES => FsError::AccessDenied,
            libc::EROFS => FsError::ReadOnly,
            libc::EAGAIN => FsError::WouldBlock,
            libc::EDEADLK => FsError::Deadlock,
            libc::EINTR => FsError::Interrupted,
            libc::ENOLCK => FsError::NoLock,
            libc::ENXIO => FsError::PastEnd,
            other => FsError::Io(std::io::Error::from_raw_os_error(other)),
        }
    }
}
