//! The engine's in-memory metadata: cached metadata blocks (bitmaps, inode table, directory,
//! indirect and xattr blocks), which of them are dirty, and the allocator's counts and hints.
//! Dirty blocks reach the image only through `commit`, as one journal transaction.

mod runs;

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::chain::Chain;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::journal;
use crate::layout::{
    put_u64, seal, verify, Geometry, BITS_PER_BITMAP_BLOCK, BLOCK_SIZE, INODE_SIZE,
    SB_FREE_BLOCKS_OFFSET, SB_FREE_INODES_OFFSET, SB_LAST_SEQ_OFFSET,
};
use crate::quota::Trees;
use crate::store::BlockStore;

/// Clean blocks beyond this many are dropped from the cache.
const CACHE_LIMIT: usize = 32 * 1024;

pub(crate) struct Meta<S: BlockStore> {
    pub store: Arc<S>,
    pub geo: Geometry,
    blocks: HashMap<u64, Box<[u8]>>,
    dirty: BTreeSet<u64>,
    /// Blocks freed by the open transaction: not reusable until it commits, so a crash can
    /// never leave a committed file pointing at a block that already holds someone else's data.
    quarantine: HashSet<u64>,
    /// Free blocks set aside for a layout's writer (`reserve_run`): out of the free count,
    /// never handed out, and in no bitmap until `claim_run` maps them (nothing about them is
    /// journaled, so a crash leaves them free), each with the quota tree it counts against
    /// until then (`Trees::hold`).
    reserved: HashMap<u64, u32>,
    /// Freed blocks a layout may still read or write (`hold_for`): free in the bitmap, but
    /// not handed out again until `release_held` lets them go.
    held: HashSet<u64>,
    held_by: HashMap<u32, Vec<u64>>,
    /// Blocks both quarantined and held, so `quarantined` counts each once.
    both: usize,
    /// While set, blocks freed are held for this inode's layouts (`held`).
    pub hold_for: Option<u32>,
    /// The transaction being written by `PreparedCommit::write`, if any: its blocks (kept in
    /// the cache until they are home) and the freed blocks it makes reusable.
    in_flight: Option<InFlight>,
    pub free_blocks: u64,
    pub free_inodes: u64,
    /// Every quota tree's limits and use; each allocation and free is charged to its tree.
    pub trees: Trees,
    /// The files unlinked while open, as the on-disk list has them (`chain`).
    pub orphan_list: Chain,
    /// The roots of quota trees, as the on-disk list has them.
    pub tree_list: Chain,
    block_hint: u64,
    inode_hint: u64,
    seq: u64,
    pub commits: u64,
}

impl<S: BlockStore> Meta<S> {
    pub(crate) fn new(store: S, geo: Geometry, last_seq: u64) -> Meta<S> {
        Meta {
            store: Arc::new(store),
            geo,
            blocks: HashMap::default(),
            dirty: BTreeSet::new(),
            quarantine: HashSet::default(),
            reserved: HashMap::default(),
            held: HashSet::default(),
            held_by: HashMap::default(),
            both: 0,
            hold_for: None,
            in_flight: None,
            free_blocks: 0,
            free_inodes: 0,
            trees: Trees::default(),
            orphan_list: Chain::default(),
            tree_list: Chain::default(),
            block_hint: geo.data_start,
            inode_hint: 2,
            seq: last_seq + 1,
            commits: 0,
        }
    }

    fn load(&mut self, b: u64) -> FsResult<()> {
        if self.blocks.contains_key(&b) {
            return Ok(());
        }
        if b >= self.geo.total_blocks {
            return Err(FsError::Corrupt(format!(
                "block {b} is past the end of the volume"
            )));
        }
        let mut buf = vec![0u8; BLOCK_SIZE].into_boxed_slice();
        self.store.read_at(&mut buf, b * BLOCK_SIZE as u64)?;
        if !verify(&buf, b) {
            return Err(FsError::Corrupt(format!(
                "checksum mismatch in metadata block {b}"
            )));
        }
        if self.blocks.len() >= CACHE_LIMIT {
            self.evict();
        }
        self.blocks.insert(b, buf);
        Ok(())
    }

