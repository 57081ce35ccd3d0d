//! Clients and servers that do not play by the rules: a hand-made client that knows another
//! mount's session ids (anyone can list them with `rwxfs status`) must not take that session
//! over; a server that cannot prove the export's token is refused by the client; a token
//! proof relayed into another TLS session is refused by the server.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use client_fuse::transport::{self, Stream};
use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{auth, ClientMsg, ServerMsg, PROTOCOL_VERSION};
use rwxfs_tests::{assert_fsck_clean, bin, certificate, harness, status, Locker, Proxy};

fn read_msg(s: &mut TcpStream) -> ServerMsg {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = read_frame(s).expect("a frame from the server");
    decode_body::<ServerMsg>(&body).unwrap().0
}

#[test]
fn a_client_that_knows_only_the_listed_ids_cannot_resume_another_mounts_session() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let m = h.mount_remote(&proxy.addr).unwrap();
    std::fs::write(m.join("f"), b"owned by the real mount").unwrap();
    let mut holder = Locker::start(&h, &m, &["hold", "$MNT/f", "posix", "w", "0", "0"]);
    assert!(holder.line(20).starts_with("held"));
    let listed = status(&addr, &[]);
    assert_eq!(listed.len(), 1);
    let (session, node, mount_id) = (
        listed[0]["session"].as_u64().unwrap(),
        listed[0]["node"].as_str().unwrap().to_string(),
        u64::from_str_radix(listed[0]["mount"].as_str().unwrap(), 16).unwrap(),
    );
    assert!(
        !listed[0].to_string().contains("secret"),
        "status shows a secret: {}",
        listed[0]
    );

    let mut s = TcpStream::connect(&addr).unwrap();
    let resume = ClientMsg::Resume {
        version: PROTOCOL_VERSION,
        node_id: node,
        mount_id,
        read_only: false,
        session,
        secret: Vec::new(),
        nonce: Vec::new(),
        export: String::new(),
    };
    s.write_all(&encode_frame(&resume, &[]).unwrap()).unwrap();
    match read_msg(&mut s) {
        ServerMsg::Refused { reason } => assert!(reason.contains("secret"), "{reason}"),
        other => panic!("a client without the session's secret got in: {other:?}"),
    }
    drop(s);

    // The real mount's session is untouched: still connected, its lock still held and
    // honoured, its calls still answered.
    let now = status(&addr, &[]);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["session"].as_u64(), Some(session));
    assert_eq!(now[0]["connected"].as_bool(), Some(true), "{now:?}");
    assert_eq!(now[0]["locks"].as_u64(), Some(1), "{now:?}");
    let other = h.mount_remote(&addr).unwrap();
    let t = Locker::start(&h, &other, &["try", "$MNT/f", "posix", "w", "0", "0"]);
    assert_eq!(t.line(20), "EAGAIN", "the lock was taken from its holder");
    std::fs::write(m.join("g"), b"still working").unwrap();
    assert_eq!(std::fs::read(m.join("g")).unwrap(), b"still working");

    // The real client, cut off, resumes its session as before, its lock with it.
    let before = proxy.accepted();
    proxy.cut();
    std::fs::write(m.join("h"), b"after the cut").unwrap();
    assert!(proxy.accepted() > before, "the client did not reconnect");
    let after = status(&addr, &[]);
    let mine: Vec<_> = after
        .iter()
        .filter(|s| s["session"].as_u64() == Some(session))
        .collect();
    assert_eq!(mine.len(), 1, "the session was not resumed: {after:?}");
    assert_eq!(mine[0]["locks"].as_u64(), Some(1), "{after:?}");
    holder.finish();
    assert!(holder.line(20).starts_with("released"));
    drop(holder);
    drop(t);
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn the_client_refuses_a_server_that_cannot_prove_the_token() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let good = h.path("token");
    std::fs::write(&good, "the-export-token-2718\n").unwrap();
    let other = h.path("other");
    std::fs::write(&other, "some-other-token-1618\n").unwrap();
    let with_token = ["--token-file", good.to_str().unwrap()];

    // A server without any token (an impostor listening where the real one should be).
    let addr = h.start_server(&img, &[]).unwrap();
    let e = h.mount_remote_with(&addr, &with_token).unwrap_err();
    assert!(e.contains("did not prove it holds the token"), "{e}");
    let out = std::process::Command::new(bin())
        .args(["status", &addr])
        .args(with_token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not prove it holds the token"), "{err}");
    h.stop_server().unwrap();

    // A server with another token.
    let addr = h
        .start_server(&img, &["--token-file", other.to_str().unwrap()])
        .unwrap();
    let e = h.mount_remote_with(&addr, &with_token).unwrap_err();
    assert!(e.contains("its proof of the token is wrong"), "{e}");
    h.stop_server().unwrap();

    // The real server proves it, and the mount works.
    let addr = h.start_server(&img, &with_token).unwrap();
    let m = h.mount_remote_with(&addr, &with_token).unwrap();
    std::fs::write(m.join("f"), b"both sides proven").unwrap();
    assert_eq!(std::fs::read(m.join("f")).unwrap(), b"both sides proven");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// Hello over `s`; returns the client's nonce and the server's challenge.
fn challenged(s: &mut Stream, node: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let nonce = auth::random_bytes(auth::NONCE_LEN).unwrap();
    let hello = ClientMsg::Hello {
        version: PROTOCOL_VERSION,
        node_id: node.into(),
        mount_id: 5,
        read_only: false,
        nonce: nonce.clone(),
        export: String::new(),
    };
    s.write_all(&encode_frame(&hello, &[]).unwrap()).unwrap();
    let body = read_frame(s).expect("a challenge");
    match decode_body::<ServerMsg>(&body).unwrap().0 {
        ServerMsg::Challenge { nonce: theirs, mac } => (nonce, theirs, mac),
        other => panic!("expected a challenge: {other:?}"),
    }
}

#[test]
fn a_token_proof_relayed_into_another_tls_session_is_refused() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let (cert, key) = certificate(&h, "server");
    let token = h.path("token");
    std::fs::write(&token, "relay-me-if-you-can-1414\n").unwrap();
    let addr = h
        .start_server(
            &img,
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
                "--token-file",
                token.to_str().unwrap(),
            ],
        )
        .unwrap();
    let tls = transport::client_config(&cert).unwrap();
    let tok = b"relay-me-if-you-can-1414";

    // A relay: the victim's TLS session is A; the relay answers the server's challenge on
    // its own session B with the proof computed in A.
    let a = Stream::connect(&addr, Some(&tls)).unwrap();
    let mut b = Stream::connect(&addr, Some(&tls)).unwrap();
    let (mine, nonce, mac) = challenged(&mut b, "relay");
    assert!(auth::verify_server(
        tok,
        &mine,
        &nonce,
        &b.binding().unwrap(),
        &mac
    ));
    let relayed = auth::proof(tok, &nonce, "relay", 5, &a.binding().unwrap());
    b.write_all(&encode_frame(&ClientMsg::Proof { mac: relayed }, &[]).unwrap())
        .unwrap();
    match decode_body::<ServerMsg>(&read_frame(&mut b).unwrap())
        .unwrap()
        .0
    {
        ServerMsg::Refused { reason } => assert!(reason.contains("authentication"), "{reason}"),
        other => panic!("a proof from another TLS session got in: {other:?}"),
    }

    // The same proof made in its own session gets in.
    let mut c = Stream::connect(&addr, Some(&tls)).unwrap();
    let (_, nonce, _) = challenged(&mut c, "relay");
    let own = auth::proof(tok, &nonce, "relay", 5, &c.binding().unwrap());
    c.write_all(&encode_frame(&ClientMsg::Proof { mac: own }, &[]).unwrap())
        .unwrap();
    let back = decode_body::<ServerMsg>(&read_frame(&mut c).unwrap())
        .unwrap()
        .0;
    assert!(matches!(back, ServerMsg::Welcome { .. }), "{back:?}");
    c.write_all(&encode_frame(&ClientMsg::Goodbye, &[]).unwrap())
        .unwrap();
    drop((a, b, c));
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
