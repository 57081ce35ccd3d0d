//! Bounds on what one client can take from the server: a client that stops reading its
//! replies, a flood of connections, too many sessions, a storm of lock requests, a flood of
//! reads against a single blocking slot. Each is a hand-made client
//! over real TCP while a real mount keeps working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use rwxfs_tests::{assert_fsck_clean, harness};

/// A hand-made session: greeted, nothing else yet.
fn hello(addr: &str, node: &str) -> TcpStream {
    greet(addr, node).unwrap_or_else(|why| panic!("{node} refused: {why}"))
}

/// A file made in the root by the hand-made session `s` (call `id`): its inode.
fn create(s: &mut TcpStream, id: u64, name: &[u8]) -> u64 {
    let create = Request::Create {
        parent: 1,
        name: name.to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    match call(s, id, create) {
        Ok(Response::Attr(a)) => a.ino,
        other => panic!("{other:?}"),
    }
}

/// One call and its result (pushes and other replies skipped).
fn call(s: &mut TcpStream, id: u64, req: Request) -> Result<Response, i32> {
    s.write_all(&encode_frame(&ClientMsg::Call { id, req }, &[]).unwrap())
        .unwrap();
    loop {
        let body = read_frame(s).unwrap();
        if let ServerMsg::Reply { id: got, result } = decode_body::<ServerMsg>(&body).unwrap().0 {
            if got == id {
                return result.map_err(protocol::ErrorCode::errno);
            }
        }
    }
}

/// Run `f` on a thread; its result, or a panic naming `what` if it never comes back (a
/// server stalled for good, not a slow one: the bound is far above any honest run).
fn completes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what}: the server stalled"))
}

/// The mount still answers: a new file written, fsynced and read back through another mount.
fn mount_works(a: &Path, b: &Path, name: &str) {
    let (a, b, name) = (a.to_path_buf(), b.to_path_buf(), name.to_string());
    completes("the real mounts", move || {
        let data = vec![7u8; 256 * 1024];
        let mut f = std::fs::File::create(a.join(&name)).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        assert_eq!(std::fs::read(b.join(&name)).unwrap(), data);
        assert!(std::fs::read_dir(&b).unwrap().count() > 0);
    });
}

#[test]
fn clients_that_stop_reading_replies_are_cut_off_and_stall_no_one_else() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    std::fs::write(a.join("big"), vec![1u8; 1 << 20]).unwrap();
    let mut deaf = Vec::new();
    for i in 0..10 {
        let mut s = hello(&addr, &format!("deaf-{i}"));
        let ino = match call(
            &mut s,
            1,
            Request::Lookup {
                parent: 1,
                name: b"big".to_vec(),
            },
        ) {
            Ok(Response::Attr(a)) => a.ino,
            other => panic!("{other:?}"),
        };
        // Many reads, and never a reply read: the socket's buffers fill, then the server's.
        let mut burst = Vec::new();
        for id in 2..1200u64 {
            let req = Request::Read {
                ino,
                offset: 0,
                size: 64 * 1024,
            };
            burst.extend(encode_frame(&ClientMsg::Call { id, req }, &[]).unwrap());
        }
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&burst);
        deaf.push(s);
    }
    mount_works(&a, &b, "after-the-deaf");
    // Each deaf connection was closed by the server: what it had sent, then the end.
    for s in &mut deaf {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a deaf connection was left open: {e}"),
            }
        }
    }
    drop(deaf);
    mount_works(&a, &b, "after-the-cut");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// The reason in a `Refused` the server sends on `s` before closing it, if it does.
fn refusal(s: &mut TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = read_frame(s).ok()?;
    match decode_body::<ServerMsg>(&body).ok()?.0 {
        ServerMsg::Refused { reason } => Some(reason),
        _ => None,
    }
}

