//! What a call is, for everything around it: which inode and which directory entries it
//! touches, whether it changes the volume, whether its reply must be remembered, whether it
//! may block. One match over `Request` (`Request::meta`): a new operation is classified here
//! once, and every rule that depends on the kind of call follows from it — the read-only
//! refusal, the reply cache, inline or pooled on the server, invalidations pushed to other
//! mounts, the order of durability, what a client keeps for a replay and how it sends it.

use crate::messages::Request;
use crate::wire::{LockKind, SetAttr};

/// A call's classification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta<'a> {
    /// The inode whose attributes, data, extended attributes, opens or locks it acts on.
    pub inode: Option<u64>,
    /// The directory entries it looks up, makes, removes or renames: (directory, name).
    pub entries: Entries<'a>,
    /// The inodes its entries name before it runs lose that name: their link count and
    /// ctime change (unlink, rmdir, and a rename's source and replaced target).
    pub unlinks: bool,
    /// It changes the volume: refused on read-only sessions, kept by the client until the
    /// server says it is durable.
    pub mutates: bool,
    /// It must not run twice: a repeat (after a reconnect) gets the kept reply.
    pub remembered: bool,
    /// It may take long or wait (disk reads, commits, listings, truncations, lock calls that
    /// may wait out a grace period): the server runs it on its blocking pool, out of order
    /// with the calls after it, and a client replays it on its own.
    pub blocks: bool,
    /// It makes an inode, answered with its attributes: sent again after a restart as a
    /// `CreateAgain` at the inode number it got.
    pub makes: bool,
    /// It opens or closes a file, which a session counts.
    pub opens: Option<Opens>,
    /// Part of a client's recovery after a server restart (lock reclaims): never held back
    /// by the restart's grace period.
    pub recovery: bool,
    /// What its caller must be allowed beyond what its entries need (searching a directory
    /// it looks a name up in; writing one it changes): the server's permission check.
    pub access: Access<'a>,
    /// It moves the inode its first entry names to its second (a rename): with
    /// `Moves::Both`, the second's to the first too (an exchange).
    pub moves: Option<Moves>,
    /// It takes or tests a byte-range lock: held back until a restarted server's clients
    /// have reclaimed the locks they held, so no one else's lock is granted (or reported
    /// free) before.
    pub asks_lock: bool,
    /// It lets byte-range locks go: what its session changed is made durable first, so a
    /// crash never lets the next holder's changes land before the ones made under the lock.
    pub unlocks: bool,
}

/// What a call's caller must be allowed to do to its inode (`Meta::inode`), or to what it
/// makes, beyond the lookups that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access<'a> {
    /// Nothing more: attributes, a link's target, statistics, closes, fsyncs, locks.
    #[default]
    Nothing,
    /// Read a directory's entries.
    List,
    /// Read a file's data (read permission, its owner's, or a program's execute).
    ReadData,
    /// Change a file's data (write permission, or its owner's).
    WriteData,
    /// Open it with these flags.
    Open(i32),
    /// Open it again with these flags (`Request::Reopen`): its owner past the mode bits.
    Reopen(i32),
    /// Change these attributes (each by its rule: chmod, chown, utimes, truncate).
    Attrs(SetAttr),
    /// Read or (`write`) change the extended attribute `name`.
    Xattr {
        /// The attribute's name: its namespace decides the rule (`user.`, `trusted.`...).
        name: &'a [u8],
        /// It changes (sets or removes) the attribute rather than reads it.
        write: bool,
    },
    /// Make an inode of `mode` (its type bits may be left out: a directory's) for the owner
    /// the request claims; the caller's own it becomes (`Request::claimed_owner_mut`).
    Make {
        /// The new inode's type and permission bits.
        mode: u32,
        /// The owner the request claims for it.
        uid: u32,
        /// The group the request claims for it.
        gid: u32,
    },
}

/// Which of a rename's inodes move (see `Meta::moves`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moves {
    /// The first entry's, to the second.
    One,
    /// Both, each to the other's name.
    Both,
}

