//! `Volume`: every operation a file system client needs, over one block store.
//! Metadata changes are made in the cache and reach the image as journal transactions
//! (`commit`); file data goes straight to its blocks (ordered mode: data before the metadata
//! that points at it). Correct as long as this is the store's only writer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::attr::{Attr, DirEntry, FileKind, SetAttr, SetTime, StatFs, TimeSpec};
use crate::bmap::{self, MAX_BLOCKS};
use crate::cache::Meta;
use crate::cache::PreparedCommit;

/// Where a read's bytes are on disk (`Volume::plan_read`). While it lives, no commit ends:
/// blocks freed since it was planned are not handed out again under it.
#[derive(Debug, Default)]
pub struct ReadPlan {
    len: usize,
    /// (disk offset, start, end in the output); the rest of the output is holes (zeros).
    runs: Vec<(u64, usize, usize)>,
    _token: InFlightToken,
}

impl ReadPlan {
    /// Read the planned bytes from `store`.
    pub fn execute<S: BlockStore + ?Sized>(&self, store: &S) -> FsResult<Vec<u8>> {
        let mut out = vec![0u8; self.len];
        for &(disk, s, e) in &self.runs {
            store.read_at(&mut out[s..e], disk)?;
        }
        Ok(out)
    }
}
/// Disk I/O planned with the engine and done without it. For writes of file data, a commit
/// waits until there are none, so no transaction makes blocks part of a file before their
/// data is written (ordered mode); for reads, the end of a commit waits, so no block a read
/// was planned on is handed out again (to another file) while it is being read.
#[derive(Default)]
pub(crate) struct DataInFlight {
    count: std::sync::Mutex<usize>,
    done: std::sync::Condvar,
}

impl DataInFlight {
    fn begin(self: &std::sync::Arc<Self>) -> InFlightToken {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        InFlightToken(Some(self.clone()))
    }

    fn wait_none(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.done.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One planned I/O's place among those in flight; dropping it ends it.
#[derive(Default)]
struct InFlightToken(Option<std::sync::Arc<DataInFlight>>);

impl std::fmt::Debug for InFlightToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlightToken")
    }
}

impl Drop for InFlightToken {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            *f.count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            f.done.notify_all();
        }
    }
}

enum Piece {
    /// Bytes `start..end` of the data go to this disk offset.
    Data(u64, usize, usize),
    /// A freshly allocated block written partially: its whole image, zero-padded.
    Owned(u64, Vec<u8>),
}

