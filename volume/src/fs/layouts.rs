//! Layouts (direct mode): the store's extents backing a range of a file, for a holder that
//! reads and writes the file's data on the store itself while every piece of metadata stays
//! with the engine. Invariants:
//! - A read-write layout over a hole reserves blocks (`Meta::reserve_block`): they are in no
//!   bitmap and no block map, so everyone but their holder reads the hole, and a crash leaves
//!   them free. A reserved block the holder will write only in part is zeroed when it is
//!   handed out, so it never shows what it held before.
//! - `layout_commit` maps the reserved blocks the holder says it wrote (their data already on
//!   the store: ordered mode) and grows the size, in a transaction like any change.
//! - Blocks freed from a file while a layout on it is out are held (`Meta::hold_for`), not
//!   handed out again, until every holder has returned its layouts on it: a layout never
//!   reads or writes a block another file has been given. Reserved blocks whose range is
//!   cut away are held the same way.
//! - Before blocks are freed, the placement recalls the layouts other holders have on the
//!   file (`layout_holders`); a holder that does not return them in time has them taken
//!   (`layout_revoke`): its next commit on the file is refused (`Stale`), once, and until
//!   it returns them or its session ends, what they covered stays held (it may be stalled
//!   mid-write: a local store cannot fence it).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::attr::{Attr, Ino, TimeSpec};
use crate::bmap;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::layout::{split_ino, BLOCK_SIZE};
use crate::store::BlockStore;

use super::{Volume, MAX_FILE_SIZE};

/// Most blocks one layout covers (64 MiB): a longer range is answered short.
pub const MAX_LAYOUT_BLOCKS: u64 = 16 * 1024;

/// The extents backing a range of a file, as handed to a holder (`Volume::layout_get`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The file's size when the layout was given.
    pub size: u64,
    /// The range's extents in file order, without gaps; for a read, only up to the size.
    pub extents: Vec<Extent>,
}

/// A run of blocks of a file that are alike: contiguous on the store, or all a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Where it starts in the file, in bytes (a block boundary).
    pub offset: u64,
    /// Its length in bytes (whole blocks).
    pub len: u64,
    /// Where its bytes are on the store; `None` for a hole, which reads as zeros.
    pub disk: Option<u64>,
    /// Blocks reserved for the holder's writes and not yet committed: the file shows a hole
    /// here to everyone else until `layout_commit` maps them.
    pub reserved: bool,
}

/// Who holds layouts on which inode, and the blocks reserved for them.
#[derive(Default)]
pub(super) struct Layouts {
    by_inode: HashMap<u32, Held>,
    /// (holder, inode index) whose layouts were taken from it: its next commit is refused.
    revoked: HashSet<(u64, u32)>,
}

/// One inode's layouts.
#[derive(Default)]
struct Held {
    holders: HashSet<u64>,
    /// Holders whose layouts were taken (`layout_revoke`) and that have not said they are
    /// done with them (`layout_return`, or their session's end): they may still be reading
    /// or writing the blocks those layouts covered, so blocks freed from the file stay held
    /// and their reservations too, as while they held them. Never recalled again.
    taken: HashSet<u64>,
    /// Logical block → (reserved block, its holder).
    reserved: BTreeMap<u64, (u64, u64)>,
    /// The file size for which the tail of its last block was zeroed for a write past it.
    tail_zeroed: Option<u64>,
}

impl Held {
    /// Forget the blocks reserved for `holder`: the blocks they were, in file order.
    fn reservations_dropped(&mut self, holder: u64) -> Vec<u64> {
        let mut dropped = Vec::new();
        self.reserved.retain(|_, &mut (p, who)| {
            let theirs = who == holder;
            if theirs {
                dropped.push(p);
            }
            !theirs
        });
        dropped
    }
}

