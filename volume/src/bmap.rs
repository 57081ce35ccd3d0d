//! File block mapping: 12 direct pointers, then single, double and triple indirect blocks of
//! 1023 pointers each (about 4 TiB a file). Indirect blocks are metadata, journaled.

use crate::cache::Meta;
use crate::error::{FsError, FsResult};
use crate::inode::{DiskInode, NDIRECT};
use crate::layout::{get_u32, put_u32, PTRS_PER_BLOCK};
use crate::store::BlockStore;

mod runs;
pub(crate) use runs::{lookup_run, map_reserved_run};

const P: u64 = PTRS_PER_BLOCK;

/// Logical blocks a file can map.
pub(crate) const MAX_BLOCKS: u64 = NDIRECT as u64 + P + P * P + P * P * P;

/// Where a logical block's pointer is: which tree (0 the inode's direct pointers, 1 to 3
/// the single, double and triple indirect trees) and the index at each level below the inode.
#[derive(Clone, Copy)]
struct Path {
    at: [usize; 3],
    depth: usize,
}

impl std::ops::Deref for Path {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.at[..self.depth]
    }
}

/// Which tree holds `lblk`, and the index at each level below the inode.
fn path(lblk: u64) -> FsResult<(usize, Path)> {
    let p = |tree, at, depth| Ok((tree, Path { at, depth }));
    let mut l = lblk;
    if l < NDIRECT as u64 {
        return p(0, [l as usize, 0, 0], 1);
    }
    l -= NDIRECT as u64;
    if l < P {
        return p(1, [l as usize, 0, 0], 1);
    }
    l -= P;
    if l < P * P {
        return p(2, [(l / P) as usize, (l % P) as usize, 0], 2);
    }
    l -= P * P;
    if l < P * P * P {
        let at = [
            (l / (P * P)) as usize,
            ((l / P) % P) as usize,
            (l % P) as usize,
        ];
        return p(3, at, 3);
    }
    Err(FsError::FileTooBig)
}

/// Outcome of mapping a block for writing.
pub(crate) struct Mapped {
    pub phys: u64,
    /// The block was just allocated: its old contents are garbage and must be overwritten.
    pub fresh: bool,
}

/// Physical block of logical block `lblk`, or None for a hole.
pub(crate) fn lookup<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &DiskInode,
    lblk: u64,
) -> FsResult<Option<u64>> {
    lookup_span(m, ino, lblk).map(|(phys, _)| phys)
}

/// Logical block `lblk`'s physical block, or `None` for a hole, and how many blocks from
/// `lblk` on that answer covers at least: one for a mapped block, the rest of the unmapped
/// subtree for a hole (a missing indirect block is a hole of all it would map), so a search
/// for data skips a sparse file's holes a subtree at a time.
pub(crate) fn lookup_span<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &DiskInode,
    lblk: u64,
) -> FsResult<(Option<u64>, u64)> {
    let (tree, idx) = path(lblk)?;
    let i = idx[idx.len() - 1];
    let ptr = match tree {
        0 => ino.direct[i] as u64,
        _ => match find_pointer_block(m, ino, tree, &idx)? {
            Ok(block) => get_u32(m.block(block)?, i * 4) as u64,
            Err(hole) => return Ok((None, hole)),
        },
    };
    if ptr != 0 && tree != 0 {
        check_ptr(m, ptr)?;
    }
    Ok(((ptr != 0).then_some(ptr), 1))
}

/// The indirect block of `tree` (1 to 3) that holds the pointer `idx` leads to, or, where a
/// pointer on the way is absent, how many blocks from the one `idx` names on are a hole
/// (all that the missing subtree would map, from there on).
fn find_pointer_block<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &DiskInode,
    tree: usize,
    idx: &[usize],
) -> FsResult<Result<u64, u64>> {
    let mut ptr = match tree {
        1 => ino.ind,
        2 => ino.dind,
        _ => ino.tind,
    } as u64;
    for level in 0..idx.len() {
        if ptr == 0 {
            // The subtree under this pointer maps P^(levels below) blocks; `lblk` is at
            // the position the remaining indexes give within it.
            let below = &idx[level..];
            let within = below.iter().fold(0u64, |acc, &j| acc * P + j as u64);
            return Ok(Err(P.pow(below.len() as u32) - within));
        }
        check_ptr(m, ptr)?;
        if level + 1 < idx.len() {
            ptr = get_u32(m.block(ptr)?, idx[level] * 4) as u64;
        }
    }
    Ok(Ok(ptr))
}

