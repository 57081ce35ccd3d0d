//! Lock table micro-benchmarks: taking and releasing byte-range locks with many holders on
//! one file, conflict tests, and a waiter queue handed the lock in turn.
//! `cargo bench -p rwxfs-benches --bench lock_table`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use locks::{Kind, LockReq, LockTable, Owner, SessionId};

fn req(session: u64, owner: u64, kind: Option<Kind>, start: u64, end: u64) -> LockReq {
    LockReq {
        owner: Owner {
            session: SessionId::new(session),
            owner,
        },
        kind,
        start,
        end,
        pid: 1,
    }
}

fn lock_table(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock table");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 disjoint write locks on one file, then unlock", |b| {
        b.iter(|| {
            let mut t = LockTable::default();
            for i in 0..1000u64 {
                t.set(7, req(i % 8, i, Some(Kind::Write), i * 10, i * 10 + 9))
                    .unwrap();
            }
            for i in 0..1000u64 {
                t.set(7, req(i % 8, i, None, i * 10, i * 10 + 9)).unwrap();
            }
            t
        })
    });
    let mut held = LockTable::default();
    for i in 0..1000u64 {
        held.set(7, req(1, i, Some(Kind::Read), i * 10, i * 10 + 9))
            .unwrap();
    }
    g.bench_function("1000 conflict tests against 1000 read locks", |b| {
        b.iter(|| {
            (0..1000u64)
                .filter(|i| {
                    held.test(7, &req(2, 0, Some(Kind::Write), i * 10 + 5, i * 10 + 5))
                        .is_some()
                })
                .count()
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("100 waiters granted one after another", |b| {
        b.iter(|| {
            let mut t = LockTable::default();
            t.set(7, req(0, 0, Some(Kind::Write), 0, u64::MAX)).unwrap();
            for w in 1..=100u64 {
                t.set_wait(7, w, req(w, w, Some(Kind::Write), 0, u64::MAX))
                    .unwrap();
            }
            let mut holder = 0u64;
            let mut granted = 0;
            loop {
                let g = t.set(7, req(holder, holder, None, 0, u64::MAX)).unwrap();
                let Some(next) = g.first() else { break };
                holder = next.session.get();
                granted += 1;
            }
            assert_eq!(granted, 100);
            t
        })
    });
    g.finish();
}

criterion_group!(benches, lock_table);
criterion_main!(benches);
