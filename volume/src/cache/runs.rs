//! The allocator in runs: free blocks reserved, claimed and marked in the bitmap a run of
//! consecutive blocks at a time, for layouts, which ask for a megabyte or more at once. The
//! bitmap's block is looked up once per run (not once per block), and the quota trees are
//! charged once per run.

use crate::error::{FsError, FsResult};
use crate::layout::BITS_PER_BITMAP_BLOCK;
use crate::store::BlockStore;

use super::Meta;

impl<S: BlockStore> Meta<S> {
    /// Set aside up to `max` (at least one) consecutive free blocks for a layout's writer,
    /// the first near `goal`: the first block and how many. Each is taken from the free
    /// count and held against quota tree `tree`'s room, left clear in the bitmap (no
    /// transaction knows of it) until `claim_run`.
    pub(crate) fn reserve_run(
        &mut self,
        goal: Option<u64>,
        max: u64,
        tree: u32,
    ) -> FsResult<(u64, u64)> {
        let b = self.find_free(goal)?;
        let n = 1 + self.free_after(b + 1, max.saturating_sub(1))?;
        self.reserved.extend((b..b + n).map(|x| (x, tree)));
        self.trees.hold(tree, n as i64);
        self.free_blocks = self.free_blocks.saturating_sub(n);
        self.block_hint = b + n;
        Ok((b, n))
    }

    /// How many of the (at most `max`) blocks from `b` on are free to hand out, in a row.
    fn free_after(&mut self, b: u64, max: u64) -> FsResult<u64> {
        let mut n = 0;
        while n < max {
            let at = b + n;
            if !self.geo.is_data_block(at) {
                break;
            }
            let room = (max - n).min(self.geo.total_blocks - at);
            let clear = self.clear_bits(self.geo.bbitmap_start, at, room)?;
            let usable = (at..at + clear).take_while(|&x| !self.taken(x)).count() as u64;
            n += usable;
            if usable < clear || clear == 0 {
                break;
            }
        }
        Ok(n)
    }

    /// Freed blocks not yet reusable, or reserved, or held: not to be handed out.
    fn taken(&self, b: u64) -> bool {
        self.quarantine.contains(&b) || self.reserved.contains_key(&b) || self.held.contains(&b)
    }

    /// How many clear bits from `idx` on, at most `max`, within the bitmap block holding
    /// `idx` (the caller goes on into the next).
    fn clear_bits(&mut self, start: u64, idx: u64, max: u64) -> FsResult<u64> {
        let within = idx % BITS_PER_BITMAP_BLOCK;
        let upto = (within + max).min(BITS_PER_BITMAP_BLOCK);
        let blk = self.block(start + idx / BITS_PER_BITMAP_BLOCK)?;
        let set = (within..upto).find(|&w| blk[(w / 8) as usize] & (1 << (w % 8)) != 0);
        Ok(set.unwrap_or(upto) - within)
    }

    /// The `n` reserved blocks from `b` on become allocated (their bits set in this
    /// transaction), charged to quota tree `tree`: they are about to be mapped. `Corrupt`,
    /// before anything changes, if one was not reserved.
    pub(crate) fn claim_run(&mut self, b: u64, n: u64, tree: u32) -> FsResult<()> {
        if let Some(x) = (b..b + n).find(|x| !self.reserved.contains_key(x)) {
            return Err(FsError::Corrupt(format!("block {x} mapped unreserved")));
        }
        // Each block's reservation was held against the tree it was reserved for.
        let mut held: Option<(u32, i64)> = None;
        for x in b..b + n {
            let t = self.reserved.remove(&x).unwrap_or(tree);
            match &mut held {
                Some((h, k)) if *h == t => *k += 1,
                _ => {
                    if let Some((h, k)) = held.replace((t, 1)) {
                        self.trees.hold(h, -k);
                    }
                }
            }
        }
        if let Some((h, k)) = held {
            self.trees.hold(h, -k);
        }
        if self.set_bits(self.geo.bbitmap_start, b, n)? {
            return Err(FsError::Corrupt(format!(
                "a reserved block of {b}..{} was in use",
                b + n
            )));
        }
        self.trees.charge(tree, n as i64, 0);
        Ok(())
    }

    /// Set `n` bits from `idx` on: true if any was set already.
    fn set_bits(&mut self, start: u64, idx: u64, n: u64) -> FsResult<bool> {
        let mut was = false;
        let mut at = idx;
        while at < idx + n {
            let within = at % BITS_PER_BITMAP_BLOCK;
            let upto = (within + (idx + n - at)).min(BITS_PER_BITMAP_BLOCK);
            let blk = self.block_mut(start + at / BITS_PER_BITMAP_BLOCK)?;
            for w in within..upto {
                let (byte, bit) = ((w / 8) as usize, 1 << (w % 8));
                was |= blk[byte] & bit != 0;
                blk[byte] |= bit;
            }
            at += upto - within;
        }
        Ok(was)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Geometry, BLOCK_SIZE};
    use crate::store::MemStore;

    fn meta() -> Meta<MemStore> {
        let geo = Geometry::for_size(4096, Some(1024)).unwrap();
        let mut m = Meta::new(MemStore::new(4096 * BLOCK_SIZE as u64), geo, 0);
        m.free_blocks = 4096 - geo.data_start;
        m
    }

    #[test]
    fn a_run_stops_at_a_block_reserved_freed_or_held_and_at_a_used_one() {
        let mut m = meta();
        let d = m.geo.data_start;
        let (b, n) = m.reserve_run(Some(d + 10), 5, 0).unwrap();
        assert_eq!((b, n), (d + 10, 5));
        // From before the reserved run: up to it, not into it.
        assert_eq!(m.reserve_run(Some(d + 4), 100, 0).unwrap(), (d + 4, 6));
        // A block freed by the open transaction, and one held for a layout, end a run too.
        m.alloc_block(Some(d + 40), 0).unwrap();
        m.free_block(d + 40, 0).unwrap();
        m.hold(7, d + 50);
        assert_eq!(m.reserve_run(Some(d + 30), 100, 0).unwrap(), (d + 30, 10));
        assert_eq!(m.reserve_run(Some(d + 41), 100, 0).unwrap(), (d + 41, 9));
        // And a block in use.
        m.alloc_block(Some(d + 70), 0).unwrap();
        assert_eq!(m.reserve_run(Some(d + 60), 100, 0).unwrap(), (d + 60, 10));
    }

    #[test]
    fn a_claimed_run_is_allocated_once_and_an_unreserved_block_changes_nothing() {
        let mut m = meta();
        let d = m.geo.data_start;
        let (b, n) = m.reserve_run(Some(d), 8, 0).unwrap();
        assert!(matches!(m.claim_run(b, n + 1, 0), Err(FsError::Corrupt(_))));
        assert_eq!(
            m.reserved.len(),
            8,
            "a refused claim keeps every reservation"
        );
        m.claim_run(b, n, 0).unwrap();
        assert!(m.reserved.is_empty());
        assert!((b..b + n).all(|x| m.bit(m.geo.bbitmap_start, x).unwrap()));
        assert!(!m.bit(m.geo.bbitmap_start, b + n).unwrap());
        // Claimed, the blocks are in use: the next run starts after them.
        assert_eq!(m.reserve_run(Some(d), 3, 0).unwrap(), (d + 8, 3));
    }
}
