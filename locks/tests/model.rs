//! The lock table's range algebra against a naive model: a lock kind per owner per byte over a
//! small file (byte 64 stands for everything from 64 to the end). Random lock, unlock,
//! upgrade and downgrade sequences from three owners must agree with the model byte for byte,
//! F_GETLK must find a conflict exactly when the model has one, and the table's invariants
//! (no conflicting holders, ranges split and merged) must hold after every step.

use locks::{Kind, LockError, LockReq, LockTable, Owner, SessionId};
use proptest::prelude::*;

const TAIL: usize = 64;
const OWNERS: u64 = 3;

#[derive(Debug, Clone)]
struct Op {
    owner: u64,
    kind: Option<Kind>,
    start: u64,
    end: u64,
    test_only: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..OWNERS,
        prop_oneof![Just(None), Just(Some(Kind::Read)), Just(Some(Kind::Write))],
        0u64..64,
        prop_oneof![4 => 0u64..64, 1 => Just(u64::MAX)],
        any::<bool>(),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(owner, kind, a, b, _, test_only)| {
            let (start, end) = if b == u64::MAX || b >= a {
                (a, b)
            } else {
                (b, a)
            };
            Op {
                owner,
                kind,
                start,
                end,
                test_only,
            }
        })
}

type Model = Vec<[Option<Kind>; TAIL + 1]>;

fn bytes(start: u64, end: u64) -> std::ops::RangeInclusive<usize> {
    start as usize..=(end.min(TAIL as u64) as usize)
}

fn model_conflict(m: &Model, o: &Op) -> bool {
    let Some(kind) = o.kind else { return false };
    (0..OWNERS).filter(|x| *x != o.owner).any(|x| {
        bytes(o.start, o.end).any(|b| match m[x as usize][b] {
            Some(Kind::Write) => true,
            Some(Kind::Read) => kind == Kind::Write,
            None => false,
        })
    })
}

fn table_bytes(t: &LockTable) -> Model {
    let mut m: Model = vec![[None; TAIL + 1]; OWNERS as usize];
    for h in t.held(1) {
        for b in bytes(h.start, h.end) {
            assert!(
                m[h.owner.owner as usize][b].is_none(),
                "owner ranges overlap"
            );
            m[h.owner.owner as usize][b] = Some(h.kind);
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn table_agrees_with_a_byte_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut t = LockTable::default();
        let mut m: Model = vec![[None; TAIL + 1]; OWNERS as usize];
        for o in &ops {
            let req = LockReq {
                owner: Owner { session: SessionId::new(o.owner + 1), owner: o.owner },
                kind: o.kind,
                start: o.start,
                end: o.end,
                pid: 1,
            };
            let conflict = model_conflict(&m, o);
            if o.test_only {
                if o.kind.is_some() {
                    prop_assert_eq!(t.test(1, &req).is_some(), conflict, "{:?}", o);
                }
                continue;
            }
            match t.set(1, req) {
                Err(LockError::Conflict(h)) => {
                    prop_assert!(conflict, "refused without a conflict: {:?}", o);
                    prop_assert!(h.owner.owner != o.owner);
                }
                Err(e) => prop_assert!(false, "{:?}: {:?}", o, e),
                Ok(grants) => {
                    prop_assert!(!conflict, "granted despite a conflict: {:?}", o);
                    prop_assert!(grants.is_empty());
                    for b in bytes(o.start, o.end) {
                        m[o.owner as usize][b] = o.kind;
                    }
                }
            }
            prop_assert_eq!(t.check_invariants(), Ok(()));
            prop_assert_eq!(&table_bytes(&t), &m, "after {:?}", o);
        }
    }
}
