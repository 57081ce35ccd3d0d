//! The middle of rwxfs in one process, without root and without FUSE: the real server on
//! `127.0.0.1` over a temporary image, the real remote client (the mount's backend and its
//! link) against it, through a proxy that cuts connections. Reconnects, the reply cache,
//! lock reclaim, restarts and a malformed frame, each in a second or two.

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client_fuse::backend::{Backend, LockArgs, WriteHow};
use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use support::proxy::Proxy;
use support::{ask, client, content, link, wait_for, Place, Server};
use volume::layout::ROOT_INO;
use volume::Ino;

fn create(c: &impl Backend, name: &str) -> u64 {
    c.create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)
        .expect("create")
        .ino
}

/// Calls made while the connection is cut three times all come back, and each took effect
/// exactly once: appends (which a second run would repeat) from three threads, each its own
/// numbered records, end up in their files once each and in order.
#[test]
fn calls_resume_after_the_connection_is_cut_none_lost_none_twice() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let proxy = Proxy::start(&server.addr.to_string()).expect("proxy");
    let a = Arc::new(client(&proxy.addr, "a"));
    const THREADS: usize = 3;
    const RECORDS: usize = 300;
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (a, done) = (a.clone(), done.clone());
            let ino = create(&*a, &format!("f{t}"));
            std::thread::spawn(move || {
                for i in 0..RECORDS {
                    let rec = format!("{t}:{i:05}\n");
                    let n = a.append(ino, rec.as_bytes(), WriteHow::default());
                    assert_eq!(n.expect("append"), rec.len() as u32);
                    done.fetch_add(1, Ordering::SeqCst);
                }
                ino
            })
        })
        .collect();
    for (cut, after) in [100, 350, 650].into_iter().enumerate() {
        wait_for("appends before the cut", || {
            done.load(Ordering::SeqCst) >= after
        });
        proxy.cut();
        wait_for("the link reconnected", || proxy.accepted() >= cut + 2);
    }
    let inos: Vec<u64> = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .collect();
    let observer = client(&server.addr.to_string(), "observer");
    for (t, ino) in inos.into_iter().enumerate() {
        let want: String = (0..RECORDS).map(|i| format!("{t}:{i:05}\n")).collect();
        let got = String::from_utf8(content(&observer, ino)).expect("text");
        assert_eq!(got, want, "file f{t}");
    }
    // Three cuts, each followed by at least one new connection (a cut can also catch a
    // reconnect half done).
    assert!(proxy.accepted() >= 4);
}

/// A call that ran on the server but whose reply was lost is sent again after the
/// reconnect and answered from the reply cache: an append runs once, a mkdir does not fail
/// with EEXIST.
#[test]
fn a_call_whose_reply_was_lost_is_answered_once_from_the_reply_cache() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let proxy = Proxy::start(&server.addr.to_string()).expect("proxy");
    let a = Arc::new(client(&proxy.addr, "a"));
    let observer = client(&server.addr.to_string(), "observer");
    let ino = create(&*a, "log");
    proxy.set_mute(true);
    // Two threads: each call waits for its reply, which never comes while muted.
    let append = {
        let a = a.clone();
        std::thread::spawn(move || a.append(ino, b"once\n", WriteHow::default()))
    };
    let mkdir = {
        let a = a.clone();
        std::thread::spawn(move || a.mkdir(ROOT_INO, b"dir", 0o755, 0, 0))
    };
    wait_for("both calls ran on the server", || {
        observer.lookup(ROOT_INO, b"dir").is_ok()
            && observer.getattr(ino).is_ok_and(|at| at.size == 5)
    });
    proxy.set_mute(false);
    proxy.cut();
    let n = append.join().expect("append thread");
    let d = mkdir.join().expect("mkdir thread");
    assert_eq!(n.expect("append"), 5);
    assert!(d.is_ok(), "mkdir sent again: {:?}", d.err());
    assert_eq!(content(&a, ino), b"once\n");
    assert_eq!(observer.getattr(ino).expect("getattr").size, 5);
    assert_eq!(proxy.accepted(), 2);
}

