//! File data: read, write (planned with the engine, done without it), append, truncate's
//! block work, fallocate, hole punching and finding data and holes (lseek). Invariants: a block is mapped only once its data
//! is written (or it is zeroed); a read never returns a fresh block's old contents; a long
//! allocation or punch is cut into steps that each leave the file consistent.

use crate::attr::Ino;
use crate::bmap;
use crate::cache::Meta;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::layout::{split_ino, BLOCK_SIZE};
use crate::store::BlockStore;
use crate::TimeSpec;

use super::plan::{Mapping, PendingWrite, Piece, ReadPlan, WritePlan};
use super::{Volume, FALLOC_KEEP_SIZE, FALLOC_PUNCH_HOLE, FALLOC_ZERO_RANGE, MAX_FILE_SIZE};

impl<S: BlockStore> Volume<S> {
    /// Change a regular file's size: free blocks past it, zero the tail of a kept partial block.
    /// Freeing more than a transaction holds goes in steps (`step`), last blocks first: each
    /// step leaves a shorter file whose size covers what it still holds.
    pub(super) fn resize(&mut self, i: u32, d: &mut DiskInode, size: u64) -> FsResult<()> {
        if size < d.size {
            let keep = size.div_ceil(BLOCK_SIZE as u64);
            self.cutting(i, keep, u64::MAX, |v| v.free_from(i, d, keep))?;
            self.zero_past_eof(d, size, u64::MAX)?;
        } else {
            self.zero_past_eof(d, d.size, size)?;
        }
        d.size = size;
        Ok(())
    }

    /// Free the blocks of inode `i` from logical block `keep` on, in steps.
    fn free_from(&mut self, i: u32, d: &mut DiskInode, keep: u64) -> FsResult<()> {
        let limit = self.step_limit();
        let full = |m: &Meta<S>| m.dirty_count() > limit;
        while let Some(end) = bmap::truncate_blocks_until(&mut self.m, d, keep, &full)? {
            d.size = d.size.min(end * BLOCK_SIZE as u64);
            self.put(i, d)?;
            self.step()?;
        }
        Ok(())
    }

    /// Zero bytes `[eof, upto)` of the block holding `eof`, before they become part of the
    /// file. They should already be zero, but data written past the committed size by a write
    /// a crash took back (ordered mode writes data in place first) may still be there. Where
    /// the zeros went on the store (offset, length), if anywhere.
    pub(super) fn zero_past_eof(
        &mut self,
        d: &DiskInode,
        eof: u64,
        upto: u64,
    ) -> FsResult<Option<(u64, u64)>> {
        let bs = BLOCK_SIZE as u64;
        let within = eof % bs;
        if within == 0 || upto <= eof {
            return Ok(None);
        }
        let Some(phys) = bmap::lookup(&mut self.m, d, eof / bs)? else {
            return Ok(None);
        };
        let n = (bs - within).min(upto - eof);
        self.m
            .store
            .write_at(&vec![0u8; n as usize], phys * bs + within)?;
        Ok(Some((phys * bs + within, n)))
    }

    pub(super) fn read_data(
        &mut self,
        d: &DiskInode,
        offset: u64,
        size: usize,
    ) -> FsResult<Vec<u8>> {
        self.plan_data(d, offset, size)?.execute(&*self.m.store)
    }

    /// Where the bytes of a read are on disk: the block-map work, done with the engine to
    /// oneself; the reading itself (`ReadPlan::execute`) needs only the store.
    fn plan_data(&mut self, d: &DiskInode, offset: u64, size: usize) -> FsResult<ReadPlan> {
        if offset >= d.size {
            return Ok(ReadPlan::default());
        }
        let n = (size as u64).min(d.size - offset) as usize;
        let bs = BLOCK_SIZE as u64;
        let mut plan = ReadPlan {
            len: n,
            runs: Vec::new(),
            _token: self.reads_in_flight.begin(),
        };
        let mut pos = 0usize;
        // (disk offset, out range) runs of contiguous mapped blocks; holes stay zero.
        let mut run: Option<(u64, usize, usize)> = None;
        while pos < n {
            let abs = offset + pos as u64;
            let lblk = abs / bs;
            let within = abs % bs;
            let len = ((bs - within) as usize).min(n - pos);
            match bmap::lookup(&mut self.m, d, lblk)? {
                Some(p) if !self.unwritten.contains_key(&p) => {
                    let disk = p * bs + within;
                    match &mut run {
                        Some((start, s, e)) if *start + (*e - *s) as u64 == disk => *e += len,
                        _ => {
                            plan.runs.extend(run.take());
                            run = Some((disk, pos, pos + len));
                        }
                    }
                }
                // A hole, or a block a pending write has not filled yet: zeros.
                _ => plan.runs.extend(run.take()),
            }
            pos += len;
        }
        plan.runs.extend(run.take());
        Ok(plan)
    }

