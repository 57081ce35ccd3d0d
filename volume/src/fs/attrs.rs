//! Attributes: getattr, setattr (mode, owner, size, times) and the privileges a change of
//! owner or an unprivileged truncate drops. Invariant: a size change settles the writes in
//! flight on the file first, so each appears wholly before or after it.

use crate::attr::{Attr, Ino, SetAttr, SetTime};
use crate::error::{FsError, FsResult};
use crate::store::BlockStore;
use crate::TimeSpec;

use super::{Volume, MAX_FILE_SIZE};

fn resolve_time(t: SetTime, now: TimeSpec) -> TimeSpec {
    match t {
        SetTime::At(t) => t,
        SetTime::Now => now,
    }
}

impl<S: BlockStore> Volume<S> {
    /// The inode's attributes.
    pub fn getattr(&mut self, ino: Ino) -> FsResult<Attr> {
        let ino = ino.get();
        let (i, d) = self.get(ino)?;
        Ok(d.attr(i))
    }

    /// Change what `s` sets (size, mode, owner, times), as one change; the attributes after.
    pub fn setattr(&mut self, ino: Ino, s: SetAttr) -> FsResult<Attr> {
        let ino = ino.get();
        let (i, mut d) = self.get(ino)?;
        let now = TimeSpec::now();
        if let Some(size) = s.size {
            if d.is_dir() {
                return Err(FsError::IsDir);
            }
            if size > MAX_FILE_SIZE {
                return Err(FsError::FileTooBig);
            }
            self.settle_writes(i, &mut d)?;
            self.resize(i, &mut d, size)?;
            d.mtime = now;
            d.ctime = now;
        }
        if let Some(mode) = s.mode {
            d.mode = (d.mode & libc::S_IFMT) | (mode & 0o7777);
            d.ctime = now;
        }
        if let Some(uid) = s.uid {
            d.uid = uid;
            d.ctime = now;
        }
        if let Some(gid) = s.gid {
            d.gid = gid;
            d.ctime = now;
        }
        if let Some(t) = s.atime {
            d.atime = resolve_time(t, now);
            d.ctime = now;
        }
        if let Some(t) = s.mtime {
            d.mtime = resolve_time(t, now);
            d.ctime = now;
        }
        if let Some(t) = s.ctime {
            d.ctime = t;
        }
        // A change of owner drops setuid (and setgid on a group-executable file), as Linux
        // does, unless the same call sets the mode; a truncation by an unprivileged caller
        // drops them too.
        let chown = (s.uid.is_some() || s.gid.is_some()) && s.mode.is_none();
        let kill = (chown || (s.kill_priv && s.size.is_some())) && !d.is_dir();
        self.put(i, &d)?;
        if kill {
            self.kill_priv(Ino::new(ino))?;
        }
        self.after_op()?;
        let (i, d) = self.get(ino)?;
        Ok(d.attr(i))
    }

    /// Whether the file has what an unprivileged write drops (`kill_priv`): setuid,
    /// setgid with group execute, or file capabilities.
    pub fn has_priv_to_kill(&mut self, ino: Ino) -> FsResult<bool> {
        let (_, d) = self.get(ino.get())?;
        let setgid = libc::S_ISGID | libc::S_IXGRP;
        if d.mode & libc::S_ISUID != 0 || d.mode & setgid == setgid {
            return Ok(true);
        }
        match self.getxattr(ino, b"security.capability") {
            Ok(_) => Ok(true),
            Err(FsError::NoAttr) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drop what an unprivileged write, truncation or change of owner takes from a file:
    /// setuid, setgid if the group may execute it, and file capabilities.
    pub fn kill_priv(&mut self, ino: Ino) -> FsResult<()> {
        let ino = ino.get();
        let (i, mut d) = self.get(ino)?;
        let mut mode = d.mode & !libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            mode &= !libc::S_ISGID;
        }
        if mode != d.mode {
            d.mode = mode;
            d.ctime = TimeSpec::now();
            self.put(i, &d)?;
        }
        match self.removexattr(Ino::new(ino), b"security.capability") {
            Ok(()) | Err(FsError::NoAttr) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
