//! The client link's recovery against a scripted server in this process: each connection's
//! greeting and calls are answered (or cut) as the test says, so the link meets exactly the
//! turn of events a real server gives only by chance.

use std::net::{TcpListener, TcpStream};

use client_fuse::link::{ConnectOptions, Link};
use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{Attr, ClientMsg, ErrorCode, FileKind, Request, Response, ServerMsg, TimeSpec};

const BOOT: u64 = 7;

/// The next message the client sends on `s`.
fn next(s: &mut TcpStream) -> ClientMsg {
    let body = read_frame(s).expect("a message from the client");
    decode_body::<ClientMsg>(&body).expect("decodes").0
}

fn send(s: &mut TcpStream, msg: &ServerMsg) {
    std::io::Write::write_all(s, &encode_frame(msg, &[]).expect("encode")).expect("send");
}

fn welcome(session: u64, secret: &[u8]) -> ServerMsg {
    ServerMsg::Welcome {
        version: protocol::PROTOCOL_VERSION,
        session,
        lease_secs: 15,
        boot: BOOT,
        secret: secret.to_vec(),
        clean_restart: false,
    }
}

fn file(ino: u64) -> Attr {
    let t = TimeSpec { sec: 0, nsec: 0 };
    Attr {
        ino,
        generation: 0,
        size: 0,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
        kind: FileKind::RegularFile,
        perm: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
    }
}

/// The next call on `s` (heartbeats and acknowledgements skipped): its id and request.
fn next_call(s: &mut TcpStream) -> (u64, Request) {
    loop {
        match next(s) {
            ClientMsg::Call { id, req } | ClientMsg::CallAs { id, req, .. } => return (id, req),
            ClientMsg::Heartbeat | ClientMsg::Ack { .. } => {}
            other => panic!("not a call: {other:?}"),
        }
    }
}

/// The session and secret a `Resume` on `s` offers.
fn resumed(s: &mut TcpStream) -> (u64, Vec<u8>) {
    match next(s) {
        ClientMsg::Resume {
            session, secret, ..
        } => (session, secret),
        other => panic!("not a resume: {other:?}"),
    }
}

/// A mount whose server forgot its session gets a new one and opens its files again on it;
/// if the connection breaks before that is done, its next resume offers a session with that
/// session's own secret — the old one with the old secret, or the new one with the new —
/// never the old session with the new secret, which a server that still knows the old one
/// refuses until the old one's lease ends.
#[test]
fn a_recovery_cut_short_resumes_a_session_with_its_own_secret() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let (old, new) = ((1u64, vec![1u8; 32]), (2u64, vec![2u8; 32]));
    let script = {
        let (old, new) = (old.clone(), new.clone());
        std::thread::spawn(move || {
            // The first connection: a new session, and a file opened in it.
            let (mut s, _) = listener.accept().expect("accept");
            assert!(matches!(next(&mut s), ClientMsg::Hello { .. }));
            send(&mut s, &welcome(old.0, &old.1));
            let (id, req) = next_call(&mut s);
            assert!(matches!(req, Request::Open { ino: 5, .. }), "{req:?}");
            let result = Ok(Response::Attr(file(5)));
            send(&mut s, &ServerMsg::Reply { id, result });
            drop(s);
            // The second: the session is forgotten; a new one is made, and the connection
            // breaks as the mount opens its file again.
            let (mut s, _) = listener.accept().expect("accept");
            assert_eq!(resumed(&mut s), old);
            send(&mut s, &welcome(new.0, &new.1));
            let (_, req) = next_call(&mut s);
            assert!(matches!(req, Request::Reopen { ino: 5, .. }), "{req:?}");
            drop(s);
            // The third: what the mount offers.
            let (mut s, _) = listener.accept().expect("accept");
            let offered = resumed(&mut s);
            send(&mut s, &welcome(3, &[3u8; 32]));
            let (id, _) = next_call(&mut s);
            let result = Ok(Response::Attr(file(5)));
            send(&mut s, &ServerMsg::Reply { id, result });
            (offered, s)
        })
    };
    let link = scripted_link(&addr);
    let (reply, _) = link
        .call(Request::Open { ino: 5, flags: 0 }, &[])
        .expect("open");
    assert!(reply.is_ok(), "{reply:?}");
    let (offered, _s) = script.join().expect("the script ran to its end");
    assert!(
        offered == old || offered == new,
        "resumed session {} with the secret of another",
        offered.0
    );
}

