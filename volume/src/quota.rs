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
    /// (zeros for a tree removed), in the transaction being taken.
    pub(crate) fn store_tree_use(&mut self) -> FsResult<()> {
        let changed: Vec<u32> = self.trees.changed.drain().collect();
        for root in changed {
            let u = self.trees.get(root).map(|(_, u)| u).unwrap_or_default();
            let (b, off) = self.geo.inode_location(root);
            let blk = self.block_mut(b)?;
            put_u64(blk, off + TREE_USED_BLOCKS, u.blocks);
            put_u64(blk, off + TREE_USED_INODES, u.inodes);
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
