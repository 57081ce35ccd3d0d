//! Quota trees: a directory made a tree's root (`Volume::set_quota`) caps the blocks and
//! inodes of everything under it, as XFS's project quotas do. Every inode carries the index
//! of the root of the tree it is in (0: none), taken from its parent when it is made; a
//! root carries its own. A name never moves an inode into another tree (rename and link
//! say `CrossDevice`), so the trees stay disjoint and a tree's use is the sum of its
//! inodes'.
//!
//! The limits live in the root's inode, and so does the use (format 3 on), in bytes of the
//! record `DiskInode` leaves to the engine (`inode::TREE_USED_BLOCKS`): every block and inode
//! allocated or freed is charged to its tree at that moment (`Meta::alloc_block` and the
//! others take the tree), and the use of each tree charged is written into its root's record
//! when the transaction is taken (`Meta::store_tree_use`), so it is journaled with the change
//! that made it. The roots are a list on disk (`chain`), read at open: opening a volume counts
//! nothing. An image of an older format had its use counted from the inode table once, at
//! its first open. An operation
//! that would pass a limit is refused with `DiskQuota` before anything changes, as a full
//! volume is with `NoSpace`; a write is refused whole (never short, which would read as a
//! full volume) if all of it does not fit.

use std::collections::{HashMap, HashSet};

use crate::cache::Meta;
use crate::error::{FsError, FsResult};
use crate::inode::{TREE_USED_BLOCKS, TREE_USED_INODES};
use crate::layout::{get_u64, put_u64};
use crate::store::BlockStore;

/// A tree's limits, and a number the engine keeps for its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Most 4 KiB blocks the tree may hold: data, directory, indirect and xattr blocks.
    pub max_blocks: u64,
    /// Most inodes, the root included.
    pub max_inodes: u64,
    /// Kept with the limits and otherwise ignored: the server stores an export's access
    /// mode here.
    pub tag: u32,
}

/// What a tree holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Blocks held by its inodes.
    pub blocks: u64,
    /// Its inodes, the root included.
    pub inodes: u64,
}

/// Every tree's limits and use, by root inode index.
#[derive(Debug, Default)]
pub(crate) struct Trees {
    map: HashMap<u32, (Quota, Usage)>,
    /// Trees made, charged or removed since the last transaction was taken: their roots'
    /// records are written then.
    changed: HashSet<u32>,
    /// Blocks reserved for layouts and not yet committed, by tree: they count against its
    /// room (`check`, `room`) as if used, but are no part of its kept use, which a crash
    /// (that frees them) must find right.
    held: HashMap<u32, u64>,
}

impl Trees {
    /// The tree rooted at `root`, if it is one.
    pub(crate) fn get(&self, root: u32) -> Option<(Quota, Usage)> {
        self.map.get(&root).copied()
    }

    /// Make `root` a tree with `quota` (its use kept), or change its limits.
    pub(crate) fn set(&mut self, root: u32, quota: Quota) {
        self.map.entry(root).or_default().0 = quota;
        self.changed.insert(root);
    }

    /// The tree rooted at `root` as its root's record keeps it (at open).
    pub(crate) fn load(&mut self, root: u32, quota: Quota, usage: Usage) {
        self.map.insert(root, (quota, usage));
    }

    /// `root` is no tree any more (its directory is gone).
    pub(crate) fn remove(&mut self, root: u32) {
        self.map.remove(&root);
        self.changed.insert(root);
    }

    /// Forget every tree (before they are counted again).
    pub(crate) fn clear(&mut self) {
        self.changed.extend(self.map.keys());
        self.map.clear();
    }

    /// Count `blocks` and `inodes` (either may be negative) to the tree `root`; nothing for
    /// tree 0, the volume outside every tree, nor for a tree whose root is gone (a file
    /// unlinked while open outlives it): that must not bring it back without limits.
    pub(crate) fn charge(&mut self, root: u32, blocks: i64, inodes: i64) {
        let Some((_, u)) = self.map.get_mut(&root) else {
            return;
        };
        u.blocks = u.blocks.saturating_add_signed(blocks);
        u.inodes = u.inodes.saturating_add_signed(inodes);
        self.changed.insert(root);
    }

    /// Count `blocks` (may be negative) reserved for layouts in tree `root` (`held`).
    pub(crate) fn hold(&mut self, root: u32, blocks: i64) {
        if root == 0 {
            return;
        }
        let n = self.held.entry(root).or_default();
        *n = n.saturating_add_signed(blocks);
        if *n == 0 {
            self.held.remove(&root);
        }
    }

    /// Blocks tree `root` holds or has reserved for layouts.
    fn taken(&self, root: u32, u: &Usage) -> u64 {
        u.blocks
            .saturating_add(self.held.get(&root).copied().unwrap_or(0))
    }