/// A write made under a lock and still waiting for its reply when the server forgot the
/// session fails with EIO (the lock is gone: it must not be sent again), and is forgotten
/// with it: it is not kept for a replay, so the mark below which the mount has every reply
/// (its `Ack`) moves on past it, and the server may let go of the replies it keeps.
#[test]
fn a_bound_call_failed_by_a_lost_session_is_not_kept() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let script = std::thread::spawn(move || {
        // The first connection: a session; a write arrives and is never answered.
        let (mut s, _) = listener.accept().expect("accept");
        assert!(matches!(next(&mut s), ClientMsg::Hello { .. }));
        // Leases of 3 s: a heartbeat, with its Ack, every second.
        let short = |mut w: ServerMsg| {
            if let ServerMsg::Welcome { lease_secs, .. } = &mut w {
                *lease_secs = 3;
            }
            w
        };
        send(&mut s, &short(welcome(1, &[1u8; 32])));
        let (written, req) = next_call(&mut s);
        assert!(matches!(req, Request::Write { ino: 5, .. }), "{req:?}");
        tx.send(written).expect("the test waits");
        drop(s);
        // The second: the session is forgotten; the mount's commit is answered.
        let (mut s, _) = listener.accept().expect("accept");
        assert_eq!(resumed(&mut s).0, 1);
        send(&mut s, &short(welcome(2, &[2u8; 32])));
        let (id, req) = next_call(&mut s);
        assert!(matches!(req, Request::Fsync { .. }), "{req:?}");
        let result = Ok(Response::Empty);
        send(&mut s, &ServerMsg::Reply { id, result });
        // Every Ack the mount sends from now on, until the test has what it needs.
        while let Ok(body) = read_frame(&mut s) {
            match decode_body::<ClientMsg>(&body).expect("decodes").0 {
                ClientMsg::Ack { below } if tx.send(below).is_err() => return,
                ClientMsg::Call { id, req } | ClientMsg::CallAs { id, req, .. } => {
                    panic!("call {id} sent again after the session was lost: {req:?}")
                }
                _ => {}
            }
        }
    });
    let link = scripted_link(&addr);
    let (done, failed) = std::sync::mpsc::channel();
    let write = Request::Write {
        ino: 5,
        offset: 0,
        kill_priv: false,
    };
    let reply = Box::new(move |r: client_fuse::link::Reply| {
        let _ = done.send(r.0);
    });
    link.call_async(write, b"under a lock", reply, true)
        .expect("sent");
    let wait = std::time::Duration::from_secs(30);
    let written = rx.recv_timeout(wait).expect("the write reached the server");
    let result = failed.recv_timeout(wait).expect("the bound write ends");
    assert_eq!(result.err(), Some(libc::EIO), "the bound write fails");
    assert_eq!(link.kept(), (0, 0), "the failed write is still kept");
    // The Ack moves past the failed call.
    let deadline = std::time::Instant::now() + wait;
    loop {
        let below = rx.recv_timeout(wait).expect("an Ack");
        if below > written {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Ack stays at {below}"
        );
    }
    drop(rx);
    drop(link);
    script.join().expect("the script ran to its end");
}