/// A write whose blocks are allocated and mapped (`Volume::plan_write`): its data goes to the
/// store without the engine (`execute`), then `Volume::finish_write` sets the size and times.
pub struct WritePlan {
    ino: u64,
    /// Its place among the inode's pending writes (`Volume::pending_writes`).
    id: u64,
    offset: u64,
    /// Bytes of the data that have blocks: all, unless space ran out part way.
    n: usize,
    failed: Option<FsError>,
    pieces: Vec<Piece>,
    token: InFlightToken,
    /// Set if `execute` failed: whatever settles the write then unmaps its fresh blocks.
    io_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl WritePlan {
    /// Write the data where the plan says; the commit that waits for it may then go on.
    pub fn execute<S: BlockStore + ?Sized>(&mut self, store: &S, data: &[u8]) -> FsResult<()> {
        let r = (|| {
            for p in &self.pieces {
                match p {
                    Piece::Data(disk, s, e) => store.write_at(&data[*s..*e], *disk)?,
                    Piece::Owned(disk, blk) => store.write_at(blk, *disk)?,
                }
            }
            Ok(())
        })();
        if r.is_err() {
            // Before the token goes: whoever waits for it then sees the failure.
            self.io_failed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        drop(self.token.0.take().map(|f| InFlightToken(Some(f))));
        r
    }
}

use crate::dir::DirIndex;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::journal;
use crate::layout::{
    make_ino, split_ino, Superblock, BLOCK_SIZE, MAX_NAME, MAX_SYMLINK, ROOT_INDEX, ROOT_INO,
};
use crate::store::BlockStore;
use crate::xattr;

/// Most hard links one inode may have.
pub const LINK_MAX: u32 = 65_000;
/// Largest file size in bytes.
pub const MAX_FILE_SIZE: u64 = MAX_BLOCKS * BLOCK_SIZE as u64;

pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;
pub const FALLOC_KEEP_SIZE: u32 = 0x01;
pub const FALLOC_PUNCH_HOLE: u32 = 0x02;
pub const FALLOC_ZERO_RANGE: u32 = 0x10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

pub struct Volume<S: BlockStore> {
    m: Meta<S>,
    sb: Superblock,
    /// Directory indexes built so far, by inode index.
    dirs: HashMap<u32, DirIndex>,
    /// Open handles per inode: an unlinked file lives on until its last close.
    opens: HashMap<u32, u32>,
    last_commit: Instant,
    /// The sequence number of the newest transaction found durable at open.
    recovered_seq: u64,
    /// Run before any transaction is made durable (`set_durability_hook`).
    durability_hook: Option<DurabilityHook>,
    /// Inodes left unlinked-but-open by the last run, kept until `reclaim_orphans`.
    orphans: Vec<u32>,
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
}

/// Told, after every commit that succeeded, the newest transaction now durable.
pub type CommitHook = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Something that must be durable before any later transaction is: called at every commit,
/// before the journal write; an error fails the commit.
pub type DurabilityHook = std::sync::Arc<dyn Fn() -> FsResult<()> + Send + Sync>;

/// A write planned and not yet finished (`Volume::plan_write`).
struct PendingWrite {
    id: u64,
    /// The end of its range: the size it grows the file to.
    end: u64,
    /// Blocks allocated for it (logical, physical), holding garbage until its data is written.
    fresh: Vec<(u64, u64)>,
    /// Its data failed to reach the store (`WritePlan::io_failed`).
    io_failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Where a write's data goes (`Volume::map_for_write`).
struct Mapping {
    pieces: Vec<Piece>,
    /// Bytes of the data that have blocks: all, unless space ran out part way.
    n: usize,
    failed: Option<FsError>,
    /// Blocks allocated for it (logical, physical).
    fresh: Vec<(u64, u64)>,
}

/// What a create makes: the new inode's mode, owner and device, and the blocks of its own it
/// needs at once (a symlink's target).
struct NewInode {
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u32,
    data_blocks: u64,
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > MAX_NAME {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::Invalid);
    }
    Ok(())
}

fn resolve_time(t: SetTime, now: TimeSpec) -> TimeSpec {
    match t {
        SetTime::At(t) => t,
        SetTime::Now => now,
    }
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
    /// `reclaim_orphans` once it knows which are held (`open_file`).
    pub fn open_keeping_orphans(store: S) -> FsResult<Volume<S>> {
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
        let replayed = journal::replay(&store, &sb.geometry)?.unwrap_or(0);
        // Replay may have brought a newer superblock home. Its number is that of the newest
        // whole transaction, whether the journal still holds it or a torn successor does.
        store.read_at(&mut b0, 0)?;
        let mut sb = Superblock::decode(&b0)?;
        let seq = replayed.max(sb.last_seq);
        let mut m = Meta::new(store, sb.geometry, seq);
        m.count_free()?;
        // A new incarnation: counted in the superblock, journaled with the open's commit.
        sb.mounts += 1;
        m.block_mut(0)?.copy_from_slice(&sb.encode());
        let mut v = Volume {
            m,
            sb,
            dirs: HashMap::new(),
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
            again: None,
            commit_hook: None,
            commit_upto: 0,
        };
        v.orphans = v.find_orphans()?;
        v.commit()?;
        Ok(v)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    pub fn store(&self) -> &S {
        &self.m.store
    }

    fn find_orphans(&mut self) -> FsResult<Vec<u32>> {
        let mut found = Vec::new();
        for index in 2..self.sb.geometry.inode_count as u32 {
            if !self.m.inode_allocated(index)? {
                continue;
            }
            let ino = self.m.read_inode(index)?;
            if !ino.is_free() && ino.nlink == 0 {
                found.push(index);
            }
        }
        Ok(found)
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
        if index == 0 || index as u64 >= self.sb.geometry.inode_count {
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

    /// The end of an operation: used alone, the engine commits once half the journal is
    /// pending; behind `SharedVolume`, which commits outside the engine's lock, it only lets
    /// `commit_urgent` say so (a commit here could overlap the one in flight).
    fn after_op(&mut self) -> FsResult<()> {
        if self.commit_urgent() && !self.commits_outside {
            self.commit()?;
        }
        Ok(())
    }

    /// A long operation's step boundary, where it has left the volume consistent: once a
    /// commit is due, the engine used alone commits and goes on; behind `SharedVolume` it
    /// stops with `Again`, and `SharedVolume::run` commits and calls the operation again,
    /// which goes on from where it stopped. No transaction outgrows the journal, so every
    /// one is atomic.
    fn step(&mut self) -> FsResult<()> {
        if !self.commit_urgent() {
            return Ok(());
        }
        if self.commits_outside {
            return Err(FsError::Again);
        }
        self.commit()
    }

    /// Free an inode whose last link and last open are gone.
    fn destroy(&mut self, index: u32, mut inode: DiskInode) -> FsResult<()> {
        bmap::truncate_blocks(&mut self.m, &mut inode, 0)?;
        if inode.xattr != 0 {
            self.m.free_block(inode.xattr as u64)?;
        }
        let gen = inode.generation;
        let fresh = DiskInode {
            generation: gen,
            ..DiskInode::default()
        };
        self.put(index, &fresh)?;
        self.m.free_inode(index)?;
        self.dirs.remove(&index);
        Ok(())
    }

    fn drop_link(&mut self, index: u32, mut inode: DiskInode, now: TimeSpec) -> FsResult<()> {
        inode.nlink = if inode.is_dir() {
            0
        } else {
            inode.nlink.saturating_sub(1)
        };
        inode.ctime = now;
        if inode.nlink == 0 && self.opens.get(&index).copied().unwrap_or(0) == 0 {
            self.destroy(index, inode)
        } else {
            self.put(index, &inode)
        }
    }

    // ---- lookups ----

    pub fn lookup(&mut self, parent: u64, name: &[u8]) -> FsResult<Attr> {
        if name.len() > MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        let (pi, pd) = self.get_dir(parent)?;
        if name == b"." {
            return Ok(pd.attr(pi));
        }
        if name == b".." {
            return self.getattr(if pi == ROOT_INDEX {
                ROOT_INO
            } else {
                pd.parent
            });
        }
        let d = self.take_dir(pi, &pd)?;
        let slot = d.get(name);
        self.dirs.insert(pi, d);
        let slot = slot.ok_or(FsError::NotFound)?;
        self.getattr(slot.ino).map_err(|e| match e {
            FsError::Stale => FsError::Corrupt(format!("entry names a free inode {}", slot.ino)),
            e => e,
        })
    }

    pub fn getattr(&mut self, ino: u64) -> FsResult<Attr> {
        let (i, d) = self.get(ino)?;
        Ok(d.attr(i))
    }

    pub fn setattr(&mut self, ino: u64, s: SetAttr) -> FsResult<Attr> {
        let (i, mut d) = self.get(ino)?;
        let now = TimeSpec::now();
        if let Some(size) = s.size {
            if d.is_dir() {
                return Err(FsError::IsDir);
            }
            if size > MAX_FILE_SIZE {
                return Err(FsError::FileTooBig);
            }
            self.settle_writes(i, &mut d)?;
            self.resize(&mut d, size)?;
            d.mtime = now;
            d.ctime = now;
        }
        if let Some(mode) = s.mode {
            d.mode = (d.mode & libc::S_IFMT) | (mode & 0o7777);
            d.ctime = now;
        }
        if let Some(uid) = s.uid {
            d.uid = uid;
            d.ctime = now;
        }
        if let Some(gid) = s.gid {
            d.gid = gid;
            d.ctime = now;
        }
        if let Some(t) = s.atime {
            d.atime = resolve_time(t, now);
            d.ctime = now;
        }
        if let Some(t) = s.mtime {
            d.mtime = resolve_time(t, now);
            d.ctime = now;
        }
        if let Some(t) = s.ctime {
            d.ctime = t;
        }
        // A change of owner drops setuid (and setgid on a group-executable file), as Linux
        // does, unless the same call sets the mode; a truncation by an unprivileged caller
        // drops them too.
        let chown = (s.uid.is_some() || s.gid.is_some()) && s.mode.is_none();
        let kill = (chown || (s.kill_priv && s.size.is_some())) && !d.is_dir();
        self.put(i, &d)?;
        if kill {
            self.kill_priv(ino)?;
        }
        self.after_op()?;
        let (i, d) = self.get(ino)?;
        Ok(d.attr(i))
    }

    /// Drop what an unprivileged write, truncation or change of owner takes from a file:
    /// setuid, setgid if the group may execute it, and file capabilities.
    pub fn kill_priv(&mut self, ino: u64) -> FsResult<()> {
        let (i, mut d) = self.get(ino)?;
        let mut mode = d.mode & !libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            mode &= !libc::S_ISGID;
        }
        if mode != d.mode {
            d.mode = mode;
            d.ctime = TimeSpec::now();
            self.put(i, &d)?;
        }
        match self.removexattr(ino, b"security.capability") {
            Ok(()) | Err(FsError::NoAttr) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Change a regular file's size: free blocks past it, zero the tail of a kept partial block.
    fn resize(&mut self, d: &mut DiskInode, size: u64) -> FsResult<()> {
        if size < d.size {
            let keep = size.div_ceil(BLOCK_SIZE as u64);
            bmap::truncate_blocks(&mut self.m, d, keep)?;
            self.zero_past_eof(d, size, u64::MAX)?;
        } else {
            self.zero_past_eof(d, d.size, size)?;
        }
        d.size = size;
        Ok(())
    }

    /// Zero bytes `[eof, upto)` of the block holding `eof`, before they become part of the
    /// file. They should already be zero, but data written past the committed size by a write
    /// a crash took back (ordered mode writes data in place first) may still be there.
    fn zero_past_eof(&mut self, d: &DiskInode, eof: u64, upto: u64) -> FsResult<()> {
        let bs = BLOCK_SIZE as u64;
        let within = eof % bs;
        if within == 0 || upto <= eof {
            return Ok(());
        }
        if let Some(phys) = bmap::lookup(&mut self.m, d, eof / bs)? {
            let n = (bs - within).min(upto - eof) as usize;
            self.m.store.write_at(&vec![0u8; n], phys * bs + within)?;
        }
        Ok(())
    }

    // ---- creation ----

    /// Everything a create checks before it changes anything: the name, the parent, and room
    /// for the entry plus `data_blocks` blocks of the new inode's own.
    fn check_create(
        &mut self,
        pd: &DiskInode,
        d: &DirIndex,
        name: &[u8],
        mode: u32,
        data_blocks: u64,
    ) -> FsResult<()> {
        if d.get(name).is_some() {
            return Err(FsError::Exists);
        }
        if FileKind::from_mode(mode).is_none() {
            return Err(FsError::Invalid);
        }
        if mode & libc::S_IFMT == libc::S_IFDIR && pd.nlink >= LINK_MAX {
            return Err(FsError::TooManyLinks);
        }
        let entry = d.insert_cost(&mut self.m, pd, name)?;
        bmap::reserve(&self.m, entry + data_blocks)
    }

    /// Allocate and fill in a new inode for `name` in `parent`, once everything it needs is
    /// known to be there (`check_create`): what follows cannot fail for want of space.
    fn new_inode(
        &mut self,
        parent: u64,
        name: &[u8],
        spec: NewInode,
    ) -> FsResult<(u32, DiskInode, u32, DiskInode, DirIndex)> {
        let NewInode {
            mode,
            uid,
            gid,
            rdev,
            data_blocks,
        } = spec;
        check_name(name)?;
        let (pi, pd) = self.get_dir(parent)?;
        let d = self.take_dir(pi, &pd)?;
        if let Err(e) = self.check_create(&pd, &d, name, mode, data_blocks) {
            self.dirs.insert(pi, d);
            return Err(e);
        }
        let (index, generation) = match self.again.take() {
            Some(ino) => {
                let (index, generation) = split_ino(ino);
                if let Err(e) = self.m.alloc_inode_at(index) {
                    self.dirs.insert(pi, d);
                    return Err(e);
                }
                (index, generation)
            }
            None => self.fresh_inode()?,
        };
        let now = TimeSpec::now();
        let mut mode = mode;
        let mut gid = gid;
        if pd.mode & libc::S_ISGID != 0 {
            gid = pd.gid;
            if mode & libc::S_IFMT == libc::S_IFDIR {
                mode |= libc::S_ISGID;
            }
        }
        let inode = DiskInode {
            mode,
            uid,
            gid,
            nlink: 1,
            atime: now,
            mtime: now,
            ctime: now,
            generation,
            rdev,
            ..DiskInode::default()
        };
        Ok((index, inode, pi, pd, d))
    }

    /// The generation for a slot whose last one was `old`: this incarnation (16 bits) | a
    /// per-slot counter (16 bits), so numbers an earlier incarnation handed out, even ones
    /// lost uncommitted in a crash, never recur. A slot that used up its counter starts a new
    /// incarnation (journaled with this transaction) rather than wrap onto an old handle.
    fn next_generation(&mut self, old: u32) -> FsResult<u32> {
        let epoch = (self.sb.mounts & 0xFFFF) as u32;
        if old >> 16 != epoch {
            return Ok((epoch << 16) | 1);
        }
        if old & 0xFFFF < 0xFFFF {
            return Ok(old + 1);
        }
        self.sb.mounts += 1;
        self.m.block_mut(0)?.copy_from_slice(&self.sb.encode());
        Ok((((self.sb.mounts & 0xFFFF) as u32) << 16) | 1)
    }

    /// A free inode slot and the generation it gets now.
    fn fresh_inode(&mut self) -> FsResult<(u32, u32)> {
        let index = self.m.alloc_inode()?;
        let old = self.m.read_inode(index)?;
        Ok((index, self.next_generation(old.generation)?))
    }

    /// Run `create` (a create, mknod, mkdir or symlink) so that it makes inode number `ino`
    /// (its slot and generation): a create a crash lost, made again as its client first saw
    /// it. `Exists` if that slot is taken meanwhile.
    pub fn create_again<R>(
        &mut self,
        ino: u64,
        create: impl FnOnce(&mut Self) -> FsResult<R>,
    ) -> FsResult<R> {
        if ino == ROOT_INO {
            return Err(FsError::Invalid);
        }
        self.again = Some(ino);
        let r = create(self);
        self.again = None;
        r
    }

    /// Link a new inode into its parent, undoing the inode allocation if the entry won't fit.
    fn finish_create(
        &mut self,
        index: u32,
        inode: DiskInode,
        pi: u32,
        mut pd: DiskInode,
        mut d: DirIndex,
        name: &[u8],
    ) -> FsResult<Attr> {
        let kind = inode.kind().ok_or(FsError::Invalid)?;
        let ino = make_ino(index, inode.generation);
        if let Err(e) = d.insert(&mut self.m, &mut pd, name, ino, kind) {
            self.put(pi, &pd)?;
            let fresh = DiskInode {
                generation: inode.generation,
                ..DiskInode::default()
            };
            self.put(index, &fresh)?;
            self.m.free_inode(index)?;
            return Err(e);
        }
        self.dirs.insert(pi, d);
        let now = inode.ctime;
        pd.mtime = now;
        pd.ctime = now;
        if kind == FileKind::Directory {
            pd.nlink += 1;
        }
        self.put(pi, &pd)?;
        self.put(index, &inode)?;
        self.after_op()?;
        Ok(inode.attr(index))
    }

    pub fn mknod(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u32,
    ) -> FsResult<Attr> {
        if mode & libc::S_IFMT == libc::S_IFDIR || mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(FsError::Invalid);
        }
        let mode = if mode & libc::S_IFMT == 0 {
            mode | libc::S_IFREG
        } else {
            mode
        };
        let spec = NewInode {
            mode,
            uid,
            gid,
            rdev,
            data_blocks: 0,
        };
        let (index, inode, pi, pd, d) = self.new_inode(parent, name, spec)?;
        self.finish_create(index, inode, pi, pd, d, name)
    }

    pub fn create(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.mknod(parent, name, libc::S_IFREG | (mode & 0o7777), uid, gid, 0)
    }

    pub fn mkdir(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let spec = NewInode {
            mode: libc::S_IFDIR | (mode & 0o7777),
            uid,
            gid,
            rdev: 0,
            data_blocks: 0,
        };
        let (index, mut inode, pi, pd, d) = self.new_inode(parent, name, spec)?;
        inode.nlink = 2;
        inode.parent = make_ino(pi, pd.generation);
        self.finish_create(index, inode, pi, pd, d, name)
    }

    pub fn symlink(
        &mut self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        if target.len() > MAX_SYMLINK {
            return Err(FsError::NameTooLong);
        }
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        let spec = NewInode {
            mode: libc::S_IFLNK | 0o777,
            uid,
            gid,
            rdev: 0,
            data_blocks: target.len().div_ceil(BLOCK_SIZE) as u64,
        };
        let (index, mut inode, pi, pd, d) = self.new_inode(parent, name, spec)?;
        match self.write_data(&mut inode, 0, target) {
            Ok(_) => {}
            Err(e) => {
                bmap::truncate_blocks(&mut self.m, &mut inode, 0)?;
                self.m.free_inode(index)?;
                self.dirs.insert(pi, d);
                return Err(e);
            }
        }
        inode.size = target.len() as u64;
        self.finish_create(index, inode, pi, pd, d, name)
    }

    pub fn readlink(&mut self, ino: u64) -> FsResult<Vec<u8>> {
        let (_, d) = self.get(ino)?;
        if d.kind() != Some(FileKind::Symlink) {
            return Err(FsError::Invalid);
        }
        self.read_data(&d, 0, d.size.min(MAX_SYMLINK as u64) as usize)
    }

    pub fn link(&mut self, ino: u64, newparent: u64, newname: &[u8]) -> FsResult<Attr> {
        check_name(newname)?;
        let (i, mut inode) = self.get(ino)?;
        if inode.is_dir() {
            return Err(FsError::NotPermitted);
        }
        if inode.nlink >= LINK_MAX {
            return Err(FsError::TooManyLinks);
        }
        let (pi, mut pd) = self.get_dir(newparent)?;
        let mut d = self.take_dir(pi, &pd)?;
        if d.get(newname).is_some() {
            self.dirs.insert(pi, d);
            return Err(FsError::Exists);
        }
        let kind = inode.kind().ok_or(FsError::Invalid)?;
        d.insert(
            &mut self.m,
            &mut pd,
            newname,
            make_ino(i, inode.generation),
            kind,
        )?;
        self.dirs.insert(pi, d);
        let now = TimeSpec::now();
        pd.mtime = now;
        pd.ctime = now;
        self.put(pi, &pd)?;
        // `pd` may be the same inode only for directories, which cannot be linked.
        inode.nlink += 1;
        inode.ctime = now;
        self.put(i, &inode)?;
        self.after_op()?;
        Ok(inode.attr(i))
    }

    // ---- removal ----

    pub fn unlink(&mut self, parent: u64, name: &[u8]) -> FsResult<()> {
        self.remove(parent, name, false)
    }

    pub fn rmdir(&mut self, parent: u64, name: &[u8]) -> FsResult<()> {
        if name == b"." {
            return Err(FsError::Invalid);
        }
        if name == b".." {
            return Err(FsError::NotEmpty);
        }
        self.remove(parent, name, true)
    }

    fn remove(&mut self, parent: u64, name: &[u8], want_dir: bool) -> FsResult<()> {
        if name.len() > MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        let (pi, mut pd) = self.get_dir(parent)?;
        let mut d = self.take_dir(pi, &pd)?;
        let Some(slot) = d.get(name) else {
            self.dirs.insert(pi, d);
            return Err(FsError::NotFound);
        };
        let (ti, td) = match self.get(slot.ino) {
            Ok(x) => x,
            Err(e) => {
                self.dirs.insert(pi, d);
                return Err(e);
            }
        };
        if want_dir != td.is_dir() {
            self.dirs.insert(pi, d);
            return Err(if want_dir {
                FsError::NotDir
            } else {
                FsError::IsDir
            });
        }
        if want_dir {
            let td_index = self.take_dir(ti, &td)?;
            let empty = td_index.is_empty();
            self.dirs.insert(ti, td_index);
            if !empty {
                self.dirs.insert(pi, d);
                return Err(FsError::NotEmpty);
            }
        }
        d.remove(&mut self.m, &pd, name)?;
        self.dirs.insert(pi, d);
        let now = TimeSpec::now();
        pd.mtime = now;
        pd.ctime = now;
        if want_dir {
            pd.nlink = pd.nlink.saturating_sub(1);
        }
        self.put(pi, &pd)?;
        self.drop_link(ti, td, now)?;
        self.after_op()
    }

    /// True if directory `ancestor` is `dir` or lies above it.
    fn is_ancestor(&mut self, ancestor: u32, mut dir: u32) -> FsResult<bool> {
        for _ in 0..100_000 {
            if dir == ancestor {
                return Ok(true);
            }
            if dir == ROOT_INDEX {
                return Ok(false);
            }
            let d = self.m.read_inode(dir)?;
            dir = if d.parent == ROOT_INO {
                ROOT_INDEX
            } else {
                split_ino(d.parent).0
            };
        }
        Err(FsError::Corrupt(
            "directory parent chain does not reach the root".into(),
        ))
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        if name.len() > MAX_NAME || newname.len() > MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        check_name(newname)?;
        if flags.noreplace && flags.exchange {
            return Err(FsError::Invalid);
        }
        let (spi, spd) = self.get_dir(parent)?;
        let (dpi, _) = self.get_dir(newparent)?;
        let sd = self.take_dir(spi, &spd)?;
        let src = sd.get(name);
        self.dirs.insert(spi, sd);
        let src = src.ok_or(FsError::NotFound)?;
        let dpd = self.m.read_inode(dpi)?;
        let dd = self.take_dir(dpi, &dpd)?;
        let dst = dd.get(newname);
        self.dirs.insert(dpi, dd);
        let (si, sinode) = self.get(src.ino)?;
        let now = TimeSpec::now();

        if flags.exchange {
            let dst = dst.ok_or(FsError::NotFound)?;
            let (di, dinode) = self.get(dst.ino)?;
            if sinode.is_dir() && self.is_ancestor(si, dpi)? {
                return Err(FsError::Invalid);
            }
            if dinode.is_dir() && self.is_ancestor(di, spi)? {
                return Err(FsError::Invalid);
            }
            let sp = self.m.read_inode(spi)?;
            let mut sdir = self.take_dir(spi, &sp)?;
            sdir.replace(&mut self.m, &sp, name, dst.ino, dst.kind)?;
            self.dirs.insert(spi, sdir);
            let dp = self.m.read_inode(dpi)?;
            let mut ddir = self.take_dir(dpi, &dp)?;
            ddir.replace(&mut self.m, &dp, newname, src.ino, src.kind)?;
            self.dirs.insert(dpi, ddir);
            if spi != dpi {
                let mut sp = self.m.read_inode(spi)?;
                let mut dp = self.m.read_inode(dpi)?;
                let sdirs = sinode.is_dir() as i64 - dinode.is_dir() as i64;
                sp.nlink = (sp.nlink as i64 - sdirs) as u32;
                dp.nlink = (dp.nlink as i64 + sdirs) as u32;
                let (spg, dpg) = (sp.generation, dp.generation);
                for (p, pi) in [(&mut sp, spi), (&mut dp, dpi)] {
                    p.mtime = now;
                    p.ctime = now;
                    self.m.write_inode(pi, p)?;
                }
                let mut s2 = self.m.read_inode(si)?;
                s2.ctime = now;
                if s2.is_dir() {
                    s2.parent = make_ino(dpi, dpg);
                }
                self.put(si, &s2)?;
                let mut d2 = self.m.read_inode(di)?;
                d2.ctime = now;
                if d2.is_dir() {
                    d2.parent = make_ino(spi, spg);
                }
                self.put(di, &d2)?;
            } else {
                let mut p = self.m.read_inode(spi)?;
                p.mtime = now;
                p.ctime = now;
                self.put(spi, &p)?;
                for i in [si, di] {
                    let mut x = self.m.read_inode(i)?;
                    x.ctime = now;
                    self.put(i, &x)?;
                }
            }
            return self.after_op();
        }

        if let Some(dst) = dst {
            if flags.noreplace {
                return Err(FsError::Exists);
            }
            if dst.ino == src.ino {
                return Ok(());
            }
        }
        if sinode.is_dir() && self.is_ancestor(si, dpi)? {
            return Err(FsError::Invalid);
        }
        // Check and drop the target first, so nothing changes if it may not be replaced.
        let mut victim = None;
        if let Some(dst) = dst {
            let (di, dinode) = self.get(dst.ino)?;
            if sinode.is_dir() && !dinode.is_dir() {
                return Err(FsError::NotDir);
            }
            if !sinode.is_dir() && dinode.is_dir() {
                return Err(FsError::IsDir);
            }
            if dinode.is_dir() {
                let di_index = self.take_dir(di, &dinode)?;
                let empty = di_index.is_empty();
                self.dirs.insert(di, di_index);
                if !empty {
                    return Err(FsError::NotEmpty);
                }
            }
            victim = Some((di, dinode));
        }
        // Point the target name at the source first: adding a name is the one step that may
        // need a new block, and it is all or nothing, so a full volume refuses the rename
        // before the source entry is touched.
        let mut dp = self.m.read_inode(dpi)?;
        let mut ddir = self.take_dir(dpi, &dp)?;
        if victim.is_some() {
            ddir.replace(&mut self.m, &dp, newname, src.ino, src.kind)?;
        } else {
            ddir.insert(&mut self.m, &mut dp, newname, src.ino, src.kind)?;
            self.put(dpi, &dp)?;
        }
        self.dirs.insert(dpi, ddir);
        // Then remove the source entry.
        let sp = self.m.read_inode(spi)?;
        let mut sdir = self.take_dir(spi, &sp)?;
        sdir.remove(&mut self.m, &sp, name)?;
        self.dirs.insert(spi, sdir);
        // Link counts and times.
        let is_dir = sinode.is_dir();
        let mut sp = self.m.read_inode(spi)?;
        sp.mtime = now;
        sp.ctime = now;
        if is_dir && spi != dpi {
            sp.nlink = sp.nlink.saturating_sub(1);
        }
        self.put(spi, &sp)?;
        let mut dp = self.m.read_inode(dpi)?;
        dp.mtime = now;
        dp.ctime = now;
        if is_dir && spi != dpi {
            dp.nlink += 1;
        }
        if let Some((_, vin)) = &victim {
            if vin.is_dir() {
                dp.nlink = dp.nlink.saturating_sub(1);
            }
        }
        self.put(dpi, &dp)?;
        let mut s2 = self.m.read_inode(si)?;
        s2.ctime = now;
        if is_dir {
            s2.parent = make_ino(dpi, dp.generation);
        }
        self.put(si, &s2)?;
        if let Some((vi, _)) = victim {
            let vin = self.m.read_inode(vi)?;
            self.drop_link(vi, vin, now)?;
        }
        self.after_op()
    }

    // ---- directories ----

    /// Entries after cookie `offset` (0 starts; `.` is 1, `..` is 2), at most `max` of them.
    pub fn readdir(&mut self, ino: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        let (i, d) = self.get_dir(ino)?;
        let mut out = Vec::new();
        if offset < 1 {
            out.push(DirEntry {
                ino,
                offset: 1,
                kind: FileKind::Directory,
                name: b".".to_vec(),
            });
        }
        if offset < 2 {
            let parent = if i == ROOT_INDEX { ROOT_INO } else { d.parent };
            out.push(DirEntry {
                ino: parent,
                offset: 2,
                kind: FileKind::Directory,
                name: b"..".to_vec(),
            });
        }
        let start = offset.saturating_sub(2) as u32;
        let idx = self.take_dir(i, &d)?;
        for (name, slot) in idx.entries_from(start) {
            if out.len() >= max {
                break;
            }
            out.push(DirEntry {
                ino: slot.ino,
                offset: slot.pos as u64 + 3,
                kind: slot.kind,
                name: name.clone(),
            });
        }
        self.dirs.insert(i, idx);
        out.truncate(max.max(1));
        Ok(out)
    }

    /// Like `readdir`, with each entry's attributes (`.` and `..` included).
    pub fn readdirplus(
        &mut self,
        ino: u64,
        offset: u64,
        max: usize,
    ) -> FsResult<Vec<(DirEntry, Attr)>> {
        let entries = self.readdir(ino, offset, max)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let a = self.getattr(e.ino)?;
            out.push((e, a));
        }
        Ok(out)
    }

    /// Entries in a directory (`.` and `..` excluded).
    pub fn dir_len(&mut self, ino: u64) -> FsResult<usize> {
        let (i, d) = self.get_dir(ino)?;
        let idx = self.take_dir(i, &d)?;
        let n = idx.len();
        self.dirs.insert(i, idx);
        Ok(n)
    }

    // ---- open files ----

    pub fn open_file(&mut self, ino: u64) -> FsResult<Attr> {
        let (i, d) = self.get(ino)?;
        *self.opens.entry(i).or_insert(0) += 1;
        Ok(d.attr(i))
    }

    /// Last close of an unlinked file frees it.
    pub fn release_file(&mut self, ino: u64) -> FsResult<()> {
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

    // ---- data ----

    fn read_data(&mut self, d: &DiskInode, offset: u64, size: usize) -> FsResult<Vec<u8>> {
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
    pub fn plan_read(&mut self, ino: u64, offset: u64, size: usize) -> FsResult<ReadPlan> {
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
    /// piece of the data goes. Short only if space ran out part way.
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
    fn write_data(&mut self, d: &mut DiskInode, offset: u64, data: &[u8]) -> FsResult<usize> {
        let Mapping { pieces, n, .. } = self.map_for_write(d, offset, data.len(), Some(data))?;
        for p in &pieces {
            match p {
                Piece::Data(disk, s, e) => self.m.store.write_at(&data[*s..*e], *disk)?,
                Piece::Owned(disk, blk) => self.m.store.write_at(blk, *disk)?,
            }
        }
        Ok(n)
    }

    pub fn read(&mut self, ino: u64, offset: u64, size: usize) -> FsResult<Vec<u8>> {
        let (_, d) = self.get(ino)?;
        if d.is_dir() {
            return Err(FsError::IsDir);
        }
        self.read_data(&d, offset, size)
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> FsResult<usize> {
        let mut plan = self.plan_write(ino, offset, data.len())?;
        let written = plan.execute(&*self.m.store.clone(), data);
        self.finish_write(plan, written)
    }

    /// The first half of a write, with the engine: map (allocating) the blocks for `len`
    /// bytes at `offset`. The data goes to the store without it (`WritePlan::execute`); a
    /// commit meanwhile waits for it. `finish_write` then sets the size and times.
    pub fn plan_write(&mut self, ino: u64, offset: u64, len: usize) -> FsResult<WritePlan> {
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
    fn settle_writes(&mut self, i: u32, d: &mut DiskInode) -> FsResult<()> {
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
    pub fn append(&mut self, ino: u64, data: &[u8]) -> FsResult<usize> {
        let (_, d) = self.get(ino)?;
        self.write(ino, d.size, data)
    }

    pub fn fallocate(&mut self, ino: u64, offset: u64, len: u64, mode: u32) -> FsResult<()> {
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
        let bs = BLOCK_SIZE as u64;
        let now = TimeSpec::now();
        if mode & (FALLOC_PUNCH_HOLE | FALLOC_ZERO_RANGE) != 0 {
            if mode & FALLOC_PUNCH_HOLE != 0 && mode & FALLOC_KEEP_SIZE == 0 {
                return Err(FsError::Invalid);
            }
            let zend = end.min(d.size.max(if mode & FALLOC_ZERO_RANGE != 0 {
                end
            } else {
                0
            }));
            let mut pos = offset;
            while pos < zend {
                let lblk = pos / bs;
                let within = pos % bs;
                let n = (bs - within).min(zend - pos);
                if self.commit_urgent() {
                    // The blocks freed so far are a consistent, smaller hole.
                    self.put(i, &d)?;
                    self.step()?;
                }
                if within == 0 && n == bs {
                    bmap::free_one(&mut self.m, &mut d, lblk)?;
                } else if let Some(p) = bmap::lookup(&mut self.m, &d, lblk)? {
                    self.m
                        .store
                        .write_at(&vec![0u8; n as usize], p * bs + within)?;
                }
                pos += n;
            }
            if mode & FALLOC_ZERO_RANGE != 0 && mode & FALLOC_KEEP_SIZE == 0 && end > d.size {
                self.zero_past_eof(&d, d.size, end)?;
                d.size = end;
            }
        } else {
            // All the blocks the range lacks, or none: a refused fallocate changes nothing.
            let cost = bmap::alloc_cost_range(&mut self.m, &d, offset / bs, end.div_ceil(bs))?;
            bmap::reserve(&self.m, cost)?;
            let mut goal = None;
            for lblk in offset / bs..end.div_ceil(bs) {
                if self.commit_urgent() {
                    // What is allocated so far, the size grown over it: a shorter fallocate.
                    let upto = (lblk * bs).min(end);
                    if mode & FALLOC_KEEP_SIZE == 0 && upto > d.size {
                        self.zero_past_eof(&d, d.size, upto)?;
                        d.size = upto;
                    }
                    self.put(i, &d)?;
                    self.step()?;
                }
                let m = bmap::map_alloc(&mut self.m, &mut d, lblk, goal);
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        self.put(i, &d)?;
                        return Err(e);
                    }
                };
                goal = Some(m.phys + 1);
                if m.fresh {
                    self.m.store.write_at(&[0u8; BLOCK_SIZE], m.phys * bs)?;
                }
            }
            if mode & FALLOC_KEEP_SIZE == 0 && end > d.size {
                self.zero_past_eof(&d, d.size, end)?;
                d.size = end;
            }
        }
        d.mtime = now;
        d.ctime = now;
        self.put(i, &d)?;
        self.after_op()
    }

    // ---- xattrs ----

    fn load_xattrs(&mut self, d: &DiskInode) -> FsResult<xattr::Xattrs> {
        if d.xattr == 0 {
            return Ok(Default::default());
        }
        if !self.sb.geometry.is_data_block(d.xattr as u64) {
            return Err(FsError::Corrupt("xattr block outside the data area".into()));
        }
        xattr::decode(self.m.block(d.xattr as u64)?)
    }

    pub fn getxattr(&mut self, ino: u64, name: &[u8]) -> FsResult<Vec<u8>> {
        let (_, d) = self.get(ino)?;
        self.load_xattrs(&d)?.remove(name).ok_or(FsError::NoAttr)
    }

    pub fn listxattr(&mut self, ino: u64) -> FsResult<Vec<Vec<u8>>> {
        let (_, d) = self.get(ino)?;
        Ok(self.load_xattrs(&d)?.into_keys().collect())
    }

    pub fn setxattr(&mut self, ino: u64, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        if name.is_empty() || name.len() > 255 {
            return Err(FsError::Range);
        }
        let (i, mut d) = self.get(ino)?;
        let mut x = self.load_xattrs(&d)?;
        let exists = x.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(FsError::Exists);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(FsError::NoAttr);
        }
        x.insert(name.to_vec(), value.to_vec());
        if xattr::encoded_len(&x) > crate::layout::PAYLOAD {
            return Err(FsError::NoSpace);
        }
        self.store_xattrs(i, &mut d, &x)
    }

    pub fn removexattr(&mut self, ino: u64, name: &[u8]) -> FsResult<()> {
        let (i, mut d) = self.get(ino)?;
        let mut x = self.load_xattrs(&d)?;
        if x.remove(name).is_none() {
            return Err(FsError::NoAttr);
        }
        self.store_xattrs(i, &mut d, &x)
    }

    fn store_xattrs(&mut self, i: u32, d: &mut DiskInode, x: &xattr::Xattrs) -> FsResult<()> {
        if x.is_empty() {
            if d.xattr != 0 {
                self.m.free_block(d.xattr as u64)?;
                d.xattr = 0;
                d.blocks = d.blocks.saturating_sub(1);
            }
        } else {
            if d.xattr == 0 {
                let b = self.m.alloc_block(None)?;
                self.m.block_new(b);
                d.xattr = b as u32;
                d.blocks += 1;
            }
            let b = self.m.block_mut(d.xattr as u64)?;
            xattr::encode(x, b)?;
        }
        d.ctime = TimeSpec::now();
        self.put(i, d)?;
        self.after_op()
    }

    // ---- volume ----

    pub fn statfs(&mut self) -> StatFs {
        let g = &self.sb.geometry;
        StatFs {
            blocks: g.data_blocks(),
            bfree: self.m.free_blocks,
            bavail: self.m.free_blocks,
            files: g.inode_count - 2,
            ffree: self.m.free_inodes,
            bsize: BLOCK_SIZE as u32,
            namelen: MAX_NAME as u32,
        }
    }

    /// Make everything done so far durable (one journal transaction and a flush).
    /// Behind `SharedVolume`, use its `commit`: this one fails while that one is in flight.
    pub fn commit(&mut self) -> FsResult<()> {
        let p = self.prepare_commit()?;
        let written = match &self.durability_hook {
            Some(hook) => hook().and_then(|_| p.write()),
            None => p.write(),
        };
        self.finish_commit(p, written)
    }

    /// The first half of a commit: take what is pending as one transaction, to be written
    /// (`PreparedCommit::write`) while other operations go on, then ended by `finish_commit`.
    /// `SharedVolume` does this dance; commits must not overlap (a second one is refused).
    pub fn prepare_commit(&mut self) -> FsResult<PreparedCommit<S>> {
        // Planned writes run their data I/O without the engine (no new one can start while
        // the caller holds it): wait for them, so this transaction maps no unwritten block.
        self.data_in_flight.wait_none();
        self.last_commit = Instant::now();
        let p = self.m.prepare_commit()?;
        // The transaction just taken is the newest one once it is written.
        self.commit_upto = self.m.next_seq() - 1;
        Ok(p)
    }

    /// The end of a commit. The blocks it frees become reusable: it first waits for reads in
    /// flight (planned before, perhaps on those blocks; none can start while the caller holds
    /// the engine).
    pub fn finish_commit(&mut self, p: PreparedCommit<S>, written: FsResult<()>) -> FsResult<()> {
        self.reads_in_flight.wait_none();
        self.m.finish_commit(p, written)?;
        if let Some(hook) = &self.commit_hook {
            hook(self.commit_upto);
        }
        Ok(())
    }

    /// More than half the journal is pending: commit before the next operation (it could
    /// not fit otherwise). Behind `SharedVolume`, which commits outside the engine's lock.
    pub fn commit_urgent(&self) -> bool {
        self.m.dirty_count() > journal::capacity(&self.sb.geometry) / 2
    }

    /// From now on commits are the caller's alone (`SharedVolume`): operations never start one.
    pub(crate) fn commit_outside(&mut self) {
        self.commits_outside = true;
    }

    /// True if something is pending and the last commit is older than `interval`.
    pub fn commit_due(&self, interval: Duration) -> bool {
        self.m.dirty_count() > 0 && self.last_commit.elapsed() >= interval
    }

    /// Commit if the last commit is older than `interval` and something is pending.
    pub fn commit_if_older(&mut self, interval: Duration) -> FsResult<bool> {
        if self.m.dirty_count() > 0 && self.last_commit.elapsed() >= interval {
            self.commit()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// fsync: file data and all metadata durable.
    pub fn fsync(&mut self, ino: u64) -> FsResult<()> {
        self.get(ino)?;
        self.commit()
    }

    /// The sequence number of the transaction the changes made now will be committed in
    /// (or a later one, if that commit fails and is retried).
    pub fn next_seq(&self) -> u64 {
        self.m.next_seq()
    }

    /// The newest transaction that was durable when the volume was opened: the changes
    /// made before the last stop or crash in transactions up to this one survived it.
    pub fn recovered_seq(&self) -> u64 {
        self.recovered_seq
    }

    /// Have `hook` run before every commit's journal write from now on.
    pub fn set_durability_hook(&mut self, hook: DurabilityHook) {
        self.durability_hook = Some(hook);
    }

    pub fn durability_hook(&self) -> Option<DurabilityHook> {
        self.durability_hook.clone()
    }

    /// Have `hook` told the newest durable transaction after every commit from now on.
    pub fn set_commit_hook(&mut self, hook: CommitHook) {
        self.commit_hook = Some(hook);
    }

    pub fn commit_hook(&self) -> Option<CommitHook> {
        self.commit_hook.clone()
    }

    /// Transactions committed since open.
    pub fn commits(&self) -> u64 {
        self.m.commits
    }

    /// Blocks freed by changes not yet committed: free again once a commit ends.
    pub fn quarantined_blocks(&self) -> usize {
        self.m.quarantined()
    }

    /// Metadata blocks changed and not yet committed.
    pub fn pending_blocks(&self) -> usize {
        self.m.dirty_count()
    }
}