fn check_ptr<S: BlockStore>(m: &Meta<S>, ptr: u64) -> FsResult<()> {
    if m.geo.is_data_block(ptr) {
        Ok(())
    } else {
        Err(FsError::Corrupt(format!(
            "block pointer {ptr} outside the data area"
        )))
    }
}

/// Blocks that can be allocated now: free ones, less those freed by changes not yet committed.
pub(crate) fn available<S: BlockStore>(m: &Meta<S>) -> u64 {
    m.free_blocks.saturating_sub(m.quarantined() as u64)
}

/// Refuse with `NoSpace`, or `DiskQuota` if quota tree `tree` has not room for them, before
/// anything changes, an operation that needs `n` new blocks.
pub(crate) fn reserve<S: BlockStore>(m: &Meta<S>, tree: u32, n: u64) -> FsResult<()> {
    if available(m) < n {
        return Err(FsError::NoSpace);
    }
    m.trees.check(tree, n, 0)
}

/// Most blocks mapping `n` logical blocks in a row may allocate, indirect ones included,
/// whatever the file holds: a bound known without walking its block map.
pub(crate) fn most_alloc(n: u64) -> u64 {
    // Leaf-pointing indirect blocks over the run (it may straddle one more), those above
    // them (as many again, bounded loosely), and the three roots.
    n.saturating_add(3 * (n.div_ceil(P) + 3))
}

/// Blocks `map_alloc` would allocate for `lblk`: the block and any indirect blocks on its way.
pub(crate) fn alloc_cost<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &DiskInode,
    lblk: u64,
) -> FsResult<u64> {
    alloc_cost_range(m, ino, lblk, lblk + 1)
}

/// Blocks mapping every logical block in `[from, to)` would allocate, indirect ones included.
pub(crate) fn alloc_cost_range<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &DiskInode,
    from: u64,
    to: u64,
) -> FsResult<u64> {
    if to > MAX_BLOCKS {
        return Err(FsError::FileTooBig);
    }
    let n = NDIRECT as u64;
    let mut cost = (from.min(n)..to.min(n))
        .filter(|&l| ino.direct[l as usize] == 0)
        .count() as u64;
    let mut base = n;
    let mut span = P;
    for (level, root) in [(1, ino.ind), (2, ino.dind), (3, ino.tind)] {
        let (lo, hi) = (from.max(base), to.min(base + span));
        if lo < hi {
            cost += subtree_cost(m, root as u64, level, base, lo, hi)?;
        }
        base += span;
        span *= P;
    }
    Ok(cost)
}

/// Blocks missing to map `[lo, hi)` under the indirect block `ptr` (0: absent) of `level`
/// levels whose first logical block is `base`.
fn subtree_cost<S: BlockStore>(
    m: &mut Meta<S>,
    ptr: u64,
    level: u32,
    base: u64,
    lo: u64,
    hi: u64,
) -> FsResult<u64> {
    if ptr == 0 && level == 1 {
        return Ok(1 + hi - lo);
    }
    let child_span = P.pow(level - 1);
    let ptrs: Vec<u64> = if ptr == 0 {
        Vec::new()
    } else {
        check_ptr(m, ptr)?;
        let blk = m.block(ptr)?;
        (0..P as usize)
            .map(|i| get_u32(blk, i * 4) as u64)
            .collect()
    };
    let mut cost = (ptr == 0) as u64;
    for i in (lo - base) / child_span..=(hi - 1 - base) / child_span {
        let child = ptrs.get(i as usize).copied().unwrap_or(0);
        let cbase = base + i * child_span;
        let (clo, chi) = (lo.max(cbase), hi.min(cbase + child_span));
        cost += if level == 1 {
            (child == 0) as u64
        } else {
            subtree_cost(m, child, level - 1, cbase, clo, chi)?
        };
    }
    Ok(cost)
}

/// Physical block of `lblk`, allocating it (and any indirect blocks on the way) if absent.
/// All or nothing: refused with `NoSpace` (or `DiskQuota`) before anything is allocated if
/// the blocks it needs are not all there.
pub(crate) fn map_alloc<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    lblk: u64,
    goal: Option<u64>,
) -> FsResult<Mapped> {
    map_with(m, ino, lblk, goal)
}

