//! `Volume`: every operation a file system client needs, over one block store.
//! Metadata changes are made in the cache and reach the image as journal transactions
//! (`commit`); file data goes straight to its blocks (ordered mode: data before the metadata
//! that points at it). Correct as long as this is the store's only writer.
//!
//! This file owns the volume's state, opening it, and what every operation shares (finding
//! an inode, directory indexes, freeing an inode at its last link and close). The operations
//! live by concern: `names` and `rename`, `data`, `attrs`, `xattrs`; `commit` holds the one
//! commit policy; `plan` the I/O done without the engine.

mod attrs;
mod commit;
mod data;
mod dircache;
mod layouts;
mod lists;
mod names;
mod plan;
mod rename;
mod trees;
mod xattrs;

use std::collections::HashMap;
use std::time::Instant;

use crate::attr::{Attr, Ino, StatFs, TimeSpec};
use crate::bmap::{self, MAX_BLOCKS};
use crate::cache::Meta;
use crate::chain::List;
use crate::dir::DirIndex;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::journal;
use crate::layout::{
    put_u32, split_ino, Superblock, BLOCK_SIZE, FORMAT_VERSION, LISTS_SINCE, MAX_NAME, ROOT_INDEX,
    ROOT_INO, SB_VERSION_OFFSET,
};
use crate::store::BlockStore;

pub use commit::{CommitHook, DurabilityHook};
pub use layouts::{Extent, Layout, MAX_LAYOUT_BLOCKS};
use plan::{DataInFlight, PendingWrite};
pub use plan::{ReadPlan, WritePlan};

/// Most hard links one inode may have.
pub const LINK_MAX: u32 = 65_000;
/// Largest file size in bytes.
pub const MAX_FILE_SIZE: u64 = MAX_BLOCKS * BLOCK_SIZE as u64;

/// `setxattr` flag: fail with `Exists` if the attribute exists.
pub const XATTR_CREATE: u32 = 1;
/// `setxattr` flag: fail with `NoAttr` if the attribute does not exist.
pub const XATTR_REPLACE: u32 = 2;
/// `fallocate` mode bit: leave the size as it is.
pub const FALLOC_KEEP_SIZE: u32 = 0x01;
/// `fallocate` mode bit: free the range (with `FALLOC_KEEP_SIZE`).
pub const FALLOC_PUNCH_HOLE: u32 = 0x02;
/// `fallocate` mode bit: make the range read as zeros.
pub const FALLOC_ZERO_RANGE: u32 = 0x10;

/// How a rename treats an existing target (`renameat2` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// Fail with `Exists` rather than replace the target.
    pub noreplace: bool,
    /// Swap source and target; both must exist.
    pub exchange: bool,
}

/// One file system on one block store: every operation, its state and its commits.
pub struct Volume<S: BlockStore> {
    m: Meta<S>,
    sb: Superblock,
    /// Directory indexes built so far, by inode index, the least recently used dropped
    /// past a bound.
    dirs: dircache::DirCache,
    /// Open handles per inode: an unlinked file lives on until its last close.
    opens: HashMap<u32, u32>,
    last_commit: Instant,
    /// The sequence number of the newest transaction found durable at open.
    recovered_seq: u64,
    /// Run before any transaction is made durable (`set_durability_hook`).
    durability_hook: Option<DurabilityHook>,
    /// Inodes left unlinked-but-open by the last run, kept until `reclaim_orphans`.
    orphans: Vec<u32>,
    /// Inodes with no link and no open left whose blocks, too many for one transaction, are
    /// being freed a step per commit (`reap`). Gone for every caller (`get` says `Stale`).
    reaping: Vec<u32>,
    /// Planned writes whose data is not yet on the store.
    data_in_flight: std::sync::Arc<DataInFlight>,
    /// Planned reads not yet done.
    reads_in_flight: std::sync::Arc<DataInFlight>,
    /// Writes planned and not yet finished, by inode index. An operation that changes the size
    /// or zeroes bytes settles them first (`settle_writes`).
    pending_writes: HashMap<u32, Vec<PendingWrite>>,
    next_write_id: u64,
    /// Blocks just allocated to pending writes, their data not yet known to be written: a
    /// read reads them as the hole they were, never their old contents (a deleted file's).
    /// Counted: a block freed under a pending write may be given to a second one.
    unwritten: HashMap<u64, u32>,
    /// Commits are made by the caller (`SharedVolume::commit`), never inside an operation:
    /// operations only let `commit_urgent` say that one is due.
    commits_outside: bool,
    /// The inode number (generation included) the next create must take (`create_again`).
    again: Option<u64>,
    /// Told after every commit that succeeded (`set_commit_hook`).
    commit_hook: Option<CommitHook>,
    /// The newest transaction of the commit in flight.
    commit_upto: u64,
    /// Layouts handed out (direct mode), and the blocks reserved for them.
    layouts: layouts::Layouts,
}

