//! A direct mount's reads keep the read layouts the server gave until it recalls them: a
//! read within one needs no call to the server, and once another mount frees the file's
//! blocks (which recalls them first) the next read asks again and reads what the file has
//! now. In one process, without FUSE: the real server on a temporary image.

mod support;

use std::sync::mpsc::channel;
use std::time::Duration;

use client_fuse::backend::{Backend, WriteHow};
use support::{client, content, direct, direct_over_proxy, pattern, write_all, Place, Server, MIB};
use volume::layout::ROOT_INO;

#[test]
fn a_read_within_a_read_layout_already_given_needs_no_call_to_the_server() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let (d, proxy) = direct_over_proxy(&place, &server);
    let ino = d.create(ROOT_INO, b"f", 0o644, 0, 0).expect("create").ino;
    let data = pattern(4 * MIB, 0);
    write_all(&*d, ino, &data);
    let first = d.read(ino, 0, 128 << 10).expect("the first read");
    assert_eq!(first, data[..128 << 10]);
    // The server's answers are lost on their way (the connection stays up): a read that
    // asked the server anything would never be answered.
    proxy.set_mute(true);
    let (done, read) = channel();
    let reader = {
        let d = d.clone();
        std::thread::spawn(move || {
            let later: Vec<_> = [MIB, 3 * MIB + 5]
                .iter()
                .map(|&at| d.read(ino, at as u64, 128 << 10))
                .collect();
            let _ = done.send(later);
        })
    };
    // Well inside the session's lease (15 s): the layout may still be used all along.
    let got = read.recv_timeout(Duration::from_secs(5));
    proxy.set_mute(false);
    let got = got.expect("reads within the layout waited for the server's answer");
    reader.join().expect("reader");
    for (r, at) in got.into_iter().zip([MIB, 3 * MIB + 5]) {
        assert!(
            r.expect("read") == data[at..at + (128 << 10)],
            "at {at}: other data"
        );
    }
}

#[test]
fn a_read_after_another_mount_cut_and_rewrote_the_file_reads_what_it_has_now() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let d = direct(&place, &addr, "d");
    let ino = d.create(ROOT_INO, b"f", 0o644, 0, 0).expect("create").ino;
    write_all(&*d, ino, &pattern(4 * MIB, 0));
    d.read(ino, 0, 128 << 10).expect("a read, given a layout");
    // Another mount cuts the file (its blocks freed: the reader's layouts recalled first),
    // fills other files with the blocks, and writes the file anew.
    let other = client(&addr, "other");
    let cut = protocol::SetAttr {
        size: Some(0),
        ..Default::default()
    };
    other.setattr(ino, cut).expect("truncate");
    let filler = other
        .create(ROOT_INO, b"g", 0o644, 0, 0)
        .expect("create")
        .ino;
    write_all(&other, filler, &pattern(4 * MIB, 99));
    let now = pattern(4 * MIB, 1);
    write_all(&other, ino, &now);
    for at in [0, MIB, 3 * MIB + 5] {
        let r = d.read(ino, at as u64, 128 << 10).expect("read");
        assert!(
            r == now[at..at + (128 << 10)],
            "at {at}: not what the file has now"
        );
    }
    assert!(
        content(&other, ino) == now,
        "the file is not what was written"
    );
}

#[test]
fn a_write_that_goes_through_the_server_is_read_back_not_the_kept_layouts_old_blocks() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let (d, proxy) = direct_over_proxy(&place, &server);
    let ino = d.create(ROOT_INO, b"f", 0o4755, 0, 0).expect("create").ino;
    let old = pattern(2 * MIB, 0);
    write_all(&*d, ino, &old);
    assert_eq!(
        d.read(ino, 0, 128 << 10).expect("the first read"),
        old[..128 << 10]
    );
    // A write that must drop the file's setuid goes through the server, answered before it
    // is made; with the server out of reach it is not made until the network is back.
    proxy.set_down(true);
    let new = pattern(128 << 10, 9);
    let how = WriteHow {
        kill_priv: true,
        ..WriteHow::default()
    };
    assert_eq!(d.write(ino, 0, &new, how).expect("write"), new.len() as u32);
    let (done, read) = channel();
    let reader = {
        let d = d.clone();
        std::thread::spawn(move || {
            let _ = done.send(d.read(ino, 0, 128 << 10));
        })
    };
    // The read may not be answered from the kept layout's blocks, which the write has not
    // reached: it waits for the write.
    let early = read.recv_timeout(Duration::from_secs(5));
    proxy.set_down(false);
    let got = match early {
        Ok(r) => r.expect("read"),
        Err(_) => read.recv().expect("the read's answer").expect("read"),
    };
    reader.join().expect("reader");
    assert!(
        got == new,
        "read after the write through the server: other data"
    );
}

/// A direct read the volume refuses (as the OSDs refuse a fenced mount, here an image that
/// ends before the file's blocks) is read through the server, whose answer is the file's
/// data, not an error; the layout is not kept.
#[test]
fn a_direct_read_the_volume_refuses_is_read_through_the_server() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let c = client(&server.addr.to_string(), "c");
    let ino = c.create(ROOT_INO, b"f", 0o644, 0, 0).expect("create").ino;
    let data = pattern(256 << 10, 3);
    write_all(&c, ino, &data);
    c.fsync(ino).expect("fsync");
    let short = place.dir.path().join("short.img");
    std::fs::write(&short, [0u8; 4096]).expect("a short image");
    let local = Default::default();
    let d = client_fuse::DirectBackend::new(
        client(&server.addr.to_string(), "d"),
        Some(&short),
        &local,
        false,
    )
    .expect("direct backend");
    for at in [0u64, 64 << 10] {
        let got = d.read(ino, at, 64 << 10);
        let want = &data[at as usize..at as usize + (64 << 10)];
        assert!(
            got.as_deref().is_ok_and(|g| g == want),
            "a read at {at}: {:?}",
            got.map(|g| g.len())
        );
    }
}