impl<S: BlockStore> Volume<S> {
    /// A layout of `len` bytes at `offset` for `holder` (any number its caller picks, the
    /// same for its `layout_commit` and `layout_return`). For a read, up to the file's size;
    /// for a write (`write`), the whole range, holes reserved for it. At most
    /// `MAX_LAYOUT_BLOCKS` blocks: the holder asks again for the rest. `WouldBlock` if
    /// another holder has uncommitted blocks reserved in a range asked for writing.
    pub fn layout_get(
        &mut self,
        holder: u64,
        ino: Ino,
        offset: u64,
        len: u64,
        write: bool,
    ) -> FsResult<Layout> {
        let (i, d) = self.get(ino.get())?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        let bs = BLOCK_SIZE as u64;
        let end = offset.checked_add(len).ok_or(FsError::FileTooBig)?;
        if write && end > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let first = offset / bs;
        let upto = if write { end } else { end.min(d.size) };
        let last = upto.div_ceil(bs).min(first + MAX_LAYOUT_BLOCKS);
        if write {
            let theirs = self.layouts.by_inode.get(&i).is_some_and(|h| {
                h.reserved
                    .range(first..last)
                    .any(|(_, &(_, who))| who != holder)
            });
            if theirs {
                return Err(FsError::WouldBlock);
            }
            // Blocks already reserved for this holder in the range count once: as held.
            let mine = (self.layouts.by_inode.get(&i))
                .map_or(0, |h| h.reserved.range(first..last).count() as u64);
            let cost = bmap::alloc_cost_range(&mut self.m, &d, first, last)?;
            bmap::reserve(&self.m, d.tree, cost.saturating_sub(mine))?;
            // The tail of the block holding the end of the file, zeroed once for that end:
            // again, it would wipe what writes past it, not yet committed, put there.
            let held = self.layouts.by_inode.entry(i).or_default();
            if end > d.size && held.tail_zeroed != Some(d.size) {
                held.tail_zeroed = Some(d.size);
                self.zero_past_eof(&d, d.size, u64::MAX)?;
            }
        }
        let held = self.layouts.by_inode.entry(i).or_default();
        held.holders.insert(holder);
        let mut extents: Vec<Extent> = Vec::new();
        let mut goal = None;
        for lblk in first..last {
            let (disk, reserved) = match bmap::lookup(&mut self.m, &d, lblk)? {
                Some(p) => (Some(p), false),
                None => match self.reserved_for(i, lblk, holder) {
                    Some(p) => (Some(p), true),
                    None if write => {
                        let p = self.reserve((i, d.tree), lblk, holder, goal)?;
                        if lblk * bs < offset || (lblk + 1) * bs > end {
                            // Written only in part: the rest must read as zeros.
                            self.m.store.write_at(&[0u8; BLOCK_SIZE], p * bs)?;
                        }
                        (Some(p), true)
                    }
                    None => (None, false),
                },
            };
            goal = disk.map(|p| p + 1).or(goal);
            push_extent(&mut extents, lblk * bs, disk.map(|p| p * bs), reserved);
        }
        Ok(Layout {
            size: d.size,
            extents,
        })
    }

    /// The block reserved at `lblk` of inode `i` for `holder`, if any.
    fn reserved_for(&self, i: u32, lblk: u64, holder: u64) -> Option<u64> {
        let held = self.layouts.by_inode.get(&i)?;
        match held.reserved.get(&lblk) {
            Some(&(p, who)) if who == holder => Some(p),
            _ => None,
        }
    }

    fn reserve(
        &mut self,
        (i, tree): (u32, u32),
        lblk: u64,
        holder: u64,
        goal: Option<u64>,
    ) -> FsResult<u64> {
        let p = self.m.reserve_block(goal, tree)?;
        let held = self.layouts.by_inode.entry(i).or_default();
        held.reserved.insert(lblk, (p, holder));
        Ok(p)
    }

