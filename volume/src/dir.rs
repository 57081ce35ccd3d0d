//! Directories: entries packed in checksummed 4 KiB blocks (`rec_len, name_len, kind, ino,
//! name`), never moved while they exist, so an entry's position is a readdir cookie that stays
//! valid while others come and go. In memory, a hash index by name makes lookups O(1) in
//! directories of any size.

use std::collections::{BTreeMap, HashMap};

use crate::attr::FileKind;
use crate::bmap;
use crate::cache::Meta;
use crate::error::{FsError, FsResult};
use crate::inode::DiskInode;
use crate::layout::{get_u16, get_u64, put_u16, put_u64, BLOCK_SIZE, PAYLOAD};
use crate::store::BlockStore;

const HDR: usize = 12;

fn rec_size(name_len: usize) -> usize {
    (HDR + name_len).div_ceil(4) * 4
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub ino: u64,
    pub kind: FileKind,
    pub pos: u32,
}

/// One parsed record.
pub(crate) struct Rec {
    pub off: usize,
    pub rec_len: usize,
    pub ino: u64,
    pub kind: u8,
    pub name: Vec<u8>,
}

/// Parse a directory block's records, refusing any that do not tile the block.
pub(crate) fn parse_block(b: &[u8]) -> Result<Vec<Rec>, String> {
    let mut out = Vec::new();
    let mut off = 0usize;
    if b.iter().take(PAYLOAD).all(|&x| x == 0) {
        return Err("directory block never initialised".into());
    }
    while off < PAYLOAD {
        if off + HDR > PAYLOAD {
            return Err(format!("record header at {off} runs past the block"));
        }
        let rec_len = get_u16(b, off) as usize;
        let name_len = b[off + 2] as usize;
        let ino = get_u64(b, off + 4);
        if rec_len < HDR || !rec_len.is_multiple_of(4) || off + rec_len > PAYLOAD {
            return Err(format!("bad record length {rec_len} at {off}"));
        }
        if ino != 0 && (name_len == 0 || rec_size(name_len) > rec_len) {
            return Err(format!("bad name length {name_len} at {off}"));
        }
        out.push(Rec {
            off,
            rec_len,
            ino,
            kind: b[off + 3],
            name: b[off + HDR..off + HDR + if ino != 0 { name_len } else { 0 }].to_vec(),
        });
        off += rec_len;
    }
    Ok(out)
}

fn used(r: &Rec) -> usize {
    if r.ino == 0 {
        0
    } else {
        rec_size(r.name.len())
    }
}

fn slack_of(recs: &[Rec]) -> u16 {
    recs.iter().map(|r| r.rec_len - used(r)).max().unwrap_or(0) as u16
}

fn write_rec(b: &mut [u8], off: usize, rec_len: usize, ino: u64, kind: u8, name: &[u8]) {
    put_u16(b, off, rec_len as u16);
    b[off + 2] = name.len() as u8;
    b[off + 3] = kind;
    put_u64(b, off + 4, ino);
    b[off + HDR..off + HDR + name.len()].copy_from_slice(name);
}

pub(crate) struct DirIndex {
    map: HashMap<Vec<u8>, Slot>,
    order: BTreeMap<u32, Vec<u8>>,
    /// Largest free run in each block, so an insert looks only where it fits.
    slack: Vec<u16>,
    pub subdirs: u32,
}

