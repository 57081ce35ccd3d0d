//! Who holds each block of an image: the map `rwxfs demo` draws, from the same read-only walk
//! fsck makes (the image as it will be after journal replay).

use std::collections::HashMap;

use super::{bit, read_tables, walk_file, Report, Tables};
use crate::error::FsResult;
use crate::store::BlockStore;

/// What one block of the image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// No file holds it and the block bitmap says it is free.
    Free,
    /// The volume's own structures: superblock, bitmaps, inode table, journal.
    System,
    /// Bytes of the file whose inode index this is.
    Data(u32),
    /// A block that describes the file whose inode index this is rather than holding its
    /// bytes: an indirect block, a directory's block, an extended-attribute block.
    Meta(u32),
    /// Claimed twice: by two files (or twice by one), or by a file while the block bitmap says
    /// it is free (the next allocation hands it out again).
    Twice,
    /// Marked in use by the block bitmap, held by no file: lost to everyone.
    Leaked,
}

/// Every block of an image, in order, by what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMap {
    /// One cell per block of the volume.
    pub cells: Vec<Cell>,
}

impl BlockMap {
    /// Blocks of the image.
    pub fn len(&self) -> u64 {
        self.cells.len() as u64
    }
    /// True for an image of no blocks (never a valid one).
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
    /// Blocks that are `cell`.
    pub fn count(&self, cell: Cell) -> u64 {
        self.cells.iter().filter(|c| **c == cell).count() as u64
    }
    /// Blocks claimed twice.
    pub fn twice(&self) -> u64 {
        self.count(Cell::Twice)
    }
    /// The first block past the volume's own structures (superblock, bitmaps, inode table,
    /// journal): where files' blocks begin.
    pub fn data_start(&self) -> u64 {
        self.cells
            .iter()
            .position(|c| *c != Cell::System)
            .unwrap_or(self.cells.len()) as u64
    }
    /// One past the last block that is not free: everything from there on is free.
    pub fn extent(&self) -> u64 {
        self.cells
            .iter()
            .rposition(|c| *c != Cell::Free)
            .map_or(0, |i| i as u64 + 1)
    }
}

/// The block map of the image in `store`. Err only when it cannot be read at all (not rwxfs,
/// I/O); damage shows in the cells (`Cell::Twice`, `Cell::Leaked`) and fsck tells the rest.
pub fn block_map<S: BlockStore>(store: &S) -> FsResult<BlockMap> {
    let mut r = Report::default();
    let Tables {
        rd,
        bbits,
        inodes,
        indexes,
        ..
    } = read_tables(store, &mut r)?;
    let geo = rd.geo;
    let mut owned: HashMap<u64, Cell> = HashMap::new();
    for index in indexes {
        let d = &inodes[&index];
        let mut claim = |b: u64, meta: bool| {
            let cell = if meta {
                Cell::Meta(index)
            } else {
                Cell::Data(index)
            };
            if owned.insert(b, cell).is_some() {
                owned.insert(b, Cell::Twice);
            }
        };
        let mut unused = Vec::new();
        walk_file(
            &rd,
            d,
            index,
            &mut r,
            &mut |b, indirect, _| claim(b, indirect || d.is_dir()),
            &mut unused,
        )?;
        if d.xattr != 0 && geo.is_data_block(d.xattr as u64) {
            claim(d.xattr as u64, true);
        }
    }
    let cells = (0..geo.total_blocks)
        .map(|b| {
            let marked = bit(&bbits, b);
            match owned.get(&b) {
                _ if b < geo.data_start => Cell::System,
                Some(_) if !marked => Cell::Twice,
                Some(c) => *c,
                None if marked => Cell::Leaked,
                None => Cell::Free,
            }
        })
        .collect();
    Ok(BlockMap { cells })
}