    fn evict(&mut self) {
        let clean: Vec<u64> = self
            .blocks
            .keys()
            .filter(|k| !self.dirty.contains(k))
            .filter(|k| {
                !self
                    .in_flight
                    .as_ref()
                    .is_some_and(|f| f.blocks.contains(k))
            })
            .take(CACHE_LIMIT / 4)
            .copied()
            .collect();
        for k in clean {
            self.blocks.remove(&k);
        }
    }

    pub(crate) fn block(&mut self, b: u64) -> FsResult<&[u8]> {
        self.load(b)?;
        Ok(&self.blocks[&b])
    }

    pub(crate) fn block_mut(&mut self, b: u64) -> FsResult<&mut [u8]> {
        self.load(b)?;
        self.dirty.insert(b);
        Ok(self
            .blocks
            .get_mut(&b)
            .map(|x| &mut x[..])
            .unwrap_or(&mut []))
    }

    /// A freshly allocated metadata block: zeroed, dirty, never read from the store.
    pub(crate) fn block_new(&mut self, b: u64) -> &mut [u8] {
        self.dirty.insert(b);
        let e = self
            .blocks
            .entry(b)
            .or_insert_with(|| vec![0u8; BLOCK_SIZE].into_boxed_slice());
        e.fill(0);
        e
    }

    /// A metadata block was freed: its contents must not be journaled or written home.
    pub(crate) fn forget(&mut self, b: u64) {
        self.blocks.remove(&b);
        self.dirty.remove(&b);
    }

    /// Blocks freed but not reusable until the next commit ends, or while a layout may use
    /// them (a block can be both for a while: counted once).
    pub(crate) fn quarantined(&self) -> usize {
        self.quarantine.len() + self.held.len() - self.both
    }

    /// Blocks held for layouts (`hold`): free on the bitmap, but no one's to take.
    pub(crate) fn held_blocks(&self) -> u64 {
        self.held.len() as u64
    }

    /// Hold block `b` for inode `index`'s layouts until `release_held`.
    fn hold(&mut self, index: u32, b: u64) {
        if self.held.insert(b) && self.quarantine.contains(&b) {
            self.both += 1;
        }
        self.held_by.entry(index).or_default().push(b);
    }

    /// The sequence number the next transaction will carry.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    // ---- inodes ----

    pub(crate) fn read_inode(&mut self, index: u32) -> FsResult<DiskInode> {
        if index as u64 >= self.geo.inode_count || index == 0 {
            return Err(FsError::Stale);
        }
        let (b, off) = self.geo.inode_location(index);
        let blk = self.block(b)?;
        Ok(DiskInode::decode(&blk[off..off + INODE_SIZE]))
    }

    pub(crate) fn write_inode(&mut self, index: u32, inode: &DiskInode) -> FsResult<()> {
        let (b, off) = self.geo.inode_location(index);
        let blk = self.block_mut(b)?;
        inode.encode(&mut blk[off..off + INODE_SIZE]);
        Ok(())
    }

    // ---- bitmaps ----

    fn bit(&mut self, start: u64, idx: u64) -> FsResult<bool> {
        let b = start + idx / BITS_PER_BITMAP_BLOCK;
        let within = (idx % BITS_PER_BITMAP_BLOCK) as usize;
        Ok(self.block(b)?[within / 8] & (1 << (within % 8)) != 0)
    }

    fn set_bit(&mut self, start: u64, idx: u64, on: bool) -> FsResult<bool> {
        let b = start + idx / BITS_PER_BITMAP_BLOCK;
        let within = (idx % BITS_PER_BITMAP_BLOCK) as usize;
        let blk = self.block_mut(b)?;
        let was = blk[within / 8] & (1 << (within % 8)) != 0;
        if on {
            blk[within / 8] |= 1 << (within % 8);
        } else {
            blk[within / 8] &= !(1 << (within % 8));
        }
        Ok(was)
    }