    /// Refuse with `DiskQuota` `blocks` and `inodes` more in tree `root`.
    pub(crate) fn check(&self, root: u32, blocks: u64, inodes: u64) -> FsResult<()> {
        let Some((q, u)) = self.get(root) else {
            return Ok(());
        };
        if self.taken(root, &u).saturating_add(blocks) > q.max_blocks
            || u.inodes.saturating_add(inodes) > q.max_inodes
        {
            return Err(FsError::DiskQuota);
        }
        Ok(())
    }

    /// Blocks tree `root` has room for (all there are outside every tree).
    pub(crate) fn room(&self, root: u32) -> u64 {
        match self.get(root) {
            Some((q, u)) => q.max_blocks.saturating_sub(self.taken(root, &u)),
            None => u64::MAX,
        }
    }
}

/// A tree's use as its root's inode record keeps it.
pub(crate) fn stored_use(record: &[u8]) -> Usage {
    Usage {
        blocks: get_u64(record, TREE_USED_BLOCKS),
        inodes: get_u64(record, TREE_USED_INODES),
    }
}

impl<S: BlockStore> Meta<S> {
    /// Write the use of every tree charged since the last transaction into its root's record
    /// (zeros for a tree removed), in the transaction being taken. A root is let go of only
    /// once its record is written: after an error the rest are written by the next try.
    pub(crate) fn store_tree_use(&mut self) -> FsResult<()> {
        let changed: Vec<u32> = self.trees.changed.iter().copied().collect();
        for root in changed {
            let u = self.trees.get(root).map(|(_, u)| u).unwrap_or_default();
            let (b, off) = self.geo.inode_location(root);
            let blk = self.block_mut(b)?;
            put_u64(blk, off + TREE_USED_BLOCKS, u.blocks);
            put_u64(blk, off + TREE_USED_INODES, u.inodes);
            self.trees.changed.remove(&root);
        }
        Ok(())
    }
}

/// May an inode of tree `tree` (slot `index`) get a name in a directory of tree `dir_tree`?
/// Only in its own tree, or, for a tree's root, outside every tree.
pub(crate) fn may_enter(tree: u32, index: u32, dir_tree: u32) -> FsResult<()> {
    if tree == dir_tree || (tree == index && dir_tree == 0) {
        Ok(())
    } else {
        Err(FsError::CrossDevice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Geometry, BLOCK_SIZE};
    use crate::store::{BlockStore, MemStore};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A store whose reads of one block fail (`u64::MAX`: none).
    struct FailingRead {
        inner: MemStore,
        block: AtomicU64,
    }

    impl BlockStore for FailingRead {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
            if offset / BLOCK_SIZE as u64 == self.block.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            self.inner.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
            self.inner.write_at(buf, offset)
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn len(&self) -> u64 {
            self.inner.len()
        }
    }

    #[test]
    fn a_roots_record_not_written_for_an_error_is_written_by_the_next_try() {
        let geo = Geometry::for_size(4096, Some(1024)).unwrap();
        let store = FailingRead {
            inner: MemStore::new(4096 * BLOCK_SIZE as u64),
            block: AtomicU64::new(u64::MAX),
        };
        let mut m = Meta::new(store, geo, 0);
        // Two roots in two inode-table blocks, one of them unreadable for a while.
        let roots = [20u32, 200];
        for (k, &root) in roots.iter().enumerate() {
            m.trees.set(root, Quota::default());
            m.trees.charge(root, 10 + k as i64, 1);
        }
        m.store
            .block
            .store(geo.inode_location(200).0, Ordering::SeqCst);
        assert!(m.store_tree_use().is_err());
        m.store.block.store(u64::MAX, Ordering::SeqCst);
        m.store_tree_use().unwrap();
        for (k, &root) in roots.iter().enumerate() {
            let (b, off) = geo.inode_location(root);
            let kept = stored_use(&m.block(b).unwrap()[off..]);
            let want = Usage {
                blocks: 10 + k as u64,
                inodes: 1,
            };
            assert_eq!(kept, want, "root {root}");
        }
    }

    #[test]
    fn limits_refuse_before_they_are_passed_and_tree_zero_has_none() {
        let mut t = Trees::default();
        t.set(
            7,
            Quota {
                max_blocks: 10,
                max_inodes: 2,
                tag: 0,
            },
        );
        t.charge(7, 9, 1);
        assert!(t.check(7, 1, 1).is_ok());
        assert!(matches!(t.check(7, 2, 0), Err(FsError::DiskQuota)));
        assert!(matches!(t.check(7, 0, 2), Err(FsError::DiskQuota)));
        assert_eq!(t.room(7), 1);
        t.charge(7, -4, -1);
        assert_eq!(
            t.get(7).unwrap().1,
            Usage {
                blocks: 5,
                inodes: 0
            }
        );
        t.charge(0, 100, 100);
        assert!(t.check(0, u64::MAX, u64::MAX).is_ok());
        assert!(may_enter(7, 3, 7).is_ok());
        assert!(may_enter(7, 7, 0).is_ok());
        assert!(matches!(may_enter(7, 3, 0), Err(FsError::CrossDevice)));
        assert!(matches!(may_enter(0, 3, 7), Err(FsError::CrossDevice)));
    }
}
