//! The engine's cost of direct mode's data path: write layouts asked for 1 MiB at a time and
//! committed every 16 MiB, as a direct mount does for a sequential write, and read layouts
//! of 1 MiB over the written file, as a direct mount's reads ask. Into memory, so what is
//! measured is the engine's own work (block maps, allocation, the metadata cache).
//! `cargo bench -p rwxfs-benches --bench layouts`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use volume::{mkfs, Ino, MemStore, MkfsOptions, Volume};

const MIB: u64 = 1 << 20;
/// The file written: 256 MiB.
const FILE: u64 = 256 * MIB;
/// Bytes a direct mount writes to a file before it commits them.
const COMMIT_AFTER: u64 = 16 * MIB;

fn mem_volume() -> Volume<Arc<MemStore>> {
    let s = Arc::new(MemStore::new(1024 * MIB));
    mkfs(&s, &MkfsOptions::default()).unwrap();
    Volume::open(s).unwrap()
}

/// Write `FILE` bytes to a new file through layouts as holder 1; the file's inode.
fn write_through_layouts(v: &mut Volume<Arc<MemStore>>) -> Ino {
    let f = v.create(Ino::ROOT, b"f", 0o644, 0, 0).unwrap().ino;
    let mut start = 0;
    for off in (0..FILE).step_by(MIB as usize) {
        let l = v.layout_get(1, f, off, MIB, true).unwrap();
        assert_eq!(l.extents.iter().map(|e| e.len).sum::<u64>(), MIB);
        if off + MIB - start >= COMMIT_AFTER {
            let written = [(start, off + MIB - start)];
            v.layout_commit(1, f, &written, off + MIB, None).unwrap();
            start = off + MIB;
        }
    }
    v.layout_return(1, f);
    f
}

fn write_layouts(c: &mut Criterion) {
    let mut g = c.benchmark_group("write layouts");
    g.throughput(Throughput::Bytes(FILE));
    g.sample_size(10);
    g.bench_function("256 MiB, 1 MiB layouts, committed every 16 MiB", |b| {
        b.iter_batched(
            mem_volume,
            |mut v| {
                write_through_layouts(&mut v);
                v.commit().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn read_layouts(c: &mut Criterion) {
    let mut v = mem_volume();
    let f = write_through_layouts(&mut v);
    v.commit().unwrap();
    let mut g = c.benchmark_group("read layouts");
    g.throughput(Throughput::Bytes(FILE));
    g.sample_size(10);
    g.bench_function("256 MiB, 1 MiB layouts", |b| {
        b.iter(|| {
            for off in (0..FILE).step_by(MIB as usize) {
                let l = v.layout_get(2, f, off, MIB, false).unwrap();
                assert_eq!(l.extents.iter().map(|e| e.len).sum::<u64>(), MIB);
            }
            v.layout_return(2, f);
        })
    });
    g.finish();
}

criterion_group!(benches, write_layouts, read_layouts);
criterion_main!(benches);
