//! The classification pinned against the rules it replaced, as they were written out by hand
//! in the server and the client, for every variant.

use super::*;
use crate::samples::requests;

/// Changes the volume: everything but these.
fn mutated(r: &Request) -> bool {
    !matches!(
        r,
        Request::Lookup { .. }
            | Request::Getattr { .. }
            | Request::Readlink { .. }
            | Request::Readdir { .. }
            | Request::Readdirplus { .. }
            | Request::Open { .. }
            | Request::Reopen { .. }
            | Request::Release { .. }
            | Request::Read { .. }
            | Request::Fsync { .. }
            | Request::Statfs
            | Request::Getxattr { .. }
            | Request::Listxattr { .. }
            | Request::Getlk { .. }
            | Request::Setlk { .. }
            | Request::CancelLock { .. }
            | Request::ReleaseLocks { .. }
            | Request::ReclaimLock { .. }
            | Request::ReclaimDone
            | Request::Lseek { .. }
            | Request::LayoutGet { .. }
            | Request::LayoutReturn { .. }
            | Request::VolumeLocation
            | Request::StoreClient { .. }
    )
}

fn kept_reply(r: &Request) -> bool {
    mutated(r)
        || matches!(
            r,
            Request::Setlk { .. }
                | Request::Open { .. }
                | Request::Reopen { .. }
                | Request::Release { .. }
                | Request::CancelLock { .. }
                | Request::ReleaseLocks { .. }
                | Request::ReclaimLock { .. }
        )
}

fn inline(r: &Request) -> bool {
    if let Request::Setattr { set, .. } = r {
        return set.size.is_none();
    }
    !matches!(
        r,
        Request::Read { .. }
            | Request::Fallocate { .. }
            | Request::Fsync { .. }
            | Request::Readdir { .. }
            | Request::Readdirplus { .. }
            | Request::Getlk { .. }
            | Request::Setlk { .. }
            | Request::CancelLock { .. }
            | Request::ReleaseLocks { .. }
            | Request::ReclaimLock { .. }
            | Request::ReclaimDone
            | Request::Lseek { .. }
            | Request::LayoutGet { .. }
            | Request::LayoutCommit { .. }
    )
}

fn creates(r: &Request) -> bool {
    matches!(
        r,
        Request::Create { .. }
            | Request::Mkdir { .. }
            | Request::Mknod { .. }
            | Request::Symlink { .. }
    )
}

/// The inodes a change acts on or in (the server's durability order and invalidations).
fn refs(r: &Request) -> Vec<u64> {
    match r {
        Request::Setattr { ino, .. }
        | Request::Write { ino, .. }
        | Request::Append { ino, .. }
        | Request::Fallocate { ino, .. }
        | Request::Setxattr { ino, .. }
        | Request::Removexattr { ino, .. }
        | Request::LayoutCommit { ino, .. } => vec![*ino],
        Request::Create { parent, .. }
        | Request::Mknod { parent, .. }
        | Request::Mkdir { parent, .. }
        | Request::Symlink { parent, .. }
        | Request::Unlink { parent, .. }
        | Request::Rmdir { parent, .. } => vec![*parent],
        Request::Link { ino, newparent, .. } => vec![*ino, *newparent],
        Request::Rename {
            parent, newparent, ..
        } => vec![*parent, *newparent],
        Request::CreateAgain { req, .. } => refs(req),
        _ => Vec::new(),
    }
}

/// Names a change makes, removes or renames (the server's entry invalidations).
fn changed_entries(r: &Request) -> Vec<(u64, &[u8])> {
    match r {
        Request::Create { parent, name, .. }
        | Request::Mknod { parent, name, .. }
        | Request::Mkdir { parent, name, .. }
        | Request::Symlink { parent, name, .. }
        | Request::Unlink { parent, name }
        | Request::Rmdir { parent, name } => vec![(*parent, name)],
        Request::Link {
            newparent, newname, ..
        } => vec![(*newparent, newname)],
        Request::Rename {
            parent,
            name,
            newparent,
            newname,
            ..
        } => vec![(*parent, name), (*newparent, newname)],
        Request::CreateAgain { req, .. } => changed_entries(req),
        _ => Vec::new(),
    }
}

/// Names looked up before a change, whose inodes lose them.
fn unlinked(r: &Request) -> Vec<(u64, &[u8])> {
    match r {
        Request::Unlink { parent, name } | Request::Rmdir { parent, name } => {
            vec![(*parent, name)]
        }
        Request::Rename {
            parent,
            name,
            newparent,
            newname,
            ..
        } => vec![(*parent, name), (*newparent, newname)],
        _ => Vec::new(),
    }
}

/// Inodes (u64::MAX: the volume's names) a lost change is reported on (the client).
fn affects(r: &Request) -> Vec<u64> {
    match r {
        Request::Setattr { ino, .. }
        | Request::Write { ino, .. }
        | Request::Append { ino, .. }
        | Request::Fallocate { ino, .. }
        | Request::Setxattr { ino, .. }
        | Request::Removexattr { ino, .. }
        | Request::LayoutCommit { ino, .. } => vec![*ino],
        Request::Link { ino, .. } => vec![*ino, u64::MAX],
        _ => vec![u64::MAX],
    }
}

fn opens(r: &Request) -> Option<Option<u64>> {
    match r {
        Request::Open { .. } | Request::Reopen { .. } | Request::Create { .. } => Some(None),
        Request::Release { ino } => Some(Some(*ino)),
        _ => None,
    }
}