/// How a call changes the files a session holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opens {
    /// Opens the file its answer's attributes name, once more.
    Opens,
    /// Closes one of its opens of this inode.
    Releases(u64),
}

/// A call's directory entries, (directory, name), held inline: a call names at most two
/// (a rename's source and target), so classifying it never allocates. Reads as a slice.
#[derive(Clone, Copy, Default)]
pub struct Entries<'a> {
    len: u8,
    slots: [(u64, &'a [u8]); 2],
}

impl<'a> Entries<'a> {
    /// Adds an entry; `Request::meta` gives no call more than two, and its tests check
    /// every variant's.
    fn push(&mut self, parent: u64, name: &'a [u8]) {
        self.slots[usize::from(self.len)] = (parent, name);
        self.len += 1;
    }
}

impl<'a> std::ops::Deref for Entries<'a> {
    type Target = [(u64, &'a [u8])];

    fn deref(&self) -> &Self::Target {
        &self.slots[..usize::from(self.len)]
    }
}

impl<'a> IntoIterator for Entries<'a> {
    type Item = (u64, &'a [u8]);
    type IntoIter = std::iter::Take<std::array::IntoIter<(u64, &'a [u8]), 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.slots.into_iter().take(usize::from(self.len))
    }
}

impl<'b, 'a> IntoIterator for &'b Entries<'a> {
    type Item = &'b (u64, &'a [u8]);
    type IntoIter = std::slice::Iter<'b, (u64, &'a [u8])>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Entries<'_> {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Entries<'_> {}

impl<'a> PartialEq<Vec<(u64, &'a [u8])>> for Entries<'a> {
    fn eq(&self, other: &Vec<(u64, &'a [u8])>) -> bool {
        self[..] == other[..]
    }
}

impl<'a> Meta<'a> {
    fn entry(mut self, parent: u64, name: &'a [u8]) -> Meta<'a> {
        self.entries.push(parent, name);
        self
    }

    fn changes(self) -> Meta<'a> {
        Meta {
            mutates: true,
            remembered: true,
            ..self
        }
    }

    fn remembered(self) -> Meta<'a> {
        Meta {
            remembered: true,
            ..self
        }
    }

    fn blocking(self) -> Meta<'a> {
        Meta {
            blocks: true,
            ..self
        }
    }

    fn needs(self, access: Access<'a>) -> Meta<'a> {
        Meta { access, ..self }
    }

    fn unlinking(self) -> Meta<'a> {
        Meta {
            unlinks: true,
            ..self
        }
    }

    fn unlocking(self) -> Meta<'a> {
        Meta {
            unlocks: true,
            ..self
        }
    }

    fn opening(self, opens: Opens) -> Meta<'a> {
        Meta {
            opens: Some(opens),
            ..self
        }
    }

    fn asking_lock(self) -> Meta<'a> {
        Meta {
            asks_lock: true,
            ..self
        }
    }

    fn in_recovery(self) -> Meta<'a> {
        Meta {
            recovery: true,
            ..self
        }
    }

    /// The create `made` repeats, made again: it changes what that create changed, and is
    /// allowed as it was, but opens nothing (its client opens what it holds) and is not
    /// itself sent again. A call that makes nothing changes nothing and needs nothing here.
    fn again(made: &'a Request) -> Meta<'a> {
        let made = made.meta();
        let what = match made.makes {
            true => Meta {
                inode: made.inode,
                entries: made.entries,
                access: made.access,
                ..Meta::default()
            },
            false => Meta::default(),
        };
        what.changes()
    }

    /// The inodes it acts on or in: its inode, then each entry's directory (in that order;
    /// a rename within one directory names it twice).
    pub fn inodes(&self) -> impl Iterator<Item = u64> + '_ {
        self.inode
            .into_iter()
            .chain(self.entries.iter().map(|(parent, _)| *parent))
    }
}

