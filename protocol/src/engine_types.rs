//! Every conversion between the engine's types and the wire's, in one file: the only place
//! the protocol names `volume`. Each destructures its source whole, so a field added to
//! either side stops the build here until someone decides what the wire carries.

use volume::attr as engine;

use crate::wire::{Attr, DirEntry, FileKind, RenameFlags, SetAttr, SetTime, StatFs, TimeSpec};

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
            ino,
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
            ino,
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
            ino,
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
            ino,
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
