//! A direct mount's reads: from the image, at the extents of a read layout, which is asked
//! for ahead of the read (`AHEAD`) and kept until the server recalls it, so a sequential
//! read makes one call to the server for many of the kernel's reads.
//!
//! A kept layout is used only where it cannot have gone stale:
//! - its blocks are the file's until the server frees or moves them, and it recalls the
//!   layout first (the answer forgets it, `DirectBackend::give_back`); a layout given by an
//!   earlier session or server is not used (`fence`);
//! - a hole, or a block reserved for this mount's writes, is never read from a kept layout:
//!   another mount may have written there since, and the server gives a layout anew;
//! - nor anything past the size it was given with: the file may have grown since;
//! - any other call this mount makes on the file (a truncate, a punch, a lock, a close)
//!   forgets it, before it is sent and again once it is answered, as the server recalls no
//!   layouts from the mount that makes a change; and a layout asked for while it was under
//!   way (the server may have given it before the change ran) serves that one read, and is
//!   not kept;
//! - while another mount's call cuts the file's blocks away, the server gives no layout of
//!   it: the read goes through the server (`WouldBlock`);
//! - a write this mount sends through the server forgets it: on a store whose writes land
//!   late (RADOS) the server's may not have landed when the blocks are read; a layout is
//!   handed out only once they have (`ops`);
//! - once the connection it was given on has dropped, it is not used: a server restarted
//!   without a session log knows nothing of it (the mount learns that only once it is
//!   back), and may have given its blocks to another file.

use std::collections::HashMap;
use std::sync::Mutex;

use protocol::{Layout, Request};

use crate::backend::Backend;
use volume::{FsError, FsResult};

use super::{lock, DirectBackend};

/// How far past a read its layout is asked for.
const AHEAD: u64 = 16 << 20;

/// A read layout and when it was given (the server's incarnation and the sessions lost, as
/// `fence` checks them).
type Given = (Layout, (u64, u64));

/// The read layouts kept, by file: the last one given for each.
#[derive(Default)]
pub(super) struct ReadLayouts {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The layout kept for each file, and the connection it was asked for on
    /// (`RemoteBackend::connection`).
    kept: HashMap<u64, (Given, u64)>,
    /// Files whose layouts are being asked for: how many asks, and the tick of the file's
    /// last `forget` (0: none since the first of them began).
    asking: HashMap<u64, (u32, u64)>,
    /// Counts asks begun and forgets: what happened before what.
    tick: u64,
}

impl ReadLayouts {
    /// The layout kept for `ino` and when it was given, if it may serve a read of
    /// `[offset, end)`: asked for on the connection `now` up (`RemoteBackend::connection`),
    /// within its size, every block of it mapped.
    fn serving(&self, ino: u64, (offset, end): (u64, u64), now: Option<u64>) -> Option<Given> {
        let s = lock(&self.state);
        let ((l, given), on) = s.kept.get(&ino)?;
        if now != Some(*on) || end > l.size {
            return None;
        }
        let mut at = offset;
        for e in &l.extents {
            if e.offset + e.len <= at || at >= end {
                continue;
            }
            if e.offset > at || e.disk.is_none() || e.reserved {
                return None;
            }
            at = e.offset + e.len;
        }
        (at >= end).then(|| (l.clone(), *given))
    }

    /// Forget `ino`'s layout, and any being asked for now.
    pub(super) fn forget(&self, ino: u64) {
        let mut s = lock(&self.state);
        s.kept.remove(&ino);
        s.tick += 1;
        let tick = s.tick;
        if let Some((_, forgotten)) = s.asking.get_mut(&ino) {
            *forgotten = tick;
        }
    }

    /// A layout of `ino` is about to be asked for: the tick to give `asked`.
    fn asking(&self, ino: u64) -> u64 {
        let mut s = lock(&self.state);
        s.tick += 1;
        s.asking.entry(ino).or_insert((0, 0)).0 += 1;
        s.tick
    }

    /// The layout asked for at `began` (`asking`) was answered (`got`, if given, with the
    /// connection it was asked for on): kept unless `ino`'s layouts were forgotten meanwhile.
    fn asked(&self, ino: u64, began: u64, got: Option<(&Given, u64)>) {
        let mut s = lock(&self.state);
        let Some((n, forgotten)) = s.asking.get_mut(&ino) else {
            return;
        };
        let fresh = *forgotten < began;
        *n -= 1;
        if *n == 0 {
            s.asking.remove(&ino);
        }
        if let (true, Some((g, on))) = (fresh, got) {
            s.kept.insert(ino, (g.clone(), on));
        }
    }
}

impl DirectBackend {
    /// A read from the image at the extents of a read layout, kept or asked for now; `None`
    /// if the layout may no longer be used (`fence`) or the image's read failed: the server
    /// reads it.
    pub(super) fn read_direct(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
    ) -> FsResult<Option<Vec<u8>>> {
        // Held from before the layout is asked for until the read is done: a recall's
        // answer, which forgets it, waits.
        let _using = self.using(ino);
        let end = offset + u64::from(size);
        let now = self.remote.connection();
        let (l, given) = match self.reads.serving(ino, (offset, end), now) {
            Some(kept) => kept,
            None => match self.read_layout(ino, offset, size)? {
                Some(got) => got,
                None => return Ok(None),
            },
        };
        if self.fenced(ino, given) {
            self.reads.forget(ino);
            return Ok(None);
        }
        let n = l.size.saturating_sub(offset).min(u64::from(size)) as usize;
        let mut out = vec![0u8; n];
        for e in &l.extents {
            let Some(disk) = e.disk else { continue };
            let from = e.offset.max(offset);
            let to = (e.offset + e.len).min(offset + n as u64);
            if from >= to {
                continue;
            }
            let buf = &mut out[(from - offset) as usize..(to - offset) as usize];
            if let Err(e) = self.store.read_at(buf, disk + (from - e.offset)) {
                // The volume refused this mount (a fence: the OSDs blocklist it) or failed
                // it: the server reads what the file has, and says if it cannot.
                tracing::warn!("a direct read of file {ino} failed ({e}): read through the server");
                self.reads.forget(ino);
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// A read layout from `offset` asked for now (kept, unless this mount changed the file
    /// meanwhile: `ReadLayouts::asked`); `None` if the server gives none (a call cuts the
    /// file, or this mount was fenced): the read goes through the server.
    fn read_layout(&self, ino: u64, offset: u64, size: u32) -> FsResult<Option<Given>> {
        let given = (self.remote.incarnation(), self.remote.lock_epoch());
        let req = Request::LayoutGet {
            ino,
            offset,
            len: u64::from(size).max(AHEAD),
            write: false,
            kill_priv: false,
        };
        let began = self.reads.asking(ino);
        // Before it is sent: a layout answered on a later connection than this one is
        // not kept (the server that gave it may be gone by now).
        let on = self.remote.connection();
        let r = self.server::<Layout>(req).map(|l| (l, given));
        let got = r.as_ref().ok().zip(on);
        self.reads.asked(ino, began, got);
        match r {
            Ok(got) => Ok(Some(got)),
            Err(FsError::WouldBlock) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
