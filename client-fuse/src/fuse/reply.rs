//! Replying to the kernel: a result becomes its reply, or an error its errno — mapped here
//! and nowhere else.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{
    Errno, FileHandle, Generation, INodeNo, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyWrite, ReplyXattr,
};
use protocol::{Attr, DirEntry};
use volume::{FsError, FsResult};

use super::convert::{absent, file_attr, file_type, fopen_flags};
use super::RwxFuse;

/// The errno the kernel gets for `e` (logged: loud if the volume or the link failed): the
/// wire's code for it, so a raw mount answers as a server mount does (an error from the
/// image's disk with no condition of ours is EIO, not its own errno).
pub(super) fn errno(e: FsError) -> Errno {
    match &e {
        FsError::Corrupt(_) | FsError::Io(_) | FsError::NotAnImage(_) => tracing::error!("{e}"),
        _ => tracing::debug!("{e}"),
    }
    Errno::from_i32(protocol::ErrorCode::from(&e).errno())
}

pub(super) fn eio() -> FsError {
    FsError::Io(std::io::Error::from_raw_os_error(libc::EIO))
}

impl RwxFuse {
    pub(super) fn entry(&self, r: FsResult<Attr>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(a.generation as u64)),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// A lookup's reply: a name that is not there is cached as absent for the TTL, like a
    /// name that is: the create that usually follows spares a lookup, and a create on
    /// another mount drops the negative entry here (the server pushes entry invalidations).
    pub(super) fn entry_or_absent(&self, r: FsResult<Attr>, reply: ReplyEntry) {
        match r {
            Err(FsError::NotFound) => reply.entry(&self.ttl, &absent(), Generation(0)),
            r => self.entry(r, reply),
        }
    }

    pub(super) fn attr(&self, r: FsResult<Attr>, reply: ReplyAttr) {
        match r {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// A listing with attributes, as many entries as fit in the kernel's buffer.
    pub(super) fn entries_plus(
        &self,
        r: FsResult<Vec<(DirEntry, Attr)>>,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match r {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(e)),
        };
        for (e, a) in entries {
            let (name, gen) = (OsStr::from_bytes(&e.name), Generation(a.generation as u64));
            if reply.add(
                INodeNo(e.ino),
                e.offset,
                name,
                &self.ttl,
                &file_attr(&a),
                gen,
            ) {
                break;
            }
        }
        reply.ok()
    }

    pub(super) fn created(&self, r: FsResult<Attr>, flags: i32, reply: ReplyCreate) {
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
}

pub(super) fn empty(r: FsResult<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

pub(super) fn data(r: FsResult<Vec<u8>>, reply: ReplyData) {
    match r {
        Ok(d) => reply.data(&d),
        Err(e) => reply.error(errno(e)),
    }
}

pub(super) fn written(r: FsResult<u32>, reply: ReplyWrite) {
    match r {
        Ok(n) => reply.written(n),
        Err(e) => reply.error(errno(e)),
    }
}

/// A listing, as many entries as fit in the kernel's buffer.
pub(super) fn entries(r: FsResult<Vec<DirEntry>>, mut reply: ReplyDirectory) {
    let entries = match r {
        Ok(entries) => entries,
        Err(e) => return reply.error(errno(e)),
    };
    for e in entries {
        let name = OsStr::from_bytes(&e.name);
        if reply.add(INodeNo(e.ino), e.offset, file_type(e.kind), name) {
            break;
        }
    }
    reply.ok()
}

/// A position in a file (lseek's answer).
pub(super) fn position(r: FsResult<u64>, reply: ReplyLseek) {
    match r {
        Ok(at) => reply.offset(at as i64),
        Err(e) => reply.error(errno(e)),
    }
}

/// An extended attribute's value (or a list of names): its size when asked with `size` 0,
/// ERANGE if it does not fit in `size`.
pub(super) fn xattr(r: FsResult<Vec<u8>>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(errno(FsError::Range)),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw mount's engine error reaches the kernel as a server mount's would: lseek's
    /// "nothing past here" is ENXIO, but ENXIO from the image's disk is a device gone (EIO).
    #[test]
    fn a_raw_mounts_errors_map_as_a_server_mounts_do() {
        let disk = |n| FsError::Io(std::io::Error::from_raw_os_error(n));
        assert_eq!(errno(FsError::PastEnd).code(), libc::ENXIO);
        assert_eq!(errno(disk(libc::ENXIO)).code(), libc::EIO);
        assert_eq!(errno(disk(libc::EBADF)).code(), libc::EIO);
        assert_eq!(errno(disk(libc::ENOSPC)).code(), libc::ENOSPC);
        assert_eq!(errno(FsError::NotFound).code(), libc::ENOENT);
    }
}