/// Where a call names inodes, as `(inode, [entry; 2])`: the inode it acts on, and each
/// entry's (directory, name). The one list of them, a macro so that one match serves a shared
/// borrow (`Request::meta`) and a mutable one (`Request::map_inodes`): its bindings borrow as
/// the request does. A `CreateAgain` names what its create names (`Meta::again`).
macro_rules! places {
    ($req:expr) => {
        match $req {
            Request::Lookup { parent, name }
            | Request::Unlink { parent, name }
            | Request::Rmdir { parent, name }
            | Request::Mknod { parent, name, .. }
            | Request::Mkdir { parent, name, .. }
            | Request::Create { parent, name, .. }
            | Request::Symlink { parent, name, .. } => (None, [Some((parent, name)), None]),
            Request::Link {
                ino,
                newparent,
                newname,
            } => (Some(ino), [Some((newparent, newname)), None]),
            Request::Rename {
                parent,
                name,
                newparent,
                newname,
                ..
            } => (None, [Some((parent, name)), Some((newparent, newname))]),
            Request::Getattr { ino }
            | Request::Setattr { ino, .. }
            | Request::Readlink { ino }
            | Request::Readdir { ino, .. }
            | Request::Readdirplus { ino, .. }
            | Request::Open { ino, .. }
            | Request::Reopen { ino, .. }
            | Request::Release { ino }
            | Request::Read { ino, .. }
            | Request::Write { ino, .. }
            | Request::Fsync { ino }
            | Request::Fallocate { ino, .. }
            | Request::Getxattr { ino, .. }
            | Request::Setxattr { ino, .. }
            | Request::Listxattr { ino }
            | Request::Removexattr { ino, .. }
            | Request::Append { ino, .. }
            | Request::Getlk { ino, .. }
            | Request::Setlk { ino, .. }
            | Request::ReleaseLocks { ino, .. }
            | Request::ReclaimLock { ino, .. }
            | Request::Lseek { ino, .. }
            | Request::LayoutGet { ino, .. }
            | Request::LayoutCommit { ino, .. }
            | Request::LayoutReturn { ino } => (Some(ino), [None, None]),
            Request::Statfs
            | Request::CancelLock { .. }
            | Request::ReclaimDone
            | Request::VolumeLocation
            | Request::StoreClient { .. }
            | Request::CreateAgain { .. } => (None, [None, None]),
        }
    };
}

/// A call's inode and entries (`places!`), borrowed as `I` (the inode) and `N` (a name).
pub(crate) type Places<I, N> = (Option<I>, [Option<(I, N)>; 2]);

impl Request {
    /// Its inode and entries, to read.
    fn places(&self) -> Places<&u64, &Vec<u8>> {
        places!(self)
    }

    /// Its inode and entries, to rewrite (`map_inodes`).
    pub(crate) fn places_mut(&mut self) -> Places<&mut u64, &mut Vec<u8>> {
        places!(self)
    }

