//! Files replaced while a client may be about to open them. A client's kernel looks a name up
//! and opens the inode it got in two calls; a rename over that name (or an unlink) on another
//! mount between them would free the inode, and the open would get ESTALE where a local file
//! system opens the old file. So the server remembers which inodes it handed out lately
//! (`shown`), and a call about to take the last link of one of them keeps the file as an
//! orphan under an open of the server's own, taken in the same hold of the engine as the
//! unlink, until `LINGER` has passed (`sweep`, run periodically). That open is not in the
//! session log: after a crash, the restart's orphan reclaim frees the file.
//!
//! After a restart that restored sessions, their mounts open again the files they hold, and
//! an open made since the last commit before a crash is not in the session log. So until the
//! grace period is over (every restored session has reopened, replayed and reclaimed), every
//! regular file whose last link goes is kept (a replayed unlink of another mount may come
//! first), and the orphans the last run left that no restored session holds are freed only
//! then (`reclaim_after_grace`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::{Request, Response};
use volume::{FileKind, Ino, Volume};

use crate::Store;

/// How long a handed-out inode may still be opened by its number: the client's entry-cache
/// time (1 s by default) plus a margin for the calls in flight between its lookup and open.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Inodes handed out lately, and replaced files kept for them.
#[derive(Default)]
pub(crate) struct Linger {
    inner: Mutex<State>,
    /// The orphans found at start wait for the end of the grace period to be freed.
    orphans_pending: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Inode → when a reply last handed it out.
    shown: HashMap<u64, Instant>,
    /// Inode → when the server took its own open on it.
    held: HashMap<u64, Instant>,
}

impl Linger {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note the regular files `resp` hands out to a client (only those are ever kept: a
    /// listing of directories and links notes nothing, nor takes the lock). Called in the
    /// hold that made the reply, so a removal that runs after it sees them.
    pub(crate) fn shown(&self, resp: &Response) {
        match resp {
            Response::Attr(a) => self.note(std::iter::once(a)),
            Response::EntriesPlus(es) => self.note(es.iter().map(|(_, a)| a)),
            _ => {}
        }
    }

    /// Note the regular files among `attrs` as handed out now.
    fn note<'a>(&self, attrs: impl Iterator<Item = &'a protocol::Attr>) {
        let mut files = attrs
            .filter(|a| a.kind == protocol::FileKind::RegularFile)
            .peekable();
        if files.peek().is_none() {
            return;
        }
        let now = Instant::now();
        self.state().shown.extend(files.map(|a| (a.ino, now)));
    }

    /// In the hold of `req`, before it runs: keep the regular file whose name an unlink or a
    /// rename over it is about to take, if that name is its last link and a client was handed
    /// it within `LINGER` (or, `in_grace`, whatever it was handed).
    pub(crate) fn keep(&self, v: &mut Volume<Store>, req: &Request, in_grace: bool) {
        let (parent, name) = match req {
            Request::Unlink { parent, name } => (*parent, name),
            Request::Rename {
                newparent,
                newname,
                flags,
                ..
            } if !flags.exchange => (*newparent, newname),
            _ => return,
        };
        let Ok(a) = v.lookup(Ino::new(parent), name) else {
            return;
        };
        let ino = a.ino.get();
        let now = Instant::now();
        let mut s = self.state();
        let recent = in_grace
            || s.shown
                .get(&ino)
                .is_some_and(|t| now.duration_since(*t) < LINGER);
        if !recent || a.kind != FileKind::RegularFile || a.nlink != 1 {
            return;
        }
        if let Some(t) = s.held.get_mut(&ino) {
            // Taken again (a step of the same call, or the same file replaced anew).
            *t = now;
        } else if v.open_file(a.ino).is_ok() {
            s.held.insert(ino, now);
        }
    }

    /// The orphans the volume found at open are freed once the grace period is over, not
    /// now (see the module's note).
    pub(crate) fn reclaim_after_grace(&self) {
        self.orphans_pending.store(true, Ordering::Relaxed);
    }

    /// Forget inodes handed out before `LINGER`; unless `in_grace`, free the orphans waiting
    /// for the grace period's end and release the files kept longer than `LINGER` (the last
    /// release of an unlinked file frees it). How many were released.
    pub(crate) fn sweep(&self, v: &mut Volume<Store>, in_grace: bool) -> usize {
        let now = Instant::now();
        let mut s = self.state();
        s.shown.retain(|_, t| now.duration_since(*t) < LINGER);
        if in_grace {
            return 0;
        }
        if self.orphans_pending.swap(false, Ordering::Relaxed) {
            match v.reclaim_orphans() {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("{n} files unlinked while open and held by no session freed")
                }
                Err(e) => tracing::error!("files unlinked while open not freed: {e}"),
            }
        }
        let due: Vec<u64> = s
            .held
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= LINGER)
            .map(|(ino, _)| *ino)
            .collect();
        release(v, &mut s, due)
    }

    /// A create made again after a crash (`CreateAgain`) is about to take the slot of `ino`:
    /// a file kept in that slot is let go (in the history being made again, it was gone
    /// before the create took its slot), so the create finds it free, not `Exists`.
    pub(crate) fn yield_slot(&self, v: &mut Volume<Store>, ino: u64) {
        let slot = |i: u64| volume::layout::split_ino(i).0;
        let mut s = self.state();
        let kept: Vec<u64> = (s.held.keys())
            .filter(|k| slot(**k) == slot(ino) && **k != ino)
            .copied()
            .collect();
        release(v, &mut s, kept);
    }

    /// Release every kept file: at shutdown, and when space runs out (a kept file must not
    /// make a write fail that would have succeeded without it).
    pub(crate) fn release_all(&self, v: &mut Volume<Store>) -> usize {
        let mut s = self.state();
        let all: Vec<u64> = s.held.keys().copied().collect();
        release(v, &mut s, all)
    }
}

fn release(v: &mut Volume<Store>, s: &mut State, inos: Vec<u64>) -> usize {
    for ino in &inos {
        s.held.remove(ino);
        if let Err(e) = v.release_file(Ino::new(*ino)) {
            tracing::warn!(
                ino,
                "a replaced file kept for its readers not released: {e}"
            );
        }
    }
    inos.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ino: u64, kind: protocol::FileKind) -> protocol::Attr {
        let t = protocol::TimeSpec::default();
        protocol::Attr {
            ino,
            generation: 0,
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            kind,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
        }
    }

    /// Only regular files are noted as handed out: only they are ever kept.
    #[test]
    fn only_the_regular_files_an_answer_hands_out_are_noted() {
        use protocol::FileKind::{Directory, RegularFile, Symlink};
        let linger = Linger::default();
        linger.shown(&Response::Attr(attr(2, Directory)));
        let listing = [
            (3, Directory),
            (4, RegularFile),
            (5, Symlink),
            (6, RegularFile),
        ];
        let entries = listing.map(|(ino, kind)| {
            let e = protocol::DirEntry {
                ino,
                kind,
                name: format!("e{ino}").into_bytes(),
                offset: ino,
            };
            (e, attr(ino, kind))
        });
        linger.shown(&Response::EntriesPlus(entries.to_vec()));
        linger.shown(&Response::Attr(attr(7, RegularFile)));
        let mut noted: Vec<u64> = linger.state().shown.keys().copied().collect();
        noted.sort_unstable();
        assert_eq!(noted, vec![4, 6, 7]);
    }
}
