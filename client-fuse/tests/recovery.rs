//! The client link's recovery against a scripted server in this process: each connection's
//! greeting and calls are answered (or cut) as the test says, so the link meets exactly the
//! turn of events a real server gives only by chance.

use std::net::{TcpListener, TcpStream};

use client_fuse::link::{ConnectOptions, Link};
use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{Attr, ClientMsg, FileKind, Request, Response, ServerMsg, TimeSpec};

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
            assert!(matches!(req, Request::Open { ino: 5, .. }), "{req:?}");
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
    let opts = ConnectOptions {
        node_id: "scripted".into(),
        ..Default::default()
    };
    let link = Link::connect(&addr, &opts, &|_| {}).expect("connect");
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
