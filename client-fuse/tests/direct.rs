//! A direct mount's backend in one process, without FUSE: the real server on a temporary
//! image (see `support`), the direct backend reading and writing that image itself.

mod support;

use std::sync::mpsc::channel;
use std::time::Duration;

use client_fuse::backend::{Backend, WriteHow};
use client_fuse::DirectBackend;
use support::proxy::Proxy;
use support::{client, content, Place, Server};
use volume::layout::ROOT_INO;

fn create(c: &impl Backend, name: &str) -> u64 {
    c.create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)
        .expect("create")
        .ino
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A direct write is answered once its data is copied, not once the server has given it a
/// layout (write-behind, as a remote mount's): with the network down the writes are
/// answered, and once it is back they are made, committed at fsync, and another client
/// reads them.
#[test]
fn direct_writes_are_answered_while_the_server_is_out_of_reach_and_land_once_it_is_back() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let proxy = Proxy::start(&server.addr.to_string()).expect("proxy");
    let local = Default::default();
    let d = DirectBackend::new(
        client(&proxy.addr, "d"),
        Some(&place.image()),
        &local,
        false,
    )
    .expect("direct backend");
    let ino = create(&*d, "f");
    let data = pattern(3 << 20);
    proxy.set_down(true);
    let (done, answered) = channel();
    let writer = {
        let (d, data) = (d.clone(), data.clone());
        std::thread::spawn(move || {
            for (i, chunk) in data.chunks(1 << 20).enumerate() {
                let n = d.write(ino, (i << 20) as u64, chunk, WriteHow::default());
                assert_eq!(n.expect("write") as usize, chunk.len());
            }
            let _ = done.send(());
        })
    };
    // Shorter than the session's lease (15 s), so the session outlives the wait either way.
    let r = answered.recv_timeout(Duration::from_secs(8));
    proxy.set_down(false);
    writer.join().expect("writer");
    r.expect("the writes were answered only once the server was back");
    d.fsync(ino).expect("fsync");
    let observer = client(&server.addr.to_string(), "observer");
    assert_eq!(content(&observer, ino), data);
}

/// A direct write that fails after it was answered (the volume has no room for it) is
/// reported at the file's fsync, and again by its next flush: no close takes the error
/// from the others.
#[test]
fn a_direct_write_that_fails_after_its_answer_is_reported_by_every_fsync_and_flush() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let d = DirectBackend::new(
        client(&server.addr.to_string(), "d"),
        Some(&place.image()),
        &Default::default(),
        false,
    )
    .expect("direct backend");
    let ino = create(&*d, "big");
    // More than the 64 MiB image holds; once a write has failed, the next one may say so.
    let chunk = pattern(1 << 20);
    let mut refused = None;
    for i in 0..96u64 {
        if let Err(e) = d.write(ino, i << 20, &chunk, WriteHow::default()) {
            refused = Some(e.errno());
            break;
        }
    }
    assert!(
        matches!(refused, None | Some(libc::ENOSPC)),
        "a write failed with errno {refused:?}"
    );
    let fsync = d
        .fsync(ino)
        .expect_err("fsync after writes the volume had no room for");
    assert_eq!(fsync.errno(), libc::ENOSPC);
    let flush = d.flush(ino).expect_err("the next flush");
    assert_eq!(flush.errno(), libc::ENOSPC);
}