impl DirIndex {
    pub(crate) fn load<S: BlockStore>(m: &mut Meta<S>, dir: &DiskInode) -> FsResult<DirIndex> {
        let nblocks = dir.size / BLOCK_SIZE as u64;
        let mut idx = DirIndex {
            map: HashMap::new(),
            order: BTreeMap::new(),
            slack: Vec::with_capacity(nblocks as usize),
            subdirs: 0,
        };
        for lblk in 0..nblocks {
            let Some(phys) = bmap::lookup(m, dir, lblk)? else {
                return Err(FsError::Corrupt(format!(
                    "directory has a hole at block {lblk}"
                )));
            };
            let recs = parse_block(m.block(phys)?)
                .map_err(|e| FsError::Corrupt(format!("directory block {phys}: {e}")))?;
            idx.slack.push(slack_of(&recs));
            for r in recs {
                if r.ino == 0 {
                    continue;
                }
                let kind = FileKind::from_code(r.kind).ok_or_else(|| {
                    FsError::Corrupt(format!("directory block {phys}: bad kind {}", r.kind))
                })?;
                if kind == FileKind::Directory {
                    idx.subdirs += 1;
                }
                let pos = (lblk * BLOCK_SIZE as u64 + r.off as u64) as u32;
                idx.order.insert(pos, r.name.clone());
                idx.map.insert(
                    r.name,
                    Slot {
                        ino: r.ino,
                        kind,
                        pos,
                    },
                );
            }
        }
        Ok(idx)
    }

    pub(crate) fn get(&self, name: &[u8]) -> Option<Slot> {
        self.map.get(name).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// An index of `n` made-up files, for tests of what holds indexes.
    #[cfg(test)]
    pub(crate) fn with_names(n: u32) -> DirIndex {
        let mut idx = DirIndex {
            map: HashMap::new(),
            order: BTreeMap::new(),
            slack: Vec::new(),
            subdirs: 0,
        };
        for i in 0..n {
            let name = format!("f{i}").into_bytes();
            idx.order.insert(i * 16, name.clone());
            let slot = Slot {
                ino: i as u64 + 2,
                kind: FileKind::RegularFile,
                pos: i * 16,
            };
            idx.map.insert(name, slot);
        }
        idx
    }

    /// Entries whose position is at or after `pos`, in position order.
    pub(crate) fn entries_from(&self, pos: u32) -> impl Iterator<Item = (&Vec<u8>, Slot)> + '_ {
        self.order
            .range(pos..)
            .filter_map(move |(_, n)| self.map.get(n).map(|s| (n, *s)))
    }

    /// The directory block with room for an entry named `name`, if any.
    fn block_with_room(&self, name: &[u8]) -> Option<u64> {
        let need = rec_size(name.len());
        self.slack
            .iter()
            .position(|&s| s as usize >= need)
            .map(|l| l as u64)
    }

    /// New blocks (a directory block and any indirect ones) `insert` of `name` would take.
    pub(crate) fn insert_cost<S: BlockStore>(
        &self,
        m: &mut Meta<S>,
        dir: &DiskInode,
        name: &[u8],
    ) -> FsResult<u64> {
        match self.block_with_room(name) {
            Some(_) => Ok(0),
            None => bmap::alloc_cost(m, dir, dir.size / BLOCK_SIZE as u64),
        }
    }

