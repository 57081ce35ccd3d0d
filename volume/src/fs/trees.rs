//! Quota trees as callers see them (`crate::quota` says how they are kept): making a
//! directory a tree's root, changing its limits, a tree's use, and `statfs` from inside one.

use crate::attr::{Ino, StatFs};
use crate::error::{FsError, FsResult};
use crate::layout::{make_ino, ROOT_INDEX};
use crate::quota::{Quota, Usage};
use crate::store::BlockStore;

use super::Volume;

impl<S: BlockStore> Volume<S> {
    /// Make directory `ino` the root of a quota tree limited by `quota`, or give a root new
    /// limits. A directory becomes a root only while it is empty, outside every tree and not
    /// the volume's root (`Invalid`); a root's limits may not fall below what its tree holds
    /// (`DiskQuota`). Nothing changes when refused.
    pub fn set_quota(&mut self, ino: Ino, quota: Quota) -> FsResult<()> {
        let (i, mut d) = self.get_dir(ino.get())?;
        let used = match self.m.trees.get(i) {
            Some((_, used)) if d.tree == i => used,
            _ => {
                let dir = self.take_dir(i, &d)?;
                let empty = dir.is_empty();
                self.dirs.insert(i, dir);
                if i == ROOT_INDEX || d.tree != 0 || !empty {
                    return Err(FsError::Invalid);
                }
                Usage {
                    blocks: d.blocks,
                    inodes: 1,
                }
            }
        };
        if quota.max_blocks < used.blocks || quota.max_inodes < used.inodes {
            return Err(FsError::DiskQuota);
        }
        let new_tree = d.tree != i;
        d.tree = i;
        d.quota = quota;
        self.put(i, &d)?;
        self.m.trees.set(i, quota);
        if new_tree {
            self.m.list_add(crate::chain::List::Trees, i)?;
            // The directory's own inode and blocks move from the volume into its tree.
            self.m
                .trees
                .charge(i, used.blocks as i64, used.inodes as i64);
        }
        self.after_op()
    }

    /// The quota tree `ino` is in: its root's inode number, its limits and its use; `None`
    /// outside every tree.
    pub fn quota_of(&mut self, ino: Ino) -> FsResult<Option<(Ino, Quota, Usage)>> {
        let (_, d) = self.get(ino.get())?;
        if d.tree == 0 {
            return Ok(None);
        }
        let root = self.m.read_inode(d.tree)?;
        Ok(self
            .m
            .trees
            .get(d.tree)
            .map(|(q, u)| (Ino::new(make_ino(d.tree, root.generation)), q, u)))
    }

    /// `statfs` as seen from `ino`: inside a quota tree, its limits are the sizes and what
    /// is left of them (and of the volume) is free, as `df` shows a project quota.
    pub fn statfs_at(&mut self, ino: Ino) -> FsResult<StatFs> {
        let all = self.statfs();
        let (_, d) = self.get(ino.get())?;
        let Some((q, u)) = self.m.trees.get(d.tree) else {
            return Ok(all);
        };
        let bfree = q.max_blocks.saturating_sub(u.blocks).min(all.bfree);
        Ok(StatFs {
            blocks: q.max_blocks,
            bfree,
            bavail: bfree.min(all.bavail),
            files: q.max_inodes,
            ffree: q.max_inodes.saturating_sub(u.inodes).min(all.ffree),
            ..all
        })
    }
}