    /// The holder's writes are on the store: map the blocks reserved for it in the `written`
    /// ranges (offset, length), grow the size to `size` if it is larger, and set the mtime
    /// (`mtime`, or now). Reserved blocks outside the ranges stay reserved; a written block
    /// that is not reserved for the holder (truncated or punched away since, or lost with a
    /// restart) is left as the file has it. Writes named by a holder that holds no layout
    /// on the file (taken, or gone with its session) are refused (`Stale`). Longer than a
    /// transaction holds, it goes in steps, each mapping a part (called again, it goes on).
    pub fn layout_commit(
        &mut self,
        holder: u64,
        ino: Ino,
        written: &[(u64, u64)],
        size: u64,
        mtime: Option<TimeSpec>,
    ) -> FsResult<Attr> {
        let (i, mut d) = self.get(ino.get())?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        if size > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let holds = (self.layouts.by_inode.get(&i)).is_some_and(|h| h.holders.contains(&holder));
        if self.layouts.revoked.remove(&(holder, i)) || (!holds && !written.is_empty()) {
            // Its layouts were taken (revoked, or gone with its session): what it wrote
            // through them never appears, and it is told so.
            return Err(FsError::Stale);
        }
        let bs = BLOCK_SIZE as u64;
        let mut mine = Vec::new();
        if let Some(held) = self.layouts.by_inode.get(&i) {
            for &(off, len) in written {
                let to = off.saturating_add(len).div_ceil(bs);
                let blocks = held.reserved.range(off / bs..to);
                mine.extend(
                    blocks
                        .filter(|(_, &(_, who))| who == holder)
                        .map(|(&l, &(p, _))| (l, p)),
                );
            }
        }
        for (lblk, p) in mine {
            if self.commit_urgent() {
                self.put(i, &d)?;
                self.step()?;
            }
            let mapped = bmap::map_reserved(&mut self.m, &mut d, lblk, p)?;
            if !mapped.fresh {
                // Mapped meanwhile by a write through the engine: that one stays.
                self.m.unreserve(p);
            }
            if let Some(held) = self.layouts.by_inode.get_mut(&i) {
                held.reserved.remove(&lblk);
            }
        }
        let now = TimeSpec::now();
        d.size = d.size.max(size.min(self.written_end(&d, written)?));
        d.mtime = mtime.unwrap_or(now);
        d.ctime = now;
        self.put(i, &d)?;
        self.after_op()?;
        Ok(d.attr(i))
    }

    /// The end of what the `written` ranges put in the file: each range up to its last
    /// mapped block. A range cut away by a truncate or a punch since grows nothing.
    fn written_end(&mut self, d: &DiskInode, written: &[(u64, u64)]) -> FsResult<u64> {
        let bs = BLOCK_SIZE as u64;
        let mut end = 0;
        for &(off, len) in written {
            let to = off.saturating_add(len).min(MAX_FILE_SIZE);
            // Forward, a hole's whole unmapped subtree at a time.
            let mut lblk = off / bs;
            while lblk < to.div_ceil(bs) {
                let (phys, span) = bmap::lookup_span(&mut self.m, d, lblk)?;
                if phys.is_some() {
                    end = end.max(to.min((lblk + 1) * bs));
                }
                lblk += span;
            }
        }
        Ok(end)
    }

    /// The holder is done with its layouts on `ino`: the blocks still reserved for it go
    /// back to the free ones, and once no one holds a layout on the file, the blocks freed
    /// from it meanwhile may be handed out again.
    pub fn layout_return(&mut self, holder: u64, ino: Ino) {
        let i = split_ino(ino.get()).0;
        self.layouts.revoked.remove(&(holder, i));
        self.return_index(holder, i);
    }

    /// True while any layout is out.
    pub fn layouts_out(&self) -> bool {
        !self.layouts.by_inode.is_empty()
    }

    /// Who holds layouts on `ino`.
    pub fn layout_holders(&self, ino: Ino) -> Vec<u64> {
        let i = split_ino(ino.get()).0;
        let held = self.layouts.by_inode.get(&i);
        held.map_or_else(Vec::new, |h| h.holders.iter().copied().collect())
    }

    /// Take the holder's layouts on `ino` (it did not give them back when recalled): it is
    /// no longer among the file's holders, and its next commit on the file is refused
    /// (`Stale`): what it wrote through them never appears. Until it returns them (or its
    /// session ends), the blocks they covered go to no other file: it may still be writing.
    pub fn layout_revoke(&mut self, holder: u64, ino: Ino) {
        let i = split_ino(ino.get()).0;
        if self
            .layouts
            .by_inode
            .get(&i)
            .is_some_and(|h| h.holders.contains(&holder))
        {
            self.layouts.revoked.insert((holder, i));
            self.take_index(holder, i);
        }
    }