fn map_with<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    lblk: u64,
    goal: Option<u64>,
) -> FsResult<Mapped> {
    // A walk needs at most four blocks; count them only when that many may not be there.
    if available(m).min(m.trees.room(ino.tree)) < 4 {
        let cost = alloc_cost(m, ino, lblk)?;
        reserve(m, ino.tree, cost)?;
    }
    let (tree, idx) = path(lblk)?;
    if tree == 0 {
        let cur = ino.direct[idx[0]] as u64;
        if cur != 0 {
            return Ok(Mapped {
                phys: cur,
                fresh: false,
            });
        }
        let b = m.alloc_block(goal, ino.tree)?;
        ino.direct[idx[0]] = b as u32;
        ino.blocks += 1;
        return Ok(Mapped {
            phys: b,
            fresh: true,
        });
    }
    let ptr = pointer_block(m, ino, tree, &idx, goal)?;
    let i = idx[idx.len() - 1];
    let next = get_u32(m.block(ptr)?, i * 4) as u64;
    if next != 0 {
        return Ok(Mapped {
            phys: next,
            fresh: false,
        });
    }
    let b = m.alloc_block(goal.or(Some(ptr + 1)), ino.tree)?;
    ino.blocks += 1;
    put_u32(m.block_mut(ptr)?, i * 4, b as u32);
    Ok(Mapped {
        phys: b,
        fresh: true,
    })
}

/// The indirect block of `tree` (1 to 3) that holds the pointer `idx` leads to, allocated
/// (near `goal`, or after the block above it) with any above it that are absent.
fn pointer_block<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    tree: usize,
    idx: &[usize],
    goal: Option<u64>,
) -> FsResult<u64> {
    let root = match tree {
        1 => &mut ino.ind,
        2 => &mut ino.dind,
        _ => &mut ino.tind,
    };
    let mut ptr = *root as u64;
    if ptr == 0 {
        ptr = m.alloc_block(goal, ino.tree)?;
        m.block_new(ptr);
        *root = ptr as u32;
        ino.blocks += 1;
    }
    for &i in &idx[..idx.len() - 1] {
        check_ptr(m, ptr)?;
        let next = get_u32(m.block(ptr)?, i * 4) as u64;
        if next != 0 {
            ptr = next;
            continue;
        }
        let b = m.alloc_block(goal.or(Some(ptr + 1)), ino.tree)?;
        ino.blocks += 1;
        put_u32(m.block_mut(ptr)?, i * 4, b as u32);
        m.block_new(b);
        ptr = b;
    }
    check_ptr(m, ptr)?;
    Ok(ptr)
}

/// Free every block at logical index `from` and beyond.
pub(crate) fn truncate_blocks<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    from: u64,
) -> FsResult<()> {
    truncate_blocks_until(m, ino, from, &|_| false).map(|_| ())
}

/// Free the blocks at logical index `from` and beyond, from the last one down, until `stop`
/// says the transaction has grown enough. `Some(end)` if it stopped: the blocks from `end`
/// on are freed, those in `[from, end)` not yet (call again to go on); `None` once all are.
/// The file it leaves holds no block at or past `end`, so a size cut to `end` is consistent.
pub(crate) fn truncate_blocks_until<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    from: u64,
    stop: &dyn Fn(&Meta<S>) -> bool,
) -> FsResult<Option<u64>> {
    let n = NDIRECT as u64;
    for (tree, base, span) in [(3, n + P + P * P, P * P * P), (2, n + P, P * P), (1, n, P)] {
        let root = match tree {
            1 => ino.ind,
            2 => ino.dind,
            _ => ino.tind,
        } as u64;
        if root == 0 || from >= base + span {
            continue;
        }
        let r = free_tree(m, ino, root, tree, base, from, stop)?;
        if r.gone {
            match tree {
                1 => ino.ind = 0,
                2 => ino.dind = 0,
                _ => ino.tind = 0,
            }
        }
        if r.stopped.is_some() {
            return Ok(r.stopped);
        }
    }
    for i in (from.min(n) as usize..NDIRECT).rev() {
        if ino.direct[i] != 0 {
            if stop(m) {
                return Ok(Some(i as u64 + 1));
            }
            m.free_block(ino.direct[i] as u64, ino.tree)?;
            ino.direct[i] = 0;
            ino.blocks = ino.blocks.saturating_sub(1);
        }
    }
    Ok(None)
}