impl<S: BlockStore> Volume<S> {
    /// Open a volume: check the superblock, replay the journal, count free space, reclaim
    /// inodes left unlinked-but-open by the last run.
    pub fn open(store: S) -> FsResult<Volume<S>> {
        let mut v = Volume::open_keeping_orphans(store)?;
        v.reclaim_orphans()?;
        Ok(v)
    }

    /// Open a volume as `open` does, but keep the inodes left unlinked-but-open by the last
    /// run (`orphans`): a server whose clients may still hold them open reclaims them with
    /// `reclaim_orphans` once it knows which are held (`open_file`). Reads the on-disk lists
    /// of those inodes and of quota trees, never every inode slot; an image of a format
    /// before `LISTS_SINCE` has them made by one pass over its inode table, and is in this
    /// build's format from the open's commit on.
    pub fn open_keeping_orphans(store: S) -> FsResult<Volume<S>> {
        Volume::open_with(store, false)
    }

    /// Open a volume as `open_keeping_orphans` does, but make the on-disk lists of files
    /// unlinked while open and of quota trees, and each tree's kept use, again from one pass
    /// over the inode table, whatever they say now (`rwxfs fsck --repair`). The pass commits
    /// in steps that each fit the journal; a power cut before its end leaves an image whose
    /// next open makes them again.
    pub fn open_rebuilding_lists(store: S) -> FsResult<Volume<S>> {
        Volume::open_with(store, true)
    }

    fn open_with(store: S, rebuild: bool) -> FsResult<Volume<S>> {
        let mut b0 = vec![0u8; BLOCK_SIZE];
        store.read_at(&mut b0, 0)?;
        let sb = Superblock::decode(&b0)?;
        let need = sb.geometry.total_blocks * BLOCK_SIZE as u64;
        if store.len() < need {
            return Err(FsError::NotAnImage(format!(
                "image is {} bytes but its superblock says {need}: truncated",
                store.len()
            )));
        }
        let replayed = journal::replay(&store, &sb.geometry, sb.version)?.unwrap_or(0);
        // Replay may have brought a newer superblock home. Its number is that of the newest
        // whole transaction, whether the journal still holds it or a torn successor does.
        store.read_at(&mut b0, 0)?;
        let mut sb = Superblock::decode(&b0)?;
        let seq = replayed.max(sb.last_seq);
        let rebuild = rebuild || sb.version < LISTS_SINCE;
        let mut m = Meta::new(store, sb.geometry, seq);
        if rebuild || (sb.free_blocks == 0 && sb.free_inodes == 0) {
            m.count_free()?;
        } else {
            m.set_free(sb.free_blocks, sb.free_inodes);
        }
        // A new incarnation: counted in the superblock, journaled with the open's commit.
        sb.mounts += 1;
        // Lists made again take a commit per step: until the last, the image says it keeps
        // none (a format before them), so a power cut in between leaves one whose next open
        // makes them again. It is in this build's format from the open's commit on.
        if rebuild {
            sb.version = sb.version.min(LISTS_SINCE - 1);
        }
        m.block_mut(0)?.copy_from_slice(&sb.encode());
        let mut v = Volume {
            m,
            sb,
            dirs: Default::default(),
            opens: HashMap::new(),
            last_commit: Instant::now(),
            recovered_seq: seq,
            durability_hook: None,
            data_in_flight: Default::default(),
            reads_in_flight: Default::default(),
            pending_writes: HashMap::new(),
            next_write_id: 0,
            unwritten: Default::default(),
            commits_outside: false,
            orphans: Vec::new(),
            reaping: Vec::new(),
            again: None,
            commit_hook: None,
            commit_upto: 0,
            layouts: Default::default(),
        };
        v.orphans = if rebuild {
            v.rebuild_lists()?
        } else {
            v.load_lists()?
        };
        v.sb.version = FORMAT_VERSION;
        put_u32(v.m.block_mut(0)?, SB_VERSION_OFFSET, FORMAT_VERSION);
        v.commit()?;
        Ok(v)
    }

