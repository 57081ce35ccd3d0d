//! Extended attributes: all of an inode's live in one block of their own. Invariant: the
//! block exists only while the inode has at least one attribute.

use crate::attr::Ino;
use crate::bmap;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::store::BlockStore;
use crate::xattr;
use crate::TimeSpec;

use super::{Volume, XATTR_CREATE, XATTR_REPLACE};

impl<S: BlockStore> Volume<S> {
    fn load_xattrs(&mut self, d: &DiskInode) -> FsResult<xattr::Xattrs> {
        if d.xattr == 0 {
            return Ok(Default::default());
        }
        if !self.sb.geometry.is_data_block(d.xattr as u64) {
            return Err(FsError::Corrupt("xattr block outside the data area".into()));
        }
        xattr::decode(self.m.block(d.xattr as u64)?)
    }

    /// The value of extended attribute `name`.
    pub fn getxattr(&mut self, ino: Ino, name: &[u8]) -> FsResult<Vec<u8>> {
        let ino = ino.get();
        let (_, d) = self.get(ino)?;
        self.load_xattrs(&d)?.remove(name).ok_or(FsError::NoAttr)
    }

    /// The names of the inode's extended attributes.
    pub fn listxattr(&mut self, ino: Ino) -> FsResult<Vec<Vec<u8>>> {
        let ino = ino.get();
        let (_, d) = self.get(ino)?;
        Ok(self.load_xattrs(&d)?.into_keys().collect())
    }

    /// Set extended attribute `name` (`XATTR_CREATE` / `XATTR_REPLACE` in `flags`).
    pub fn setxattr(&mut self, ino: Ino, name: &[u8], value: &[u8], flags: u32) -> FsResult<()> {
        let ino = ino.get();
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

    /// Remove extended attribute `name`.
    pub fn removexattr(&mut self, ino: Ino, name: &[u8]) -> FsResult<()> {
        let ino = ino.get();
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
                self.m.free_block(d.xattr as u64, d.tree)?;
                d.xattr = 0;
                d.blocks = d.blocks.saturating_sub(1);
            }
        } else {
            if d.xattr == 0 {
                bmap::reserve(&self.m, d.tree, 1)?;
                let b = self.m.alloc_block(None, d.tree)?;
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
}
