//! Engine errors, named by condition, and their one mapping to errno.

use thiserror::Error;

pub type FsResult<T> = Result<T, FsError>;

#[derive(Debug, Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("name too long (more than 255 bytes)")]
    NameTooLong,
    #[error("no space left on volume")]
    NoSpace,
    #[error("file too large")]
    FileTooBig,
    #[error("stale file handle")]
    Stale,
    #[error("invalid argument")]
    Invalid,
    #[error("no such extended attribute")]
    NoAttr,
    #[error("buffer or value too large")]
    Range,
    #[error("too many links")]
    TooManyLinks,
    #[error("operation not supported")]
    NotSupported,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("permission denied")]
    AccessDenied,
    #[error("read-only file system")]
    ReadOnly,
    #[error("a conflicting lock is held")]
    WouldBlock,
    #[error("waiting for the lock would deadlock")]
    Deadlock,
    #[error("interrupted")]
    Interrupted,
    #[error("the lock could not be reclaimed")]
    NoLock,
    /// A long operation stopped at a step boundary for a commit; `SharedVolume::run` commits
    /// and calls it again. Never meant to reach a caller.
    #[error("operation stopped for a commit; call it again")]
    Again,
    #[error("metadata damaged: {0}")]
    Corrupt(String),
    #[error("not an rwxfs image: {0}")]
    NotAnImage(String),
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
            other => FsError::Io(std::io::Error::from_raw_os_error(other)),
        }
    }
}
