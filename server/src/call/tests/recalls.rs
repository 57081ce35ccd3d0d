//! Recalls as a call waits for them: every holder is asked at once, with one deadline.

use std::time::Duration;

use super::*;

/// A recall pushed to a session, decoded: the inode it names.
fn recalled(frame: &[u8]) -> u64 {
    match decode_body::<ServerMsg>(&frame[4..]).unwrap().0 {
        ServerMsg::Push(protocol::Push::LayoutRecall { ino, .. }) => ino,
        m => panic!("not a recall: {m:?}"),
    }
}

/// `f` in the root, made by Alice's session (its call 1): its inode.
fn made_f(shared: &Shared, alice: &Party) -> u64 {
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"f".to_vec(),
        mode: libc::S_IFREG | 0o666,
        uid: ALICE,
        gid: ALICE,
    };
    match call(shared, alice, 1, create, &[]).0 {
        Ok(Response::Attr(a)) => a.ino,
        r => panic!("{r:?}"),
    }
}

/// What the server pushes to `holder` from now on, frame by frame.
fn pushed_to(holder: &Party) -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (t, pushed) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let from = "127.0.0.1:1".parse().unwrap();
    holder.0.attach(t, Default::default(), from);
    pushed
}

/// `holder` is given a write layout of the block at `offset` in `ino` (its call 1).
fn give_layout(shared: &Shared, holder: &Party, ino: u64, offset: u64) {
    give_write_layout(shared, holder, 1, ino, offset, false);
}

/// `holder` is given a write layout of the block at `offset` in `ino` (its call `id`), as a
/// writer who may not keep setuid if `kill_priv`.
fn give_write_layout(
    shared: &Shared,
    holder: &Party,
    id: u64,
    ino: u64,
    offset: u64,
    kill_priv: bool,
) {
    let get = Request::LayoutGet {
        ino,
        offset,
        len: 4096,
        write: true,
        kill_priv,
    };
    let held = call(shared, holder, id, get, &[]).0;
    assert!(matches!(held, Ok(Response::Layout(_))), "{held:?}");
}

/// A truncate of `ino` to nothing.
fn truncate_to_0(ino: u64) -> Request {
    Request::Setattr {
        ino,
        set: SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
    }
}

/// A chmod of `ino` to `mode`.
fn chmod(ino: u64, mode: u32) -> Request {
    Request::Setattr {
        ino,
        set: SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        },
    }
}

