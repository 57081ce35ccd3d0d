//! Every conversion between the engine's types and the wire's, in one file: the only place
//! the protocol names `volume`. Each destructures its source whole, so a field added to
//! either side stops the build here until someone decides what the wire carries.

use volume::attr as engine;
use volume::{FsError, Ino};

use crate::error_code::ErrorCode;
use crate::wire::{
    Attr, DirEntry, Extent, FileKind, Layout, RenameFlags, SetAttr, SetTime, StatFs, TimeSpec,
};

impl From<engine::FileKind> for FileKind {
    fn from(k: engine::FileKind) -> FileKind {
        match k {
            engine::FileKind::RegularFile => FileKind::RegularFile,
            engine::FileKind::Directory => FileKind::Directory,
            engine::FileKind::Symlink => FileKind::Symlink,
            engine::FileKind::NamedPipe => FileKind::NamedPipe,
            engine::FileKind::Socket => FileKind::Socket,
            engine::FileKind::CharDevice => FileKind::CharDevice,
            engine::FileKind::BlockDevice => FileKind::BlockDevice,
        }
    }
}

impl From<FileKind> for engine::FileKind {
    fn from(k: FileKind) -> engine::FileKind {
        match k {
            FileKind::RegularFile => engine::FileKind::RegularFile,
            FileKind::Directory => engine::FileKind::Directory,
            FileKind::Symlink => engine::FileKind::Symlink,
            FileKind::NamedPipe => engine::FileKind::NamedPipe,
            FileKind::Socket => engine::FileKind::Socket,
            FileKind::CharDevice => engine::FileKind::CharDevice,
            FileKind::BlockDevice => engine::FileKind::BlockDevice,
        }
    }
}

impl From<engine::TimeSpec> for TimeSpec {
    fn from(t: engine::TimeSpec) -> TimeSpec {
        let engine::TimeSpec { sec, nsec } = t;
        TimeSpec { sec, nsec }
    }
}

impl From<TimeSpec> for engine::TimeSpec {
    fn from(t: TimeSpec) -> engine::TimeSpec {
        let TimeSpec { sec, nsec } = t;
        engine::TimeSpec { sec, nsec }
    }
}

impl From<engine::Attr> for Attr {
    fn from(a: engine::Attr) -> Attr {
        let engine::Attr {
            ino,
            generation,
            size,
            blocks,
            atime,
            mtime,
            ctime,
            kind,
            perm,
            nlink,
            uid,
            gid,
            rdev,
        } = a;
        Attr {
            ino: ino.get(),
            generation,
            size,
            blocks,
            atime: atime.into(),
            mtime: mtime.into(),
            ctime: ctime.into(),
            kind: kind.into(),
            perm,
            nlink,
            uid,
            gid,
            rdev,
        }
    }
}

impl From<Attr> for engine::Attr {
    fn from(a: Attr) -> engine::Attr {
        let Attr {
            ino,
            generation,
            size,
            blocks,
            atime,
            mtime,
            ctime,
            kind,
            perm,
            nlink,
            uid,
            gid,
            rdev,
        } = a;
        engine::Attr {
            ino: Ino::new(ino),
            generation,
            size,
            blocks,
            atime: atime.into(),
            mtime: mtime.into(),
            ctime: ctime.into(),
            kind: kind.into(),
            perm,
            nlink,
            uid,
            gid,
            rdev,
        }
    }
}

impl From<engine::SetTime> for SetTime {
    fn from(t: engine::SetTime) -> SetTime {
        match t {
            engine::SetTime::At(t) => SetTime::At(t.into()),
            engine::SetTime::Now => SetTime::Now,
        }
    }
}

impl From<SetTime> for engine::SetTime {
    fn from(t: SetTime) -> engine::SetTime {
        match t {
            SetTime::At(t) => engine::SetTime::At(t.into()),
            SetTime::Now => engine::SetTime::Now,
        }
    }
}

impl From<engine::SetAttr> for SetAttr {
    fn from(s: engine::SetAttr) -> SetAttr {
        let engine::SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
            kill_priv,
        } = s;
        SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(Into::into),
            mtime: mtime.map(Into::into),
            ctime: ctime.map(Into::into),
            kill_priv,
        }
    }
}