    /// The holder's layouts on inode `i` are taken: it is recalled no more and its
    /// reservations are dropped, but it may still be writing them (a local store fences no
    /// one), so they, and the blocks freed from the file, stay held until it says it is done.
    fn take_index(&mut self, holder: u64, i: u32) {
        let Some(held) = self.layouts.by_inode.get_mut(&i) else {
            return;
        };
        held.holders.remove(&holder);
        held.taken.insert(holder);
        for p in held.reservations_dropped(holder) {
            self.m.unreserve_held(i, p);
        }
    }

    fn return_index(&mut self, holder: u64, i: u32) {
        let Some(held) = self.layouts.by_inode.get_mut(&i) else {
            return;
        };
        held.holders.remove(&holder);
        held.taken.remove(&holder);
        let dropped = held.reservations_dropped(holder);
        let unheld = held.holders.is_empty() && held.taken.is_empty();
        for p in dropped {
            self.m.unreserve(p);
        }
        if unheld {
            self.layouts.by_inode.remove(&i);
            self.m.release_held(i);
        }
    }

    /// True while `holder` holds any layout.
    pub fn holds_layouts(&self, holder: u64) -> bool {
        (self.layouts.by_inode.values()).any(|h| h.holders.contains(&holder))
    }

    /// `layout_revoke` of every layout the holder has (it was cut off the store).
    pub fn layout_revoke_all(&mut self, holder: u64) {
        let mine: Vec<u32> = (self.layouts.by_inode.iter())
            .filter(|(_, h)| h.holders.contains(&holder))
            .map(|(&i, _)| i)
            .collect();
        for i in mine {
            self.layouts.revoked.insert((holder, i));
            self.return_index(holder, i);
        }
    }

    /// `layout_return` of every layout the holder has (its session ended).
    pub fn layout_return_all(&mut self, holder: u64) {
        self.layouts.revoked.retain(|&(h, _)| h != holder);
        let mine: Vec<u32> = (self.layouts.by_inode.iter())
            .filter(|(_, h)| h.holders.contains(&holder) || h.taken.contains(&holder))
            .map(|(&i, _)| i)
            .collect();
        for i in mine {
            self.return_index(holder, i);
        }
    }

    /// Blocks reserved for layouts and not yet committed, all inodes together.
    pub fn reserved_blocks(&self) -> usize {
        self.layouts
            .by_inode
            .values()
            .map(|h| h.reserved.len())
            .sum()
    }

    /// Run `f`, which frees blocks of inode `i`: while layouts on it are out, the blocks it
    /// frees are held for them. Reservations in `[from, to)` (logical blocks) go back first:
    /// that part of the file is being cut away.
    pub(super) fn cutting<R>(
        &mut self,
        i: u32,
        from: u64,
        to: u64,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let Some(held) = self.layouts.by_inode.get_mut(&i) else {
            return f(self);
        };
        let cut: Vec<u64> = match from < to {
            true => held.reserved.range(from..to).map(|(&l, _)| l).collect(),
            false => Vec::new(),
        };
        for lblk in cut {
            if let Some((p, _)) = held.reserved.remove(&lblk) {
                // Its holder may still be writing it: held, not handed out.
                self.m.unreserve_held(i, p);
            }
        }
        let before = self.m.hold_for.replace(i);
        let r = f(self);
        self.m.hold_for = before;
        r
    }
}

/// Add one block (`disk` its byte offset on the store, `None` for a hole) at file offset
/// `at` to the extents, joining the last one if it continues it.
fn push_extent(extents: &mut Vec<Extent>, at: u64, disk: Option<u64>, reserved: bool) {
    let bs = BLOCK_SIZE as u64;
    if let Some(e) = extents.last_mut() {
        let follows = match (e.disk, disk) {
            (Some(a), Some(b)) => a + e.len == b,
            (None, None) => true,
            _ => false,
        };
        if follows && e.reserved == reserved && e.offset + e.len == at {
            e.len += bs;
            return;
        }
    }
    extents.push(Extent {
        offset: at,
        len: bs,
        disk,
        reserved,
    });
}
