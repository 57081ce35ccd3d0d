//! Permission checks on the server, as an NFS server does them (AUTH_SYS): each call comes
//! with its caller's credentials, squashed per the export (`Caller::new`), and is checked
//! against the inodes it touches before it runs. The client's kernel checks too
//! (default_permissions); this check is what stops a client that does not.
//!
//! Reads and writes of a file's data are allowed to its owner whatever its mode (as knfsd's
//! owner override: a file created read-only is still written through the descriptor that
//! created it), and a read is allowed with execute permission (a program being run).

use protocol::{Cred, Request, SetAttr, SetTime, MAX_GROUPS};
use volume::{Attr, BlockStore, FileKind, FsError, Volume};

use crate::export::{Export, NOBODY};

const R: u16 = 4;
const W: u16 = 2;
const X: u16 = 1;

/// A call's caller, after squashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The export squashes root: a chown to uid or gid 0 is one to nobody, as the caller is.
    pub squash: bool,
}

impl Caller {
    /// The caller `cred` names (anonymous when the call named none), squashed per `export`:
    /// with root squash, uid and gid 0 become nobody.
    pub fn new(cred: Option<Cred>, export: &Export) -> Caller {
        let Some(cred) = cred else {
            return Caller {
                uid: NOBODY,
                gid: NOBODY,
                groups: Vec::new(),
                squash: export.root_squash,
            };
        };
        let sq = |id: u32| match id {
            0 if export.root_squash => NOBODY,
            id => id,
        };
        let mut groups: Vec<u32> = cred
            .groups
            .iter()
            .take(MAX_GROUPS)
            .map(|g| sq(*g))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        Caller {
            uid: sq(cred.uid),
            gid: sq(cred.gid),
            groups,
            squash: export.root_squash,
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.binary_search(&gid).is_ok()
    }

    fn owns(&self, a: &Attr) -> bool {
        self.uid == a.uid
    }

    /// The permission bits `want` (R, W, X) on `a`, as the kernel's generic check decides.
    fn may(&self, a: &Attr, want: u16) -> bool {
        if self.is_root() {
            // Root may read and write anything, and execute what anyone may execute.
            return want & X == 0 || a.kind == FileKind::Directory || a.perm & 0o111 != 0;
        }
        let class = if self.owns(a) {
            a.perm >> 6
        } else if self.in_group(a.gid) {
            a.perm >> 3
        } else {
            a.perm
        };
        class & want == want
    }

    fn need(&self, a: &Attr, want: u16) -> Result<(), FsError> {
        match self.may(a, want) {
            true => Ok(()),
            false => Err(FsError::AccessDenied),
        }
    }

    fn owner_or_root(&self, a: &Attr) -> Result<(), FsError> {
        match self.is_root() || self.owns(a) {
            true => Ok(()),
            false => Err(FsError::NotPermitted),
        }
    }
}

/// What the checks need to know about inodes.
pub trait Inodes {
    fn attr(&mut self, ino: u64) -> Result<Attr, FsError>;
    /// The inode `name` in `parent` names, if any.
    fn child(&mut self, parent: u64, name: &[u8]) -> Result<Option<Attr>, FsError>;
}

impl<S: BlockStore> Inodes for Volume<S> {
    fn attr(&mut self, ino: u64) -> Result<Attr, FsError> {
        self.getattr(ino)
    }