    /// First clear bit at or after `from` (wrapping once), skipping `skip`.
    fn find_clear(
        &mut self,
        start: u64,
        nbits: u64,
        from: u64,
        skip: &dyn Fn(u64) -> bool,
    ) -> FsResult<Option<u64>> {
        let from = if from >= nbits { 0 } else { from };
        let mut idx = from;
        let mut wrapped = false;
        loop {
            if idx >= nbits {
                if wrapped {
                    return Ok(None);
                }
                wrapped = true;
                idx = 0;
            }
            if wrapped && idx >= from {
                return Ok(None);
            }
            let bno = start + idx / BITS_PER_BITMAP_BLOCK;
            let within = (idx % BITS_PER_BITMAP_BLOCK) as usize;
            let blk = self.block(bno)?;
            let byte = blk[within / 8];
            if byte == 0xff {
                idx += 8 - (within % 8) as u64;
                continue;
            }
            if byte & (1 << (within % 8)) == 0 && !skip(idx) {
                return Ok(Some(idx));
            }
            idx += 1;
        }
    }

    /// A free data block near `goal`, charged to quota tree `tree`.
    pub(crate) fn alloc_block(&mut self, goal: Option<u64>, tree: u32) -> FsResult<u64> {
        let b = self.find_free(goal)?;
        self.set_bit(self.geo.bbitmap_start, b, true)?;
        self.free_blocks = self.free_blocks.saturating_sub(1);
        self.trees.charge(tree, 1, 0);
        Ok(b)
    }

    /// A free block to hand out: clear in the bitmap, and neither quarantined, reserved nor
    /// held.
    fn find_free(&mut self, goal: Option<u64>) -> FsResult<u64> {
        let from = goal
            .filter(|g| self.geo.is_data_block(*g))
            .unwrap_or(self.block_hint);
        let (q, r, h) = (
            std::mem::take(&mut self.quarantine),
            std::mem::take(&mut self.reserved),
            std::mem::take(&mut self.held),
        );
        let skip = |b: u64| q.contains(&b) || r.contains_key(&b) || h.contains(&b);
        let found = self.find_clear(self.geo.bbitmap_start, self.geo.total_blocks, from, &skip);
        (self.quarantine, self.reserved, self.held) = (q, r, h);
        let b = found?.ok_or(FsError::NoSpace)?;
        if !self.geo.is_data_block(b) {
            return Err(FsError::Corrupt(format!(
                "block bitmap marks system block {b} free"
            )));
        }
        self.block_hint = b + 1;
        Ok(b)
    }

    /// A reserved block goes back to the free blocks, unused.
    pub(crate) fn unreserve(&mut self, b: u64) {
        if let Some(tree) = self.reserved.remove(&b) {
            self.trees.hold(tree, -1);
            self.free_blocks += 1;
        }
    }

    /// A reserved block whose range was cut away goes back to the free blocks, but is held
    /// for inode `index`'s layouts (`release_held`): its holder may still be writing it.
    pub(crate) fn unreserve_held(&mut self, index: u32, b: u64) {
        if let Some(tree) = self.reserved.remove(&b) {
            self.trees.hold(tree, -1);
            self.free_blocks += 1;
            self.hold(index, b);
        }
    }

    /// The blocks held for inode `index`'s layouts (`hold_for`) may be handed out again.
    pub(crate) fn release_held(&mut self, index: u32) {
        for b in self.held_by.remove(&index).unwrap_or_default() {
            if self.held.remove(&b) && self.quarantine.contains(&b) {
                self.both -= 1;
            }
        }
    }

