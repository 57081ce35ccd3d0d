//! Engine micro-benchmarks: creates per second and sequential write throughput, into memory
//! and into an image file. `cargo bench -p rwxfs-benches --bench engine`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use volume::Ino;
use volume::{mkfs, FileStore, MemStore, MkfsOptions, Volume};

const MIB: u64 = 1 << 20;

fn mem_volume() -> Volume<Arc<MemStore>> {
    let s = Arc::new(MemStore::new(1024 * MIB));
    mkfs(&s, &MkfsOptions::default()).unwrap();
    Volume::open(s).unwrap()
}

fn creates(c: &mut Criterion) {
    let mut g = c.benchmark_group("create");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 empty files, memory", |b| {
        b.iter_batched(
            mem_volume,
            |mut v| {
                for i in 0..1000 {
                    v.create(Ino::ROOT, format!("f{i}").as_bytes(), 0o644, 0, 0)
                        .unwrap();
                }
                v.commit().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn sequential_write(c: &mut Criterion) {
    let chunk = vec![0xabu8; MIB as usize];
    let mut g = c.benchmark_group("sequential write");
    g.throughput(Throughput::Bytes(64 * MIB));
    g.sample_size(10);
    g.bench_function("64 MiB in 1 MiB writes, memory", |b| {
        b.iter_batched(
            mem_volume,
            |mut v| {
                let a = v.create(Ino::ROOT, b"f", 0o644, 0, 0).unwrap();
                for i in 0..64 {
                    v.write(a.ino, i * MIB, &chunk).unwrap();
                }
                v.commit().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("64 MiB in 1 MiB writes, image file", |b| {
        b.iter_batched(
            || {
                let path = dir.path().join("bench.img");
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .unwrap();
                f.set_len(1024 * MIB).unwrap();
                let s = FileStore::from_file(f);
                mkfs(&s, &MkfsOptions::default()).unwrap();
                Volume::open(s).unwrap()
            },
            |mut v| {
                let a = v.create(Ino::ROOT, b"f", 0o644, 0, 0).unwrap();
                for i in 0..64 {
                    v.write(a.ino, i * MIB, &chunk).unwrap();
                }
                v.fsync(a.ino).unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, creates, sequential_write);
criterion_main!(benches);
