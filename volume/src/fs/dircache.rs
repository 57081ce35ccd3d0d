//! The directory indexes built so far (`DirIndex`), bounded: a directory's index is built
//! from its blocks when an operation first needs it, and once the indexes kept hold more than
//! `MAX_ENTRIES` entries the least recently used are dropped (rebuilt when next needed). So
//! what the engine holds follows what its callers use, not the volume's size.

use std::collections::HashMap;

use crate::dir::DirIndex;

/// Entries (a directory counting one more than it holds) kept across all indexes before
/// the least recently used are dropped; about 150 bytes each.
const MAX_ENTRIES: usize = 128 * 1024;

/// Directory indexes by inode index, least recently used dropped past a bound.
pub(super) struct DirCache {
    map: HashMap<u32, (DirIndex, u64)>,
    /// Entries held by the indexes in `map`, as counted when each was put back.
    entries: usize,
    clock: u64,
    limit: usize,
}

impl Default for DirCache {
    fn default() -> DirCache {
        DirCache::with_limit(MAX_ENTRIES)
    }
}

impl DirCache {
    fn with_limit(limit: usize) -> DirCache {
        DirCache {
            map: HashMap::new(),
            entries: 0,
            clock: 0,
            limit,
        }
    }

    /// Take directory `index`'s index out, if it is kept.
    pub(super) fn remove(&mut self, index: &u32) -> Option<DirIndex> {
        let (d, _) = self.map.remove(index)?;
        self.entries -= d.len() + 1;
        Some(d)
    }

    /// Put directory `index`'s index (back); past the bound, drop the least recently used
    /// others until a quarter of it is free again.
    pub(super) fn insert(&mut self, index: u32, d: DirIndex) {
        self.remove(&index);
        self.clock += 1;
        self.entries += d.len() + 1;
        self.map.insert(index, (d, self.clock));
        if self.entries > self.limit {
            self.shrink(index);
        }
    }

    fn shrink(&mut self, keep: u32) {
        let mut by_age: Vec<(u64, u32)> = self
            .map
            .iter()
            .filter(|(i, _)| **i != keep)
            .map(|(i, (_, used))| (*used, *i))
            .collect();
        by_age.sort_unstable();
        for (_, i) in by_age {
            if self.entries <= self.limit / 4 * 3 {
                break;
            }
            self.remove(&i);
        }
    }

    /// Entries held by the indexes kept.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_past_the_bound_and_the_newest_stays() {
        let mut c = DirCache::with_limit(100);
        for i in 0..10 {
            c.insert(i, DirIndex::with_names(20));
        }
        assert!(c.entries() <= 100, "{} entries kept", c.entries());
        assert!(c.remove(&9).is_some(), "the newest is kept");
        assert!(c.remove(&0).is_none(), "the oldest went");
        // Used again, an old one is young: the next shrink takes others first.
        let d = c.remove(&8).expect("kept");
        c.insert(8, d);
        c.insert(20, DirIndex::with_names(40));
        assert!(c.remove(&8).is_some());
        // One index alone larger than the bound is kept while it is the one in use.
        c.insert(30, DirIndex::with_names(500));
        assert!(c.remove(&30).is_some());
        assert_eq!(
            c.entries(),
            c.map.values().map(|(d, _)| d.len() + 1).sum::<usize>()
        );
    }
}