    /// Free data block `b`, given back to quota tree `tree` at once (to the allocator at
    /// the commit).
    pub(crate) fn free_block(&mut self, b: u64, tree: u32) -> FsResult<()> {
        if !self.geo.is_data_block(b) {
            return Err(FsError::Corrupt(format!(
                "freeing block {b} outside the data area"
            )));
        }
        self.forget(b);
        if self.set_bit(self.geo.bbitmap_start, b, false)? {
            self.free_blocks += 1;
            self.trees.charge(tree, -1, 0);
        }
        if self.quarantine.insert(b) && self.held.contains(&b) {
            self.both += 1;
        }
        if let Some(index) = self.hold_for {
            self.hold(index, b);
        }
        Ok(())
    }

    /// A free inode slot, charged to quota tree `tree`.
    pub(crate) fn alloc_inode(&mut self, tree: u32) -> FsResult<u32> {
        let found = self.find_clear(
            self.geo.ibitmap_start,
            self.geo.inode_count,
            self.inode_hint,
            &|_| false,
        )?;
        let i = found.ok_or(FsError::NoSpace)?;
        if i < 2 {
            return Err(FsError::Corrupt(format!(
                "inode bitmap marks reserved inode {i} free"
            )));
        }
        self.set_bit(self.geo.ibitmap_start, i, true)?;
        self.free_inodes = self.free_inodes.saturating_sub(1);
        self.trees.charge(tree, 0, 1);
        self.inode_hint = i + 1;
        Ok(i as u32)
    }

    /// Allocate inode slot `index` itself, charged to quota tree `tree`; `Exists` if it is
    /// taken (or reserved).
    pub(crate) fn alloc_inode_at(&mut self, index: u32, tree: u32) -> FsResult<()> {
        if index < 2 || index as u64 >= self.geo.inode_count {
            return Err(FsError::Invalid);
        }
        if self.bit(self.geo.ibitmap_start, index as u64)? {
            return Err(FsError::Exists);
        }
        self.set_bit(self.geo.ibitmap_start, index as u64, true)?;
        self.free_inodes = self.free_inodes.saturating_sub(1);
        self.trees.charge(tree, 0, 1);
        Ok(())
    }

    /// Free inode slot `index`, given back to quota tree `tree`.
    pub(crate) fn free_inode(&mut self, index: u32, tree: u32) -> FsResult<()> {
        if self.set_bit(self.geo.ibitmap_start, index as u64, false)? {
            self.free_inodes += 1;
            self.trees.charge(tree, 0, -1);
        }
        Ok(())
    }

    pub(crate) fn inode_allocated(&mut self, index: u32) -> FsResult<bool> {
        self.bit(self.geo.ibitmap_start, index as u64)
    }

    /// Take the free counts the superblock keeps, rather than count the bitmaps.
    pub(crate) fn set_free(&mut self, blocks: u64, inodes: u64) {
        self.free_blocks = blocks;
        self.free_inodes = inodes;
    }

    /// Count free bits in both bitmaps (at open, when the superblock keeps no counts).
    pub(crate) fn count_free(&mut self) -> FsResult<()> {
        let mut free_b = 0;
        for i in 0..self.geo.bbitmap_blocks {
            let b = self.geo.bbitmap_start + i;
            free_b += self
                .block(b)?
                .iter()
                .take(crate::layout::PAYLOAD)
                .map(|x| x.count_zeros() as u64)
                .sum::<u64>();
        }
        let mut free_i = 0;
        for i in 0..self.geo.ibitmap_blocks {
            let b = self.geo.ibitmap_start + i;
            free_i += self
                .block(b)?
                .iter()
                .take(crate::layout::PAYLOAD)
                .map(|x| x.count_zeros() as u64)
                .sum::<u64>();
        }
        self.free_blocks = free_b;
        self.free_inodes = free_i;
        Ok(())
    }

    // ---- commit ----