#[test]
fn every_holder_is_recalled_before_any_is_waited_for() {
    let cfg = ServerConfig {
        lease: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let shared = shared_with("recall-all", cfg);
    let alice = session(&shared, 1, ALICE);
    let h2 = session(&shared, 2, ALICE);
    let h3 = session(&shared, 3, ALICE);
    let (tx, pushed) = std::sync::mpsc::channel();
    for (id, h) in [(2, &h2), (3, &h3)] {
        let mut rx = pushed_to(h);
        let tx = tx.clone();
        std::thread::spawn(move || {
            while let Some(f) = rx.blocking_recv() {
                let _ = tx.send((id, recalled(&f)));
            }
        });
    }
    let f = made_f(&shared, &alice);
    give_layout(&shared, &h2, f, 0);
    give_layout(&shared, &h3, f, 4096);
    // Neither holder answers: the truncate waits for both, at most a lease in all.
    let truncate = truncate_to_0(f);
    let s = shared.clone();
    let t = std::thread::spawn(move || call(&s, &alice, 2, truncate, &[]).0);
    let (first, ino) = pushed.recv().unwrap();
    assert_eq!(ino, f);
    let (second, ino) = loop {
        match pushed.recv().unwrap() {
            (h, _) if h == first => continue,
            other => break other,
        }
    };
    assert_eq!(ino, f);
    let holders = shared.vol.with(|v| v.layout_holders(volume::Ino::new(f)));
    assert!(
        holders.contains(&first),
        "session {second} was first recalled after session {first}'s layouts were taken"
    );
    assert!(matches!(t.join().unwrap(), Ok(Response::Attr(_))));
    let holders = shared.vol.with(|v| v.layout_holders(volume::Ino::new(f)));
    assert!(holders.is_empty(), "{holders:?}");
}

#[test]
fn a_call_on_a_connections_task_that_would_wait_for_a_recall_comes_back_unrun() {
    let shared = shared("recall-inline");
    let alice = session(&shared, 1, ALICE);
    let holder = session(&shared, 2, ALICE);
    let mut pushed = pushed_to(&holder);
    let f = made_f(&shared, &alice);
    // Judged on arrival with no layout out (`may_wait`), then one is handed out.
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    assert!(!crate::recalls::may_wait(&shared, &unlink));
    give_layout(&shared, &holder, f, 0);
    let (s, c) = (&alice.0, &alice.1);
    let back = super::super::answer_now(&shared, s, c, 2, unlink.clone(), &[]);
    let later = matches!(&back, super::super::Now::Later(r) if *r == unlink);
    assert!(later, "run on the connection's task: {back:?}");
    assert!(pushed.try_recv().is_err(), "a recall was pushed");
    let named = shared
        .vol
        .with(|v| v.lookup(volume::Ino::ROOT, b"f").is_ok());
    assert!(named, "the unlink ran");
    // Where it may wait, it recalls the layout and runs once it is returned.
    let sh = shared.clone();
    let t = std::thread::spawn(move || call(&sh, &alice, 2, unlink, &[]).0);
    assert_eq!(recalled(&pushed.blocking_recv().unwrap()), f);
    let ret = call(&shared, &holder, 2, Request::LayoutReturn { ino: f }, &[]).0;
    assert!(ret.is_ok(), "{ret:?}");
    assert!(t.join().unwrap().is_ok());
}

/// A chmod that sets setuid (or setgid with group execute) on a file recalls the write
/// layouts already given, before it runs: a writer without CAP_FSETID, given one while the
/// file had neither, must not have its data seen under the bit (Linux drops it first), nor
/// have its later commit drop a bit set after its writes.
#[test]
fn a_chmod_that_sets_setuid_recalls_the_layouts_out_before_it_runs() {
    let shared = shared("recall-setuid");
    let alice = session(&shared, 1, ALICE);
    let holder = session(&shared, 2, ALICE);
    let mut pushed = pushed_to(&holder);
    let f = made_f(&shared, &alice);
    for (id, mode) in [(2, 0o4766), (12, 0o2776)] {
        // Neither bit yet: a writer without CAP_FSETID is given a layout.
        assert!(call(&shared, &alice, id, chmod(f, 0o766), &[]).0.is_ok());
        give_write_layout(&shared, &holder, id, f, 0, true);
        let (sh, al) = (shared.clone(), alice.clone());
        let t = std::thread::spawn(move || call(&sh, &al, id + 1, chmod(f, mode), &[]).0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let ino = loop {
            if let Ok(frame) = pushed.try_recv() {
                break recalled(&frame);
            }
            assert!(
                !t.is_finished(),
                "chmod {mode:o} ran with the write layout still out: {:?}",
                t.join()
            );
            assert!(std::time::Instant::now() < deadline, "no recall, no answer");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(ino, f);
        let ret = call(
            &shared,
            &holder,
            id + 1,
            Request::LayoutReturn { ino: f },
            &[],
        )
        .0;
        assert!(ret.is_ok(), "{ret:?}");
        assert!(t.join().unwrap().is_ok());
    }
}

/// A recall pushed again, its holder silent, says how long the server has waited for it:
/// a holder whose first push was dropped on the way times its lease from the recall's
/// start all the same.
#[test]
fn each_push_of_a_recall_says_how_long_it_has_waited() {
    let cfg = ServerConfig {
        // Longer than the test: it ends with the holder's answer.
        lease: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let shared = shared_with("recall-waited", cfg);
    let alice = session(&shared, 1, ALICE);
    let holder = session(&shared, 2, ALICE);
    let mut pushed = pushed_to(&holder);
    let f = made_f(&shared, &alice);
    give_layout(&shared, &holder, f, 0);
    let truncate = truncate_to_0(f);
    let s = shared.clone();
    let start = std::time::Instant::now();
    let t = std::thread::spawn(move || call(&s, &alice, 2, truncate, &[]).0);
    let mut waited = Vec::new();
    while let Some(frame) = pushed.blocking_recv() {
        let at = start.elapsed();
        match decode_body::<ServerMsg>(&frame[4..]).unwrap().0 {
            ServerMsg::Push(protocol::Push::LayoutRecall { ino, waited_ms }) => {
                assert_eq!(ino, f);
                let said = Duration::from_millis(waited_ms);
                assert!(
                    said <= at,
                    "said {said:?} at {at:?} after the truncate began"
                );
                waited.push(said);
            }
            m => panic!("not a recall: {m:?}"),
        }
        if waited.len() == 3 {
            break;
        }
    }
    assert!(waited[0] < Duration::from_secs(1), "{waited:?}");
    // Pushed again each second: each says a second more, at least.
    for w in waited.windows(2) {
        assert!(w[1] >= w[0] + Duration::from_secs(1), "{waited:?}");
    }
    let ret = call(&shared, &holder, 2, Request::LayoutReturn { ino: f }, &[]).0;
    assert!(ret.is_ok(), "{ret:?}");
    assert!(matches!(t.join().unwrap(), Ok(Response::Attr(_))));
}
