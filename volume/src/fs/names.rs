//! Names: lookups, creates (create, mknod, mkdir, symlink), links, unlink and rmdir, and
//! directory listings. Invariant: a refused call changes nothing; every check (name, parent,
//! room for the entry and the new inode's blocks) is made before the first change.

use crate::attr::{Attr, DirEntry, FileKind, Ino};
use crate::bmap;
use crate::dir::DirIndex;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::layout::{
    make_ino, put_u64, split_ino, BLOCK_SIZE, MAX_NAME, MAX_SYMLINK, ROOT_INDEX, ROOT_INO,
    SB_MOUNTS_OFFSET,
};
use crate::store::BlockStore;
use crate::TimeSpec;

use super::{Volume, LINK_MAX};

/// What a create makes: the new inode's mode, owner and device, and the blocks of its own it
/// needs at once (a symlink's target).
struct NewInode {
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u32,
    data_blocks: u64,
}

pub(super) fn check_name(name: &[u8]) -> FsResult<()> {
    if name.len() > MAX_NAME {
        return Err(FsError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::Invalid);
    }
    Ok(())
}

impl<S: BlockStore> Volume<S> {
    /// The attributes of `name` in directory `parent` (`.` and `..` included).
    pub fn lookup(&mut self, parent: Ino, name: &[u8]) -> FsResult<Attr> {
        let parent = parent.get();
        if name.len() > MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        let (pi, pd) = self.get_dir(parent)?;
        if name == b"." {
            return Ok(pd.attr(pi));
        }
        if name == b".." {
            return self.getattr(if pi == ROOT_INDEX {
                Ino::ROOT
            } else {
                Ino::new(pd.parent)
            });
        }
        let d = self.take_dir(pi, &pd)?;
        let slot = d.get(name);
        self.dirs.insert(pi, d);
        let slot = slot.ok_or(FsError::NotFound)?;
        self.getattr(Ino::new(slot.ino)).map_err(|e| match e {
            FsError::Stale => FsError::Corrupt(format!("entry names a free inode {}", slot.ino)),
            e => e,
        })
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
        bmap::reserve(&self.m, pd.tree, entry + data_blocks)?;
        // The new inode is in its parent's tree.
        self.m.trees.check(pd.tree, entry + data_blocks, 1)
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
                if let Err(e) = self
                    .free_unheld_orphan(index)
                    .and_then(|_| self.m.alloc_inode_at(index, pd.tree))
                {
                    self.dirs.insert(pi, d);
                    return Err(e);
                }
                (index, generation)
            }
            None => self.fresh_inode(pd.tree)?,
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
            tree: pd.tree,
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
        put_u64(self.m.block_mut(0)?, SB_MOUNTS_OFFSET, self.sb.mounts);
        Ok((((self.sb.mounts & 0xFFFF) as u32) << 16) | 1)
    }

    /// A free inode slot (charged to quota tree `tree`) and the generation it gets now.
    fn fresh_inode(&mut self, tree: u32) -> FsResult<(u32, u32)> {
        let index = self.m.alloc_inode(tree)?;
        let old = self.m.read_inode(index)?;
        Ok((index, self.next_generation(old.generation)?))
    }

    /// Free the inode in slot `index` if it is an orphan (unlinked) that nothing holds open:
    /// a create made again there was made, in the history it repeats, after that file went.
    /// `Again` while it is being freed in steps (`reap`): commit and run the create again.
    fn free_unheld_orphan(&mut self, index: u32) -> FsResult<()> {
        if self.reaping.contains(&index) {
            return Err(FsError::Again);
        }
        if index as u64 >= self.sb.geometry.inode_count
            || self.opens.contains_key(&index)
            || !self.m.inode_allocated(index)?
        {
            return Ok(());
        }
        let inode = self.m.read_inode(index)?;
        if inode.is_free() || inode.nlink != 0 {
            return Ok(());
        }
        self.orphans.retain(|o| *o != index);
        self.destroy(index, inode)?;
        if self.reaping.contains(&index) {
            // Too large to free in this transaction: the caller commits (which frees it in
            // steps) and runs the create again.
            return Err(FsError::Again);
        }
        Ok(())
    }

    /// Run `create` (a create, mknod, mkdir or symlink) so that it makes inode number `ino`
    /// (its slot and generation): a create a crash lost, made again as its client first saw
    /// it. `Exists` if that slot is taken meanwhile (an orphan nothing holds open does not
    /// count: it is freed, and `Again` asks for a commit first if that takes steps).
    pub fn create_again<R>(
        &mut self,
        ino: Ino,
        create: impl FnOnce(&mut Self) -> FsResult<R>,
    ) -> FsResult<R> {
        let ino = ino.get();
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
            self.m.free_inode(index, inode.tree)?;
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

    /// Make a file, FIFO, socket or device node `name` in `parent`.
    pub fn mknod(
        &mut self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        rdev: u32,
    ) -> FsResult<Attr> {
        let parent = parent.get();
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

    /// Make an empty regular file `name` in `parent`.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        self.mknod(parent, name, libc::S_IFREG | (mode & 0o7777), uid, gid, 0)
    }

    /// Make an empty directory `name` in `parent`.
    pub fn mkdir(
        &mut self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let parent = parent.get();
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

    /// Make a symbolic link `name` in `parent` pointing at `target`.
    pub fn symlink(
        &mut self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let parent = parent.get();
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
                self.m.free_inode(index, inode.tree)?;
                self.dirs.insert(pi, d);
                return Err(e);
            }
        }
        inode.size = target.len() as u64;
        self.finish_create(index, inode, pi, pd, d, name)
    }

    /// A symbolic link's target.
    pub fn readlink(&mut self, ino: Ino) -> FsResult<Vec<u8>> {
        let ino = ino.get();
        let (_, d) = self.get(ino)?;
        if d.kind() != Some(FileKind::Symlink) {
            return Err(FsError::Invalid);
        }
        self.read_data(&d, 0, d.size.min(MAX_SYMLINK as u64) as usize)
    }

    /// Give inode `ino` another name, `newname` in `newparent`.
    pub fn link(&mut self, ino: Ino, newparent: Ino, newname: &[u8]) -> FsResult<Attr> {
        let ino = ino.get();
        let newparent = newparent.get();
        check_name(newname)?;
        let (i, mut inode) = self.get(ino)?;
        if inode.is_dir() {
            return Err(FsError::NotPermitted);
        }
        if inode.nlink >= LINK_MAX {
            return Err(FsError::TooManyLinks);
        }
        let (pi, mut pd) = self.get_dir(newparent)?;
        crate::quota::may_enter(inode.tree, i, pd.tree)?;
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
        if inode.nlink == 1 {
            // A file unlinked while open, named again (as linkat of its descriptor does):
            // no orphan any more.
            self.m.list_remove(crate::chain::List::Orphans, i)?;
        }
        self.after_op()?;
        Ok(inode.attr(i))
    }

    // ---- removal ----

    /// Remove the name of a non-directory; the inode goes with its last link and close.
    pub fn unlink(&mut self, parent: Ino, name: &[u8]) -> FsResult<()> {
        let parent = parent.get();
        self.remove(parent, name, false)
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &[u8]) -> FsResult<()> {
        let parent = parent.get();
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

    // ---- directories ----

    /// Entries after cookie `offset` (0 starts; `.` is 1, `..` is 2), at most `max` of them.
    pub fn readdir(&mut self, ino: Ino, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        let ino = ino.get();
        let (i, d) = self.get_dir(ino)?;
        let mut out = Vec::new();
        if offset < 1 {
            out.push(DirEntry {
                ino: Ino::new(ino),
                offset: 1,
                kind: FileKind::Directory,
                name: b".".to_vec(),
            });
        }
        if offset < 2 {
            let parent = if i == ROOT_INDEX { ROOT_INO } else { d.parent };
            out.push(DirEntry {
                ino: Ino::new(parent),
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
                ino: Ino::new(slot.ino),
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
        ino: Ino,
        offset: u64,
        max: usize,
    ) -> FsResult<Vec<(DirEntry, Attr)>> {
        let ino = ino.get();
        let entries = self.readdir(Ino::new(ino), offset, max)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let a = self.getattr(e.ino)?;
            out.push((e, a));
        }
        Ok(out)
    }

    /// Entries in a directory (`.` and `..` excluded).
    pub fn dir_len(&mut self, ino: Ino) -> FsResult<usize> {
        let ino = ino.get();
        let (i, d) = self.get_dir(ino)?;
        let idx = self.take_dir(i, &d)?;
        let n = idx.len();
        self.dirs.insert(i, idx);
        Ok(n)
    }
}