fn write_lock(owner: u64, typ: i32) -> LockArgs {
    LockArgs {
        owner,
        start: 0,
        end: 99,
        typ,
        pid: 1,
    }
}

/// After a planned restart, a mount takes back the locks it held (within the grace period)
/// before anyone else may lock: another mount's conflicting lock is refused until the
/// holder unlocks. The files the mount had open and its calls go on.
#[test]
fn locks_are_reclaimed_after_a_planned_restart() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let a = client(&proxy.addr, "a");
    let ino = create(&a, "locked");
    let never = || false;
    a.setlk(ino, write_lock(7, libc::F_WRLCK), false, &never)
        .expect("lock");
    a.write(ino, 0, b"before", WriteHow::default())
        .expect("write");
    a.flush(ino).expect("flush");
    server.stop();
    let server = Server::start(&place, &addr);
    let b = client(&addr, "b");
    // Held back by the grace period until the restored session has reclaimed its locks.
    let refused = b.setlk(ino, write_lock(9, libc::F_WRLCK), false, &never);
    assert!(
        refused.is_err(),
        "the lock went to another mount: {refused:?}"
    );
    assert!(proxy.accepted() >= 2, "the holder reconnected");
    assert_eq!(a.lock_epoch(), 0, "the holder's locks were lost");
    assert_eq!(content(&a, ino), b"before");
    a.setlk(ino, write_lock(7, libc::F_UNLCK), false, &never)
        .expect("unlock");
    b.setlk(ino, write_lock(9, libc::F_WRLCK), false, &never)
        .expect("lock once free");
    drop(server);
}

/// A write the server answered but had not made durable when it crashed is kept by the
/// client and sent again to the restarted server, which runs it again: the data is back.
#[test]
fn a_write_not_yet_durable_is_replayed_after_a_crash_restart() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let a = client(&addr, "a");
    let ino = create(&a, "data");
    a.fsync(ino).expect("fsync");
    let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    a.write(ino, 0, &data, WriteHow::default()).expect("write");
    a.flush(ino).expect("flush");
    server.crash();
    // What the crash left on disk: the file, without the write.
    {
        let store = volume::FileStore::open(&place.image()).expect("image");
        let mut vol = volume::Volume::open(store).expect("volume");
        assert_eq!(
            vol.getattr(Ino::new(ino)).expect("the file").size,
            0,
            "durable already"
        );
    }
    let server = Server::start(&place, &addr);
    assert_eq!(content(&a, ino), data);
    let b = client(&addr, "b");
    assert_eq!(content(&b, ino), data);
    a.fsync(ino).expect("fsync after the replay");
    drop(server);
}

/// A frame that does not decode ends the connection it came on, and only that one: a mount
/// on another connection carries on without reconnecting.
#[test]
fn a_malformed_frame_closes_only_its_connection() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let proxy = Proxy::start(&server.addr.to_string()).expect("proxy");
    let a = client(&proxy.addr, "a");
    let ino = create(&a, "f");
    let mut raw = std::net::TcpStream::connect(server.addr).expect("connect");
    let hello = ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        node_id: "raw".into(),
        mount_id: 1,
        read_only: false,
        nonce: vec![7; 32],
        export: String::new(),
    };
    raw.write_all(&encode_frame(&hello, &[]).expect("encode"))
        .expect("hello");
    let body = read_frame(&mut raw).expect("welcome");
    let (msg, _) = decode_body::<ServerMsg>(&body).expect("decode");
    assert!(matches!(msg, ServerMsg::Welcome { .. }), "{msg:?}");
    // A header of four bytes that name no message.
    let mut bad = 8u32.to_be_bytes().to_vec();
    bad.extend_from_slice(&4u32.to_le_bytes());
    bad.extend_from_slice(&[0xff; 4]);
    raw.write_all(&bad).expect("bad frame");
    // The server closes it (a bound only so that a server that does not fails the test).
    raw.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let end = raw.read_to_end(&mut Vec::new());
    assert!(
        !matches!(&end, Err(e) if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "the connection stayed open: {end:?}"
    );
    assert_eq!(a.getattr(ino).expect("getattr").ino, ino);
    a.write(ino, 0, b"still here", WriteHow::default())
        .expect("write");
    a.flush(ino).expect("flush");
    assert_eq!(content(&a, ino), b"still here");
    assert_eq!(proxy.accepted(), 1, "the other connection was cut");
}

