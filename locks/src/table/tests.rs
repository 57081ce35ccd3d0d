//! The lock table's rules, one case each.

use super::*;

const A: Owner = Owner {
    session: SessionId::new(1),
    owner: 10,
};
const B: Owner = Owner {
    session: SessionId::new(2),
    owner: 20,
};
const C: Owner = Owner {
    session: SessionId::new(3),
    owner: 30,
};

fn req(owner: Owner, kind: Option<Kind>, start: u64, end: u64) -> LockReq {
    LockReq {
        owner,
        kind,
        start,
        end,
        pid: owner.owner as u32,
    }
}
const W: Option<Kind> = Some(Kind::Write);
const R: Option<Kind> = Some(Kind::Read);
const U: Option<Kind> = None;

#[test]
fn write_locks_exclude_and_read_locks_share() {
    let mut t = LockTable::default();
    t.set(1, req(A, R, 0, 99)).unwrap();
    t.set(1, req(B, R, 50, 149)).unwrap();
    assert!(matches!(
        t.set(1, req(C, W, 90, 95)),
        Err(LockError::Conflict(h)) if h.kind == Kind::Read
    ));
    t.set(1, req(C, W, 150, 200)).unwrap();
    assert_eq!(t.test(1, &req(A, W, 140, 160)).map(|h| h.owner), Some(B));
    assert_eq!(t.test(1, &req(A, R, 0, 10)), None);
}

#[test]
fn unlock_in_the_middle_splits_and_relock_merges() {
    let mut t = LockTable::default();
    t.set(1, req(A, W, 0, 99)).unwrap();
    t.set(1, req(A, U, 40, 59)).unwrap();
    let mut h = t.held(1);
    h.sort_by_key(|h| h.start);
    assert_eq!(
        h.iter().map(|h| (h.start, h.end)).collect::<Vec<_>>(),
        vec![(0, 39), (60, 99)]
    );
    t.set(1, req(B, W, 40, 59)).unwrap();
    t.set(1, req(B, U, 40, 59)).unwrap();
    t.set(1, req(A, W, 40, 59)).unwrap();
    assert_eq!(
        t.held(1)
            .iter()
            .map(|h| (h.start, h.end))
            .collect::<Vec<_>>(),
        vec![(0, 99)]
    );
}

#[test]
fn upgrade_and_downgrade() {
    let mut t = LockTable::default();
    t.set(1, req(A, R, 0, u64::MAX)).unwrap();
    t.set(1, req(A, W, 10, 19)).unwrap();
    assert_eq!(t.held(1).len(), 3);
    assert!(t.set(1, req(B, R, 15, 15)).is_err());
    t.set(1, req(B, R, 25, 25)).unwrap();
    assert!(t.set(1, req(A, W, 20, 30)).is_err(), "B reads 25");
    t.set(1, req(A, R, 10, 19)).unwrap();
    assert_eq!(t.held(1).iter().filter(|h| h.owner == A).count(), 1);
    t.set(1, req(B, R, 15, 15)).unwrap();
}

#[test]
fn waiters_are_granted_in_order_and_a_writer_is_not_starved() {
    let mut t = LockTable::default();
    t.set(1, req(A, R, 0, 9)).unwrap();
    assert_eq!(
        t.set_wait(1, 100, req(B, W, 0, 9)),
        Ok((WaitOutcome::Queued, vec![]))
    );
    // A reader compatible with A still queues behind the waiting writer.
    assert_eq!(
        t.set_wait(1, 200, req(C, R, 0, 9)),
        Ok((WaitOutcome::Queued, vec![]))
    );
    let g = t.set(1, req(A, U, 0, 9)).unwrap();
    assert_eq!(
        g,
        vec![Grant {
            session: SessionId::new(2),
            wait: 100,
            ino: 1
        }]
    );
    let g = t.release_owner(1, B);
    assert_eq!(
        g,
        vec![Grant {
            session: SessionId::new(3),
            wait: 200,
            ino: 1
        }]
    );
    assert_eq!(t.queued(1), 0);
}

#[test]
fn cancel_drops_the_wait_and_lets_those_behind_it_through() {
    let mut t = LockTable::default();
    t.set(1, req(A, R, 0, 9)).unwrap();
    t.set_wait(1, 1, req(B, W, 0, 9)).unwrap();
    t.set_wait(1, 2, req(C, R, 5, 5)).unwrap();
    let (was_queued, g) = t.cancel(SessionId::new(2), 1);
    assert!(was_queued);
    assert_eq!(
        g,
        vec![Grant {
            session: SessionId::new(3),
            wait: 2,
            ino: 1
        }]
    );
    assert_eq!(t.cancel(SessionId::new(2), 1), (false, vec![]));
}

#[test]
fn a_two_client_cycle_is_a_deadlock() {
    let mut t = LockTable::default();
    t.set(1, req(A, W, 0, 0)).unwrap();
    t.set(2, req(B, W, 0, 0)).unwrap();
    assert_eq!(
        t.set_wait(2, 1, req(A, W, 0, 0)),
        Ok((WaitOutcome::Queued, vec![]))
    );
    assert_eq!(t.set_wait(1, 2, req(B, W, 0, 0)), Err(LockError::Deadlock));
}

#[test]
fn a_gone_session_loses_its_locks_and_waits() {
    let mut t = LockTable::default();
    t.set(1, req(A, W, 0, 99)).unwrap();
    t.set_wait(1, 7, req(B, W, 0, 0)).unwrap();
    t.set_wait(1, 8, req(A, W, 200, 300)).unwrap();
    let g = t.drop_session(SessionId::new(1));
    assert_eq!(
        g,
        vec![Grant {
            session: SessionId::new(2),
            wait: 7,
            ino: 1
        }]
    );
    assert_eq!(t.held_by_session(SessionId::new(1)), 0);
    t.drop_session(SessionId::new(2));
    assert!(t.files.is_empty() && t.waiting.is_empty());
}

#[test]
fn a_downgrade_lets_waiting_readers_in() {
    let mut t = LockTable::default();
    t.set(1, req(A, W, 0, 9)).unwrap();
    t.set_wait(1, 5, req(B, R, 0, 9)).unwrap();
    let (o, g) = t.set_wait(1, 6, req(A, R, 0, 9)).unwrap();
    assert_eq!(o, WaitOutcome::Granted);
    assert_eq!(
        g,
        vec![Grant {
            session: SessionId::new(2),
            wait: 5,
            ino: 1
        }]
    );
}

#[test]
fn a_backwards_range_is_refused() {
    let mut t = LockTable::default();
    assert_eq!(t.set(1, req(A, W, 9, 3)), Err(LockError::BadRange));
}
