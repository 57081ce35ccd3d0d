//! Rename, plain, `noreplace` and `exchange`. Invariant: the one step that may need a new
//! block (adding the target name) comes first and is all or nothing, so a refused rename
//! leaves both names as they were.

use crate::attr::Ino;
use crate::dir::Slot;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::layout::{make_ino, split_ino, MAX_NAME, ROOT_INDEX, ROOT_INO};
use crate::store::BlockStore;
use crate::TimeSpec;

use super::names::check_name;
use super::{RenameFlags, Volume};

impl<S: BlockStore> Volume<S> {
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

    /// Move `name` in `parent` to `newname` in `newparent`, replacing what is there unless
    /// `flags.noreplace`, or swapping the two with `flags.exchange`.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> FsResult<()> {
        let parent = parent.get();
        let newparent = newparent.get();
        if name.len() > MAX_NAME || newname.len() > MAX_NAME {
            return Err(FsError::NameTooLong);
        }
        check_name(newname)?;
        if flags.noreplace && flags.exchange {
            return Err(FsError::Invalid);
        }
        let ends = self.rename_ends(parent, name, newparent, newname)?;
        self.stays_in_its_tree(&ends, flags.exchange)?;
        if flags.exchange {
            return self.exchange(&ends, name, newname);
        }
        if let Some(dst) = ends.dst {
            if flags.noreplace {
                return Err(FsError::Exists);
            }
            if dst.ino == ends.src.ino {
                return Ok(());
            }
        }
        if ends.sinode.is_dir() && self.is_ancestor(ends.si, ends.dpi)? {
            return Err(FsError::Invalid);
        }
        // Check the target first, so nothing changes if it may not be replaced.
        let victim = self.rename_victim(&ends)?;
        self.move_entry(&ends, name, newname, victim.is_some())?;
        self.moved_links_and_times(&ends, victim.as_ref().map(|v| &v.1))?;
        if let Some((vi, _)) = victim {
            let vin = self.m.read_inode(vi)?;
            self.drop_link(vi, vin, ends.now)?;
        }
        self.after_op()
    }

    /// `CrossDevice` if the rename would move an inode into another quota tree: the source
    /// into the target's directory and, for an exchange, the target into the source's.
    fn stays_in_its_tree(&mut self, ends: &Ends, exchange: bool) -> FsResult<()> {
        if ends.spi == ends.dpi {
            return Ok(());
        }
        crate::quota::may_enter(ends.sinode.tree, ends.si, ends.trees.1)?;
        if let (true, Some(dst)) = (exchange, ends.dst) {
            let (di, dinode) = self.get(dst.ino)?;
            crate::quota::may_enter(dinode.tree, di, ends.trees.0)?;
        }
        Ok(())
    }

    /// Both parents, both entries and the source inode, found before anything changes.
    fn rename_ends(
        &mut self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
    ) -> FsResult<Ends> {
        let (spi, spd) = self.get_dir(parent)?;
        let (dpi, dpd) = self.get_dir(newparent)?;
        let sd = self.take_dir(spi, &spd)?;
        let src = sd.get(name);
        self.dirs.insert(spi, sd);
        let src = src.ok_or(FsError::NotFound)?;
        let dd = self.take_dir(dpi, &dpd)?;
        let dst = dd.get(newname);
        self.dirs.insert(dpi, dd);
        let (si, sinode) = self.get(src.ino)?;
        Ok(Ends {
            spi,
            dpi,
            src,
            dst,
            si,
            sinode,
            trees: (spd.tree, dpd.tree),
            now: TimeSpec::now(),
        })
    }

    /// The inode a plain rename replaces, once it is known that it may: a file by a file, an
    /// empty directory by a directory.
    fn rename_victim(&mut self, ends: &Ends) -> FsResult<Option<(u32, DiskInode)>> {
        let Some(dst) = ends.dst else {
            return Ok(None);
        };
        let (di, dinode) = self.get(dst.ino)?;
        if ends.sinode.is_dir() && !dinode.is_dir() {
            return Err(FsError::NotDir);
        }
        if !ends.sinode.is_dir() && dinode.is_dir() {
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
        Ok(Some((di, dinode)))
    }

    /// Point the target name at the source first: adding a name is the one step that may
    /// need a new block, and it is all or nothing, so a full volume refuses the rename before
    /// the source entry is touched. Then remove the source entry.
    fn move_entry(
        &mut self,
        ends: &Ends,
        name: &[u8],
        newname: &[u8],
        replace: bool,
    ) -> FsResult<()> {
        let (spi, dpi, src) = (ends.spi, ends.dpi, ends.src);
        let mut dp = self.m.read_inode(dpi)?;
        let mut ddir = self.take_dir(dpi, &dp)?;
        if replace {
            ddir.replace(&mut self.m, &dp, newname, src.ino, src.kind)?;
        } else {
            ddir.insert(&mut self.m, &mut dp, newname, src.ino, src.kind)?;
            self.put(dpi, &dp)?;
        }
        self.dirs.insert(dpi, ddir);
        let sp = self.m.read_inode(spi)?;
        let mut sdir = self.take_dir(spi, &sp)?;
        sdir.remove(&mut self.m, &sp, name)?;
        self.dirs.insert(spi, sdir);
        Ok(())
    }

    /// After a plain rename: both parents' times and link counts (a directory moved carries
    /// its `..`; a directory replaced takes one away), the moved inode's ctime and parent.
    fn moved_links_and_times(&mut self, ends: &Ends, victim: Option<&DiskInode>) -> FsResult<()> {
        let (spi, dpi, si, now) = (ends.spi, ends.dpi, ends.si, ends.now);
        let is_dir = ends.sinode.is_dir();
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
        if victim.is_some_and(|v| v.is_dir()) {
            dp.nlink = dp.nlink.saturating_sub(1);
        }
        self.put(dpi, &dp)?;
        let mut s2 = self.m.read_inode(si)?;
        s2.ctime = now;
        if is_dir {
            s2.parent = make_ino(dpi, dp.generation);
        }
        self.put(si, &s2)
    }

    /// `RENAME_EXCHANGE`: the two names swap inodes; neither may be moved under itself.
    fn exchange(&mut self, ends: &Ends, name: &[u8], newname: &[u8]) -> FsResult<()> {
        let (spi, dpi, src, si) = (ends.spi, ends.dpi, ends.src, ends.si);
        let dst = ends.dst.ok_or(FsError::NotFound)?;
        let (di, dinode) = self.get(dst.ino)?;
        if ends.sinode.is_dir() && self.is_ancestor(si, dpi)? {
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
            self.exchanged_across(ends, di, &dinode)?;
        } else {
            let mut p = self.m.read_inode(spi)?;
            p.mtime = ends.now;
            p.ctime = ends.now;
            self.put(spi, &p)?;
            for i in [si, di] {
                let mut x = self.m.read_inode(i)?;
                x.ctime = ends.now;
                self.put(i, &x)?;
            }
        }
        self.after_op()
    }

    /// An exchange between two directories: a directory that changes parent moves one link
    /// count across and its `..`; both parents' and both inodes' times.
    fn exchanged_across(&mut self, ends: &Ends, di: u32, dinode: &DiskInode) -> FsResult<()> {
        let (spi, dpi, si, now) = (ends.spi, ends.dpi, ends.si, ends.now);
        let mut sp = self.m.read_inode(spi)?;
        let mut dp = self.m.read_inode(dpi)?;
        let sdirs = ends.sinode.is_dir() as i64 - dinode.is_dir() as i64;
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
        self.put(di, &d2)
    }
}

/// The two ends of a rename, as found before anything changes.
struct Ends {
    /// Source and target parent directories (inode indexes).
    spi: u32,
    dpi: u32,
    /// The source entry and the target entry, if the target name exists.
    src: Slot,
    dst: Option<Slot>,
    /// The source inode.
    si: u32,
    sinode: DiskInode,
    /// The quota trees of the source and target parents.
    trees: (u32, u32),
    now: TimeSpec,
}
