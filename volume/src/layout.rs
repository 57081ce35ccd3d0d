//! The image format: 4 KiB blocks laid out as
//! `superblock | journal | inode bitmap | block bitmap | inode table | data`.
//! Every metadata block ends in a crc32c of its payload, seeded with its block number, so a
//! block written to the wrong place is caught as surely as a flipped bit.

use crate::error::{FsError, FsResult};

/// Bytes in a block.
pub const BLOCK_SIZE: usize = 4096;
/// Bytes of a metadata block before its checksum.
pub const PAYLOAD: usize = BLOCK_SIZE - 4;
/// The signature at the start of block 0.
pub const MAGIC: &[u8; 8] = b"RWXFS\0\0\x01";
/// The on-disk format this build writes. 2: a journal transaction's checksum covers the
/// payloads of all its blocks, descriptors included (`journal`). 3: the files unlinked while
/// open and the roots of quota trees are lists on disk (`chain`), each tree's use is kept
/// in its root's inode record, and the superblock keeps the free counts, so opening a volume
/// reads neither every inode slot, nor every inode of a tree, nor the bitmaps.
pub const FORMAT_VERSION: u32 = 3;
/// The first format with the on-disk lists and kept tree use: an older image is brought to
/// it at its first open for writing, by one pass over its inode table (as every open of it
/// made before).
pub const LISTS_SINCE: u32 = 3;
/// The oldest format this build reads. 1: the checksum covered whole block images, seals
/// included, descriptors not; such an image's journal is replayed as written, and its first
/// open for writing brings it to `FORMAT_VERSION`.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Bytes of one inode in the inode table.
pub const INODE_SIZE: usize = 256;
/// Inodes in one inode-table block.
pub const INODES_PER_BLOCK: u64 = (PAYLOAD / INODE_SIZE) as u64;
/// Blocks or inodes one bitmap block covers.
pub const BITS_PER_BITMAP_BLOCK: u64 = (PAYLOAD * 8) as u64;
/// Block pointers in one indirect block.
pub const PTRS_PER_BLOCK: u64 = (PAYLOAD / 4) as u64;
/// The root directory's inode slot.
pub const ROOT_INDEX: u32 = 1;
/// The root directory's inode number.
pub const ROOT_INO: u64 = 1;
/// Longest name in bytes.
pub const MAX_NAME: usize = 255;
/// Longest symlink target in bytes.
pub const MAX_SYMLINK: usize = 4095;
/// Bytes of inodes per inode the mkfs default provisions.
pub const BYTES_PER_INODE: u64 = 16 * 1024;
/// The smallest journal: every single step of an operation must fit in half of it.
pub const MIN_JOURNAL_BLOCKS: u64 = 32;

/// Where each region starts and how long it is, in blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Blocks in the image.
    pub total_blocks: u64,
    /// Inode slots.
    pub inode_count: u64,
    /// First journal block.
    pub journal_start: u64,
    /// Journal length.
    pub journal_blocks: u64,
    /// First inode-bitmap block.
    pub ibitmap_start: u64,
    /// Inode-bitmap length.
    pub ibitmap_blocks: u64,
    /// First block-bitmap block.
    pub bbitmap_start: u64,
    /// Block-bitmap length.
    pub bbitmap_blocks: u64,
    /// First inode-table block.
    pub itable_start: u64,
    /// Inode-table length.
    pub itable_blocks: u64,
    /// First data block; data runs to the end.
    pub data_start: u64,
}

impl Geometry {
    /// The layout mkfs gives a store of `total_blocks` blocks.
    pub fn for_size(total_blocks: u64, inode_count: Option<u64>) -> FsResult<Geometry> {
        Geometry::with_journal(total_blocks, inode_count, None)
    }

    /// The layout of `for_size`, with a journal of `journal_blocks` (at least
    /// `MIN_JOURNAL_BLOCKS`) instead of the default one sixty-fourth of the volume.
    pub fn with_journal(
        total_blocks: u64,
        inode_count: Option<u64>,
        journal_blocks: Option<u64>,
    ) -> FsResult<Geometry> {
        let inode_count = inode_count
            .unwrap_or(total_blocks * BLOCK_SIZE as u64 / BYTES_PER_INODE)
            .clamp(64, u32::MAX as u64 - 1);
        let journal_blocks = match journal_blocks {
            Some(j) if j < MIN_JOURNAL_BLOCKS => return Err(FsError::Invalid),
            Some(j) => j,
            None => (total_blocks / 64).clamp(64, 4096),
        };
        let journal_start = 1;
        let ibitmap_start = journal_start + journal_blocks;
        let ibitmap_blocks = inode_count.div_ceil(BITS_PER_BITMAP_BLOCK);
        let bbitmap_start = ibitmap_start + ibitmap_blocks;
        let bbitmap_blocks = total_blocks.div_ceil(BITS_PER_BITMAP_BLOCK);
        let itable_start = bbitmap_start + bbitmap_blocks;
        let itable_blocks = inode_count.div_ceil(INODES_PER_BLOCK);
        let data_start = itable_start + itable_blocks;
        if total_blocks > u32::MAX as u64 {
            return Err(FsError::Invalid);
        }
        if data_start + 64 > total_blocks {
            return Err(FsError::NoSpace);
        }
        Ok(Geometry {
            total_blocks,
            inode_count,
            journal_start,
            journal_blocks,
            ibitmap_start,
            ibitmap_blocks,
            bbitmap_start,
            bbitmap_blocks,
            itable_start,
            itable_blocks,
            data_start,
        })
    }