/// A file opened after the last commit is not in the session log when the server crashes;
/// another mount's unlink of it, not durable either, is replayed after the restart before
/// the first mount is back. The first mount opens its file again when it comes back and
/// reads on: the restarted server keeps a file whose last link goes in its grace period, and
/// frees the orphans no restored session holds only once that period is over.
#[test]
fn a_file_opened_after_the_last_commit_outlives_a_crash_and_an_unlink_replayed_first() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let a = link(&proxy.addr, "a");
    let b = link(&addr, "b");
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"f".to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
    };
    let Ok((Response::Attr(f), _)) = ask(&a, create, &[]) else {
        panic!("create");
    };
    let ino = f.ino;
    let write = Request::Write {
        ino,
        offset: 0,
        kill_priv: false,
    };
    ask(&a, write, b"kept").expect("write");
    ask(&a, Request::Release { ino }, &[]).expect("release");
    ask(&a, Request::Fsync { ino }, &[]).expect("fsync");
    // Opened after the last commit, unlinked elsewhere; neither durable.
    ask(&a, Request::Open { ino, flags: 0 }, &[]).expect("open");
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    ask(&b, unlink, &[]).expect("unlink");
    proxy.set_down(true);
    server.crash();
    let server = Server::start(&place, &addr);
    wait_for("the other mount replayed its unlink", || b.restarts() == 1);
    proxy.set_down(false);
    let read = Request::Read {
        ino,
        offset: 0,
        size: 16,
    };
    let got = ask(&a, read, &[]);
    assert_eq!(got, Ok((Response::Data, b"kept".to_vec())), "the open file");
    assert_eq!(a.restarts(), 1);
    drop(server);
}

/// A server that lost the session (here: restarted without its session log) gives the
/// mount a new one, on which the mount opens again the files it holds, each as the caller
/// who opened it: a file only its owner may open is held again, and lives on when its name
/// goes.
#[test]
fn files_are_opened_again_on_a_new_session_as_their_opener() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let user = protocol::Cred {
        uid: 1000,
        gid: 1000,
        groups: Vec::new(),
    };
    let _as_user = client_fuse::caller::acting_for(user);
    let a = link(&addr, "a");
    let b = link(&addr, "b");
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"mine".to_vec(),
        mode: libc::S_IFREG | 0o600,
        uid: 1000,
        gid: 1000,
    };
    let Ok((Response::Attr(f), _)) = ask(&a, create, &[]) else {
        panic!("create");
    };
    let ino = f.ino;
    let write = Request::Write {
        ino,
        offset: 0,
        kill_priv: false,
    };
    ask(&a, write, b"only mine").expect("write");
    ask(&a, Request::Fsync { ino }, &[]).expect("fsync");
    server.crash();
    std::fs::remove_file(place.state_log()).expect("the session log");
    let server = Server::start(&place, &addr);
    wait_for("the mount is back on a new session", || {
        a.restarts() == 1 && a.sessions_lost() == 1
    });
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"mine".to_vec(),
    };
    ask(&b, unlink, &[]).expect("unlink");
    let read = Request::Read {
        ino,
        offset: 0,
        size: 16,
    };
    let got = ask(&a, read, &[]);
    assert_eq!(
        got,
        Ok((Response::Data, b"only mine".to_vec())),
        "the open file"
    );
    drop(server);
}

