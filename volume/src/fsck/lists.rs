//! fsck of the on-disk lists (`crate::chain`, format 3 on): the list of files unlinked while
//! open holds exactly the inodes in use with no link left, and the list of quota trees
//! exactly the trees' roots, each keeping the use its tree holds.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::chain::{self, List};
use crate::error::FsResult;
use crate::inode::DiskInode;
use crate::layout::Superblock;
use crate::quota::{stored_use, Usage};
use crate::store::BlockStore;

use super::{Bitmap, Kind, Reader, Report};

/// Inode `index`'s record, as its table block holds it (replayed).
fn record<S: BlockStore>(rd: &Reader<S>, index: u32) -> FsResult<Vec<u8>> {
    let (b, off) = rd.geo.inode_location(index);
    let img = rd.raw(b)?;
    Ok(img[off..off + crate::layout::INODE_SIZE].to_vec())
}

/// The members of `list` from `head`, or none with the reason reported.
fn members<S: BlockStore>(
    rd: &Reader<S>,
    list: List,
    head: u32,
    kind: Kind,
    r: &mut Report,
) -> FsResult<HashSet<u32>> {
    match chain::walk(list, head, rd.geo.inode_count, |i| {
        Ok(chain::link_in(list, &record(rd, i)?))
    }) {
        Ok(m) => Ok(m.into_iter().collect()),
        Err(crate::FsError::Corrupt(why)) => {
            r.add(kind, why);
            Ok(HashSet::new())
        }
        Err(e) => Err(e),
    }
}

/// The orphan list holds every inode in use with no link left, and nothing else.
pub(super) fn check_orphan_list<S: BlockStore>(
    rd: &Reader<S>,
    sb: &Superblock,
    inodes: &HashMap<u32, DiskInode>,
    indexes: &[u32],
    r: &mut Report,
) -> FsResult<()> {
    let listed = members(rd, List::Orphans, sb.orphan_head, Kind::OrphanList, r)?;
    for index in indexes {
        if inodes[index].nlink == 0 && !listed.contains(index) {
            r.add(
                Kind::OrphanList,
                format!(
                    "inode {index} has no link left but is not on the orphan list: no open \
                     would free it"
                ),
            );
        }
    }
    let mut wrong: Vec<&u32> = listed
        .iter()
        .filter(|i| inodes.get(i).is_none_or(|d| d.nlink != 0))
        .collect();
    wrong.sort_unstable();
    for index in wrong {
        let what = match inodes.get(index) {
            None => "free".to_string(),
            Some(d) => format!("linked {} times", d.nlink),
        };
        r.add(
            Kind::OrphanList,
            format!("the orphan list names inode {index}, which is {what}"),
        );
    }
    Ok(())
}

/// The tree list holds every quota tree's root and nothing else, and each root keeps the
/// use its tree holds (blocks and inodes of the inodes in it).
pub(super) fn check_tree_list<S: BlockStore>(
    rd: &Reader<S>,
    sb: &Superblock,
    inodes: &HashMap<u32, DiskInode>,
    indexes: &[u32],
    r: &mut Report,
) -> FsResult<()> {
    let listed = members(rd, List::Trees, sb.tree_head, Kind::QuotaTree, r)?;
    let is_root = |i: &u32| inodes.get(i).is_some_and(|d| d.tree == *i && d.is_dir());
    let mut held: BTreeMap<u32, Usage> = BTreeMap::new();
    for index in indexes {
        let d = &inodes[index];
        if is_root(index) && !listed.contains(index) {
            r.add(
                Kind::QuotaTree,
                format!("quota tree {index}'s root is not on the list of trees"),
            );
        }
        if d.tree != 0 {
            let u = held.entry(d.tree).or_default();
            u.blocks += d.blocks;
            u.inodes += 1;
        }
    }
    let mut listed: Vec<u32> = listed.into_iter().collect();
    listed.sort_unstable();
    for root in listed {
        if !is_root(&root) {
            r.add(
                Kind::QuotaTree,
                format!("the list of trees names inode {root}, which is no tree's root"),
            );
            continue;
        }
        let kept = stored_use(&record(rd, root)?);
        let holds = held.get(&root).copied().unwrap_or_default();
        if kept != holds {
            r.add(
                Kind::QuotaTree,
                format!(
                    "quota tree {root} keeps a use of {} blocks and {} inodes, but holds {} \
                     and {}",
                    kept.blocks, kept.inodes, holds.blocks, holds.inodes
                ),
            );
        }
    }
    Ok(())
}

/// The free counts the superblock keeps (if it keeps them) are the bitmaps' clear bits.
pub(super) fn check_free_counts(sb: &Superblock, ibits: &Bitmap, bbits: &Bitmap, r: &mut Report) {
    if sb.free_blocks == 0 && sb.free_inodes == 0 {
        return;
    }
    let clear = |bm: &Bitmap| -> u64 {
        bm.iter()
            .flat_map(|b| b.iter().take(crate::layout::PAYLOAD))
            .map(|x| x.count_zeros() as u64)
            .sum()
    };
    let (blocks, inodes) = (clear(bbits), clear(ibits));
    if sb.free_blocks != blocks {
        r.add(
            Kind::BlockBitmap,
            format!(
                "the superblock keeps {} free blocks, the bitmap has {blocks}",
                sb.free_blocks
            ),
        );
    }
    if sb.free_inodes != inodes {
        r.add(
            Kind::InodeBitmap,
            format!(
                "the superblock keeps {} free inodes, the bitmap has {inodes}",
                sb.free_inodes
            ),
        );
    }
}