    /// Blocks in the data area.
    pub fn data_blocks(&self) -> u64 {
        self.total_blocks - self.data_start
    }

    /// Block and byte offset holding inode `index`.
    pub fn inode_location(&self, index: u32) -> (u64, usize) {
        let i = index as u64;
        (
            self.itable_start + i / INODES_PER_BLOCK,
            (i % INODES_PER_BLOCK) as usize * INODE_SIZE,
        )
    }

    /// True if block `b` lies in the data area.
    pub fn is_data_block(&self, b: u64) -> bool {
        b >= self.data_start && b < self.total_blocks
    }

    fn check(&self) -> Result<(), String> {
        // Sizes mkfs would refuse are refused here too (the journal size may differ).
        Geometry::for_size(self.total_blocks, Some(self.inode_count))
            .map_err(|e| format!("impossible geometry: {e}"))?;
        let ok = self.journal_start == 1
            && self.ibitmap_start == self.journal_start + self.journal_blocks
            && self.ibitmap_blocks == self.inode_count.div_ceil(BITS_PER_BITMAP_BLOCK)
            && self.bbitmap_start == self.ibitmap_start + self.ibitmap_blocks
            && self.bbitmap_blocks == self.total_blocks.div_ceil(BITS_PER_BITMAP_BLOCK)
            && self.itable_start == self.bbitmap_start + self.bbitmap_blocks
            && self.itable_blocks == self.inode_count.div_ceil(INODES_PER_BLOCK)
            && self.data_start == self.itable_start + self.itable_blocks
            && self.data_start < self.total_blocks;
        if ok {
            Ok(())
        } else {
            Err("superblock regions do not line up".into())
        }
    }
}

/// Block 0. Written by mkfs, then by every journal transaction (which carries its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// The format the image is in (`FORMAT_VERSION`, or an older one this build reads).
    pub version: u32,
    /// Where the regions are.
    pub geometry: Geometry,
    /// mkfs time, seconds since the epoch.
    pub created: i64,
    /// A number naming this volume, taken from the clock and process at mkfs.
    pub volume_id: u64,
    /// Times the volume was opened for writing. New inode generations carry it, so an inode
    /// number handed out (and lost uncommitted) before a crash is never handed out again.
    pub mounts: u64,
    /// The sequence number of the transaction that wrote this superblock: at home, the
    /// newest transaction known whole, even once the journal's copy of it has been torn by
    /// the next one. 0 on images whose transactions did not record it.
    pub last_seq: u64,
    /// The first file unlinked while open (its inode slot; 0: none), as this superblock was
    /// written: the head of the on-disk orphan list (`chain`). Format 3 on.
    pub orphan_head: u32,
    /// The first quota tree's root (its inode slot; 0: none): the head of the list of trees.
    pub tree_head: u32,
    /// Free blocks, as the block bitmap written with this superblock has them: an open
    /// takes them rather than count the bitmaps. 0 with `free_inodes` 0: not kept (an image
    /// written before they were, or a full one), counted at open.
    pub free_blocks: u64,
    /// Free inode slots, as the inode bitmap written with this superblock has them.
    pub free_inodes: u64,
}

/// Where `Superblock::version` lives in block 0.
pub const SB_VERSION_OFFSET: usize = 8;
/// Where `Superblock::mounts` lives in block 0.
pub const SB_MOUNTS_OFFSET: usize = 16 + 13 * 8;
/// Where `Superblock::last_seq` lives in block 0.
pub const SB_LAST_SEQ_OFFSET: usize = 16 + 14 * 8;
/// Where `Superblock::orphan_head` lives in block 0.
pub const SB_ORPHAN_HEAD_OFFSET: usize = 16 + 15 * 8;
/// Where `Superblock::tree_head` lives in block 0.
pub const SB_TREE_HEAD_OFFSET: usize = SB_ORPHAN_HEAD_OFFSET + 4;
/// Where `Superblock::free_blocks` lives in block 0.
pub const SB_FREE_BLOCKS_OFFSET: usize = SB_TREE_HEAD_OFFSET + 4;
/// Where `Superblock::free_inodes` lives in block 0.
pub const SB_FREE_INODES_OFFSET: usize = SB_FREE_BLOCKS_OFFSET + 8;