    /// The first half of a read: where its bytes are. `SharedVolume` reads them without
    /// holding the engine.
    pub fn plan_read(&mut self, ino: Ino, offset: u64, size: usize) -> FsResult<ReadPlan> {
        let ino = ino.get();
        let (_, d) = self.get(ino)?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        self.plan_data(&d, offset, size)
    }

    /// The store, shared: what `ReadPlan::execute` reads from.
    pub fn shared_store(&self) -> std::sync::Arc<S> {
        self.m.store.clone()
    }

    /// Allocate and map the blocks for `len` bytes at `offset` (not the size): where each
    /// piece of the data goes. Short only if the volume filled up part way; refused whole
    /// (`DiskQuota`) if its quota tree has not room for all of it.
    fn map_for_write(
        &mut self,
        d: &mut DiskInode,
        offset: u64,
        data_len: usize,
        data: Option<&[u8]>,
    ) -> FsResult<Mapping> {
        let bs = BLOCK_SIZE as u64;
        let end = offset
            .checked_add(data_len as u64)
            .ok_or(FsError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let (first, last) = (offset / bs, end.div_ceil(bs));
        if d.tree != 0 && data_len > 0 && self.m.trees.room(d.tree) < bmap::most_alloc(last - first)
        {
            // Into a quota tree a write goes whole or not at all: a short one would tell its
            // writer the volume is full, not the quota. The block map is walked for what it
            // needs only when the tree's room may be short of it.
            let cost = bmap::alloc_cost_range(&mut self.m, d, first, last)?;
            self.m.trees.check(d.tree, cost, 0)?;
        }
        let mut pieces: Vec<Piece> = Vec::new();
        let mut pos = 0usize;
        let mut goal = None;
        let mut failed = None;
        let mut fresh = Vec::new();
        while pos < data_len {
            let abs = offset + pos as u64;
            let lblk = abs / bs;
            let within = (abs % bs) as usize;
            let len = (BLOCK_SIZE - within).min(data_len - pos);
            if pos > 0 && self.commit_urgent() {
                // Scattered blocks change a bitmap block each: the rest waits for a commit.
                break;
            }
            let mapped = match bmap::map_alloc(&mut self.m, d, lblk, goal) {
                Ok(m) => m,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            goal = Some(mapped.phys + 1);
            if mapped.fresh {
                fresh.push((lblk, mapped.phys));
            }
            if mapped.fresh && len < BLOCK_SIZE {
                // The rest of a fresh block must read as zeros, whatever it held before.
                let mut blk = vec![0u8; BLOCK_SIZE];
                if let Some(data) = data {
                    blk[within..within + len].copy_from_slice(&data[pos..pos + len]);
                    pieces.push(Piece::Owned(mapped.phys * bs, blk));
                } else {
                    pieces.push(Piece::Owned(mapped.phys * bs, blk));
                    pieces.push(Piece::Data(
                        mapped.phys * bs + within as u64,
                        pos,
                        pos + len,
                    ));
                }
            } else {
                let disk = mapped.phys * bs + within as u64;
                match pieces.last_mut() {
                    Some(Piece::Data(start, s, e))
                        if *start + (*e - *s) as u64 == disk && *e == pos =>
                    {
                        *e += len
                    }
                    _ => pieces.push(Piece::Data(disk, pos, pos + len)),
                }
            }
            pos += len;
        }
        if failed.is_some() && pos == 0 {
            return Err(failed.unwrap_or(FsError::NoSpace));
        }
        Ok(Mapping {
            pieces,
            n: pos,
            failed,
            fresh,
        })
    }

    /// Write `data` at `offset` into the inode's blocks (not the size). Returns bytes written;
    /// short only if space ran out part way.
    pub(super) fn write_data(
        &mut self,
        d: &mut DiskInode,
        offset: u64,
        data: &[u8],
    ) -> FsResult<usize> {
        let Mapping { pieces, n, .. } = self.map_for_write(d, offset, data.len(), Some(data))?;
        for p in &pieces {
            match p {
                Piece::Data(disk, s, e) => self.m.store.write_at(&data[*s..*e], *disk)?,
                Piece::Owned(disk, blk) => self.m.store.write_at(blk, *disk)?,
            }
        }
        Ok(n)
    }

    /// Up to `size` bytes at `offset`; short at the end of the file.
    pub fn read(&mut self, ino: Ino, offset: u64, size: usize) -> FsResult<Vec<u8>> {
        let ino = ino.get();
        let (_, d) = self.get(ino)?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        self.read_data(&d, offset, size)
    }

    /// Write `data` at `offset`, growing the size; the bytes written (short only on a full volume).
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        let mut done = 0;
        loop {
            let mut plan = match self.plan_write(ino, offset + done as u64, data.len() - done) {
                Err(FsError::NoSpace | FsError::DiskQuota) if done > 0 => return Ok(done),
                r => r?,
            };
            let more = plan.stopped_for_commit();
            let written = plan.execute(&*self.m.store.clone(), &data[done..]);
            // Finishing commits, when the plan stopped for it.
            done += self.finish_write(plan, written)?;
            if !more {
                return Ok(done);
            }
        }
    }

    /// The first half of a write, with the engine: map (allocating) the blocks for `len`
    /// bytes at `offset`. The data goes to the store without it (`WritePlan::execute`); a
    /// commit meanwhile waits for it. `finish_write` then sets the size and times.
    pub fn plan_write(&mut self, ino: Ino, offset: u64, len: usize) -> FsResult<WritePlan> {
        let ino = ino.get();
        let (i, mut d) = self.get(ino)?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        if offset > d.size {
            self.zero_past_eof(&d, d.size, offset)?;
        }
        let Mapping {
            pieces,
            n,
            failed,
            fresh,
        } = match self.map_for_write(&mut d, offset, len, None) {
            Ok(p) => p,
            Err(e) => {
                self.put(i, &d)?;
                return Err(e);
            }
        };
        self.put(i, &d)?;
        let id = self.next_write_id;
        self.next_write_id += 1;
        let io_failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if n > 0 {
            let end = offset + n as u64;
            for &(_, b) in &fresh {
                *self.unwritten.entry(b).or_insert(0) += 1;
            }
            self.pending_writes
                .entry(i)
                .or_default()
                .push(PendingWrite {
                    id,
                    end,
                    fresh,
                    io_failed: io_failed.clone(),
                });
        }
        Ok(WritePlan {
            io_failed,
            ino,
            id,
            offset,
            n,
            rest: if failed.is_none() { len - n } else { 0 },
            failed,
            pieces,
            token: self.data_in_flight.begin(),
        })
    }

    /// Give the writes planned on inode `i` and not yet finished their effect now: wait for
    /// their data, then grow the size over them. What changes the size or zeroes bytes
    /// (truncate, fallocate) does this first, so each such write appears to have happened
    /// wholly before it: its data is not zeroed by it, and its end does not then set the size
    /// back over what it cut. The data I/O waited for runs without the engine.
    pub(super) fn settle_writes(&mut self, i: u32, d: &mut DiskInode) -> FsResult<()> {
        if let Some(writes) = self.pending_writes.remove(&i) {
            self.data_in_flight.wait_none();
            for w in writes {
                if w.io_failed.load(std::sync::atomic::Ordering::SeqCst) {
                    self.unmap_unwritten(d, &w)?;
                } else {
                    d.size = d.size.max(w.end);
                }
                self.forget_unwritten(&w);
            }
        }
        Ok(())
    }

    /// A write whose data failed: the blocks it was given go back, so its range reads as the
    /// hole it was, not as what those blocks held before.
    fn unmap_unwritten(&mut self, d: &mut DiskInode, w: &PendingWrite) -> FsResult<()> {
        for &(lblk, phys) in &w.fresh {
            if bmap::lookup(&mut self.m, d, lblk)? == Some(phys) {
                bmap::free_one(&mut self.m, d, lblk)?;
            }
        }
        Ok(())
    }

    /// A pending write's data is on the store (or never will be): its fresh blocks may be
    /// read from now on.
    fn forget_unwritten(&mut self, w: &PendingWrite) {
        for (_, b) in &w.fresh {
            if let Some(n) = self.unwritten.get_mut(b) {
                *n -= 1;
                if *n == 0 {
                    self.unwritten.remove(b);
                }
            }
        }
    }

    /// Take a write off its inode's pending list; None if something settled it already.
    fn unpend_write(&mut self, ino: u64, id: u64) -> Option<PendingWrite> {
        let index = split_ino(ino).0;
        let writes = self.pending_writes.get_mut(&index)?;
        let at = writes.iter().position(|w| w.id == id)?;
        let w = writes.swap_remove(at);
        if writes.is_empty() {
            self.pending_writes.remove(&index);
        }
        self.forget_unwritten(&w);
        Some(w)
    }

    /// The second half of a write: its data is on the store (or `written` says why not);
    /// the size grows to cover it and the times move.
    pub fn finish_write(&mut self, plan: WritePlan, written: FsResult<()>) -> FsResult<usize> {
        drop(plan.token);
        let pending = self.unpend_write(plan.ino, plan.id);
        if let Err(e) = written {
            if let (Some(w), Ok((i, mut d))) = (&pending, self.get(plan.ino)) {
                self.unmap_unwritten(&mut d, w)?;
                self.put(i, &d)?;
            }
            return Err(e);
        }
        let (i, mut d) = self.get(plan.ino)?;
        if plan.n > 0 {
            if pending.is_some() {
                d.size = d.size.max(plan.offset + plan.n as u64);
            }
            let now = TimeSpec::now();
            d.mtime = now;
            d.ctime = now;
        }
        self.put(i, &d)?;
        self.after_op()?;
        match plan.failed {
            Some(e) if plan.n == 0 => Err(e),
            _ => Ok(plan.n),
        }
    }

    /// Write at the current end of the file, wherever other writers left it (O_APPEND).
    pub fn append(&mut self, ino: Ino, data: &[u8]) -> FsResult<usize> {
        let ino = ino.get();
        let (_, d) = self.get(ino)?;
        self.write(Ino::new(ino), d.size, data)
    }

    /// Allocate the blocks of a range (growing the size unless `FALLOC_KEEP_SIZE`), or with
    /// `FALLOC_PUNCH_HOLE` / `FALLOC_ZERO_RANGE` free or zero them. Longer than a transaction
    /// holds, it goes in steps (`step`).
    pub fn fallocate(&mut self, ino: Ino, offset: u64, len: u64, mode: u32) -> FsResult<()> {
        let ino = ino.get();
        let (i, mut d) = self.get(ino)?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        if mode & !(FALLOC_KEEP_SIZE | FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE) != 0 {
            return Err(FsError::NotSupported);
        }
        let end = offset.checked_add(len).ok_or(FsError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        if len == 0 {
            return Err(FsError::Invalid);
        }
        self.settle_writes(i, &mut d)?;
        let now = TimeSpec::now();
        if mode & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE) != 0 {
            if mode & FALLOC_PUNCH_HOLE != 0 && mode & FALLOC_KEEP_SIZE == 0 {
                return Err(FsError::Invalid);
            }
            let bs = BLOCK_SIZE as u64;
            let (from, to) = (offset.div_ceil(bs), end / bs);
            self.cutting(i, from, to, |v| v.punch_range(i, &mut d, offset, end, mode))?;
        } else {
            self.allocate_range(i, &mut d, offset, end, mode)?;
        }
        d.mtime = now;
        d.ctime = now;
        self.put(i, &d)?;
        self.after_op()
    }

    /// Free the whole blocks of `[offset, end)` and zero the parts of blocks at its ends;
    /// `FALLOC_ZERO_RANGE` also grows the size to `end` unless `FALLOC_KEEP_SIZE`.
    fn punch_range(
        &mut self,
        i: u32,
        d: &mut DiskInode,
        offset: u64,
        end: u64,
        mode: u32,
    ) -> FsResult<()> {
        let bs = BLOCK_SIZE as u64;
        let zero_range = mode & FALLOC_ZERO_RANGE != 0;
        let zend = end.min(d.size.max(if zero_range { end } else { 0 }));
        let mut pos = offset;
        while pos < zend {
            let lblk = pos / bs;
            let within = pos % bs;
            let n = (bs - within).min(zend - pos);
            if self.commit_urgent() {
                // The blocks freed so far are a consistent, smaller hole.
                self.put(i, d)?;
                self.step()?;
            }
            if within == 0 && n == bs {
                bmap::free_one(&mut self.m, d, lblk)?;
            } else if let Some(p) = bmap::lookup(&mut self.m, d, lblk)? {
                self.m
                    .store
                    .write_at(&vec![0u8; n as usize], p * bs + within)?;
            }
            pos += n;
        }
        if zero_range && mode & FALLOC_KEEP_SIZE == 0 && end > d.size {
            self.zero_past_eof(d, d.size, end)?;
            d.size = end;
        }
        Ok(())
    }

    /// Map every block of `[offset, end)` the file lacks, zeroed, and grow the size over it
    /// unless `FALLOC_KEEP_SIZE`. All the blocks, or none: a refused fallocate changes
    /// nothing.
    fn allocate_range(
        &mut self,
        i: u32,
        d: &mut DiskInode,
        offset: u64,
        end: u64,
        mode: u32,
    ) -> FsResult<()> {
        let bs = BLOCK_SIZE as u64;
        let cost = bmap::alloc_cost_range(&mut self.m, d, offset / bs, end.div_ceil(bs))?;
        bmap::reserve(&self.m, d.tree, cost)?;
        let mut goal = None;
        for lblk in offset / bs..end.div_ceil(bs) {
            if self.commit_urgent() {
                // What is allocated so far, the size grown over it: a shorter fallocate.
                let upto = (lblk * bs).min(end);
                if mode & FALLOC_KEEP_SIZE == 0 && upto > d.size {
                    self.zero_past_eof(d, d.size, upto)?;
                    d.size = upto;
                }
                self.put(i, d)?;
                self.step()?;
            }
            let m = match bmap::map_alloc(&mut self.m, d, lblk, goal) {
                Ok(m) => m,
                Err(e) => {
                    self.put(i, d)?;
                    return Err(e);
                }
            };
            goal = Some(m.phys + 1);
            if m.fresh {
                self.m.store.write_at(&[0u8; BLOCK_SIZE], m.phys * bs)?;
            }
        }
        if mode & FALLOC_KEEP_SIZE == 0 && end > d.size {
            self.zero_past_eof(d, d.size, end)?;
            d.size = end;
        }
        Ok(())
    }

    /// lseek's SEEK_DATA (`whence` 3) or SEEK_HOLE (4), as Linux numbers them: the first
    /// offset at or after `offset` in data (a mapped block) or in a hole (the file's end
    /// is one). `PastEnd` if `offset` is at or past the end, or no data follows it.
    pub fn lseek(&mut self, ino: Ino, offset: u64, whence: u32) -> FsResult<u64> {
        let ino = ino.get();
        const SEEK_DATA: u32 = 3;
        const SEEK_HOLE: u32 = 4;
        if whence != SEEK_DATA && whence != SEEK_HOLE {
            return Err(FsError::Invalid);
        }
        let (_, d) = self.get(ino)?;
        if offset >= d.size {
            return Err(FsError::PastEnd);
        }
        let bs = BLOCK_SIZE as u64;
        let mut lblk = offset / bs;
        while lblk < d.size.div_ceil(bs) {
            let (phys, span) = bmap::lookup_span(&mut self.m, &d, lblk)?;
            if phys.is_some() == (whence == SEEK_DATA) {
                return Ok((lblk * bs).max(offset).min(d.size));
            }
            lblk += span;
        }
        match whence {
            SEEK_HOLE => Ok(d.size),
            _ => Err(FsError::PastEnd),
        }
    }
}