impl From<SetAttr> for engine::SetAttr {
    fn from(s: SetAttr) -> engine::SetAttr {
        let SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
            kill_priv,
        } = s;
        engine::SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(Into::into),
            mtime: mtime.map(Into::into),
            ctime: ctime.map(Into::into),
            kill_priv,
        }
    }
}

impl From<engine::DirEntry> for DirEntry {
    fn from(e: engine::DirEntry) -> DirEntry {
        let engine::DirEntry {
            ino,
            offset,
            kind,
            name,
        } = e;
        DirEntry {
            ino: ino.get(),
            offset,
            kind: kind.into(),
            name,
        }
    }
}

impl From<DirEntry> for engine::DirEntry {
    fn from(e: DirEntry) -> engine::DirEntry {
        let DirEntry {
            ino,
            offset,
            kind,
            name,
        } = e;
        engine::DirEntry {
            ino: Ino::new(ino),
            offset,
            kind: kind.into(),
            name,
        }
    }
}

impl From<engine::StatFs> for StatFs {
    fn from(s: engine::StatFs) -> StatFs {
        let engine::StatFs {
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            bsize,
            namelen,
        } = s;
        StatFs {
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            bsize,
            namelen,
        }
    }
}

impl From<StatFs> for engine::StatFs {
    fn from(s: StatFs) -> engine::StatFs {
        let StatFs {
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            bsize,
            namelen,
        } = s;
        engine::StatFs {
            blocks,
            bfree,
            bavail,
            files,
            ffree,
            bsize,
            namelen,
        }
    }
}

impl From<volume::RenameFlags> for RenameFlags {
    fn from(f: volume::RenameFlags) -> RenameFlags {
        let volume::RenameFlags {
            noreplace,
            exchange,
        } = f;
        RenameFlags {
            noreplace,
            exchange,
        }
    }
}

impl From<RenameFlags> for volume::RenameFlags {
    fn from(f: RenameFlags) -> volume::RenameFlags {
        let RenameFlags {
            noreplace,
            exchange,
        } = f;
        volume::RenameFlags {
            noreplace,
            exchange,
        }
    }
}

impl From<volume::Layout> for Layout {
    fn from(l: volume::Layout) -> Layout {
        let volume::Layout { size, extents } = l;
        let extents = extents.into_iter().map(Extent::from).collect();
        Layout { size, extents }
    }
}

impl From<volume::Extent> for Extent {
    fn from(e: volume::Extent) -> Extent {
        let volume::Extent {
            offset,
            len,
            disk,
            reserved,
        } = e;
        Extent {
            offset,
            len,
            disk,
            reserved,
        }
    }
}

impl From<&FsError> for ErrorCode {
    fn from(e: &FsError) -> ErrorCode {
        match e {
            FsError::NotFound => ErrorCode::NotFound,
            FsError::Exists => ErrorCode::Exists,
            FsError::NotDir => ErrorCode::NotDir,
            FsError::IsDir => ErrorCode::IsDir,
            FsError::NotEmpty => ErrorCode::NotEmpty,
            FsError::NameTooLong => ErrorCode::NameTooLong,
            FsError::NoSpace => ErrorCode::NoSpace,
            FsError::DiskQuota => ErrorCode::DiskQuota,
            FsError::CrossDevice => ErrorCode::CrossDevice,
            FsError::FileTooBig => ErrorCode::FileTooBig,
            FsError::Stale => ErrorCode::Stale,
            FsError::Invalid => ErrorCode::Invalid,
            FsError::NoAttr => ErrorCode::NoAttr,
            FsError::Range => ErrorCode::Range,
            FsError::TooManyLinks => ErrorCode::TooManyLinks,
            FsError::NotSupported => ErrorCode::NotSupported,
            FsError::NotPermitted => ErrorCode::NotPermitted,
            FsError::AccessDenied => ErrorCode::AccessDenied,
            FsError::ReadOnly => ErrorCode::ReadOnly,
            FsError::WouldBlock | FsError::Again => ErrorCode::WouldBlock,
            FsError::Deadlock => ErrorCode::Deadlock,
            FsError::Interrupted => ErrorCode::Interrupted,
            FsError::NoLock => ErrorCode::NoLock,
            FsError::PastEnd => ErrorCode::PastEnd,
            FsError::Corrupt(_) | FsError::NotAnImage(_) => ErrorCode::Io,
            // An error from the server's own disk: its condition if it names one of ours
            // (a full disk is ENOSPC), else an I/O error. ENXIO from a disk is a device
            // gone, not lseek's "nothing past here".
            FsError::Io(e) => match e.raw_os_error().map(FsError::from_errno) {
                Some(FsError::Io(_) | FsError::PastEnd) | None => ErrorCode::Io,
                Some(known) => ErrorCode::from(&known),
            },
        }
    }
}