    fn child(&mut self, parent: u64, name: &[u8]) -> Result<Option<Attr>, FsError> {
        match self.lookup(parent, name) {
            Ok(a) => Ok(Some(a)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// May `c` make this call? Creates are made the caller's own here (their uid and gid are
/// the caller's, whatever the request said), and a chmod by someone outside the file's
/// group loses setgid, as the kernel does it. An error is the call's answer.
pub fn check(c: &Caller, req: &mut Request, fs: &mut impl Inodes) -> Result<(), FsError> {
    match req {
        Request::Lookup { parent, .. } => c.need(&fs.attr(*parent)?, X),
        Request::Readdir { ino, .. } | Request::Readdirplus { ino, .. } => {
            c.need(&fs.attr(*ino)?, R)
        }
        Request::Setattr { ino, set } => setattr(c, &fs.attr(*ino)?, set),
        Request::Mknod {
            parent,
            mode,
            uid,
            gid,
            ..
        } => {
            let kind = *mode & libc::S_IFMT;
            if (kind == libc::S_IFCHR || kind == libc::S_IFBLK) && !c.is_root() {
                return Err(FsError::NotPermitted);
            }
            create(c, &fs.attr(*parent)?, uid, gid)
        }
        Request::Mkdir {
            parent, uid, gid, ..
        }
        | Request::Symlink {
            parent, uid, gid, ..
        }
        | Request::Create {
            parent, uid, gid, ..
        } => create(c, &fs.attr(*parent)?, uid, gid),
        Request::Link { newparent, .. } => c.need(&fs.attr(*newparent)?, W | X),
        // A create sent again after a restart: checked, and owned, as the create it repeats.
        Request::CreateAgain { req, .. } => match req.meta().makes {
            true => check(c, req, fs),
            false => Err(FsError::Invalid),
        },
        Request::Unlink { parent, name } | Request::Rmdir { parent, name } => {
            let dir = fs.attr(*parent)?;
            c.need(&dir, W | X)?;
            let victim = fs.child(*parent, name)?;
            sticky(c, &dir, victim.as_ref())
        }
        Request::Rename {
            parent,
            name,
            newparent,
            newname,
            flags,
        } => rename(
            c,
            fs,
            (*parent, name),
            (*newparent, newname),
            flags.exchange,
        ),
        Request::Open { ino, flags } => open(c, &fs.attr(*ino)?, *flags),
        Request::Read { ino, .. } => {
            let a = fs.attr(*ino)?;
            let exec = a.kind == FileKind::RegularFile && c.may(&a, X);
            match c.owns(&a) || exec {
                true => Ok(()),
                false => c.need(&a, R),
            }
        }
        Request::Write { ino, .. }
        | Request::Append { ino, .. }
        | Request::Fallocate { ino, .. } => {
            let a = fs.attr(*ino)?;
            match c.owns(&a) {
                true => Ok(()),
                false => c.need(&a, W),
            }
        }
        Request::Getxattr { ino, name } => xattr(c, &fs.attr(*ino)?, name, false),
        Request::Setxattr { ino, name, .. } | Request::Removexattr { ino, name } => {
            xattr(c, &fs.attr(*ino)?, name, true)
        }
        // Attributes, links' targets, statistics, closes, fsyncs and locks need no more
        // than the lookups that found the inode.
        Request::Getattr { .. }
        | Request::Readlink { .. }
        | Request::Listxattr { .. }
        | Request::Release { .. }
        | Request::Fsync { .. }
        | Request::Statfs
        | Request::Getlk { .. }
        | Request::Setlk { .. }
        | Request::CancelLock { .. }
        | Request::ReleaseLocks { .. }
        | Request::ReclaimLock { .. }
        | Request::ReclaimDone => Ok(()),
    }
}

/// A rename of `from` to `to` (parent, name): write and search permission in both
/// directories, the sticky-bit rule in each, and a directory that changes parent writable
/// (its ".." is rewritten).
fn rename(
    c: &Caller,
    fs: &mut impl Inodes,
    from: (u64, &[u8]),
    to: (u64, &[u8]),
    exchange: bool,
) -> Result<(), FsError> {
    let (from_dir, to_dir) = (fs.attr(from.0)?, fs.attr(to.0)?);
    c.need(&from_dir, W | X)?;
    c.need(&to_dir, W | X)?;
    let moved = fs.child(from.0, from.1)?;
    let replaced = fs.child(to.0, to.1)?;
    sticky(c, &from_dir, moved.as_ref())?;
    sticky(c, &to_dir, replaced.as_ref())?;
    if from.0 == to.0 {
        return Ok(());
    }
    let mut reparented = vec![moved];
    if exchange {
        reparented.push(replaced);
    }
    for d in reparented.into_iter().flatten() {
        if d.kind == FileKind::Directory {
            c.need(&d, W)?;
        }
    }
    Ok(())
}

/// An open by its flags: read, write or both, and write for a truncating open.
fn open(c: &Caller, a: &Attr, flags: i32) -> Result<(), FsError> {
    let mut want = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => W,
        libc::O_RDWR => R | W,
        _ => R,
    };
    if flags & libc::O_TRUNC != 0 {
        want |= W;
    }
    c.need(a, want)
}

/// A new inode in `dir` by `c`: write and search permission there; it is `c`'s, in `c`'s
/// group or in one `c` may give it (one `c` is in, or the directory's under setgid).
fn create(c: &Caller, dir: &Attr, uid: &mut u32, gid: &mut u32) -> Result<(), FsError> {
    c.need(dir, W | X)?;
    *uid = c.uid;
    let inherited = dir.perm as u32 & libc::S_ISGID != 0 && *gid == dir.gid;
    if !(c.is_root() || c.in_group(*gid) || inherited) {
        *gid = c.gid;
    }
    Ok(())
}

/// In a sticky directory only the owner of an entry, of the directory, or root removes or
/// renames the entry.
fn sticky(c: &Caller, dir: &Attr, entry: Option<&Attr>) -> Result<(), FsError> {
    let Some(e) = entry else { return Ok(()) };
    if dir.perm as u32 & libc::S_ISVTX == 0 || c.is_root() || c.owns(dir) || c.owns(e) {
        return Ok(());
    }
    Err(FsError::NotPermitted)
}

fn setattr(c: &Caller, a: &Attr, set: &mut SetAttr) -> Result<(), FsError> {
    if c.squash {
        // Root's ids are nobody's here, as targets too: a squashed root's `chown 0:0` (tar,
        // cp -a) of its own file leaves it its own.
        for id in [set.uid.as_mut(), set.gid.as_mut()].into_iter().flatten() {
            if *id == 0 {
                *id = NOBODY;
            }
        }
    }
    if let Some(mode) = set.mode.as_mut() {
        c.owner_or_root(a)?;
        if !c.is_root() && !c.in_group(set.gid.unwrap_or(a.gid)) {
            *mode &= !libc::S_ISGID;
        }
    }
    if let Some(uid) = set.uid {
        // Only root gives a file away; its owner may "change" it to itself.
        if !(c.is_root() || (c.owns(a) && uid == a.uid)) {
            return Err(FsError::NotPermitted);
        }
    }
    if let Some(gid) = set.gid {
        let allowed = c.is_root() || (c.owns(a) && (gid == a.gid || c.in_group(gid)));
        if !allowed {
            return Err(FsError::NotPermitted);
        }
    }
    if set.size.is_some() && !c.owns(a) {
        c.need(a, W)?;
    }
    let times = [set.atime, set.mtime];
    if times.iter().any(|t| matches!(t, Some(SetTime::At(_)))) {
        c.owner_or_root(a)?;
    } else if times.iter().any(|t| matches!(t, Some(SetTime::Now))) && !c.is_root() && !c.owns(a) {
        c.need(a, W)?;
    }
    Ok(())
}

/// Extended attributes by namespace: `trusted.*` is root's alone (others are told it is not
/// there when they read); `user.*` follows the file's mode, on files and directories only;
/// `security.*` and `system.*` (ACLs, capabilities) are changed by the owner or root.
fn xattr(c: &Caller, a: &Attr, name: &[u8], write: bool) -> Result<(), FsError> {
    let denied = |write: bool| match write {
        true => Err(FsError::NotPermitted),
        false => Err(FsError::NoAttr),
    };
    if name.starts_with(b"trusted.") {
        return match c.is_root() {
            true => Ok(()),
            false => denied(write),
        };
    }
    if name.starts_with(b"user.") {
        if !matches!(a.kind, FileKind::RegularFile | FileKind::Directory) {
            return denied(write);
        }
        return c.need(a, if write { W } else { R });
    }
    match write {
        true => c.owner_or_root(a),
        false => Ok(()),
    }
}

/// A listing of extended attribute names as `c` may see it: `trusted.*` hidden from all but
/// root.
pub fn visible_names(c: &Caller, names: &mut Vec<Vec<u8>>) {
    if !c.is_root() {
        names.retain(|n| !n.starts_with(b"trusted."));
    }
}

#[cfg(test)]
mod tests;
