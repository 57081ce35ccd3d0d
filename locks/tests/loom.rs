//! loom models of the lock manager shared by server threads: grant, release, wait, cancel and
//! lease expiry racing each other. Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p locks --test loom --release`.
#![cfg(loom)]

use locks::sync::{Arc, Condvar, Mutex};
use locks::{Grant, Kind, LockManager, LockReq, Owner, SessionId, WaitOutcome};
use loom::thread;

const INO: u64 = 1;

fn owner(n: u64) -> Owner {
    Owner {
        session: SessionId::new(n),
        owner: n,
    }
}

fn req(n: u64, kind: Option<Kind>) -> LockReq {
    LockReq {
        owner: owner(n),
        kind,
        start: 0,
        end: 9,
        pid: n as u32,
    }
}

/// Grants delivered to waiting threads, as the server's pushes deliver them to clients.
#[derive(Default)]
struct Mailbox {
    granted: Mutex<Vec<Grant>>,
    cv: Condvar,
}

impl Mailbox {
    fn post(&self, grants: Vec<Grant>) {
        if grants.is_empty() {
            return;
        }
        self.granted.lock().unwrap().extend(grants);
        self.cv.notify_all();
    }

    fn wait_for(&self, session: u64, wait: u64) {
        let mut g = self.granted.lock().unwrap();
        while !g
            .iter()
            .any(|x| x.session.get() == session && x.wait == wait)
        {
            g = self.cv.wait(g).unwrap();
        }
    }
}

fn assert_idle(m: &LockManager) {
    m.inspect(|t| {
        t.check_invariants().unwrap();
        assert!(t.held(INO).is_empty(), "locks left: {:?}", t.held(INO));
        assert_eq!(t.queued(INO), 0);
    });
}

#[test]
fn a_waiter_is_granted_once_the_holder_releases() {
    loom::model(|| {
        let m = Arc::new(LockManager::new());
        let mail = Arc::new(Mailbox::default());
        let a = {
            let (m, mail) = (m.clone(), mail.clone());
            thread::spawn(move || {
                if m.set(INO, req(1, Some(Kind::Write))).is_ok() {
                    m.inspect(|t| t.check_invariants().unwrap());
                    mail.post(m.set(INO, req(1, None)).unwrap());
                }
            })
        };
        let b = {
            let (m, mail) = (m.clone(), mail.clone());
            thread::spawn(move || {
                let (outcome, grants) = m.set_wait(INO, 7, req(2, Some(Kind::Write))).unwrap();
                mail.post(grants);
                if outcome == WaitOutcome::Queued {
                    mail.wait_for(2, 7);
                }
                // B holds the lock now, alone.
                m.inspect(|t| {
                    let held = t.held(INO);
                    assert_eq!(held.len(), 1);
                    assert_eq!(held[0].owner, owner(2));
                });
                mail.post(m.set(INO, req(2, None)).unwrap());
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        assert_idle(&m);
    });
}

#[test]
fn cancel_racing_release_either_cancels_or_grants_never_both() {
    loom::model(|| {
        let m = Arc::new(LockManager::new());
        m.set(INO, req(1, Some(Kind::Write))).unwrap();
        let (o, _) = m.set_wait(INO, 7, req(2, Some(Kind::Write))).unwrap();
        assert_eq!(o, WaitOutcome::Queued);
        let mail = Arc::new(Mailbox::default());
        let a = {
            let (m, mail) = (m.clone(), mail.clone());
            thread::spawn(move || mail.post(m.set(INO, req(1, None)).unwrap()))
        };
        let b = {
            let (m, mail) = (m.clone(), mail.clone());
            thread::spawn(move || {
                let (cancelled, grants) = m.cancel(SessionId::new(2), 7);
                mail.post(grants);
                if !cancelled {
                    // Granted before the cancel: the waiter owns it and must unlock.
                    mail.wait_for(2, 7);
                    mail.post(m.set(INO, req(2, None)).unwrap());
                }
                cancelled
            })
        };
        a.join().unwrap();
        let _ = b.join().unwrap();
        assert_idle(&m);
    });
}

#[test]
fn lease_expiry_frees_a_dead_holders_lock_for_the_waiter() {
    loom::model(|| {
        let m = Arc::new(LockManager::new());
        m.set(INO, req(1, Some(Kind::Write))).unwrap();
        let mail = Arc::new(Mailbox::default());
        let expiry = {
            let (m, mail) = (m.clone(), mail.clone());
            thread::spawn(move || mail.post(m.drop_session(SessionId::new(1))))
        };
        let waiter = {
            let (m, mail) = (m.clone(), mail.clone());
            thread::spawn(move || {
                let (o, g) = m.set_wait(INO, 3, req(2, Some(Kind::Read))).unwrap();
                mail.post(g);
                if o == WaitOutcome::Queued {
                    mail.wait_for(2, 3);
                }
                assert_eq!(m.held_by_session(SessionId::new(1)), 0);
                mail.post(m.release_owner(INO, owner(2)));
            })
        };
        expiry.join().unwrap();
        waiter.join().unwrap();
        assert_idle(&m);
    });
}