    /// The superblock as this run knows it.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The store the volume lives on.
    pub fn store(&self) -> &S {
        &self.m.store
    }

    /// Inodes (by index) left unlinked-but-open by the last run and not yet reclaimed.
    pub fn orphans(&self) -> &[u32] {
        &self.orphans
    }

    /// Free the orphans found at open that nothing holds open now, and commit; those held
    /// are freed at their last close. Returns how many were freed.
    pub fn reclaim_orphans(&mut self) -> FsResult<usize> {
        let mut freed = 0;
        for index in std::mem::take(&mut self.orphans) {
            if self.opens.contains_key(&index) {
                continue;
            }
            let ino = self.m.read_inode(index)?;
            if !ino.is_free() && ino.nlink == 0 {
                self.destroy(index, ino)?;
                self.after_op()?;
                freed += 1;
            }
        }
        // Behind `SharedVolume` its commit path makes this durable, as any other change.
        if freed > 0 && !self.commits_outside {
            self.commit()?;
        }
        Ok(freed)
    }

    // ---- helpers ----

    fn get(&mut self, ino: u64) -> FsResult<(u32, DiskInode)> {
        let (index, gen) = if ino == ROOT_INO {
            (ROOT_INDEX, None)
        } else {
            let (i, g) = split_ino(ino);
            (i, Some(g))
        };
        if index == 0
            || index as u64 >= self.sb.geometry.inode_count
            || self.reaping.contains(&index)
        {
            return Err(FsError::Stale);
        }
        let inode = self.m.read_inode(index)?;
        if inode.is_free() || gen.is_some_and(|g| g != inode.generation) {
            return Err(FsError::Stale);
        }
        Ok((index, inode))
    }

    fn get_dir(&mut self, ino: u64) -> FsResult<(u32, DiskInode)> {
        let (i, d) = self.get(ino)?;
        if !d.is_dir() {
            return Err(FsError::NotDir);
        }
        Ok((i, d))
    }

    fn put(&mut self, index: u32, inode: &DiskInode) -> FsResult<()> {
        self.m.write_inode(index, inode)
    }

    /// Take a directory's index out of the map (building it if needed); put it back with
    /// `self.dirs.insert`. An error in between just drops it: it is rebuilt from the blocks.
    fn take_dir(&mut self, index: u32, dir: &DiskInode) -> FsResult<DirIndex> {
        match self.dirs.remove(&index) {
            Some(d) => Ok(d),
            None => DirIndex::load(&mut self.m, dir),
        }
    }

    /// Free an inode whose last link and last open are gone. Its blocks go in steps if they
    /// are more than a transaction holds: used alone, the engine commits between steps;
    /// behind `SharedVolume` the inode is left to `reap`, unlinked (an orphan, should the
    /// volume stop first), and the operation that dropped it is done.
    fn destroy(&mut self, index: u32, inode: DiskInode) -> FsResult<()> {
        self.cutting(index, 0, u64::MAX, |v| v.destroy_held(index, inode))
    }