#[test]
fn every_call_is_classified_as_the_rules_it_replaced_said() {
    for r in requests() {
        let m = r.meta();
        assert_eq!(m.mutates, mutated(&r), "{r:?}");
        assert_eq!(m.remembered, kept_reply(&r), "{r:?}");
        assert_eq!(!m.blocks, inline(&r), "{r:?}");
        assert_eq!(
            m.recovery,
            matches!(r, Request::ReclaimLock { .. } | Request::ReclaimDone),
            "{r:?}"
        );
        assert_eq!(m.makes, creates(&r), "{r:?}");
        let opened = m.opens.map(|o| match o {
            Opens::Opens => None,
            Opens::Releases(ino) => Some(ino),
        });
        assert_eq!(opened, opens(&r), "{r:?}");
        let looked_up = match m.unlinks {
            true => m.entries.to_vec(),
            false => Vec::new(),
        };
        assert_eq!(looked_up, unlinked(&r), "{r:?}");
        if !m.mutates {
            continue;
        }
        assert_eq!(m.inodes().collect::<Vec<_>>(), refs(&r), "{r:?}");
        assert_eq!(m.entries, changed_entries(&r), "{r:?}");
        let mut lost: Vec<u64> = m.inode.into_iter().collect();
        if !m.entries.is_empty() || lost.is_empty() {
            lost.push(u64::MAX);
        }
        assert_eq!(lost, affects(&r), "{r:?}");
        // A truncation, an allocation or a layout's commit runs out of order on the server, so a replay sends
        // it on its own; nothing else that changes the volume does.
        let alone = matches!(&r, Request::Fallocate { .. } | Request::LayoutCommit { .. })
            || matches!(&r, Request::Setattr { set, .. } if set.size.is_some());
        assert_eq!(m.blocks, alone, "{r:?}");
    }
}

#[test]
fn a_create_made_again_changes_what_the_create_did_but_opens_nothing() {
    let create = Request::Create {
        parent: 1,
        name: b"c".to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    let again = Request::CreateAgain {
        ino: 9,
        req: Box::new(create.clone()),
    };
    let (m, c) = (again.meta(), create.meta());
    assert_eq!((m.inode, &m.entries), (c.inode, &c.entries));
    assert!(m.mutates && m.remembered && !m.makes && m.opens.is_none());
    // One that repeats something other than a create touches nothing (it is refused).
    let odd = Request::CreateAgain {
        ino: 9,
        req: Box::new(Request::Getattr { ino: 4 }),
    };
    assert_eq!((odd.meta().inode, odd.meta().entries.len()), (None, 0));
}

/// The lock calls' own rules, as the server's lock calls wrote them out by hand: which wait
/// out a restart's grace period, which let locks go.
#[test]
fn lock_calls_wait_out_the_grace_period_and_unlock_as_the_server_said() {
    let unlock = Request::Setlk {
        ino: 2,
        owner: 7,
        range: crate::wire::LockRange { start: 0, end: 9 },
        kind: LockKind::Unlock,
        pid: 8,
        wait: false,
    };
    for r in requests().into_iter().chain([unlock]) {
        let m = r.meta();
        let grace = matches!(r, Request::Getlk { .. } | Request::Setlk { .. });
        assert_eq!(m.asks_lock, grace, "{r:?}");
        let unlocks = match &r {
            Request::Setlk { kind, .. } => *kind == LockKind::Unlock,
            Request::ReleaseLocks { .. } => true,
            _ => false,
        };
        assert_eq!(m.unlocks, unlocks, "{r:?}");
    }
}

/// What a caller must be allowed, as the server's permission check wrote it out by hand for
/// each call.
#[test]
fn every_call_needs_the_access_the_permission_check_said() {
    for r in requests() {
        let m = r.meta();
        let access = match &r {
            Request::Readdir { .. } | Request::Readdirplus { .. } => Access::List,
            Request::Read { .. } | Request::LayoutGet { write: false, .. } => Access::ReadData,
            Request::Write { .. }
            | Request::Append { .. }
            | Request::Fallocate { .. }
            | Request::LayoutGet { write: true, .. }
            | Request::LayoutCommit { .. } => Access::WriteData,
            Request::Open { flags, .. } => Access::Open(*flags),
            Request::Reopen { flags, .. } => Access::Reopen(*flags),
            Request::Setattr { set, .. } => Access::Attrs(*set),
            Request::Getxattr { name, .. } => Access::Xattr { name, write: false },
            Request::Setxattr { name, .. } | Request::Removexattr { name, .. } => {
                Access::Xattr { name, write: true }
            }
            Request::Mknod { mode, uid, gid, .. }
            | Request::Mkdir { mode, uid, gid, .. }
            | Request::Create { mode, uid, gid, .. } => Access::Make {
                mode: *mode,
                uid: *uid,
                gid: *gid,
            },
            Request::Symlink { uid, gid, .. } => Access::Make {
                mode: 0o120777,
                uid: *uid,
                gid: *gid,
            },
            Request::CreateAgain { req, .. } => req.meta().access,
            _ => Access::Nothing,
        };
        assert_eq!(m.access, access, "{r:?}");
        let moves = match &r {
            Request::Rename { flags, .. } if flags.exchange => Some(Moves::Both),
            Request::Rename { .. } => Some(Moves::One),
            _ => None,
        };
        assert_eq!(m.moves, moves, "{r:?}");
        let mut owned = r.clone();
        assert_eq!(
            owned.claimed_owner_mut().is_some(),
            matches!(m.access, Access::Make { .. }),
            "{r:?}"
        );
        assert_eq!(
            owned.attrs_mut().is_some(),
            matches!(m.access, Access::Attrs(_)),
            "{r:?}"
        );
    }
}