/// A direct mount's first call on every new session (its store address) that a new session
/// refuses (the server fenced that address) is logged, and the session goes on: the call
/// waiting for the reconnect is answered on it. Before, the refusal failed the reconnect,
/// which was tried again, and refused again, for ever.
#[test]
fn a_preface_refused_on_a_new_session_does_not_keep_the_mount_from_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let script = std::thread::spawn(move || {
        drop(session_1(&listener));
        // The session is forgotten: on the new one, the preface is refused.
        let (mut s, _) = listener.accept().expect("accept");
        assert_eq!(resumed(&mut s).0, 1);
        send(&mut s, &welcome(2, &[2u8; 32]));
        let store = |r: &Request| matches!(r, Request::StoreClient { .. });
        answer(&mut s, store, Err(ErrorCode::NotPermitted));
        // The recovery's commit, then the call.
        let commit = |r: &Request| matches!(r, Request::Fsync { .. });
        answer(&mut s, commit, Ok(Response::Empty));
        let attr = |r: &Request| matches!(r, Request::Getattr { ino: 1 });
        answer(&mut s, attr, Ok(Response::Attr(file(1))));
        s
    });
    let link = scripted_link(&addr);
    link.on_new_session(Request::StoreClient {
        address: "127.0.0.1:0/42".into(),
    });
    let (done, answered) = std::sync::mpsc::channel();
    let reply = Box::new(move |r: client_fuse::link::Reply| {
        let _ = done.send(r.0);
    });
    link.call_async(Request::Getattr { ino: 1 }, &[], reply, false)
        .expect("sent");
    let wait = std::time::Duration::from_secs(30);
    let result = answered.recv_timeout(wait);
    assert!(
        matches!(result, Ok(Ok(Response::Attr(_)))),
        "the call after the refused preface: {result:?}"
    );
    let _s = script.join().expect("the script ran to its end");
}

/// Connect a link named "scripted" to the scripted server at `addr`.
fn scripted_link(addr: &str) -> Link {
    let opts = ConnectOptions {
        node_id: "scripted".into(),
        ..Default::default()
    };
    Link::connect(addr, &opts, &|_| {}).expect("connect")
}

/// Answer the next call on `s`, which must be what `expected` says, with `result`.
fn answer(s: &mut TcpStream, expected: fn(&Request) -> bool, result: Result<Response, ErrorCode>) {
    let (id, req) = next_call(s);
    assert!(expected(&req), "unexpected call: {req:?}");
    send(s, &ServerMsg::Reply { id, result });
}

/// The server forgot the session: a new one is made, and the mount's calls before its
/// commit (its reopens) are answered; what they were, in order.
fn reopens_on_a_new_session(listener: &TcpListener) -> Vec<Request> {
    let (mut s, _) = listener.accept().expect("accept");
    assert_eq!(resumed(&mut s).0, 1);
    send(&mut s, &welcome(2, &[2u8; 32]));
    let mut reopens = Vec::new();
    loop {
        let (id, req) = next_call(&mut s);
        let result = match req {
            Request::Fsync { .. } => Ok(Response::Empty),
            Request::Reopen { ino, .. } => Ok(Response::Attr(file(ino))),
            other => panic!("not a reopen or a commit: {other:?}"),
        };
        send(&mut s, &ServerMsg::Reply { id, result });
        if matches!(req, Request::Fsync { .. }) {
            return reopens;
        }
        reopens.push(req);
    }
}

/// `req` made on `link` with its reply given to a callback (on the link's reader: no caller
/// runs after it): the reply.
fn answered_to_a_callback(link: &Link, req: Request) -> Result<Response, i32> {
    let (tx, rx) = std::sync::mpsc::channel();
    let done = Box::new(move |r: client_fuse::link::Reply| {
        let _ = tx.send(r.0);
    });
    link.call_async(req, &[], done, false).expect("sent");
    let wait = std::time::Duration::from_secs(30);
    rx.recv_timeout(wait).expect("answered")
}

/// The first connection on `listener`: a new session, session 1.
fn session_1(listener: &TcpListener) -> TcpStream {
    let (mut s, _) = listener.accept().expect("accept");
    assert!(matches!(next(&mut s), ClientMsg::Hello { .. }));
    send(&mut s, &welcome(1, &[1u8; 32]));
    s
}