impl From<ErrorCode> for FsError {
    fn from(c: ErrorCode) -> FsError {
        match c {
            ErrorCode::NotPermitted => FsError::NotPermitted,
            ErrorCode::NotFound => FsError::NotFound,
            ErrorCode::Interrupted => FsError::Interrupted,
            ErrorCode::Io => FsError::Io(std::io::Error::from_raw_os_error(c.code() as i32)),
            ErrorCode::PastEnd => FsError::PastEnd,
            ErrorCode::WouldBlock => FsError::WouldBlock,
            ErrorCode::AccessDenied => FsError::AccessDenied,
            ErrorCode::Exists => FsError::Exists,
            ErrorCode::NotDir => FsError::NotDir,
            ErrorCode::IsDir => FsError::IsDir,
            ErrorCode::Invalid => FsError::Invalid,
            ErrorCode::FileTooBig => FsError::FileTooBig,
            ErrorCode::NoSpace => FsError::NoSpace,
            ErrorCode::DiskQuota => FsError::DiskQuota,
            ErrorCode::CrossDevice => FsError::CrossDevice,
            ErrorCode::ReadOnly => FsError::ReadOnly,
            ErrorCode::TooManyLinks => FsError::TooManyLinks,
            ErrorCode::Range => FsError::Range,
            ErrorCode::Deadlock => FsError::Deadlock,
            ErrorCode::NameTooLong => FsError::NameTooLong,
            ErrorCode::NoLock => FsError::NoLock,
            ErrorCode::NotEmpty => FsError::NotEmpty,
            ErrorCode::NoAttr => FsError::NoAttr,
            ErrorCode::NotSupported => FsError::NotSupported,
            ErrorCode::Stale => FsError::Stale,
        }
    }
}

impl ErrorCode {
    /// The errno a caller reports for this code: the engine's error's (`FsError::errno`).
    pub fn errno(self) -> i32 {
        FsError::from(self).errno()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_the_errno_of_its_condition_and_round_trips() {
        for c in ErrorCode::ALL {
            let e = FsError::from(c);
            assert_eq!(e.errno(), c.code() as i32, "{c:?}");
            assert_eq!(ErrorCode::from(&e), c);
            assert_eq!(ErrorCode::from_code(c.code()), c);
        }
    }

    #[test]
    fn engine_errors_without_a_code_of_their_own_go_as_io() {
        let disk = |n| FsError::Io(std::io::Error::from_raw_os_error(n));
        assert_eq!(ErrorCode::from(&disk(libc::ENOSPC)), ErrorCode::NoSpace);
        assert_eq!(ErrorCode::from(&disk(libc::EBADF)), ErrorCode::Io);
        let other = FsError::Io(std::io::Error::other("reply not encodable"));
        assert_eq!(ErrorCode::from(&other), ErrorCode::Io);
        assert_eq!(
            ErrorCode::from(&FsError::Corrupt("x".into())),
            ErrorCode::Io
        );
        assert_eq!(ErrorCode::from(&FsError::Again), ErrorCode::WouldBlock);
        assert_eq!(ErrorCode::from_code(9999), ErrorCode::Io);
    }

    /// ENXIO from the server's own disk is a device gone (a store that went away), not
    /// lseek's "no data past this offset": the client's read or write sees EIO, never ENXIO.
    #[test]
    fn a_disk_gone_goes_as_io_not_as_past_end() {
        let disk = FsError::Io(std::io::Error::from_raw_os_error(libc::ENXIO));
        assert_eq!(ErrorCode::from(&disk), ErrorCode::Io);
        assert_eq!(ErrorCode::from(&FsError::PastEnd), ErrorCode::PastEnd);
    }
}
