//! Layouts (direct mode): the store's extents backing a range of a file, for a holder that
//! reads and writes the file's data on the store itself while every piece of metadata stays
//! with the engine. Invariants:
//! - A read-write layout over a hole reserves blocks (`Meta::reserve_run`): they are in no
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

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

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
                // Landed before the holder writes there: a store whose writes land late
                // (RADOS) would put them over its data.
                if let Some((at, n)) = self.zero_past_eof(&d, d.size, u64::MAX)? {
                    self.m.store.applied(at, n)?;
                }
            }
        }
        self.layouts
            .by_inode
            .entry(i)
            .or_default()
            .holders
            .insert(holder);
        let want = Want {
            holder,
            offset,
            end,
            write,
        };
        let mut extents: Vec<Extent> = Vec::new();
        let mut goal = None;
        let mut lblk = first;
        while lblk < last {
            let (phys, n) = bmap::lookup_run(&mut self.m, &d, lblk, last - lblk)?;
            match phys {
                Some(p) => {
                    push_extent(&mut extents, lblk, n, Some(p), false);
                    goal = Some(p + n);
                }
                None => {
                    let hole = (lblk, lblk + n);
                    goal = self.layout_hole((i, d.tree), &want, hole, &mut extents, goal)?;
                }
            }
            lblk += n;
        }
        Ok(Layout {
            size: d.size,
            extents,
        })
    }

    /// The extents of a hole `[from, to)` (logical blocks) of inode `i` (of quota tree
    /// `tree`) in the layout `want` asks for: the blocks reserved for its holder there, and
    /// for a write the rest, reserved now (near `goal`). The goal for what follows.
    fn layout_hole(
        &mut self,
        (i, tree): (u32, u32),
        want: &Want,
        (from, to): (u64, u64),
        extents: &mut Vec<Extent>,
        mut goal: Option<u64>,
    ) -> FsResult<Option<u64>> {
        let held = self.layouts.by_inode.entry(i).or_default();
        let mut lblk = from;
        while lblk < to {
            let (mine, n) = held.run_from(want.holder, lblk, to);
            let (disk, reserved) = match mine {
                Some(p) => (Some(p), true),
                None if want.write => {
                    let (p, n) = self.m.reserve_run(goal, n, tree)?;
                    let holder = want.holder;
                    held.reserved
                        .extend((0..n).map(|k| (lblk + k, (p + k, holder))));
                    want.zero_unwritten(&*self.m.store, (lblk, n), p)?;
                    push_extent(extents, lblk, n, Some(p), true);
                    goal = Some(p + n);
                    lblk += n;
                    continue;
                }
                None => (None, false),
            };
            push_extent(extents, lblk, n, disk, reserved);
            goal = disk.map(|p| p + n).or(goal);
            lblk += n;
        }
        Ok(goal)
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
        for (lblk, p, n) in self.reserved_runs(i, holder, written) {
            let mut done = 0;
            while done < n {
                if self.commit_urgent() {
                    self.put(i, &d)?;
                    self.step()?;
                }
                let (l, leaf) = (lblk + done, p + done);
                let (k, unused) = bmap::map_reserved_run(&mut self.m, &mut d, l, leaf, n - done)?;
                // Those mapped meanwhile by a write through the engine: that one stays.
                for b in unused {
                    self.m.unreserve(b);
                }
                if let Some(held) = self.layouts.by_inode.get_mut(&i) {
                    (l..l + k).for_each(|x| _ = held.reserved.remove(&x));
                }
                done += k;
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

    /// The blocks reserved for `holder` on inode `i` in the `written` ranges (bytes), in
    /// runs: (first logical block, its reserved block, how many), each run consecutive in
    /// both.
    fn reserved_runs(&self, i: u32, holder: u64, written: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
        let bs = BLOCK_SIZE as u64;
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        let Some(held) = self.layouts.by_inode.get(&i) else {
            return runs;
        };
        for &(off, len) in written {
            let to = off.saturating_add(len).div_ceil(bs);
            let blocks = held.reserved.range(off / bs..to);
            for (&l, &(p, _)) in blocks.filter(|(_, &(_, who))| who == holder) {
                match runs.last_mut() {
                    Some((l0, p0, n)) if *l0 + *n == l && *p0 + *n == p => *n += 1,
                    _ => runs.push((l, p, 1)),
                }
            }
        }
        runs
    }

    /// The end of what the `written` ranges put in the file: each range up to its last
    /// mapped block. A range cut away by a truncate or a punch since grows nothing.
    fn written_end(&mut self, d: &DiskInode, written: &[(u64, u64)]) -> FsResult<u64> {
        let bs = BLOCK_SIZE as u64;
        let mut end = 0;
        for &(off, len) in written {
            let to = off.saturating_add(len).min(MAX_FILE_SIZE);
            // Forward, a run of mapped blocks or a hole at a time.
            let (mut lblk, last) = (off / bs, to.div_ceil(bs));
            while lblk < last {
                let (phys, n) = bmap::lookup_run(&mut self.m, d, lblk, last - lblk)?;
                if phys.is_some() {
                    end = end.max(to.min((lblk + n) * bs));
                }
                lblk += n;
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

    /// True while `holder` holds any layout, or has layouts taken that it has not given back
    /// (it may still be using their blocks).
    pub fn holds_layouts(&self, holder: u64) -> bool {
        (self.layouts.by_inode.values())
            .any(|h| h.holders.contains(&holder) || h.taken.contains(&holder))
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

/// Add `n` blocks from logical block `lblk` (`disk`: the first one's block on the store,
/// `None` for a hole) to the extents, joining the last one if they continue it.
fn push_extent(extents: &mut Vec<Extent>, lblk: u64, n: u64, disk: Option<u64>, reserved: bool) {
    let bs = BLOCK_SIZE as u64;
    let (at, len, disk) = (lblk * bs, n * bs, disk.map(|p| p * bs));
    if let Some(e) = extents.last_mut() {
        let follows = match (e.disk, disk) {
            (Some(a), Some(b)) => a + e.len == b,
            (None, None) => true,
            _ => false,
        };
        if follows && e.reserved == reserved && e.offset + e.len == at {
            e.len += len;
            return;
        }
    }
    extents.push(Extent {
        offset: at,
        len,
        disk,
        reserved,
    });
}

/// What a layout is asked for: whose, the range in bytes, and whether to write.
struct Want {
    holder: u64,
    offset: u64,
    end: u64,
    write: bool,
}

impl Want {
    /// The blocks just reserved for it, `n` from logical block `lblk` on at `p` on, that it
    /// writes only in part are zeroed, so the rest reads as zeros (and never shows what the
    /// block held before): the first and the last of the range, if among them.
    fn zero_unwritten<S: BlockStore>(
        &self,
        store: &S,
        (lblk, n): (u64, u64),
        p: u64,
    ) -> FsResult<()> {
        let bs = BLOCK_SIZE as u64;
        let mut ends = [self.offset / bs, (self.end.max(1) - 1) / bs];
        if ends[0] == ends[1] {
            ends[1] = u64::MAX;
        }
        for l in ends.into_iter().filter(|l| (lblk..lblk + n).contains(l)) {
            if l * bs < self.offset || (l + 1) * bs > self.end {
                let at = (p + l - lblk) * bs;
                store.write_at(&[0u8; BLOCK_SIZE], at)?;
                // Landed before the holder writes the rest, as the tail's zeros.
                store.applied(at, bs)?;
            }
        }
        Ok(())
    }
}

impl Held {
    /// From logical block `lblk` (in a hole, below `to`): the run of blocks reserved for
    /// `holder` there, at consecutive blocks from the first (`Some` of it), or the blocks
    /// before the next one reserved for it (`None`); and how many.
    fn run_from(&self, holder: u64, lblk: u64, to: u64) -> (Option<u64>, u64) {
        let mut mine = (self.reserved.range(lblk..to)).filter(|(_, &(_, who))| who == holder);
        match mine.next() {
            Some((&l, &(p, _))) if l == lblk => {
                let same = |((&l2, &(p2, _)), k): &((&u64, &(u64, u64)), u64)| {
                    l2 == lblk + k && p2 == p + k
                };
                (Some(p), 1 + mine.zip(1..).take_while(same).count() as u64)
            }
            Some((&l, _)) => (None, l - lblk),
            None => (None, to - lblk),
        }
    }
}
