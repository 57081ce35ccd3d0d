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
//!   forgets it first, as the server recalls no layouts from the mount that makes a change.

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
    kept: Mutex<HashMap<u64, Given>>,
}

impl ReadLayouts {
    /// The layout kept for `ino` and when it was given, if it may serve a read of
    /// `[offset, end)`: within its size, every block of it mapped.
    fn serving(&self, ino: u64, offset: u64, end: u64) -> Option<Given> {
        let kept = lock(&self.kept);
        let (l, given) = kept.get(&ino)?;
        if end > l.size {
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

    /// Forget `ino`'s layout.
    pub(super) fn forget(&self, ino: u64) {
        lock(&self.kept).remove(&ino);
    }
}

impl DirectBackend {
    /// A read from the image at the extents of a read layout, kept or asked for now; `None`
    /// if the layout may no longer be used (`fence`): the server reads it.
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
        let (l, given) = match self.reads.serving(ino, offset, end) {
            Some(kept) => kept,
            None => {
                let given = (self.remote.incarnation(), self.remote.lock_epoch());
                let req = Request::LayoutGet {
                    ino,
                    offset,
                    len: u64::from(size).max(AHEAD),
                    write: false,
                    kill_priv: false,
                };
                let l: Layout = match self.server(req) {
                    // None for this mount (it was fenced): the server reads it.
                    Err(FsError::WouldBlock) => return Ok(None),
                    r => r?,
                };
                lock(&self.reads.kept).insert(ino, (l.clone(), given));
                (l, given)
            }
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
            self.store
                .read_at(buf, disk + (from - e.offset))
                .map_err(FsError::Io)?;
        }
        Ok(Some(out))
    }
}
