//! Lists of inodes kept on disk, as ext4 keeps its orphans: the superblock names the first
//! member, each member's inode record the next (0 ends the list). Two are kept: the files
//! unlinked while open (`List::Orphans`: a volume's open visits these, never every inode
//! slot) and the roots of quota trees (`List::Trees`: their limits and use are loaded at
//! open). A member is added or removed in the transaction of the change that makes it one or
//! ends it, so after a crash the list is as exact as the inodes it names.
//!
//! In memory each list is also known both ways (`Chain`), so adding and removing a member
//! touch at most the superblock, the member and its predecessor.

use std::collections::{HashMap, HashSet};

use crate::cache::Meta;
use crate::error::{FsError, FsResult};
use crate::inode::{ORPHAN_LINK, TREE_LINK};
use crate::layout::{get_u32, put_u32, SB_ORPHAN_HEAD_OFFSET, SB_TREE_HEAD_OFFSET};
use crate::store::BlockStore;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    /// Inodes with no link left that are (or were, before a crash) held open, or whose
    /// blocks are being freed in steps.
    Orphans,
    /// Roots of quota trees.
    Trees,
}

impl List {
    fn head_offset(self) -> usize {
        match self {
            List::Orphans => SB_ORPHAN_HEAD_OFFSET,
            List::Trees => SB_TREE_HEAD_OFFSET,
        }
    }

    fn link_offset(self) -> usize {
        match self {
            List::Orphans => ORPHAN_LINK,
            List::Trees => TREE_LINK,
        }
    }

    /// How fsck and errors name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            List::Orphans => "orphan list",
            List::Trees => "quota tree list",
        }
    }
}

/// One list as this run knows it: its head and each member's neighbours.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    head: u32,
    /// Member → (previous, next); 0 for none.
    links: HashMap<u32, (u32, u32)>,
}

impl Chain {
    /// True if `index` is on the list.
    pub(crate) fn contains(&self, index: u32) -> bool {
        self.links.contains_key(&index)
    }

    /// The members, from the head.
    pub(crate) fn members(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.links.len());
        let mut at = self.head;
        while at != 0 {
            out.push(at);
            at = self.links[&at].1;
        }
        out
    }
}

/// Follow a list from `head`, reading each member's link with `next`: the members in order,
/// or why it is no list (a member out of range, or named twice: a loop).
pub(crate) fn walk(
    list: List,
    head: u32,
    inode_count: u64,
    mut next: impl FnMut(u32) -> FsResult<u32>,
) -> FsResult<Vec<u32>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut at = head;
    while at != 0 {
        if at < 2 || at as u64 >= inode_count {
            return Err(FsError::Corrupt(format!(
                "the {} names inode slot {at}, outside the inode table",
                list.name()
            )));
        }
        if !seen.insert(at) {
            return Err(FsError::Corrupt(format!(
                "the {} runs in a loop at inode {at}",
                list.name()
            )));
        }
        out.push(at);
        at = next(at)?;
    }
    Ok(out)
}

/// An inode record's link for `list`, from its table block.
pub(crate) fn link_in(list: List, record: &[u8]) -> u32 {
    get_u32(record, list.link_offset())
}

impl<S: BlockStore> Meta<S> {
    fn chain(&mut self, list: List) -> &mut Chain {
        match list {
            List::Orphans => &mut self.orphan_list,
            List::Trees => &mut self.tree_list,
        }
    }

    fn write_head(&mut self, list: List, index: u32) -> FsResult<()> {
        put_u32(self.block_mut(0)?, list.head_offset(), index);
        self.chain(list).head = index;
        Ok(())
    }

    fn write_link(&mut self, list: List, index: u32, next: u32) -> FsResult<()> {
        let (b, off) = self.geo.inode_location(index);
        put_u32(self.block_mut(b)?, off + list.link_offset(), next);
        Ok(())
    }

    /// Read `list` from the image (the superblock names its head `head`): its members, in
    /// order. `Corrupt` if it runs outside the inode table or in a loop.
    pub(crate) fn load_list(&mut self, list: List, head: u32) -> FsResult<Vec<u32>> {
        let inode_count = self.geo.inode_count;
        let members = walk(list, head, inode_count, |i| {
            let (b, off) = self.geo.inode_location(i);
            Ok(link_in(list, &self.block(b)?[off..]))
        })?;
        let c = self.chain(list);
        *c = Chain {
            head,
            links: HashMap::new(),
        };
        for (k, &i) in members.iter().enumerate() {
            let prev = if k == 0 { 0 } else { members[k - 1] };
            let next = members.get(k + 1).copied().unwrap_or(0);
            c.links.insert(i, (prev, next));
        }
        Ok(members)
    }

    /// Put inode `index` first on `list`, if it is not on it.
    pub(crate) fn list_add(&mut self, list: List, index: u32) -> FsResult<()> {
        if self.chain(list).contains(index) {
            return Ok(());
        }
        let next = self.chain(list).head;
        self.write_link(list, index, next)?;
        self.write_head(list, index)?;
        let c = self.chain(list);
        if let Some(n) = c.links.get_mut(&next) {
            n.0 = index;
        }
        c.links.insert(index, (0, next));
        Ok(())
    }

    /// Take inode `index` off `list`, if it is on it.
    pub(crate) fn list_remove(&mut self, list: List, index: u32) -> FsResult<()> {
        let Some((prev, next)) = self.chain(list).links.remove(&index) else {
            return Ok(());
        };
        if prev == 0 {
            self.write_head(list, next)?;
        } else {
            self.write_link(list, prev, next)?;
            if let Some(p) = self.chain(list).links.get_mut(&prev) {
                p.1 = next;
            }
        }
        if let Some(n) = self.chain(list).links.get_mut(&next) {
            n.0 = prev;
        }
        self.write_link(list, index, 0)
    }

    /// Empty `list`, its members' links cleared.
    pub(crate) fn list_clear(&mut self, list: List) -> FsResult<()> {
        for i in self.chain(list).members() {
            self.write_link(list, i, 0)?;
        }
        self.write_head(list, 0)?;
        self.chain(list).links.clear();
        Ok(())
    }
}
