//! A server in this process and a client speaking the wire protocol by hand: what a session
//! keeps across connections (reply routing, calls answered once, open files).

mod support;

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use support::{create, make_image, scratch, Client, Server};
use volume::layout::ROOT_INO;

#[test]
fn a_call_resent_while_its_first_copy_runs_gets_its_reply_on_the_new_connection() {
    let dir = scratch("resent");
    let image = make_image(&dir, 8 << 30);
    let srv = Server::start(&image);
    let mut c = Client::hello(&srv.addr, None);
    let ino = create(&mut c, 1, "big");
    let on_disk = || {
        std::fs::metadata(&srv.image)
            .map(|m| m.blocks())
            .unwrap_or(0)
    };
    let before = on_disk();
    // Long enough to still run when the client is back: every block it takes is zeroed in
    // the image, which is how the test sees it running.
    let slow = Request::Fallocate {
        ino,
        offset: 0,
        len: 3 << 30,
        mode: 0,
        kill_priv: false,
    };
    c.send(2, slow.clone());
    let started = Instant::now();
    while on_disk() < before + 2 * 64 * 1024 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fallocate never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (session, secret) = (c.session, c.secret.clone());
    drop(c);
    let mut c = Client::hello(&srv.addr, Some((session, secret)));
    assert_eq!(c.session, session, "the session was not resumed");
    c.send(2, slow);
    let grown = on_disk();
    let r = c.reply(2, Duration::from_secs(300));
    assert!(
        grown < (3u64 << 30) / 512,
        "the fallocate had ended before it was resent: the test proves nothing"
    );
    assert_eq!(
        r,
        Some(Ok(Response::Empty)),
        "the resent call never got its reply"
    );
    drop(c);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opens_and_releases_count_once_per_session_across_resends() {
    let dir = scratch("opens");
    let image = make_image(&dir, 64 << 20);
    let srv = Server::start(&image);
    let mut a = Client::hello(&srv.addr, None);
    let ino = create(&mut a, 1, "f");
    assert!(matches!(
        a.call(2, Request::Open { ino, flags: 0 }),
        Ok(Response::Attr(_))
    ));
    // Another session releases a file it never opened: A's opens must stand.
    let mut b = Client::hello(&srv.addr, None);
    assert_eq!(b.call(1, Request::Release { ino }), Ok(Response::Empty));
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    assert_eq!(a.call(3, unlink), Ok(Response::Empty));
    // A closes one of its two opens, and sends that release again (as after a reconnect).
    assert_eq!(a.call(4, Request::Release { ino }), Ok(Response::Empty));
    assert_eq!(a.call(4, Request::Release { ino }), Ok(Response::Empty));
    let read = Request::Read {
        ino,
        offset: 0,
        size: 16,
    };
    assert!(
        matches!(a.call(5, read), Ok(Response::Data)),
        "the file A still holds open is gone"
    );
    assert_eq!(a.call(6, Request::Release { ino }), Ok(Response::Empty));
    drop((a, b));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ask the server at `addr` for its sessions (a handshake answered, then closed).
fn status(addr: &str) -> Vec<protocol::SessionStatus> {
    let mut s = TcpStream::connect(addr).unwrap();
    let msg = ClientMsg::Status {
        version: PROTOCOL_VERSION,
        nonce: Vec::new(),
    };
    std::io::Write::write_all(&mut s, &encode_frame(&msg, &[]).unwrap()).unwrap();
    match decode_body::<ServerMsg>(&read_frame(&mut s).unwrap())
        .unwrap()
        .0
    {
        ServerMsg::Status(list) => list,
        other => panic!("no status: {other:?}"),
    }
}

/// A server that is stopping ended its sessions in memory only (the session log keeps them
/// for the next start): a mount that reconnects meanwhile, on a connection accepted before
/// the stop, is refused, not given a new session. A new session would leave the mount with
/// a secret the next start does not know for the session it does (its resumes refused until
/// that session's lease ends and its files are freed under it).
#[test]
fn a_resume_while_the_server_stops_is_refused_and_the_next_start_resumes_the_session() {
    let dir = scratch("stopping");
    let image = make_image(&dir, 64 << 20);
    let srv = Server::start(&image);
    let mut a = Client::hello(&srv.addr, None);
    let ino = create(&mut a, 1, "f");
    let (session, secret) = (a.session, a.secret.clone());
    // A connection in the listen queue, then a status query after it: once that is
    // answered, the server has accepted the one before it too.
    let mut early = TcpStream::connect(&srv.addr).unwrap();
    assert_eq!(status(&srv.addr).len(), 1);
    srv.stop.cancel();
    // The stop ends the session's connection; the session is then ended in memory.
    a.s.set_read_timeout(None).unwrap();
    while read_frame(&mut a.s).is_ok() {}
    let resume = ClientMsg::Resume {
        version: PROTOCOL_VERSION,
        node_id: "test-node".into(),
        mount_id: 42,
        read_only: false,
        session,
        secret: secret.clone(),
        nonce: Vec::new(),
        export: String::new(),
    };
    std::io::Write::write_all(&mut early, &encode_frame(&resume, &[]).unwrap()).unwrap();
    let answer = read_frame(&mut early)
        .ok()
        .map(|b| decode_body::<ServerMsg>(&b).unwrap().0);
    assert!(
        !matches!(answer, Some(ServerMsg::Welcome { .. })),
        "a stopping server admitted a mount: {answer:?}"
    );
    drop(srv);
    // The next start resumes the session with its secret; the file it holds is its own.
    let srv = Server::start(&image);
    let mut a = Client::hello(&srv.addr, Some((session, secret)));
    assert_eq!(a.session, session, "the session was not resumed");
    assert!(matches!(
        a.call(2, Request::Getattr { ino }),
        Ok(Response::Attr(_))
    ));
    assert_eq!(status(&srv.addr).len(), 1, "a session made during the stop");
    drop(a);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
