//! What a call is, for everything around it: which inode and which directory entries it
//! touches, whether it changes the volume, whether its reply must be remembered, whether it
//! may block. One match over `Request` (`Request::meta`): a new operation is classified here
//! once, and every rule that depends on the kind of call follows from it — the read-only
//! refusal, the reply cache, inline or pooled on the server, invalidations pushed to other
//! mounts, the order of durability, what a client keeps for a replay and how it sends it.

use crate::messages::Request;

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
    fn on(ino: u64) -> Meta<'a> {
        Meta {
            inode: Some(ino),
            ..Meta::default()
        }
    }

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

    /// The inodes it acts on or in: its inode, then each entry's directory (in that order;
    /// a rename within one directory names it twice).
    pub fn inodes(&self) -> impl Iterator<Item = u64> + '_ {
        self.inode
            .into_iter()
            .chain(self.entries.iter().map(|(parent, _)| *parent))
    }
}

impl Request {
    /// This call's classification: the one place a kind of call is described.
    pub fn meta(&self) -> Meta<'_> {
        use Request as R;
        match self {
            R::Lookup { parent, name } => Meta::default().entry(*parent, name),
            R::Getattr { ino }
            | R::Readlink { ino }
            | R::Getxattr { ino, .. }
            | R::Listxattr { ino } => Meta::on(*ino),
            R::Statfs => Meta::default(),
            R::Readdir { ino, .. }
            | R::Readdirplus { ino, .. }
            | R::Read { ino, .. }
            | R::Fsync { ino }
            | R::Getlk { ino, .. } => Meta::on(*ino).blocking(),
            R::Setattr { ino, set } => Meta {
                blocks: set.size.is_some(),
                ..Meta::on(*ino).changes()
            },
            R::Write { ino, .. }
            | R::Append { ino, .. }
            | R::Setxattr { ino, .. }
            | R::Removexattr { ino, .. } => Meta::on(*ino).changes(),
            R::Fallocate { ino, .. } => Meta::on(*ino).changes().blocking(),
            R::Mknod { parent, name, .. }
            | R::Mkdir { parent, name, .. }
            | R::Symlink { parent, name, .. } => Meta {
                makes: true,
                ..Meta::default().entry(*parent, name).changes()
            },
            R::Create { parent, name, .. } => Meta {
                makes: true,
                opens: Some(Opens::Opens),
                ..Meta::default().entry(*parent, name).changes()
            },
            R::Link {
                ino,
                newparent,
                newname,
            } => Meta::on(*ino).entry(*newparent, newname).changes(),
            R::Unlink { parent, name } | R::Rmdir { parent, name } => Meta {
                unlinks: true,
                ..Meta::default().entry(*parent, name).changes()
            },
            R::Rename {
                parent,
                name,
                newparent,
                newname,
                ..
            } => Meta {
                unlinks: true,
                ..Meta::default()
                    .entry(*parent, name)
                    .entry(*newparent, newname)
                    .changes()
            },
            R::Open { ino, .. } => Meta {
                opens: Some(Opens::Opens),
                ..Meta::on(*ino).remembered()
            },
            R::Release { ino } => Meta {
                opens: Some(Opens::Releases(*ino)),
                ..Meta::on(*ino).remembered()
            },
            R::Setlk { ino, .. } | R::ReleaseLocks { ino, .. } => {
                Meta::on(*ino).remembered().blocking()
            }
            R::CancelLock { .. } => Meta::default().remembered().blocking(),
            R::ReclaimLock { ino, .. } => Meta {
                recovery: true,
                ..Meta::on(*ino).remembered().blocking()
            },
            R::ReclaimDone => Meta {
                recovery: true,
                ..Meta::default().blocking()
            },
            // The create it repeats, made again: it changes what that create changed, but
            // opens nothing (its client opens what it holds) and is not itself sent again.
            R::CreateAgain { req, .. } => {
                let made = req.meta();
                let what = match made.makes {
                    true => Meta {
                        inode: made.inode,
                        entries: made.entries,
                        ..Meta::default()
                    },
                    false => Meta::default(),
                };
                what.changes()
            }
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
