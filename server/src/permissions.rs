//! Permission checks on the server, as an NFS server does them (AUTH_SYS): each call comes
//! with its caller's credentials, squashed per the export (`Caller::new`), and is checked
//! against the inodes it touches before it runs. The client's kernel checks too
//! (default_permissions); this check is what stops a client that does not.
//!
//! Reads and writes of a file's data are allowed to its owner whatever its mode (as knfsd's
//! owner override: a file created read-only is still written through the descriptor that
//! created it), and a read is allowed with execute permission (a program being run).

use protocol::{Access, Cred, Meta, Moves, Request, SetAttr, SetTime, MAX_GROUPS};
use volume::{Attr, BlockStore, FileKind, FsError, Volume};

use crate::export::{Export, NOBODY};
use volume::Ino;

const R: u16 = 4;
const W: u16 = 2;
const X: u16 = 1;

/// A call's caller, after squashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the checks go by (nobody for a squashed root).
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its supplementary groups.
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

    /// True for root after squashing: the checks let it past the permission bits.
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
    /// The attributes of `ino`.
    fn attr(&mut self, ino: u64) -> Result<Attr, FsError>;
    /// The inode `name` in `parent` names, if any.
    fn child(&mut self, parent: u64, name: &[u8]) -> Result<Option<Attr>, FsError>;
}

impl<S: BlockStore> Inodes for Volume<S> {
    fn attr(&mut self, ino: u64) -> Result<Attr, FsError> {
        self.getattr(Ino::new(ino))
    }

    fn child(&mut self, parent: u64, name: &[u8]) -> Result<Option<Attr>, FsError> {
        match self.lookup(Ino::new(parent), name) {
            Ok(a) => Ok(Some(a)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// May `c` make this call? What it needs follows from its classification (`Request::meta`):
/// search permission in a directory it looks a name up in, write and search in one whose
/// names it changes (with the sticky-bit rule for names it takes away, and a directory that
/// changes parent writable), and what its `Access` says on its inode or of what it makes.
/// Creates are made the caller's own here (their uid and gid are the caller's, whatever the
/// request said), and a chmod by someone outside the file's group loses setgid, as the
/// kernel does it. An error is the call's answer.
pub fn check(c: &Caller, req: &mut Request, fs: &mut impl Inodes) -> Result<(), FsError> {
    let m = req.meta();
    if let Access::Make { mode, .. } = m.access {
        let kind = mode & libc::S_IFMT;
        if (kind == libc::S_IFCHR || kind == libc::S_IFBLK) && !c.is_root() {
            return Err(FsError::NotPermitted);
        }
    }
    entries(c, &m, fs)?;
    let adjust = match (m.access, m.inode) {
        (Access::Make { uid, gid, .. }, _) => {
            let dir = m.entries.first().map(|(dir, _)| *dir);
            let dir = fs.attr(dir.ok_or(FsError::Invalid)?)?;
            Adjust::Owner(made_by(c, &dir, (uid, gid)))
        }
        (Access::Nothing, _) => Adjust::Nothing,
        (access, Some(ino)) => inode(c, &fs.attr(ino)?, access)?,
        (_, None) => return Err(FsError::Invalid),
    };
    match adjust {
        Adjust::Nothing => {}
        Adjust::Owner(owner) => {
            if let Some((uid, gid)) = req.claimed_owner_mut() {
                (*uid, *gid) = owner;
            }
        }
        Adjust::Attrs(set) => {
            if let Some(s) = req.attrs_mut() {
                *s = set;
            }
        }
    }
    Ok(())
}

/// What a check changes in the call it allowed.
enum Adjust {
    Nothing,
    /// What it makes is this (uid, gid)'s.
    Owner((u32, u32)),
    /// It sets these attributes.
    Attrs(SetAttr),
}

/// The directories of a call's entries: search to look a name up, write and search to
/// change one; the sticky-bit rule on each name it takes away; and a directory that a
/// rename moves to another parent writable (its ".." is rewritten).
fn entries(c: &Caller, m: &Meta<'_>, fs: &mut impl Inodes) -> Result<(), FsError> {
    let want = match m.mutates {
        true => W | X,
        false => X,
    };
    for (dir, _) in &m.entries {
        c.need(&fs.attr(*dir)?, want)?;
    }
    if m.unlinks {
        for (dir, name) in &m.entries {
            let dir = fs.attr(*dir)?;
            let victim = fs.child(dir.ino.get(), name)?;
            sticky(c, &dir, victim.as_ref())?;
        }
    }
    match (m.moves, &m.entries[..]) {
        (Some(moves), [from, to]) if from.0 != to.0 => {
            let mut moved = vec![fs.child(from.0, from.1)?];
            if moves == Moves::Both {
                moved.push(fs.child(to.0, to.1)?);
            }
            for d in moved.into_iter().flatten() {
                if d.kind == FileKind::Directory {
                    c.need(&d, W)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What `access` needs on the inode `a`.
fn inode(c: &Caller, a: &Attr, access: Access<'_>) -> Result<Adjust, FsError> {
    match access {
        Access::Nothing | Access::Make { .. } => {}
        Access::List => c.need(a, R)?,
        Access::ReadData => {
            let exec = a.kind == FileKind::RegularFile && c.may(a, X);
            if !(c.owns(a) || exec) {
                c.need(a, R)?;
            }
        }
        Access::WriteData => {
            if !c.owns(a) {
                c.need(a, W)?;
            }
        }
        Access::Open(flags) => open(c, a, flags, false)?,
        Access::Reopen(flags) => open(c, a, flags, true)?,
        Access::Attrs(mut set) => {
            setattr(c, a, &mut set)?;
            return Ok(Adjust::Attrs(set));
        }
        Access::Xattr { name, write } => xattr(c, a, name, write)?,
    }
    Ok(Adjust::Nothing)
}

/// An open by its flags: read, write or both, and write for a truncating open. An open made
/// `again` after a lost session or a restart (`Request::Reopen`) by the file's owner is allowed
/// whatever the mode bits, as knfsd's owner override allows an open that created its file:
/// the owner's reads and writes through it pass here anyway, and the owner may change the
/// mode at will, so this grants nothing it could not take. A created file's descriptor
/// keeps its access that way (mode 0200, written by its creator), and so does an open whose
/// file its owner has since made unreadable.
fn open(c: &Caller, a: &Attr, flags: i32, again: bool) -> Result<(), FsError> {
    if again && c.owns(a) {
        return Ok(());
    }
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

/// The owner of a new inode in `dir` made by `c`, which claimed `claimed`: it is `c`'s, in
/// `c`'s group or in one `c` may give it (one `c` is in, or the directory's under setgid).
fn made_by(c: &Caller, dir: &Attr, claimed: (u32, u32)) -> (u32, u32) {
    let gid = claimed.1;
    let inherited = dir.perm as u32 & libc::S_ISGID != 0 && gid == dir.gid;
    match c.is_root() || c.in_group(gid) || inherited {
        true => (c.uid, gid),
        false => (c.uid, c.gid),
    }
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
