//! mkfs: lay out an empty volume (superblock, empty journal, bitmaps, root directory).

use crate::attr::TimeSpec;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::layout::{
    seal, Geometry, Superblock, BITS_PER_BITMAP_BLOCK, BLOCK_SIZE, FORMAT_VERSION, INODE_SIZE,
    MAGIC, ROOT_INDEX, ROOT_INO,
};
use crate::store::BlockStore;

/// How mkfs lays out a volume.
#[derive(Debug, Clone, Default)]
pub struct MkfsOptions {
    /// Inodes to provision; default one per 16 KiB.
    pub inodes: Option<u64>,
    /// Overwrite an existing rwxfs image.
    pub force: bool,
    /// Journal size in blocks; default one sixty-fourth of the volume, 64 to 4096.
    pub journal_blocks: Option<u64>,
}

/// True if the store already starts with an rwxfs signature.
pub fn has_rwxfs_signature<S: BlockStore>(store: &S) -> FsResult<bool> {
    let mut b = vec![0u8; 8];
    store.read_at(&mut b, 0)?;
    Ok(b == MAGIC)
}

/// Bitmap blocks with bits `[0, used)` and `[nbits, capacity)` set.
fn bitmap_blocks(nblocks: u64, nbits: u64, used: u64, start: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for bi in 0..nblocks {
        let mut b = vec![0u8; BLOCK_SIZE];
        for bit in 0..BITS_PER_BITMAP_BLOCK {
            let idx = bi * BITS_PER_BITMAP_BLOCK + bit;
            if idx < used || idx >= nbits {
                b[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        seal(&mut b, start + bi);
        out.push((start + bi, b));
    }
    out
}

/// Lay out an empty volume on `store` (refusing an existing rwxfs image unless `force`); its geometry.
pub fn mkfs<S: BlockStore>(store: &S, opts: &MkfsOptions) -> FsResult<Geometry> {
    if !opts.force && has_rwxfs_signature(store)? {
        return Err(FsError::Exists);
    }
    let total = store.len() / BLOCK_SIZE as u64;
    let geo = Geometry::with_journal(total, opts.inodes, opts.journal_blocks)?;
    let now = TimeSpec::now();
    let sb = Superblock {
        version: FORMAT_VERSION,
        geometry: geo,
        created: now.sec,
        volume_id: (now.sec as u64) << 20 ^ now.nsec as u64 ^ std::process::id() as u64,
        mounts: 0,
        last_seq: 0,
        orphan_head: 0,
        tree_head: 0,
        // Counted at the first open, kept from its commit on.
        free_blocks: 0,
        free_inodes: 0,
    };
    // Clear the journal head so no stale transaction from an older image is replayed.
    store.write_at(
        &vec![0u8; BLOCK_SIZE * 2],
        geo.journal_start * BLOCK_SIZE as u64,
    )?;
    for (b, img) in bitmap_blocks(geo.ibitmap_blocks, geo.inode_count, 2, geo.ibitmap_start) {
        store.write_at(&img, b * BLOCK_SIZE as u64)?;
    }
    for (b, img) in bitmap_blocks(
        geo.bbitmap_blocks,
        geo.total_blocks,
        geo.data_start,
        geo.bbitmap_start,
    ) {
        store.write_at(&img, b * BLOCK_SIZE as u64)?;
    }
    // Like /tmp: anyone may create at the top of a shared volume (root squashed to nobody
    // included), and only an entry's owner may remove or rename it.
    let root = DiskInode {
        mode: libc::S_IFDIR | 0o1777,
        nlink: 2,
        atime: now,
        mtime: now,
        ctime: now,
        parent: ROOT_INO,
        ..DiskInode::default()
    };
    let (rb, roff) = geo.inode_location(ROOT_INDEX);
    let mut itb = vec![0u8; BLOCK_SIZE];
    root.encode(&mut itb[roff..roff + INODE_SIZE]);
    seal(&mut itb, rb);
    store.write_at(&itb, rb * BLOCK_SIZE as u64)?;
    // Other inode table blocks stay sparse: an all-zero block is a valid block of free inodes.
    store.write_at(&sb.encode(), 0)?;
    // Space for the journal and every metadata block, taken now: a commit must never fail
    // because the disk under a sparse image filled up with file data.
    store.reserve(0, geo.data_start * BLOCK_SIZE as u64)?;
    store.flush()?;
    Ok(geo)
}