/// The first connection on `listener`: session 1, in which the mount's open of file 5 is
/// answered.
fn opened_in_session_1(listener: &TcpListener) -> TcpStream {
    let mut s = session_1(listener);
    let open = |r: &Request| matches!(r, Request::Open { ino: 5, .. });
    answer(&mut s, open, Ok(Response::Attr(file(5))));
    s
}

/// An open answered just before the connection breaks counts as held from the moment its
/// reply arrives, not from when its caller gets to it: a new session made by the recovery
/// opens it again (without that, another mount's unlink could free it under its opener).
/// The open here is answered to a callback, so its caller never runs after the reply.
#[test]
fn an_open_answered_as_the_connection_breaks_is_made_again_on_a_new_session() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let script = std::thread::spawn(move || {
        drop(opened_in_session_1(&listener));
        reopens_on_a_new_session(&listener)
    });
    let link = scripted_link(&addr);
    let open = Request::Open {
        ino: 5,
        flags: libc::O_RDWR,
    };
    let reply = answered_to_a_callback(&link, open);
    assert!(reply.is_ok(), "{reply:?}");
    let reopens = script.join().expect("the script ran to its end");
    let again = libc::O_RDWR;
    assert!(
        matches!(reopens.as_slice(), [Request::Reopen { ino: 5, flags }] if *flags == again),
        "made again on the new session: {reopens:?}"
    );
    assert_eq!(link.open_count(5), 1);
}

/// Likewise a close answered just before the connection breaks is no longer held: a new
/// session does not open the file again (which would keep it, unlinked, for good).
#[test]
fn a_release_answered_as_the_connection_breaks_is_not_undone_on_a_new_session() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let script = std::thread::spawn(move || {
        let mut s = opened_in_session_1(&listener);
        let release = |r: &Request| matches!(r, Request::Release { ino: 5 });
        answer(&mut s, release, Ok(Response::Empty));
        drop(s);
        reopens_on_a_new_session(&listener)
    });
    let link = scripted_link(&addr);
    let (reply, _) = link
        .call(Request::Open { ino: 5, flags: 0 }, &[])
        .expect("open");
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(link.open_count(5), 1);
    let reply = answered_to_a_callback(&link, Request::Release { ino: 5 });
    assert!(reply.is_ok(), "{reply:?}");
    let reopens = script.join().expect("the script ran to its end");
    assert!(reopens.is_empty(), "opened again: {reopens:?}");
    assert_eq!(link.open_count(5), 0);
}

/// A file made by a create is held open with the access mode the create asked for (its
/// request does not carry it: the FUSE create says it, `creating_with`), and a new session
/// made by the recovery opens it again with that mode, as an open made again (`Reopen`:
/// the server lets the file's owner past its mode bits, as it did the creator's descriptor).
/// Before, it went as read-only, which a file created with mode 0200 refuses its owner: the
/// file was no longer held open on the new session.
#[test]
fn a_created_file_is_opened_again_with_the_create_s_access_mode() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let script = std::thread::spawn(move || {
        let mut s = session_1(&listener);
        let create = |r: &Request| matches!(r, Request::Create { .. });
        answer(&mut s, create, Ok(Response::Attr(file(5))));
        drop(s);
        reopens_on_a_new_session(&listener)
    });
    let link = scripted_link(&addr);
    let create = Request::Create {
        parent: 1,
        name: b"write-only".to_vec(),
        mode: libc::S_IFREG | 0o200,
        uid: 1000,
        gid: 1000,
    };
    let reply = {
        let _wo = client_fuse::caller::creating_with(libc::O_WRONLY | libc::O_CREAT);
        link.call(create, &[]).expect("create").0
    };
    assert!(reply.is_ok(), "{reply:?}");
    let reopens = script.join().expect("the script ran to its end");
    let [Request::Reopen { ino: 5, flags }] = reopens.as_slice() else {
        panic!("not one open of the file made again: {reopens:?}");
    };
    assert_eq!(flags & libc::O_ACCMODE, libc::O_WRONLY, "flags {flags:#o}");
    assert_eq!(link.open_count(5), 1);
}
