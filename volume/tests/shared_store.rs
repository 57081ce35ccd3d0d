//! The demo's claim without FUSE: two engines on one store diverge and damage it; the same
//! operations through one engine do not.

mod common;
use common::*;
use volume::Ino;
use volume::{fsck, Volume};

const ROOT: Ino = Ino::ROOT;

fn workload(v: &mut Volume<std::sync::Arc<volume::MemStore>>, who: &str, dir: Ino) {
    for j in 0..40 {
        let a = v
            .create(dir, format!("{who}-{j}").as_bytes(), 0o644, 0, 0)
            .unwrap();
        v.write(a.ino, 0, &vec![j as u8; 5000]).unwrap();
        if j % 10 == 9 {
            v.commit().unwrap();
        }
    }
}

#[test]
fn two_engines_on_one_store_corrupt_it() {
    let s = fresh(64 * MIB);
    let mut setup = open(&s);
    let shared = setup.mkdir(ROOT, b"shared", 0o755, 0, 0).unwrap().ino;
    setup.commit().unwrap();
    drop(setup);
    let mut a = open(&s);
    let mut b = open(&s);
    for round in 0..4 {
        for j in 0..10 {
            let n = round * 10 + j;
            let fa = a
                .create(shared, format!("a-{n}").as_bytes(), 0o644, 0, 0)
                .unwrap();
            a.write(fa.ino, 0, &vec![1u8; 5000]).unwrap();
            let fb = b
                .create(shared, format!("b-{n}").as_bytes(), 0o644, 0, 0)
                .unwrap();
            b.write(fb.ino, 0, &vec![2u8; 5000]).unwrap();
        }
        if round % 2 == 0 {
            a.commit().unwrap();
            b.commit().unwrap();
        } else {
            b.commit().unwrap();
            a.commit().unwrap();
        }
    }
    let r = fsck::check(&s).unwrap();
    let mut v = open(&s);
    let listed = v.dir_len(shared).unwrap_or(0);
    assert!(
        !r.is_clean() || listed < 80,
        "two engines on one store should lose entries or damage metadata; fsck {:?}, {listed} of 80 entries",
        r.by_kind
    );
}

#[test]
fn the_same_operations_through_one_engine_are_fine() {
    let s = fresh(64 * MIB);
    let mut v = open(&s);
    let shared = v.mkdir(ROOT, b"shared", 0o755, 0, 0).unwrap().ino;
    workload(&mut v, "a", shared);
    workload(&mut v, "b", shared);
    v.commit().unwrap();
    assert_eq!(v.dir_len(shared).unwrap(), 80);
    assert_clean(&s);
}
