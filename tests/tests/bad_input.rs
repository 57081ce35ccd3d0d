//! Bad input reaches a real server over real TCP while a real mount keeps working: garbage,
//! oversized length prefixes, truncated frames, frames out of order, calls naming unknown
//! inodes or absurd offsets and sizes, and a flood of connections. Each gets a clear error or
//! a closed connection; the server's memory stays bounded; the mount never notices.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, encode_frame_head};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use rwxfs_tests::{assert_fsck_clean, harness};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// True once the server has closed the connection (EOF or reset) within `secs`.
fn closed_by_server(s: &mut TcpStream, secs: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a refusal or error frame first is fine
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// The next message from the server that is not a push (durability notices come unasked).
fn read_msg(s: &mut TcpStream) -> ServerMsg {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    loop {
        let body = protocol::codec::read_frame(s).expect("a frame from the server");
        match decode_body::<ServerMsg>(&body).unwrap().0 {
            ServerMsg::Push(_) => continue,
            m => return m,
        }
    }
}

fn hello(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let h = ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        node_id: "fuzzer".into(),
        mount_id: 99,
        read_only: false,
        nonce: Vec::new(),
        export: String::new(),
    };
    s.write_all(&encode_frame(&h, &[]).unwrap()).unwrap();
    assert!(matches!(read_msg(&mut s), ServerMsg::Welcome { .. }));
    s
}

#[test]
fn bad_frames_and_calls_close_or_fail_cleanly_while_a_mount_keeps_working() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let pid = h.server_pid().unwrap();
    let m = h.mount_remote(&addr).unwrap();
    std::fs::write(m.join("before"), b"intact").unwrap();
    let rss_before = rss_kib(pid);

    // Garbage instead of a hello.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(
        closed_by_server(&mut s, 15),
        "garbage did not close the connection"
    );
    // A length prefix far over the limit: refused before anything is allocated.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert!(closed_by_server(&mut s, 15), "oversized prefix not refused");
    // A hello, then an oversized frame.
    let mut s = hello(&addr);
    s.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    assert!(closed_by_server(&mut s, 15));
    // A truncated frame, then the client goes away.
    let mut s = hello(&addr);
    s.write_all(&[0, 0, 1, 0, 1, 2, 3]).unwrap();
    drop(s);
    // A second hello on a live session.
    let mut s = hello(&addr);
    let again = ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        node_id: "fuzzer".into(),
        mount_id: 99,
        read_only: false,
        nonce: Vec::new(),
        export: String::new(),
    };
    s.write_all(&encode_frame(&again, &[]).unwrap()).unwrap();
    assert!(closed_by_server(&mut s, 15));
    // A header that does not decode, inside a well-formed frame.
    let mut s = hello(&addr);
    s.write_all(&[0, 0, 0, 8, 4, 0, 0, 0, 0xEE, 0xEE, 0xEE, 0xEE])
        .unwrap();
    assert!(closed_by_server(&mut s, 15));
    // A wrong protocol version: refused with the reason.
    let mut s = TcpStream::connect(&addr).unwrap();
    let old = ClientMsg::Hello {
        version: 999,
        node_id: "n".into(),
        mount_id: 1,
        read_only: false,
        nonce: Vec::new(),
        export: String::new(),
    };
    s.write_all(&encode_frame(&old, &[]).unwrap()).unwrap();
    match read_msg(&mut s) {
        ServerMsg::Refused { reason } => assert!(reason.contains("version 999"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Valid frames with absurd contents: each gets an errno (or an empty answer).
    let mut s = hello(&addr);
    let calls = [
        Request::Getattr { ino: 0 },
        Request::Getattr { ino: u64::MAX },
        Request::Read {
            ino: 1,
            offset: u64::MAX,
            size: u32::MAX,
        },
        Request::Read {
            ino: 777 << 32 | 5,
            offset: 0,
            size: u32::MAX,
        },
        Request::Write {
            ino: 1,
            offset: u64::MAX - 3,
            kill_priv: false,
        },
        Request::Readdirplus {
            ino: 1,
            offset: u64::MAX,
            max: u32::MAX,
        },
        Request::Unlink {
            parent: 424242,
            name: vec![b'x'; 5000],
        },
        Request::Setlk {
            ino: 1,
            owner: 1,
            range: protocol::LockRange { start: 10, end: 5 },
            kind: protocol::LockKind::Write,
            pid: 1,
            wait: false,
        },
        Request::Setlk {
            ino: 1,
            owner: 1,
            range: protocol::LockRange { start: 0, end: 0 },
            kind: protocol::LockKind::Other(77),
            pid: 1,
            wait: true,
        },
    ];
    for (i, c) in calls.into_iter().enumerate() {
        let id = 100 + i as u64;
        let head = encode_frame_head(&ClientMsg::Call { id, req: c.clone() }, 16).unwrap();
        s.write_all(&head).unwrap();
        s.write_all(&[7u8; 16]).unwrap();
        match read_msg(&mut s) {
            ServerMsg::Reply { id: got, result } => {
                assert_eq!(got, id);
                match result.map_err(protocol::ErrorCode::errno) {
                    Err(errno) => assert!(errno > 0, "{c:?}: errno {errno}"),
                    Ok(Response::Data) | Ok(Response::EntriesPlus(_)) => {}
                    Ok(other) => panic!("{c:?} answered {other:?}"),
                }
            }
            other => panic!("{c:?}: {other:?}"),
        }
    }

    // A flood of connections that never say hello, while the mount works.
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(flood.len() > 200, "only {} connections opened", flood.len());
    std::fs::write(m.join("during"), b"still serving").unwrap();
    assert_eq!(std::fs::read(m.join("before")).unwrap(), b"intact");
    drop(flood);

    let rss_after = rss_kib(pid);
    println!("server RSS {rss_before} KiB before, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "server memory grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(std::fs::read(m.join("during")).unwrap(), b"still serving");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
