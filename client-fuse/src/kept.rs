//! The calls of a mount that changed the volume and that the server has not yet said are
//! durable (`Push::Durable`), with their frames (a write's data included): if the server
//! crashes, they are sent again, in order, to the restarted server, whose session log makes
//! each take effect once. A create answered with its inode number is kept as a `CreateAgain`
//! of that number, so that a replay gives it back. Calls refused by the server changed
//! nothing and are not kept. What a replay cannot bring back is noted as lost, by the inodes
//! it touched (`VOLUME` for names): every fsync or close of such a file says EIO until its
//! last close on the mount, and the next fsync says so of the names.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use protocol::codec::encode_frame;
use protocol::{ClientMsg, Meta, Request, Response};

/// Calls to make in place of a kept call that a replay cannot bring back, with their bulk
/// bytes: a direct mount's commit of writes whose reserved blocks died with the server is
/// made again as those writes, through the server (`direct`).
pub(crate) type Redo = Vec<(Request, std::sync::Arc<Vec<u8>>)>;

/// Stands for "the names of the volume": a name change lost is reported by the next fsync.
pub(crate) const VOLUME: u64 = u64::MAX;

/// What keeping a call costs beyond its frame's bytes: its entry, the frame's own header and
/// what it notes (measured at 430 to 460 bytes a call: `kept::memory`). Counted against the
/// budget with the frame, so that many small calls (creates) stay within it as writes do.
const BOOKKEEPING: usize = 512;

/// The budget a kept frame takes.
fn cost(frame: &[u8]) -> usize {
    frame.len() + BOOKKEEPING
}

struct Call {
    frame: Arc<Vec<u8>>,
    /// Inodes (or `VOLUME`) whose next fsync or close must report the call lost.
    affects: Vec<u64>,
    /// True once the reply came: only then may a durability notice cover it.
    answered: bool,
    /// The request of a create, to send again as a `CreateAgain` of the inode it made, and
    /// the caller it was made for (the server makes it that caller's again).
    create: Option<(Request, Option<protocol::Cred>)>,
    /// Sent again on its own, once the calls before it are answered and answered before the
    /// next goes (`runs`).
    alone: bool,
    /// Made under a lock this mount holds: lost, not sent again, if the lock is.
    bound: bool,
    /// Made instead, for the caller it was made for, if a replay cannot make it again
    /// (dropped once it is durable). Boxed: most calls have none, and each byte here is
    /// kept for every call (`BOOKKEEPING`).
    redo: Option<Box<(Redo, Option<protocol::Cred>)>>,
    /// Bytes of `redo`'s calls, counted against the budget with the frame while kept.
    redo_bytes: usize,
}

#[derive(Default)]
pub(crate) struct Kept {
    calls: BTreeMap<u64, Call>,
    /// Bytes of frames kept, and `BOOKKEEPING` a call.
    bytes: usize,
    /// What a restart lost for good (`lost`): files until their last close, the names once.
    lost: HashSet<u64>,
}

/// What a call changes, as fsync and close report it: the inode it acts on, and the
/// volume's names if it makes, removes or renames any.
fn affects(m: &Meta) -> Vec<u64> {
    let mut lost: Vec<u64> = m.inode.into_iter().collect();
    if !m.entries.is_empty() || lost.is_empty() {
        lost.push(VOLUME);
    }
    lost
}

impl Kept {
    /// Keep call `id` (`req`, sent as `frame`; `bound` if made under a lock; `redo` to make
    /// instead if a replay cannot make it again) if it changes the volume.
    pub(crate) fn keep(
        &mut self,
        id: u64,
        req: &Request,
        frame: &Arc<Vec<u8>>,
        (bound, redo): (bool, Option<Redo>),
    ) {
        let m = req.meta();
        if !m.mutates {
            return;
        }
        let call = Call {
            frame: frame.clone(),
            affects: affects(&m),
            answered: false,
            create: m.makes.then(|| (req.clone(), crate::caller::current())),
            // The server runs a call that may block (a truncation, an allocation) on its
            // blocking pool, out of order with the calls that follow it on the connection.
            alone: m.blocks,
            bound,
            redo_bytes: (redo.iter().flatten()).map(|(_, b)| b.len()).sum(),
            redo: redo.map(|r| Box::new((r, crate::caller::current()))),
        };
        self.bytes += cost(frame) + call.redo_bytes;
        if let Some(old) = self.calls.insert(id, call) {
            self.bytes -= cost(&old.frame) + old.redo_bytes;
        }
    }

