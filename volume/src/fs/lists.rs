//! What a volume's open learns from the on-disk lists (`crate::chain`): the files left
//! unlinked while open by the last run, and every quota tree's limits and use. Reading them
//! costs what they hold, not what the volume holds. `rebuild_lists` makes them again from
//! one pass over the inode table: for an image of an older format, and for `fsck --repair`
//! (`Volume::open_rebuilding_lists`).

use std::collections::HashMap;

use crate::chain::List;
use crate::error::{FsError, FsResult};
use crate::quota;
use crate::store::BlockStore;

use super::Volume;

impl<S: BlockStore> Volume<S> {
    /// Read both lists: the trees into the engine's table, and the inodes left unlinked
    /// while open (returned). A member that is not what its list holds (a slot freed, a
    /// file linked again, a directory no tree's root) is taken off it; a list that runs
    /// outside the inode table or in a loop is `Corrupt`. Those taken off are committed in
    /// steps that each fit the journal (each leaves a sound list behind).
    pub(super) fn load_lists(&mut self) -> FsResult<Vec<u32>> {
        for root in self.load_list(List::Trees, self.sb.tree_head)? {
            let d = self.m.read_inode(root)?;
            if d.is_free() || !d.is_dir() || d.tree != root {
                self.m.list_remove(List::Trees, root)?;
                self.rebuild_step()?;
                continue;
            }
            let (b, off) = self.sb.geometry.inode_location(root);
            let used = quota::stored_use(&self.m.block(b)?[off..]);
            self.m.trees.load(root, d.quota, used);
        }
        let mut found = Vec::new();
        for index in self.load_list(List::Orphans, self.sb.orphan_head)? {
            let d = self.m.read_inode(index)?;
            if d.is_free() || d.nlink != 0 {
                self.m.list_remove(List::Orphans, index)?;
                self.rebuild_step()?;
                continue;
            }
            found.push(index);
        }
        Ok(found)
    }

    fn load_list(&mut self, list: List, head: u32) -> FsResult<Vec<u32>> {
        self.m.load_list(list, head).map_err(|e| match e {
            FsError::Corrupt(why) => {
                FsError::Corrupt(format!("{why}: `rwxfs fsck --repair` makes the list again"))
            }
            e => e,
        })
    }

    /// One pass over the inode table: the inodes with no link left (returned, and the
    /// orphan list made of them), every quota tree's root (the tree list) with its limits,
    /// and each tree's use counted from its inodes (kept in its root). Committed in steps
    /// that each fit the journal, however many members the lists get: the caller keeps the
    /// image saying it has no lists until the last (`open_with`).
    pub(super) fn rebuild_lists(&mut self) -> FsResult<Vec<u32>> {
        self.m.list_clear(List::Orphans)?;
        self.m.list_clear(List::Trees)?;
        self.m.trees.clear();
        let mut found = Vec::new();
        // A tree's inodes may come before its root in the table: counted apart, charged to
        // the trees whose roots were found.
        let mut used: HashMap<u32, (i64, i64)> = HashMap::new();
        for index in 2..self.sb.geometry.inode_count as u32 {
            if !self.m.inode_allocated(index)? {
                continue;
            }
            let ino = self.m.read_inode(index)?;
            if ino.is_free() {
                continue;
            }
            if ino.nlink == 0 {
                found.push(index);
                self.m.list_add(List::Orphans, index)?;
            }
            if ino.tree == index && ino.is_dir() {
                self.m.trees.set(index, ino.quota);
                self.m.list_add(List::Trees, index)?;
            }
            let u = used.entry(ino.tree).or_default();
            *u = (u.0 + ino.blocks as i64, u.1 + 1);
            self.rebuild_step()?;
        }
        for (root, (blocks, inodes)) in used {
            self.m.trees.charge(root, blocks, inodes);
            self.m.store_tree_use()?;
            self.rebuild_step()?;
        }
        Ok(found)
    }

    /// Commit what the open changed in the lists so far once half the journal is pending.
    fn rebuild_step(&mut self) -> FsResult<()> {
        if self.commit_urgent() {
            self.commit()?;
        }
        Ok(())
    }
}