    /// Take the dirty metadata as one transaction to be written by `PreparedCommit::write`,
    /// which needs no access to `self`: the caller may let other operations proceed while the
    /// transaction goes to disk. At most one may be in flight; `finish_commit` ends it.
    pub(crate) fn prepare_commit(&mut self) -> FsResult<PreparedCommit<S>> {
        if self.in_flight.is_some() {
            return Err(FsError::Io(std::io::Error::other(
                "a commit is already in flight (commits must be serialized)",
            )));
        }
        self.store_tree_use()?;
        if !self.dirty.is_empty() {
            // The superblock goes with every transaction, carrying its number home.
            let seq = self.seq;
            // And the free counts, as the bitmaps in it have them (reserved blocks are clear
            // there: nothing journaled knows of them).
            let free_blocks = self.free_blocks + self.reserved.len() as u64;
            let free_inodes = self.free_inodes;
            let b0 = self.block_mut(0)?;
            put_u64(b0, SB_LAST_SEQ_OFFSET, seq);
            put_u64(b0, SB_FREE_BLOCKS_OFFSET, free_blocks);
            put_u64(b0, SB_FREE_INODES_OFFSET, free_inodes);
        }
        let dirty: Vec<u64> = std::mem::take(&mut self.dirty).into_iter().collect();
        let mut blocks = Vec::with_capacity(dirty.len());
        for b in &dirty {
            if let Some(img) = self.blocks.get_mut(b) {
                seal(img, *b);
                blocks.push((*b, img.clone()));
            }
        }
        let seq = self.seq;
        if !blocks.is_empty() {
            self.seq += 1;
        }
        self.in_flight = Some(InFlight {
            blocks: dirty.into_iter().collect(),
            freed: self.quarantine.clone(),
        });
        Ok(PreparedCommit {
            store: self.store.clone(),
            geo: self.geo,
            seq,
            blocks,
        })
    }

    /// End the transaction `prepare_commit` began, with the outcome of its `write`. After a
    /// failure its blocks are dirty again, so the next commit writes them.
    pub(crate) fn finish_commit(
        &mut self,
        p: PreparedCommit<S>,
        written: FsResult<()>,
    ) -> FsResult<()> {
        let f = self
            .in_flight
            .take()
            .expect("finish_commit without prepare_commit");
        match written {
            Ok(()) => {
                for b in &f.freed {
                    if self.quarantine.remove(b) && self.held.contains(b) {
                        self.both -= 1;
                    }
                }
                if !p.blocks.is_empty() {
                    self.commits += 1;
                }
                Ok(())
            }
            Err(e) => {
                self.dirty
                    .extend(f.blocks.iter().filter(|b| self.blocks.contains_key(b)));
                Err(e)
            }
        }
    }
}

struct InFlight {
    blocks: HashSet<u64>,
    freed: HashSet<u64>,
}

/// A transaction taken from the cache, ready to be made durable without the engine's lock.
pub struct PreparedCommit<S: BlockStore> {
    store: Arc<S>,
    geo: Geometry,
    seq: u64,
    blocks: Vec<(u64, Box<[u8]>)>,
}

impl<S: BlockStore> PreparedCommit<S> {
    /// Make the file data written before it was prepared durable, then journal the
    /// transaction and make it durable, then write its blocks home. The first flush is the
    /// barrier ordered mode needs: a disk may persist writes between flushes in any order, and
    /// a commit block durable before the data would map blocks that still hold what a deleted
    /// file left there.
    pub fn write(&self) -> FsResult<()> {
        self.store.flush()?;
        if self.blocks.is_empty() {
            return Ok(());
        }
        let imgs: Vec<(u64, &[u8])> = self.blocks.iter().map(|(b, i)| (*b, &i[..])).collect();
        // One transaction, never split (a split one would not be atomic): operations are
        // cut into steps that each fit (`Volume::commit_urgent`); one that does not fit is
        // refused here, its changes kept pending.
        journal::write_txn(&*self.store, &self.geo, self.seq, &imgs)?;
        journal::write_home(&*self.store, &imgs)?;
        Ok(())
    }

    /// Metadata blocks in the transaction.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True if the transaction changes no metadata block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}