    /// The reply to call `id` came. A refusal changed nothing: the call is dropped.
    pub(crate) fn answered(&mut self, id: u64, result: &Result<Response, i32>) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        match result {
            Err(_) => self.remove(id),
            Ok(r) => {
                c.answered = true;
                if let (Some((req, cred)), Response::Attr(a)) = (c.create.take(), r) {
                    let again = Request::CreateAgain {
                        ino: a.ino,
                        req: Box::new(req),
                    };
                    let msg = match cred {
                        Some(cred) => ClientMsg::CallAs {
                            id,
                            req: again,
                            cred,
                        },
                        None => ClientMsg::Call { id, req: again },
                    };
                    if let Ok(f) = encode_frame(&msg, &[]) {
                        self.bytes = self.bytes - cost(&c.frame) + cost(&f);
                        c.frame = Arc::new(f);
                    }
                }
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(c) = self.calls.remove(&id) {
            self.bytes -= cost(&c.frame) + c.redo_bytes;
        }
    }

    /// The server made every call below `below` that reached it durable; returns true if
    /// that freed anything.
    pub(crate) fn durable(&mut self, below: u64) -> bool {
        let done: Vec<u64> = self
            .calls
            .range(..below)
            .filter(|(_, c)| c.answered)
            .map(|(id, _)| *id)
            .collect();
        for id in &done {
            self.remove(*id);
        }
        !done.is_empty()
    }

    /// The lowest call id kept.
    pub(crate) fn first(&self) -> Option<u64> {
        self.calls.keys().next().copied()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every kept call answered before, id and frame, in id order, in runs to send together
    /// (see `Call::alone`): what to send a restarted server first. Calls never answered go out
    /// later with the other calls waiting for a reply: none of those answered can depend on
    /// them, and a create among them must not take an inode number a replayed one needs.
    pub(crate) fn runs(&self, most: usize) -> Vec<Vec<(u64, Arc<Vec<u8>>)>> {
        let mut runs: Vec<Vec<(u64, Arc<Vec<u8>>)>> = Vec::new();
        let mut run = Vec::new();
        for (id, c) in self.calls.iter().filter(|(_, c)| c.answered) {
            if (c.alone || run.len() == most) && !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
            run.push((*id, c.frame.clone()));
            if c.alone {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        runs
    }

    /// Call `id`, answered before, could not be made again as it was: the calls to make in
    /// its place (and for whom), if it has them; else what it changed is lost (`failed`).
    pub(crate) fn failed_or_redo(&mut self, id: u64) -> Option<(Redo, Option<protocol::Cred>)> {
        let answered = self.calls.get(&id).is_some_and(|c| c.answered);
        let redo = (self.calls.get_mut(&id)).and_then(|c| c.redo.take());
        match (answered, redo) {
            (true, Some(r)) => {
                self.remove(id);
                Some(*r)
            }
            _ => {
                self.failed(id);
                None
            }
        }
    }

    /// What `ino`'s calls changed is lost (a redo failed too).
    pub(crate) fn lose(&mut self, ino: u64) {
        self.lost.insert(ino);
    }

    /// Call `id`, answered before, could not be made again: what it changed is lost.
    pub(crate) fn failed(&mut self, id: u64) {
        if let Some(c) = self.calls.get(&id) {
            if c.answered {
                self.lost.extend(c.affects.iter().copied());
            }
        }
        self.remove(id);
    }

    /// The locks this mount held are lost: the calls made under them are lost too (another
    /// mount may hold those locks now), never sent again.
    pub(crate) fn fail_bound(&mut self) {
        let bound: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.bound)
            .map(|(id, _)| *id)
            .collect();
        for id in bound {
            self.failed(id);
        }
    }

    /// The server lost the session with its memory of these calls: the answered ones are
    /// `lost` (the server crashed), or durable (made so since). Calls still waiting for their
    /// reply stay, to be sent again.
    pub(crate) fn forget_answered(&mut self, lost: bool) {
        let answered: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.answered)
            .map(|(id, _)| *id)
            .collect();
        for id in answered {
            if lost {
                self.failed(id);
            } else {
                self.remove(id);
            }
        }
    }

    /// True if a restart lost changes to `ino` (until `forget_lost`), or with `names`, to the
    /// volume's names (once).
    pub(crate) fn lost(&mut self, ino: u64, names: bool) -> bool {
        let mut hit = self.lost.contains(&ino);
        if names {
            hit |= self.lost.remove(&VOLUME);
        }
        hit
    }

    /// The last open of `ino` on the mount was closed, having reported its loss.
    pub(crate) fn forget_lost(&mut self, ino: u64) {
        self.lost.remove(&ino);
    }
}

#[cfg(test)]
mod memory;

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Attr, FileKind, TimeSpec};

