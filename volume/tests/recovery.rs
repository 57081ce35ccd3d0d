//! Recovery reports the transaction it recovered to: the newest one that is whole on disk,
//! even when the journal's tail was torn by a power cut in the middle of the next one.

mod common;
use std::sync::Arc;

use common::*;
use volume::store::{CrashStore, Survivors};
use volume::Ino;
use volume::{MemStore, Volume};

const ROOT: Ino = Ino::ROOT;

#[test]
fn a_torn_journal_tail_recovers_to_the_last_whole_transaction_and_says_which() {
    let base = fresh(32 * MIB);
    {
        let mut v = open(&base);
        v.create(ROOT, b"before", 0o644, 0, 0).unwrap();
        v.commit().unwrap();
    }
    // A dry run: the events of the commit that makes "torn" durable, and its sequence.
    let run = |store: &Arc<CrashStore<Arc<MemStore>>>| {
        let mut v = Volume::open(store.clone()).unwrap();
        let durable = v.next_seq() - 1;
        v.create(ROOT, b"torn", 0o644, 0, 0).unwrap();
        let seq = v.next_seq();
        let from = store.writes();
        v.commit().unwrap();
        (durable, seq, from, store.writes())
    };
    let probe = Arc::new(CrashStore::new(Arc::new(base.snapshot()), u64::MAX));
    let (_, _, from, to) = run(&probe);
    let mut torn = 0;
    for n in from..=to {
        for seed in 0..24 {
            let disk = Arc::new(base.snapshot());
            let cs = Arc::new(CrashStore::with_survivors(
                disk.clone(),
                n,
                Survivors::Seeded(seed),
            ));
            let (durable, seq, _, _) = run(&cs);
            let mut v = open(&disk);
            assert_clean(&disk);
            let present = v.lookup(ROOT, b"torn").is_ok();
            let want = if present { seq } else { durable };
            assert_eq!(
                v.recovered_seq(),
                want,
                "crash at event {n} (seed {seed}): the file is {}",
                if present { "there" } else { "not there" }
            );
            assert!(v.lookup(ROOT, b"before").is_ok());
            assert_eq!(
                v.next_seq(),
                v.recovered_seq() + 2,
                "after the open's commit"
            );
            torn += usize::from(!present);
        }
    }
    assert!(torn > 0, "no crash lost the last transaction");
}
