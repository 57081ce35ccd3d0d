//! Layouts are built and committed a run of blocks at a time: over a file whose blocks are
//! scattered (mapped, holes, reserved for its writer, across the direct pointers and the
//! indirect trees) and a volume whose free space is fragmented, every layout must still say
//! exactly what the engine reads, and what its writer wrote must be the file once committed.

mod common;

use common::{assert_clean, fresh, open, MIB};
use volume::layout::BLOCK_SIZE;
use volume::{BlockStore, Ino, Layout, MemStore};

const BS: u64 = BLOCK_SIZE as u64;

type Vol = volume::Volume<std::sync::Arc<MemStore>>;

/// What every writer writes at `pos` of the file: whoever writes a byte writes the same.
fn pattern(pos: u64) -> u8 {
    (pos / 3 % 251) as u8 + 1
}

fn bytes_at(at: u64, len: u64) -> Vec<u8> {
    (at..at + len).map(pattern).collect()
}

/// A small deterministic generator (the test must say which case failed, and repeat it).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The layout's extents cover `[offset, offset + len)`'s blocks in order, without gaps
/// (for a read, up to the size), and a write layout's all have blocks on the store.
fn check_shape(l: &Layout, offset: u64, len: u64, write: bool) {
    let first = offset / BS * BS;
    let end = if write {
        offset + len
    } else {
        (offset + len).min(l.size)
    };
    let mut at = first;
    for e in &l.extents {
        assert_eq!(e.offset, at, "a gap or an overlap in {l:?}");
        assert!(e.len > 0 && e.len % BS == 0, "{l:?}");
        assert!(
            !write || e.disk.is_some(),
            "a write layout with a hole: {l:?}"
        );
        at += e.len;
    }
    let want = if end > first {
        end.div_ceil(BS) * BS
    } else {
        first
    };
    assert_eq!(at, want.max(first), "[{offset}, +{len}) not covered: {l:?}");
}

/// Write `data` at `at` through write layouts as holder 1 (asking again where one is short).
fn write_direct(v: &mut Vol, store: &MemStore, ino: Ino, at: u64, data: &[u8]) {
    let mut pos = 0u64;
    while pos < data.len() as u64 {
        let len = data.len() as u64 - pos;
        let l = v.layout_get(1, ino, at + pos, len, true).unwrap();
        check_shape(&l, at + pos, len, true);
        for e in &l.extents {
            let from = e.offset.max(at + pos);
            let to = (e.offset + e.len).min(at + data.len() as u64);
            let part = &data[(from - at) as usize..(to - at) as usize];
            store
                .write_at(part, e.disk.unwrap() + from - e.offset)
                .unwrap();
        }
        let covered = l.extents.last().map_or(0, |e| e.offset + e.len);
        pos = covered.min(at + data.len() as u64) - at;
    }
}

/// Commit holder 1's direct writes to `ino`.
fn commit(v: &mut Vol, ino: Ino, uncommitted: &mut Vec<(u64, u64)>) {
    let end = uncommitted.iter().map(|&(a, l)| a + l).max().unwrap_or(0);
    v.layout_commit(1, ino, uncommitted, end, None).unwrap();
    uncommitted.clear();
}

/// The whole file read through a read layout of holder 2, from the store.
fn read_direct(v: &mut Vol, store: &MemStore, ino: Ino) -> Vec<u8> {
    let size = v.getattr(ino).unwrap().size;
    let l = v.layout_get(2, ino, 0, size, false).unwrap();
    check_shape(&l, 0, size, false);
    let mut out = vec![0u8; size as usize];
    for e in &l.extents {
        let Some(disk) = e.disk else { continue };
        let to = (e.offset + e.len).min(size);
        store
            .read_at(&mut out[e.offset as usize..to as usize], disk)
            .unwrap();
    }
    v.layout_return(2, ino);
    out
}

/// One case: engine writes and direct writes (1 to 300 blocks, at any byte) scattered over
/// the first 14 MiB of a file (its direct pointers, its single and its double indirect
/// tree), another file's writes fragmenting free space between them, commits of what the
/// direct writes wrote now and then; read layouts checked against the engine's reads all
/// along, and at the end every byte written is the pattern and every other byte zero.
fn scattered_case(seed: u64) {
    let store = fresh(64 * MIB);
    let mut v = open(&store);
    let f = v.create(Ino::ROOT, b"f", 0o100644, 0, 0).unwrap().ino;
    let g = v.create(Ino::ROOT, b"g", 0o100644, 0, 0).unwrap().ino;
    let mut rng = Lcg(seed);
    let span = 6 * MIB;
    let mut written = vec![false; span as usize];
    let mut uncommitted: Vec<(u64, u64)> = Vec::new();
    for step in 0..40 {
        let at = rng.below(span - BS);
        let len = (1 + rng.below(300 * BS)).min(span - at);
        let data = bytes_at(at, len);
        match rng.below(4) {
            0 => {
                // As a direct mount does: what it wrote directly is committed first.
                commit(&mut v, f, &mut uncommitted);
                v.write(f, at, &data).unwrap();
            }
            _ => {
                write_direct(&mut v, &store, f, at, &data);
                uncommitted.push((at, len));
            }
        }
        written[at as usize..(at + len) as usize].fill(true);
        let gat = rng.below(32) * 32 * BS + step * BS;
        v.write(g, gat, &[7; BS as usize]).unwrap();
        if rng.below(3) == 0 {
            commit(&mut v, f, &mut uncommitted);
        }
        let size = v.getattr(f).unwrap().size;
        let engine = v.read(f, 0, size as usize).unwrap();
        assert!(
            read_direct(&mut v, &store, f) == engine,
            "seed {seed}, step {step}: a read layout and the engine disagree"
        );
    }
    commit(&mut v, f, &mut uncommitted);
    v.layout_return(1, f);
    assert_eq!(v.reserved_blocks(), 0, "seed {seed}");
    let size = v.getattr(f).unwrap().size;
    let got = v.read(f, 0, size as usize).unwrap();
    for (pos, &b) in got.iter().enumerate() {
        let want = if written[pos] { pattern(pos as u64) } else { 0 };
        assert_eq!(b, want, "seed {seed}: byte {pos} of the file");
    }
    assert_eq!(read_direct(&mut v, &store, f), got, "seed {seed}");
    v.commit().unwrap();
    drop(v);
    assert_clean(&store);
}

#[test]
fn layouts_over_scattered_blocks_say_what_the_engine_reads_and_commit_what_was_written() {
    for seed in 0..8 {
        scattered_case(seed);
    }
}
