//! The block map a run of blocks at a time: what layouts need, which look up and map a
//! megabyte or more at once. A run never crosses a pointer block, so each is one walk from
//! the inode and one look at the block holding the run's pointers.

use crate::cache::Meta;
use crate::error::FsResult;
use crate::inode::{DiskInode, NDIRECT};
use crate::layout::{get_u32, put_u32};
use crate::store::BlockStore;

use super::{available, check_ptr, find_pointer_block, path, pointer_block, reserve, P};

/// How logical blocks from `lblk` on are mapped, as far as they are alike and at most
/// `max` (at least one) of them: `(Some(phys), n)` if the `n` blocks are mapped to `n`
/// consecutive blocks from `phys`, `(None, n)` if they are a hole.
pub(crate) fn lookup_run<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &DiskInode,
    lblk: u64,
    max: u64,
) -> FsResult<(Option<u64>, u64)> {
    let (tree, idx) = path(lblk)?;
    let i = idx[idx.len() - 1];
    let max = max.max(1);
    let (first, n) = match tree {
        0 => {
            let slots = ino.direct[i..].iter().map(|&p| p as u64);
            run_of(slots, max)
        }
        _ => match find_pointer_block(m, ino, tree, &idx)? {
            Err(hole) => return Ok((None, hole.min(max))),
            Ok(block) => {
                let blk = m.block(block)?;
                let slots = (i..P as usize).map(|j| get_u32(blk, j * 4) as u64);
                run_of(slots, max)
            }
        },
    };
    if first != 0 {
        check_ptr(m, first)?;
        check_ptr(m, first + n - 1)?;
    }
    Ok(((first != 0).then_some(first), n))
}

/// The first of `slots` (block pointers, 0 for a hole) and how many from it on continue
/// it (consecutive blocks, or holes), at most `max`.
fn run_of(mut slots: impl Iterator<Item = u64>, max: u64) -> (u64, u64) {
    let first = slots.next().unwrap_or(0);
    let mut n = 1;
    for p in slots {
        let next = if first == 0 { 0 } else { first + n };
        if n >= max || p != next {
            break;
        }
        n += 1;
    }
    (first, n)
}

/// Map `n` logical blocks from `lblk` on to the blocks reserved for them from `leaf` on
/// (`lblk + k` to `leaf + k`, `Meta::reserve_run`), allocating any indirect blocks on the
/// way, as many of them as one pointer block holds: how many it went through, and the
/// reserved blocks it did not use (their logical block was mapped already, to the block it
/// has: those stay reserved).
pub(crate) fn map_reserved_run<S: BlockStore>(
    m: &mut Meta<S>,
    ino: &mut DiskInode,
    lblk: u64,
    leaf: u64,
    n: u64,
) -> FsResult<(u64, Vec<u64>)> {
    // A walk needs at most three indirect blocks; count them only when so few may be there.
    if available(m).min(m.trees.room(ino.tree)) < 4 {
        let cost = super::alloc_cost(m, ino, lblk)?;
        reserve(m, ino.tree, cost)?;
    }
    let (tree, idx) = path(lblk)?;
    let i = idx[idx.len() - 1];
    if tree == 0 {
        let k = n.min((NDIRECT - i) as u64) as usize;
        let slots: Vec<u64> = ino.direct[i..i + k].iter().map(|&p| p as u64).collect();
        let unused = claim_holes(m, &slots, leaf, ino.tree)?;
        for (j, slot) in ino.direct[i..i + k].iter_mut().enumerate() {
            if *slot == 0 {
                *slot = (leaf + j as u64) as u32;
                ino.blocks += 1;
            }
        }
        return Ok((k as u64, unused));
    }
    let block = pointer_block(m, ino, tree, &idx, Some(leaf + n))?;
    let k = n.min(P - i as u64) as usize;
    let blk = m.block(block)?;
    let slots: Vec<u64> = (i..i + k).map(|j| get_u32(blk, j * 4) as u64).collect();
    let unused = claim_holes(m, &slots, leaf, ino.tree)?;
    let blk = m.block_mut(block)?;
    for (j, &slot) in slots.iter().enumerate() {
        if slot == 0 {
            put_u32(blk, (i + j) * 4, (leaf + j as u64) as u32);
            ino.blocks += 1;
        }
    }
    Ok((k as u64, unused))
}

/// Claim (`Meta::claim_run`) the reserved block `leaf + j` for each hole `slots[j]`, a run
/// at a time, charged to quota tree `tree`: the reserved blocks not claimed (their slot is
/// mapped).
fn claim_holes<S: BlockStore>(
    m: &mut Meta<S>,
    slots: &[u64],
    leaf: u64,
    tree: u32,
) -> FsResult<Vec<u64>> {
    let mut unused = Vec::new();
    let mut j = 0;
    while j < slots.len() {
        let k = slots[j..]
            .iter()
            .take_while(|&&p| (p == 0) == (slots[j] == 0))
            .count();
        let at = leaf + j as u64;
        match slots[j] {
            0 => m.claim_run(at, k as u64, tree)?,
            _ => unused.extend(at..at + k as u64),
        }
        j += k;
    }
    Ok(unused)
}