    /// Add an entry. All or nothing: refused with `NoSpace` before any change if it needs a
    /// new block that is not there.
    pub(crate) fn insert<S: BlockStore>(
        &mut self,
        m: &mut Meta<S>,
        dir: &mut DiskInode,
        name: &[u8],
        ino: u64,
        kind: FileKind,
    ) -> FsResult<()> {
        let need = rec_size(name.len());
        let lblk = match self.block_with_room(name) {
            Some(l) => l,
            None => {
                let lblk = dir.size / BLOCK_SIZE as u64;
                let goal = if lblk > 0 {
                    bmap::lookup(m, dir, lblk - 1)?.map(|b| b + 1)
                } else {
                    None
                };
                let mapped = bmap::map_alloc(m, dir, lblk, goal)?;
                let b = m.block_new(mapped.phys);
                write_rec(b, 0, PAYLOAD, 0, 0, &[]);
                dir.size += BLOCK_SIZE as u64;
                self.slack.push(PAYLOAD as u16);
                lblk
            }
        };
        let phys = bmap::lookup(m, dir, lblk)?
            .ok_or_else(|| FsError::Corrupt("directory block vanished".into()))?;
        let recs = parse_block(m.block(phys)?)
            .map_err(|e| FsError::Corrupt(format!("directory block {phys}: {e}")))?;
        let r = recs
            .iter()
            .find(|r| r.rec_len - used(r) >= need)
            .ok_or_else(|| FsError::Corrupt("directory slack out of date".into()))?;
        let (off, rec_len, u) = (r.off, r.rec_len, used(r));
        let b = m.block_mut(phys)?;
        let new_off = if u == 0 {
            write_rec(b, off, rec_len, ino, kind.code(), name);
            off
        } else {
            put_u16(b, off, u as u16);
            write_rec(b, off + u, rec_len - u, ino, kind.code(), name);
            off + u
        };
        let recs = parse_block(b).map_err(FsError::Corrupt)?;
        self.slack[lblk as usize] = slack_of(&recs);
        let pos = (lblk * BLOCK_SIZE as u64 + new_off as u64) as u32;
        self.order.insert(pos, name.to_vec());
        self.map.insert(name.to_vec(), Slot { ino, kind, pos });
        if kind == FileKind::Directory {
            self.subdirs += 1;
        }
        Ok(())
    }

    pub(crate) fn remove<S: BlockStore>(
        &mut self,
        m: &mut Meta<S>,
        dir: &DiskInode,
        name: &[u8],
    ) -> FsResult<Slot> {
        let slot = self.map.get(name).copied().ok_or(FsError::NotFound)?;
        let lblk = slot.pos as u64 / BLOCK_SIZE as u64;
        let off = slot.pos as usize % BLOCK_SIZE;
        let phys = bmap::lookup(m, dir, lblk)?
            .ok_or_else(|| FsError::Corrupt("directory block vanished".into()))?;
        let recs = parse_block(m.block(phys)?)
            .map_err(|e| FsError::Corrupt(format!("directory block {phys}: {e}")))?;
        let i = recs
            .iter()
            .position(|r| r.off == off)
            .ok_or_else(|| FsError::Corrupt("directory entry not where the index says".into()))?;
        let b = m.block_mut(phys)?;
        if i == 0 {
            put_u64(b, off + 4, 0);
            b[off + 2] = 0;
        } else {
            let prev = &recs[i - 1];
            put_u16(b, prev.off, (prev.rec_len + recs[i].rec_len) as u16);
        }
        let recs = parse_block(b).map_err(FsError::Corrupt)?;
        self.slack[lblk as usize] = slack_of(&recs);
        self.order.remove(&slot.pos);
        self.map.remove(name);
        if slot.kind == FileKind::Directory {
            self.subdirs = self.subdirs.saturating_sub(1);
        }
        Ok(slot)
    }

    /// Point an existing entry at another inode, in place (rename over a target).
    pub(crate) fn replace<S: BlockStore>(
        &mut self,
        m: &mut Meta<S>,
        dir: &DiskInode,
        name: &[u8],
        ino: u64,
        kind: FileKind,
    ) -> FsResult<()> {
        let slot = self.map.get(name).copied().ok_or(FsError::NotFound)?;
        let lblk = slot.pos as u64 / BLOCK_SIZE as u64;
        let off = slot.pos as usize % BLOCK_SIZE;
        let phys = bmap::lookup(m, dir, lblk)?
            .ok_or_else(|| FsError::Corrupt("directory block vanished".into()))?;
        let b = m.block_mut(phys)?;
        put_u64(b, off + 4, ino);
        b[off + 3] = kind.code();
        if slot.kind == FileKind::Directory {
            self.subdirs = self.subdirs.saturating_sub(1);
        }
        if kind == FileKind::Directory {
            self.subdirs += 1;
        }
        self.map.insert(
            name.to_vec(),
            Slot {
                ino,
                kind,
                pos: slot.pos,
            },
        );
        Ok(())
    }
}