impl Superblock {
    /// Block 0 as it is written, sealed.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_SIZE];
        b[0..8].copy_from_slice(MAGIC);
        put_u32(&mut b, SB_VERSION_OFFSET, self.version);
        let g = &self.geometry;
        let fields = [
            g.total_blocks,
            g.inode_count,
            g.journal_start,
            g.journal_blocks,
            g.ibitmap_start,
            g.ibitmap_blocks,
            g.bbitmap_start,
            g.bbitmap_blocks,
            g.itable_start,
            g.itable_blocks,
            g.data_start,
            self.created as u64,
            self.volume_id,
            self.mounts,
            self.last_seq,
        ];
        for (i, f) in fields.iter().enumerate() {
            put_u64(&mut b, 16 + i * 8, *f);
        }
        put_u32(&mut b, SB_ORPHAN_HEAD_OFFSET, self.orphan_head);
        put_u32(&mut b, SB_TREE_HEAD_OFFSET, self.tree_head);
        put_u64(&mut b, SB_FREE_BLOCKS_OFFSET, self.free_blocks);
        put_u64(&mut b, SB_FREE_INODES_OFFSET, self.free_inodes);
        seal(&mut b, 0);
        b
    }

    /// Parse block 0, refusing anything that is not a sound rwxfs superblock with a reason.
    pub fn decode(b: &[u8]) -> FsResult<Superblock> {
        if b.len() < BLOCK_SIZE || &b[0..8] != MAGIC {
            return Err(FsError::NotAnImage("no rwxfs signature in block 0".into()));
        }
        let version = get_u32(b, SB_VERSION_OFFSET);
        if version > FORMAT_VERSION {
            return Err(FsError::NotAnImage(format!(
                "format version {version} is newer than this build reads \
                 ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}): use a newer rwxfs"
            )));
        }
        if version < OLDEST_FORMAT_VERSION {
            return Err(FsError::NotAnImage(format!(
                "format version {version} is unknown to this build \
                 ({OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})"
            )));
        }
        if !verify(b, 0) {
            return Err(FsError::NotAnImage("superblock checksum mismatch".into()));
        }
        let f = |i: usize| get_u64(b, 16 + i * 8);
        let geometry = Geometry {
            total_blocks: f(0),
            inode_count: f(1),
            journal_start: f(2),
            journal_blocks: f(3),
            ibitmap_start: f(4),
            ibitmap_blocks: f(5),
            bbitmap_start: f(6),
            bbitmap_blocks: f(7),
            itable_start: f(8),
            itable_blocks: f(9),
            data_start: f(10),
        };
        geometry.check().map_err(FsError::NotAnImage)?;
        Ok(Superblock {
            version,
            geometry,
            created: f(11) as i64,
            volume_id: f(12),
            mounts: f(13),
            last_seq: f(14),
            // Older formats left these bytes zero: no list yet.
            orphan_head: get_u32(b, SB_ORPHAN_HEAD_OFFSET),
            tree_head: get_u32(b, SB_TREE_HEAD_OFFSET),
            free_blocks: get_u64(b, SB_FREE_BLOCKS_OFFSET),
            free_inodes: get_u64(b, SB_FREE_INODES_OFFSET),
        })
    }
}

fn crc_of(b: &[u8], blockno: u64) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&blockno.to_le_bytes()), &b[..PAYLOAD])
}

/// Stamp the checksum of a metadata block that will live at `blockno`.
pub fn seal(b: &mut [u8], blockno: u64) {
    let c = crc_of(b, blockno);
    b[PAYLOAD..BLOCK_SIZE].copy_from_slice(&c.to_le_bytes());
}

/// True when the checksum matches, or the block was never written (all zeros).
pub fn verify(b: &[u8], blockno: u64) -> bool {
    let stored = get_u32(b, PAYLOAD);
    stored == crc_of(b, blockno) || (stored == 0 && b.iter().all(|&x| x == 0))
}

/// Little-endian u16 at `off`.
pub fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
/// Little-endian u32 at `off`.
pub fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}
/// Little-endian u64 at `off`.
pub fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
/// Store little-endian u16 at `off`.
pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
/// Store little-endian u32 at `off`.
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
/// Store little-endian u64 at `off`.
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Inode numbers carry a generation: `gen << 32 | index`. The root is always 1.
pub fn make_ino(index: u32, generation: u32) -> u64 {
    if index == ROOT_INDEX {
        ROOT_INO
    } else {
        ((generation as u64) << 32) | index as u64
    }
}

/// An inode number's (slot index, generation); the inverse of `make_ino` but for the root.
pub fn split_ino(ino: u64) -> (u32, u32) {
    ((ino & 0xffff_ffff) as u32, (ino >> 32) as u32)
}