#[test]
fn a_connection_flood_is_refused_past_the_limits_while_mounts_keep_working() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let limits = ["--max-connections", "6", "--max-handshakes", "3"];
    let addr = h.start_server(&img, &limits).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    // Connections that never say hello: three hold the handshake slots, the rest are
    // refused at once with the reason.
    let mut flood: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let reasons: Vec<String> = flood.iter_mut().skip(3).filter_map(refusal).collect();
    assert!(
        reasons.len() >= 30,
        "only {} of 37 refused: {reasons:?}",
        reasons.len()
    );
    assert!(
        reasons.iter().all(|r| r.contains("too many connections")),
        "{reasons:?}"
    );
    mount_works(&a, &b, "during-the-flood");
    drop(flood);
    // Once the flood is gone, new mounts get in again.
    let c = h.mount_remote(&addr).unwrap();
    mount_works(&c, &a, "after-the-flood");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_lock_storm_from_one_session_gets_enolck_past_its_limit() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h
        .start_server(&img, &["--max-locks-per-session", "100"])
        .unwrap();
    let m = h.mount_remote(&addr).unwrap();
    std::fs::write(m.join("other"), b"x").unwrap();
    let mut s = hello(&addr, "storm");
    let ino = create(&mut s, 1, b"stormy");
    let mut refused = 0;
    for i in 0..300u64 {
        let lock = Request::Setlk {
            ino,
            owner: 9,
            range: protocol::LockRange {
                start: 2 * i,
                end: 2 * i,
            },
            kind: protocol::LockKind::Write,
            pid: 1,
            wait: false,
        };
        match call(&mut s, 2 + i, lock) {
            Ok(_) => assert!(i < 100, "lock {i} granted past the limit"),
            Err(e) => {
                assert_eq!(e, libc::ENOLCK, "lock {i}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 200);
    // Everyone else's locks are unaffected.
    let t = rwxfs_tests::Locker::start(&h, &m, &["try", "$MNT/other", "posix", "w", "0", "0"]);
    assert_eq!(t.line(30), "ok");
    drop(t);
    s.write_all(&encode_frame(&ClientMsg::Goodbye, &[]).unwrap())
        .unwrap();
    drop(s);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// Greet the server as `node`: the stream once welcomed, else the reason it refused.
fn greet(addr: &str, node: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).unwrap();
    let hello = ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        node_id: node.into(),
        mount_id: 1,
        read_only: false,
        nonce: Vec::new(),
        export: String::new(),
    };
    s.write_all(&encode_frame(&hello, &[]).unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = read_frame(&mut s).map_err(|e| format!("no answer: {e}"))?;
    match decode_body::<ServerMsg>(&body).unwrap().0 {
        ServerMsg::Welcome { .. } => Ok(s),
        ServerMsg::Refused { reason } => Err(reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sessions_past_the_limit_are_refused_and_a_session_that_ends_frees_its_place() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &["--max-sessions", "3"]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let mut third = greet(&addr, "third").expect("the third session fits");
    let refused = greet(&addr, "fourth").expect_err("a fourth session is refused");
    assert!(refused.contains("too many sessions"), "{refused}");
    assert!(
        refused.contains('3'),
        "the refusal names the limit: {refused}"
    );
    mount_works(&a, &b, "at-the-limit");
    // A session that says goodbye ends at once: its place is free for the next.
    third
        .write_all(&encode_frame(&ClientMsg::Goodbye, &[]).unwrap())
        .unwrap();
    let mut buf = [0u8; 64];
    while third.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    drop(third);
    let mut fourth = admitted_within(&addr, "fourth", Duration::from_secs(60));
    fourth
        .write_all(&encode_frame(&ClientMsg::Goodbye, &[]).unwrap())
        .unwrap();
    drop(fourth);
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// Greet until welcomed (a place freed is seen a moment after the goodbye's connection
/// closes); panics with the last refusal if `limit` passes first.
fn admitted_within(addr: &str, node: &str, limit: Duration) -> TcpStream {
    let start = std::time::Instant::now();
    loop {
        match greet(addr, node) {
            Ok(s) => return s,
            Err(why) if start.elapsed() > limit => panic!("never admitted: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn one_blocking_slot_serves_every_client_with_a_read_flood_in_the_queue() {
    let mut h = harness();
    let img = h.mkfs("v.img", "128M").unwrap();
    let addr = h.start_server(&img, &["--max-blocking", "1"]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let mut s = hello(&addr, "flood");
    let ino = create(&mut s, 1, b"flooded");
    let write = ClientMsg::Call {
        id: 2,
        req: Request::Write {
            ino,
            offset: 0,
            kill_priv: false,
        },
    };
    s.write_all(&encode_frame(&write, &[5u8; 128 * 1024]).unwrap())
        .unwrap();
    // Two hundred reads queued at once, none of their replies read yet.
    let flood = 200u64;
    let mut frames = Vec::new();
    for i in 0..flood {
        let req = Request::Read {
            ino,
            offset: 0,
            size: 128 * 1024,
        };
        frames.extend(encode_frame(&ClientMsg::Call { id: 10 + i, req }, &[]).unwrap());
    }
    s.write_all(&frames).unwrap();
    // Its replies read as they come, as a client does (one that stops reading is cut off).
    let mut replies = s.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut answered = std::collections::BTreeSet::new();
        while answered.len() < flood as usize {
            let body = read_frame(&mut replies).unwrap();
            let msg = decode_body::<ServerMsg>(&body).unwrap().0;
            if let ServerMsg::Reply {
                id: id @ 10..,
                result,
            } = msg
            {
                assert!(matches!(result, Ok(Response::Data)), "{result:?}");
                answered.insert(id);
            }
        }
        answered
    });
    // Meanwhile writers on both mounts, each file fsynced, every one read back from the other.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (from, to) = if w % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let (from, to) = (from.clone(), to.clone());
            std::thread::spawn(move || {
                for f in 0..10 {
                    let name = format!("w{w}-{f}");
                    let data = vec![(w * 10 + f) as u8; 64 * 1024];
                    let mut file = std::fs::File::create(from.join(&name)).unwrap();
                    file.write_all(&data).unwrap();
                    file.sync_all().unwrap();
                    assert_eq!(std::fs::read(to.join(&name)).unwrap(), data, "{name}");
                }
            })
        })
        .collect();
    completes("the writers", move || {
        for w in writers {
            w.join().unwrap();
        }
    });
    // Every read of the flood was answered too.
    let answered = completes("the flood's replies", move || reader.join().unwrap());
    s.write_all(&encode_frame(&ClientMsg::Goodbye, &[]).unwrap())
        .unwrap();
    assert_eq!(answered, (10..10 + flood).collect());
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
