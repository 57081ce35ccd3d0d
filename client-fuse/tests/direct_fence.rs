//! A direct mount's self-fence under a network that delays one direction only: what the
//! server sends reaches the mount late, all at once, while its calls reach the server at
//! once. The mount must count a recall from when the server may have sent it, not from
//! when it came, or it writes through layouts the server has already taken.

mod support;

use std::time::{Duration, Instant};

use client_fuse::backend::{Backend, WriteHow};
use client_fuse::DirectBackend;
use protocol::{Push, ServerMsg};
use support::layout_hold::LayoutHold;
use support::{client, content, Place, Server};
use volume::layout::ROOT_INO;

/// The server's lease: a recall not answered within it has the layouts taken.
const LEASE: Duration = Duration::from_secs(16);

fn is_recall(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Push(Push::LayoutRecall { .. }))
}

fn is_reply(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Reply { .. })
}

/// The way from the server to a direct mount stalls. The mount asks for a write layout,
/// which the server gives; then another mount's truncate recalls the direct mount's
/// layouts, and a lease later takes them. Meanwhile the direct mount made a call: the
/// layout's answer, the recall and the call's answer reach it in one burst once the stall
/// ends, after the take, less than half a lease after the call. The write goes through the
/// server (its layout was taken), and is reported done. Before, the recall was timed from
/// its arrival and the fresh answer behind it vouched for the session: the write went
/// through the taken layout into the file's block, and the fsync reported it lost (Stale)
/// while the file held its first bytes. The mount checks its layout once its writer has
/// woken with the answer: before, that was after the reader had handed out the recall and
/// the fresh answer behind it in about half the runs (2 of 4, 1 of 3), and this failed
/// then. (Until the server gave no layout while a truncate's recall was out, the layout's
/// answer could come behind the recall, and this failed every time.)
#[test]
fn a_write_answered_a_layout_in_a_late_burst_with_its_recall_does_not_use_the_layout() {
    let place = Place::new();
    let server = Server::start_config(&place, "127.0.0.1:0", |cfg| cfg.lease = LEASE);
    let addr = server.addr.to_string();
    let hold = LayoutHold::start(&addr).expect("proxy");
    let local = Default::default();
    let d = DirectBackend::new(client(&hold.addr, "d"), Some(&place.image()), &local, false)
        .expect("direct backend");
    let other = client(&addr, "other");
    let ino = other
        .create(ROOT_INO, b"f", 0o644, 0, 0)
        .expect("create")
        .ino;
    // Written in place from now on: the direct mount holds a layout on the file's block.
    d.write(ino, 0, b"kept", WriteHow::default())
        .expect("write");
    d.fsync(ino).expect("fsync");
    hold.stall();
    d.write(ino, 0, b"late", WriteHow::default())
        .expect("write");
    hold.wait_held();
    let cut = std::thread::spawn(move || {
        let size = protocol::SetAttr {
            size: Some(2),
            ..Default::default()
        };
        other.setattr(ino, size).map(|_| ())
    });
    hold.wait_held_count("the recall", 1, is_recall);
    // The server sent it no later than now.
    let recalled = Instant::now();
    // Past half a lease after the recall (so the answer to the call below is fresh when
    // the burst comes, right after the take) and well before the take.
    std::thread::sleep((LEASE * 13 / 20).saturating_sub(recalled.elapsed()));
    let replies = hold.held_count(is_reply);
    let probe = {
        let d = d.clone();
        std::thread::spawn(move || d.getattr(ROOT_INO).map(|_| ()))
    };
    hold.wait_held_count("the answer to the call", replies + 1, is_reply);
    cut.join()
        .expect("truncate")
        .expect("the truncate, once the layouts are taken");
    hold.release();
    probe.join().expect("call").expect("the call");
    let synced = d.fsync(ino);
    let observer = client(&addr, "observer");
    let now = content(&observer, ino);
    assert!(
        synced.is_ok(),
        "the write was reported lost ({synced:?}), and the file holds {:?}",
        String::from_utf8_lossy(&now)
    );
    assert_eq!(now, b"late", "the file after the write");
}
