//! Cache coherence: the server remembers which inodes each session has been told about
//! (attributes it may cache), and when one session changes an inode or a directory entry,
//! pushes an invalidation to every other session that may cache it. Clients hand those to
//! the kernel (FUSE notify_inval_inode / notify_inval_entry), so their caches follow changes
//! made elsewhere at once instead of after a TTL.

use locks::SessionId;
use protocol::codec::encode_frame;
use protocol::{Push, Request, Response, ServerMsg};

use volume::Volume;

use crate::Store;

use crate::listener::Shared;
use crate::session::Session;
use volume::Ino;

/// What a call changed, as other sessions' caches see it.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Attributes or data changed.
    pub inodes: Vec<u64>,
    /// A name in a directory now means something else (or nothing).
    pub entries: Vec<(u64, Vec<u8>)>,
}

/// Inodes a call is about to take a name from, looked up (in the hold that runs it) before
/// it runs: their link count and ctime change, which only the server can tell other sessions
/// about.
pub(crate) fn targets_before(v: &mut Volume<Store>, req: &Request) -> Vec<u64> {
    let m = req.meta();
    if !m.unlinks {
        return Vec::new();
    }
    m.entries
        .into_iter()
        .filter_map(|(p, n)| v.lookup(Ino::new(p), n).ok().map(|a| a.ino.get()))
        .collect()
}

/// What `req` changed, given that it succeeded: the inodes it acts on or in and the names it
/// makes, removes or renames (`Request::meta`), and the inodes `targets_before` found.
pub(crate) fn changes(req: &Request, targets: Vec<u64>) -> Changes {
    let mut c = Changes {
        inodes: targets,
        entries: Vec::new(),
    };
    let m = req.meta();
    if m.mutates {
        c.inodes.extend(m.inodes());
        c.entries = m.entries.iter().map(|(p, n)| (*p, n.to_vec())).collect();
    }
    c
}

/// Remember what a reply tells its session, which it may now cache.
pub(crate) fn note_seen(session: &Session, resp: &Response) {
    match resp {
        Response::Attr(a) => session.cached(&[a.ino]),
        Response::EntriesPlus(es) => {
            let inos: Vec<u64> = es.iter().map(|(_, a)| a.ino).collect();
            session.cached(&inos);
        }
        _ => {}
    }
}

/// Push invalidations for `changes` to every session but `origin` that may cache them.
/// Never blocks: a session whose queue is full misses the push and falls back on its TTL.
pub(crate) fn notify(shared: &Shared, origin: SessionId, changes: &Changes) {
    if changes.inodes.is_empty() && changes.entries.is_empty() {
        return;
    }
    for s in shared.sessions.iter() {
        if s.id == origin {
            continue;
        }
        let Some(tx) = s.sender() else { continue };
        let mut pushes = Vec::new();
        // A mount of an export knows its root as inode 1.
        let shown = |ino| crate::exports::shown(s.info.export, ino);
        for ino in &changes.inodes {
            if s.may_cache(*ino) {
                pushes.push(Push::InvalInode { ino: shown(*ino) });
            }
        }
        for (parent, name) in &changes.entries {
            if s.may_cache(*parent) {
                pushes.push(Push::InvalEntry {
                    parent: shown(*parent),
                    name: name.clone(),
                });
            }
        }
        for p in pushes {
            if let Ok(f) = encode_frame(&ServerMsg::Push(p), &[]) {
                let _ = tx.try_send(f);
            }
        }
    }
}