/// What `free_tree` did to a subtree.
struct Freed {
    /// The indirect block itself was freed: nothing is left under it.
    gone: bool,
    /// It stopped (`truncate_blocks_until`) with the blocks from here on freed.
    stopped: Option<u64>,
}

/// Free the part of the subtree under `ptr` (of `level` levels, first logical block `base`)
/// at or beyond `from`, last block first, until `stop`.
fn free_tree<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    ptr: u64,
    level: u32,
    base: u64,
    from: u64,
    stop: &dyn Fn(&Meta<S>) -> bool,
) -> FsResult<Freed> {
    check_ptr(m, ptr)?;
    let child_span = P.pow(level - 1);
    let ptrs: Vec<u64> = {
        let blk = m.block(ptr)?;
        (0..P as usize)
            .map(|i| get_u32(blk, i * 4) as u64)
            .collect()
    };
    let kept = Freed {
        gone: false,
        stopped: None,
    };
    for (i, child) in ptrs.into_iter().enumerate().rev() {
        let cbase = base + i as u64 * child_span;
        if child == 0 {
            continue;
        }
        if cbase + child_span <= from {
            // This child and all before it lie below `from`: they stay, and so does `ptr`.
            return Ok(kept);
        }
        if level == 1 {
            if stop(m) {
                return Ok(Freed {
                    gone: false,
                    stopped: Some(cbase + 1),
                });
            }
            m.free_block(child, ino.tree)?;
            ino.blocks = ino.blocks.saturating_sub(1);
        } else {
            let r = free_tree(m, ino, child, level - 1, cbase, from, stop)?;
            if !r.gone {
                // Part of the child stays: it holds `from`, or the walk stopped inside it.
                return Ok(Freed {
                    gone: false,
                    stopped: r.stopped,
                });
            }
        }
        put_u32(m.block_mut(ptr)?, i * 4, 0);
    }
    // No child is left: the indirect block itself goes.
    m.free_block(ptr, ino.tree)?;
    ino.blocks = ino.blocks.saturating_sub(1);
    Ok(Freed {
        gone: true,
        stopped: None,
    })
}

/// Free the single block at `lblk` if mapped (punching a hole). Indirect blocks stay.
pub(crate) fn free_one<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    lblk: u64,
) -> FsResult<()> {
    let (tree, idx) = path(lblk)?;
    if tree == 0 {
        let b = ino.direct[idx[0]] as u64;
        if b != 0 {
            m.free_block(b, ino.tree)?;
            ino.direct[idx[0]] = 0;
            ino.blocks = ino.blocks.saturating_sub(1);
        }
        return Ok(());
    }
    let mut ptr = match tree {
        1 => ino.ind,
        2 => ino.dind,
        _ => ino.tind,
    } as u64;
    let last = idx.len() - 1;
    for (level, &i) in idx.iter().enumerate() {
        if ptr == 0 {
            return Ok(());
        }
        check_ptr(m, ptr)?;
        let next = get_u32(m.block(ptr)?, i * 4) as u64;
        if level == last {
            if next != 0 {
                m.free_block(next, ino.tree)?;
                ino.blocks = ino.blocks.saturating_sub(1);
                put_u32(m.block_mut(ptr)?, i * 4, 0);
            }
            return Ok(());
        }
        ptr = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Geometry, BLOCK_SIZE};
    use crate::store::MemStore;

    #[test]
    fn the_bound_without_a_walk_covers_every_range_of_an_empty_file() {
        // An empty file needs the most: every block and every indirect block on the way.
        let geo = Geometry::for_size(4096, Some(1024)).unwrap();
        let mut m = Meta::new(MemStore::new(4096 * BLOCK_SIZE as u64), geo, 0);
        let ino = DiskInode::default();
        let n = NDIRECT as u64;
        let (dind, tind) = (n + P, n + P + P * P);
        let mut starts = vec![0, 5, n - 1, n, dind - 1, dind, dind + P - 1, tind - 2, tind];
        starts.push(tind + P * P - 1);
        for from in starts {
            for len in [1, 2, 11, P - 1, P, P + 1, 3 * P + 7, 20_000] {
                let cost = alloc_cost_range(&mut m, &ino, from, from + len).unwrap();
                assert!(
                    cost <= most_alloc(len),
                    "[{from}, +{len}): {cost} > {}",
                    most_alloc(len)
                );
            }
        }
    }
}
