//! A mount of an export is confined to it: a call naming an inode outside is refused as a
//! stale handle, in the hold that would run it, and recalls nothing.

use super::*;

/// Alice's file `f` at the volume's root, under her write layout, and a session of Bob's
/// that mounts the export rooted at directory `t`: (shared, alice, bob, f).
fn outside_an_export(name: &str) -> (Arc<Shared>, Party, Party, u64) {
    let shared = shared(name);
    let alice = session(&shared, 1, ALICE);
    let make = |id, req| match call(&shared, &alice, id, req, &[]).0 {
        Ok(Response::Attr(a)) => a.ino,
        r => panic!("made: {r:?}"),
    };
    let mkdir = Request::Mkdir {
        parent: ROOT_INO,
        name: b"t".to_vec(),
        mode: 0o777,
        uid: ALICE,
        gid: ALICE,
    };
    let t = make(1, mkdir);
    let quota = volume::Quota {
        max_blocks: 1000,
        max_inodes: 100,
        tag: 0,
    };
    shared
        .vol
        .with(|v| v.set_quota(volume::Ino::new(t), quota))
        .unwrap();
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"f".to_vec(),
        mode: libc::S_IFREG | 0o666,
        uid: ALICE,
        gid: ALICE,
    };
    let f = make(2, create);
    let get = Request::LayoutGet {
        ino: f,
        offset: 0,
        len: 4096,
        write: true,
        kill_priv: false,
    };
    let held = call(&shared, &alice, 3, get, &[]).0;
    assert!(matches!(held, Ok(Response::Layout(_))), "{held:?}");
    let (s, caller) = session(&shared, 2, BOB);
    let info = SessionInfo {
        export: t,
        ..s.info.clone()
    };
    let bob = Session::new(SessionId::new(2), info);
    shared.sessions.insert(SessionId::new(2), bob.clone());
    (shared, alice, (bob, caller), f)
}

#[test]
fn calls_naming_an_inode_outside_the_export_are_stale_and_recall_nothing() {
    let (shared, alice, bob, f) = outside_an_export("confined");
    let (tx, mut pushed) = tokio::sync::mpsc::channel(16);
    alice
        .0
        .attach(tx, Default::default(), "127.0.0.1:1".parse().unwrap());
    let inside = call(&shared, &bob, 1, Request::Getattr { ino: ROOT_INO }, &[]).0;
    assert!(matches!(inside, Ok(Response::Attr(_))), "{inside:?}");
    let lock = Request::Setlk {
        ino: f,
        owner: 1,
        range: protocol::LockRange { start: 0, end: 9 },
        kind: protocol::LockKind::Write,
        pid: 1,
        wait: false,
    };
    let truncate = Request::Setattr {
        ino: f,
        set: SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
    };
    let open = Request::Open { ino: f, flags: 0 };
    let calls = [Request::Getattr { ino: f }, open, lock, truncate];
    for (id, req) in (2..).zip(calls) {
        let what = format!("{req:?}");
        let r = call(&shared, &bob, id, req, &[]).0;
        assert_eq!(r.err(), Some(libc::ESTALE), "{what}");
        assert!(pushed.try_recv().is_err(), "{what}: a recall was pushed");
    }
    let holders = shared.vol.with(|v| v.layout_holders(volume::Ino::new(f)));
    assert_eq!(holders, vec![1], "Alice's layout was taken");
    assert_eq!(bob.0.open_count(), 0);
}