    fn destroy_held(&mut self, index: u32, mut inode: DiskInode) -> FsResult<()> {
        // On the orphan list until its last block is gone: a crash between the steps leaves
        // it for the next open to finish (a no-op if it is on it already).
        self.m.list_add(List::Orphans, index)?;
        let limit = self.step_limit();
        let full = |m: &Meta<S>| m.dirty_count() > limit;
        while let Some(end) = bmap::truncate_blocks_until(&mut self.m, &mut inode, 0, &full)? {
            inode.size = inode.size.min(end * BLOCK_SIZE as u64);
            self.put(index, &inode)?;
            if self.commits_outside {
                self.reaping.push(index);
                return Ok(());
            }
            self.commit()?;
        }
        if inode.xattr != 0 {
            self.m.free_block(inode.xattr as u64, inode.tree)?;
        }
        let gen = inode.generation;
        let fresh = DiskInode {
            generation: gen,
            ..DiskInode::default()
        };
        self.put(index, &fresh)?;
        self.m.free_inode(index, inode.tree)?;
        self.m.list_remove(List::Orphans, index)?;
        if inode.tree == index {
            self.m.trees.remove(index);
            self.m.list_remove(List::Trees, index)?;
        }
        self.dirs.remove(&index);
        Ok(())
    }

    /// One step of freeing the inodes `destroy` left behind `SharedVolume`: true if it did
    /// one (its changes then wait for the next commit), false if none is left.
    pub fn reap(&mut self) -> FsResult<bool> {
        if self.reaping.is_empty() {
            return Ok(false);
        }
        let index = self.reaping.remove(0);
        let inode = self.m.read_inode(index)?;
        self.destroy(index, inode)?;
        Ok(true)
    }

    fn drop_link(&mut self, index: u32, mut inode: DiskInode, now: TimeSpec) -> FsResult<()> {
        inode.nlink = if inode.is_dir() {
            0
        } else {
            inode.nlink.saturating_sub(1)
        };
        inode.ctime = now;
        if inode.nlink == 0 && self.opens.get(&index).copied().unwrap_or(0) == 0 {
            return self.destroy(index, inode);
        }
        self.put(index, &inode)?;
        if inode.nlink == 0 {
            // Unlinked while open: the next open finds it there should this run stop first.
            self.m.list_add(List::Orphans, index)?;
        }
        Ok(())
    }

    // ---- open files ----

    /// Count an open handle on the inode: unlinked, it lives on until `release_file`.
    pub fn open_file(&mut self, ino: Ino) -> FsResult<Attr> {
        let ino = ino.get();
        let (i, d) = self.get(ino)?;
        *self.opens.entry(i).or_insert(0) += 1;
        Ok(d.attr(i))
    }

    /// Last close of an unlinked file frees it.
    pub fn release_file(&mut self, ino: Ino) -> FsResult<()> {
        let ino = ino.get();
        let (index, _) = split_ino(ino);
        let left = match self.opens.get_mut(&index) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => return Ok(()),
        };
        if left == 0 {
            self.opens.remove(&index);
            if let Ok((i, d)) = self.get(ino) {
                if d.nlink == 0 {
                    self.destroy(i, d)?;
                    self.after_op()?;
                }
            }
        }
        Ok(())
    }

    // ---- volume ----

    /// Blocks and inodes, in all and free. Blocks held for layouts taken from a holder
    /// that may still write them are not free (no one gets them until it is done).
    pub fn statfs(&mut self) -> StatFs {
        let g = &self.sb.geometry;
        let free = self.m.free_blocks.saturating_sub(self.m.held_blocks());
        StatFs {
            blocks: g.data_blocks(),
            bfree: free,
            bavail: free,
            files: g.inode_count - 2,
            ffree: self.m.free_inodes,
            bsize: BLOCK_SIZE as u32,
            namelen: MAX_NAME as u32,
        }
    }
}