/// A mount cut off past its lease loses its session on a server that goes on running; the
/// calls that session had answered ran, but were not yet durable. They are not dropped as if
/// they were: the mount has them made durable on its new session, so a crash of the server
/// right after loses nothing (or, if they were lost, says so).
#[test]
fn calls_answered_in_a_session_lost_to_its_lease_are_made_durable_on_the_new_one() {
    let place = Place::new();
    let (lease, grace) = (Duration::from_secs(2), Duration::from_secs(20));
    let server = Server::start_with(&place, "127.0.0.1:0", lease, grace);
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let a = link(&proxy.addr, "a");
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"f".to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
    };
    let Ok((Response::Attr(f), _)) = ask(&a, create, &[]) else {
        panic!("create");
    };
    let ino = f.ino;
    ask(&a, Request::Fsync { ino }, &[]).expect("fsync");
    let write = Request::Write {
        ino,
        offset: 0,
        kill_priv: false,
    };
    ask(&a, write, b"answered, not durable").expect("write");
    proxy.set_down(true);
    let a_has_a_session = || {
        client_fuse::link::query_status(&addr, None, None)
            .expect("status")
            .sessions()
            .iter()
            .any(|s| s.node_id == "a")
    };
    wait_for("the server ended the silent mount's session", || {
        !a_has_a_session()
    });
    proxy.set_down(false);
    wait_for("the mount is back on a new session", || {
        a.sessions_lost() == 1 && a.kept().0 == 0
    });
    server.crash();
    let server = Server::start(&place, &addr);
    let read = Request::Read {
        ino,
        offset: 0,
        size: 64,
    };
    let got = ask(&a, read, &[]);
    let kept = got == Ok((Response::Data, b"answered, not durable".to_vec()));
    assert!(
        kept || a.lost(ino, false),
        "the write was lost and nothing said so: {got:?}"
    );
    drop(server);
}

/// A mount whose server crashed comes back after the grace period, while its restored
/// session still stands (a lease longer than the grace period): its locks are not taken
/// back, and a write it made under one, which the crash lost, is not sent again over what
/// the lock's next holder wrote since. It is reported lost instead, until the file's last
/// close.
#[test]
fn a_write_made_under_a_lock_not_taken_back_is_not_replayed_over_the_next_holder() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let a = client(&proxy.addr, "a");
    let ino = create(&a, "locked");
    a.fsync(ino).expect("fsync");
    let never = || false;
    a.setlk(ino, write_lock(7, libc::F_WRLCK), false, &never)
        .expect("lock");
    let under_lock = WriteHow {
        under_lock: true,
        ..WriteHow::default()
    };
    a.write(ino, 0, b"a, under its lock", under_lock)
        .expect("write");
    a.flush(ino).expect("flush");
    proxy.set_down(true);
    server.crash();
    let (lease, grace) = (Duration::from_secs(60), Duration::from_secs(1));
    let server = Server::start_with(&place, &addr, lease, grace);
    // The lock's next holder, once the grace period is over.
    let b = client(&addr, "b");
    b.setlk(ino, write_lock(9, libc::F_WRLCK), true, &never)
        .expect("lock after the grace period");
    b.write(ino, 0, b"b, newer", under_lock).expect("write");
    b.fsync(ino).expect("fsync");
    proxy.set_down(false);
    wait_for("the mount came back and lost its locks", || {
        a.lock_epoch() == 1
    });
    assert_eq!(content(&b, ino), b"b, newer", "an old write replayed");
    // Said by every flush and fsync of the file until its last close on the mount (the
    // create opened it), not taken by the first.
    for asked in 1..=2 {
        assert!(
            a.lost(ino, false),
            "a's write was lost and nothing said so (asked {asked} times)"
        );
    }
    a.release(ino).expect("close");
    assert!(!a.lost(ino, false), "still said after the last close");
    drop(server);
}