    fn frame(n: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0; n])
    }

    fn attr(ino: u64) -> Attr {
        Attr {
            ino,
            size: 0,
            blocks: 0,
            atime: TimeSpec::default(),
            mtime: TimeSpec::default(),
            ctime: TimeSpec::default(),
            kind: FileKind::RegularFile,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            generation: 0,
        }
    }

    #[test]
    fn only_answered_calls_below_the_notice_are_forgotten() {
        let mut k = Kept::default();
        let w = Request::Write {
            ino: 5,
            offset: 0,
            kill_priv: false,
        };
        k.keep(1, &w, &frame(100), (false, None));
        k.keep(2, &w, &frame(50), (false, None));
        k.keep(3, &Request::Getattr { ino: 5 }, &frame(10), (false, None));
        assert_eq!((k.len(), k.bytes()), (2, 150 + 2 * BOOKKEEPING));
        k.answered(2, &Ok(Response::Written(50)));
        assert!(k.durable(3));
        // 1 has no reply yet: it may not have reached the server.
        assert_eq!((k.first(), k.bytes()), (Some(1), 100 + BOOKKEEPING));
        k.answered(1, &Err(libc::ENOSPC));
        assert!(k.is_empty() && k.bytes() == 0);
    }

    #[test]
    fn a_commit_a_replay_cannot_make_again_is_made_as_its_writes_not_lost() {
        let mut k = Kept::default();
        let commit = Request::LayoutCommit {
            ino: 5,
            written: vec![(0, 4)],
            size: 4,
            mtime: None,
            kill_priv: false,
        };
        let w = Request::Write {
            ino: 5,
            offset: 0,
            kill_priv: false,
        };
        let redo = vec![(w.clone(), std::sync::Arc::new(b"data".to_vec()))];
        k.keep(1, &commit, &frame(40), (false, Some(redo.clone())));
        // The writes' data counts against the budget while kept.
        assert_eq!(k.bytes(), 40 + BOOKKEEPING + 4);
        k.keep(2, &commit, &frame(40), (false, Some(redo.clone())));
        k.answered(1, &Ok(Response::Attr(attr(5))));
        k.answered(2, &Ok(Response::Attr(attr(5))));
        let (calls, _) = k.failed_or_redo(1).expect("its writes");
        assert_eq!(calls, redo);
        assert!(!k.lost(5, false), "reported lost though made again");
        // Durable: nothing left to make again.
        assert!(k.durable(3));
        assert!(k.failed_or_redo(2).is_none() && k.is_empty() && k.bytes() == 0);
        // A call with none is lost.
        k.keep(3, &w, &frame(40), (false, None));
        k.answered(3, &Ok(Response::Written(4)));
        assert!(k.failed_or_redo(3).is_none());
        assert!(k.lost(5, false));
    }

    #[test]
    fn truncations_are_sent_again_on_their_own() {
        let mut k = Kept::default();
        let w = |ino| Request::Write {
            ino,
            offset: 0,
            kill_priv: false,
        };
        let cut = Request::Setattr {
            ino: 1,
            set: protocol::SetAttr {
                size: Some(0),
                ..Default::default()
            },
        };
        for (id, req) in [
            (1, w(1)),
            (2, w(2)),
            (3, cut),
            (4, w(1)),
            (5, w(2)),
            (6, w(3)),
        ] {
            k.keep(id, &req, &frame(10), (false, None));
            k.answered(id, &Ok(Response::Empty));
        }
        // Not answered: sent again with the calls still waiting for a reply.
        k.keep(7, &w(4), &frame(10), (false, None));
        let ids: Vec<Vec<u64>> = k
            .runs(2)
            .iter()
            .map(|r| r.iter().map(|(id, _)| *id).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 2], vec![3], vec![4, 5], vec![6]]);
    }

    #[test]
    fn a_create_is_kept_as_a_create_at_its_inode_and_failures_are_lost_once() {
        let mut k = Kept::default();
        let c = Request::Create {
            parent: 1,
            name: b"x".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        k.keep(7, &c, &frame(40), (false, None));
        k.answered(7, &Ok(Response::Attr(attr(42 << 32 | 9))));
        let (id, f) = k.runs(8).pop().unwrap().pop().unwrap();
        let (msg, _) = protocol::codec::decode_body::<ClientMsg>(&f[4..]).unwrap();
        assert_eq!(
            msg,
            ClientMsg::Call {
                id,
                req: Request::CreateAgain {
                    ino: 42 << 32 | 9,
                    req: Box::new(c)
                }
            }
        );
        k.failed(7);
        assert!(k.is_empty());
        assert!(!k.lost(3, false));
        assert!(k.lost(3, true));
        assert!(!k.lost(3, true));
    }
}