    /// This call's classification: the one place a kind of call is described. Where it
    /// names inodes is `places!`'s.
    pub fn meta(&self) -> Meta<'_> {
        use Request as R;
        let (inode, entries) = self.places();
        let mut at = Meta {
            inode: inode.copied(),
            ..Meta::default()
        };
        for (dir, name) in entries.into_iter().flatten() {
            at = at.entry(*dir, name);
        }
        match self {
            R::Lookup { .. }
            | R::Getattr { .. }
            | R::Readlink { .. }
            | R::Listxattr { .. }
            | R::Statfs => at,
            R::Getxattr { name, .. } => at.needs(Access::Xattr { name, write: false }),
            R::Readdir { .. } | R::Readdirplus { .. } => at.blocking().needs(Access::List),
            R::Read { .. } => at.blocking().needs(Access::ReadData),
            R::Fsync { .. } | R::Lseek { .. } => at.blocking(),
            R::Getlk { .. } => at.blocking().asking_lock(),
            R::Setattr { set, .. } => Meta {
                blocks: set.size.is_some(),
                ..at.changes().needs(Access::Attrs(*set))
            },
            R::Write { .. } | R::Append { .. } => at.changes().needs(Access::WriteData),
            R::Setxattr { name, .. } | R::Removexattr { name, .. } => {
                at.changes().needs(Access::Xattr { name, write: true })
            }
            R::Fallocate { .. } => at.changes().blocking().needs(Access::WriteData),
            R::Mknod { .. } | R::Mkdir { .. } | R::Create { .. } | R::Symlink { .. } => {
                self.making(at)
            }
            R::Link { .. } => at.changes(),
            R::Unlink { .. } | R::Rmdir { .. } => at.changes().unlinking(),
            R::Rename { flags, .. } => Meta {
                moves: Some(match flags.exchange {
                    true => Moves::Both,
                    false => Moves::One,
                }),
                ..at.changes().unlinking()
            },
            R::Open { flags, .. } => at
                .remembered()
                .needs(Access::Open(*flags))
                .opening(Opens::Opens),
            R::Reopen { flags, .. } => at
                .remembered()
                .needs(Access::Reopen(*flags))
                .opening(Opens::Opens),
            R::Release { ino } => at.remembered().opening(Opens::Releases(*ino)),
            R::Setlk { kind, .. } => Meta {
                unlocks: *kind == LockKind::Unlock,
                ..at.remembered().blocking().asking_lock()
            },
            R::ReleaseLocks { .. } => at.remembered().blocking().unlocking(),
            R::CancelLock { .. } => at.remembered().blocking(),
            R::ReclaimLock { .. } => at.remembered().blocking().in_recovery(),
            R::ReclaimDone => at.blocking().in_recovery(),
            // A layout reserves nothing the journal knows of, and is asked for again after a
            // restart rather than replayed: it changes nothing a client keeps. One for
            // writing needs what a write does.
            R::LayoutGet { write, .. } => at.blocking().needs(match write {
                true => Access::WriteData,
                false => Access::ReadData,
            }),
            R::LayoutCommit { .. } => at.changes().blocking().needs(Access::WriteData),
            R::LayoutReturn { .. } | R::VolumeLocation | R::StoreClient { .. } => at,
            R::CreateAgain { req, .. } => Meta::again(req),
        }
    }

    /// A call that makes an inode (mknod, mkdir, create, symlink), at its entry (`at`): for
    /// the owner it claims, of its mode; a create opens it too. Any other call makes nothing.
    fn making<'a>(&self, at: Meta<'a>) -> Meta<'a> {
        use Request as R;
        let (mode, uid, gid) = match self {
            R::Mknod { mode, uid, gid, .. }
            | R::Mkdir { mode, uid, gid, .. }
            | R::Create { mode, uid, gid, .. } => (*mode, *uid, *gid),
            // S_IFLNK, and every permission: a link's own mode is never checked.
            R::Symlink { uid, gid, .. } => (0o120777, *uid, *gid),
            _ => return Meta::default(),
        };
        Meta {
            makes: true,
            opens: matches!(self, R::Create { .. }).then_some(Opens::Opens),
            ..at.changes().needs(Access::Make { mode, uid, gid })
        }
    }

    /// The owner (uid, gid) a call that makes an inode claims for it (`Access::Make`), for
    /// the server to make it its caller's own.
    pub fn claimed_owner_mut(&mut self) -> Option<(&mut u32, &mut u32)> {
        use Request as R;
        match self {
            R::Mknod { uid, gid, .. }
            | R::Mkdir { uid, gid, .. }
            | R::Symlink { uid, gid, .. }
            | R::Create { uid, gid, .. } => Some((uid, gid)),
            R::CreateAgain { req, .. } => req.claimed_owner_mut(),
            _ => None,
        }
    }

    /// The attributes a call changes (`Access::Attrs`), for the server to adjust them by its
    /// caller's rights.
    pub fn attrs_mut(&mut self) -> Option<&mut SetAttr> {
        match self {
            Request::Setattr { set, .. } => Some(set),
            _ => None,
        }
    }

    /// True for calls that must not run twice: a repeat after a reconnect is answered from
    /// the session's reply cache.
    pub fn remembered(&self) -> bool {
        self.meta().remembered
    }

    /// True for operations that change the volume (refused on read-only sessions).
    pub fn mutates(&self) -> bool {
        self.meta().mutates
    }
}

#[cfg(test)]
mod tests;
