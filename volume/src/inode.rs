//! The on-disk inode (256 bytes, 15 to a table block) and its encoding.

use crate::attr::Ino;
use crate::attr::{Attr, FileKind, TimeSpec};
use crate::layout::{get_u32, get_u64, make_ino, put_u32, put_u64, INODE_SIZE};
use crate::quota::Quota;

pub(crate) const NDIRECT: usize = 12;

/// Bytes of an inode record the engine's lists own (`chain`): the next file unlinked while
/// open (u32 at 172), the next quota tree's root (u32 at 176), and on a tree's root the
/// tree's use in blocks and inodes (u64 at 180, u64 at 188). `DiskInode` neither reads nor
/// writes them, so a copy of an inode written back never undoes a list's change.
pub(crate) const ORPHAN_LINK: usize = 172;
/// See `ORPHAN_LINK`.
pub(crate) const TREE_LINK: usize = 176;
/// See `ORPHAN_LINK`.
pub(crate) const TREE_USED_BLOCKS: usize = 180;
/// See `ORPHAN_LINK`.
pub(crate) const TREE_USED_INODES: usize = 188;
const LISTS_END: usize = 196;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiskInode {
    /// File type and permission bits; 0 means the slot is free.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    /// 4 KiB blocks held, indirect and xattr blocks included.
    pub blocks: u64,
    pub atime: TimeSpec,
    pub mtime: TimeSpec,
    pub ctime: TimeSpec,
    /// Bumped each time the slot is reused, so an old inode number goes stale.
    pub generation: u32,
    pub rdev: u32,
    pub xattr: u32,
    /// Inode number of the parent, for directories (their `..`).
    pub parent: u64,
    pub direct: [u32; NDIRECT],
    pub ind: u32,
    pub dind: u32,
    pub tind: u32,
    /// The root of the quota tree the inode is in (its slot index; a root's own), 0 if none.
    pub tree: u32,
    /// On a tree's root, the tree's limits; zeros elsewhere.
    pub quota: Quota,
}

fn put_time(b: &mut [u8], off: usize, t: TimeSpec) {
    put_u64(b, off, t.sec as u64);
    put_u32(b, off + 8, t.nsec);
}

fn get_time(b: &[u8], off: usize) -> TimeSpec {
    TimeSpec {
        sec: get_u64(b, off) as i64,
        nsec: get_u32(b, off + 8).min(999_999_999),
    }
}

impl DiskInode {
    pub(crate) fn is_free(&self) -> bool {
        self.mode == 0
    }

    pub(crate) fn kind(&self) -> Option<FileKind> {
        FileKind::from_mode(self.mode)
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub(crate) fn encode(&self, b: &mut [u8]) {
        let b = &mut b[..INODE_SIZE];
        b[..ORPHAN_LINK].fill(0);
        b[LISTS_END..].fill(0);
        put_u32(b, 0, self.mode);
        put_u32(b, 4, self.uid);
        put_u32(b, 8, self.gid);
        put_u32(b, 12, self.nlink);
        put_u64(b, 16, self.size);
        put_u64(b, 24, self.blocks);
        put_time(b, 32, self.atime);
        put_time(b, 44, self.mtime);
        put_time(b, 56, self.ctime);
        put_u32(b, 68, self.generation);
        put_u32(b, 72, self.rdev);
        put_u32(b, 76, self.xattr);
        put_u64(b, 80, self.parent);
        for (i, d) in self.direct.iter().enumerate() {
            put_u32(b, 88 + i * 4, *d);
        }
        put_u32(b, 136, self.ind);
        put_u32(b, 140, self.dind);
        put_u32(b, 144, self.tind);
        put_u32(b, 148, self.tree);
        put_u64(b, 152, self.quota.max_blocks);
        put_u64(b, 160, self.quota.max_inodes);
        put_u32(b, 168, self.quota.tag);
    }

    pub(crate) fn decode(b: &[u8]) -> DiskInode {
        let mut direct = [0u32; NDIRECT];
        for (i, d) in direct.iter_mut().enumerate() {
            *d = get_u32(b, 88 + i * 4);
        }
        DiskInode {
            mode: get_u32(b, 0),
            uid: get_u32(b, 4),
            gid: get_u32(b, 8),
            nlink: get_u32(b, 12),
            size: get_u64(b, 16),
            blocks: get_u64(b, 24),
            atime: get_time(b, 32),
            mtime: get_time(b, 44),
            ctime: get_time(b, 56),
            generation: get_u32(b, 68),
            rdev: get_u32(b, 72),
            xattr: get_u32(b, 76),
            parent: get_u64(b, 80),
            direct,
            ind: get_u32(b, 136),
            dind: get_u32(b, 140),
            tind: get_u32(b, 144),
            tree: get_u32(b, 148),
            quota: Quota {
                max_blocks: get_u64(b, 152),
                max_inodes: get_u64(b, 160),
                tag: get_u32(b, 168),
            },
        }
    }

    pub(crate) fn attr(&self, index: u32) -> Attr {
        Attr {
            ino: Ino::new(make_ino(index, self.generation)),
            generation: self.generation,
            size: self.size,
            blocks: self.blocks * 8,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            kind: self.kind().unwrap_or(FileKind::RegularFile),
            perm: (self.mode & 0o7777) as u16,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
        }
    }
}
