//! A read layout a direct mount keeps never outlives a change that cuts the file's blocks
//! away: one asked for while this mount's own truncate is under way is used for its read at
//! most, never kept; one asked for while another mount's truncate or punch waits for its
//! recalls is refused (the read goes through the server), so none given before the cut is
//! left out of them. The layout answers are held on their way (`LayoutHold`) to make the
//! races happen every time. In one process, without FUSE: the real server on a temporary
//! image.

mod support;

use std::time::Duration;

use client_fuse::backend::Backend;
use client_fuse::RemoteBackend;
use protocol::{Request, SetAttr};
use support::layout_hold::{Holds, LayoutHold};
use support::proxy::Proxy;
use support::{ask, client, direct, link, pattern, write_all, Place, Server, MIB};
use volume::layout::ROOT_INO;

const READ: u32 = 128 << 10;

fn truncate(c: &dyn Backend, ino: u64, size: u64) {
    let set = SetAttr {
        size: Some(size),
        ..Default::default()
    };
    c.setattr(ino, set).expect("truncate");
}

#[test]
fn a_read_layout_given_before_this_mounts_truncate_and_seen_after_it_is_not_kept() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let hold = LayoutHold::start_for(&server.addr.to_string(), Holds::Reads).expect("proxy");
    let d = direct(&place, &hold.addr, "d");
    let ino = d.create(ROOT_INO, b"f", 0o644, 0, 0).expect("create").ino;
    let old = pattern(2 * MIB, 0);
    write_all(&*d, ino, &old);
    hold.hold();
    let reader = {
        let d = d.clone();
        std::thread::spawn(move || d.read(ino, 0, READ))
    };
    // The server gave the reader its layout of the whole file; the truncate runs after
    // that, and its answer comes back before the layout's.
    hold.wait_held();
    truncate(&*d, ino, 0);
    hold.release();
    let during = reader
        .join()
        .expect("reader")
        .expect("the read during the truncate");
    assert!(
        during.is_empty() || during == old[..READ as usize],
        "the read during the truncate: neither before nor after it"
    );
    let after = d.read(ino, 0, READ).expect("read");
    assert!(
        after.is_empty(),
        "a read after the truncate returned {} cut bytes",
        after.len()
    );
    truncate(&*d, ino, 2 * MIB as u64);
    let grown = d.read(ino, 0, READ).expect("read");
    assert!(
        grown == vec![0; READ as usize],
        "a read after the file grew again: not zeros"
    );
}

/// `r` keeps a read layout on a file of 4 MiB; a raw session holds another and gives it
/// back only when told, so `cut` (by another mount) waits for its recalls meanwhile; `r`
/// answers its recall and reads again before the cut runs. Its reads after the cut must
/// read what the file has then (`expect`, at 0).
fn read_during_a_cut(cut: impl FnOnce(&RemoteBackend, u64) + Send + 'static, expect: &[u8]) {
    let place = Place::new();
    let lease = Duration::from_secs(60);
    let server = Server::start_with(&place, "127.0.0.1:0", lease, Duration::from_secs(20));
    let addr = server.addr.to_string();
    let hold = LayoutHold::start_for(&addr, Holds::Reads).expect("proxy");
    let r = direct(&place, &hold.addr, "r");
    let ino = r.create(ROOT_INO, b"f", 0o644, 0, 0).expect("create").ino;
    let old = pattern(4 * MIB, 0);
    write_all(&*r, ino, &old);
    assert!(r.read(ino, 0, READ).expect("read") == old[..READ as usize]);
    let other = link(&addr, "other holder");
    let get = Request::LayoutGet {
        ino,
        offset: 0,
        len: old.len() as u64,
        write: false,
        kill_priv: false,
    };
    ask(&other, get, &[]).expect("the other holder's layout");
    let returned = hold.returns();
    let cutter = {
        let w = client(&addr, "w");
        std::thread::spawn(move || cut(&w, ino))
    };
    // `r` gave its layouts back (its recall answered); the cut still waits for the other
    // holder's. A read now is served as the file is before the cut.
    hold.wait_returns(returned + 1);
    let during = r.read(ino, 0, READ).expect("the read during the cut");
    assert!(
        during == old[..READ as usize],
        "the read during the cut: not the file before it"
    );
    ask(&other, Request::LayoutReturn { ino }, &[]).expect("the other holder's return");
    cutter.join().expect("the cut");
    let after = r.read(ino, 0, READ).expect("read");
    if let Some(at) = (0..expect.len()).find(|&k| after.get(k) != Some(&expect[k])) {
        panic!(
            "a read after the cut: {} bytes, the first wrong at {at} ({:?}, the file has {})",
            after.len(),
            after.get(at),
            expect[at]
        );
    }
    assert_eq!(
        after.len(),
        expect.len(),
        "a read after the cut: its length"
    );
}

#[test]
fn a_read_layout_asked_for_while_another_mount_truncates_the_file_is_not_kept_past_it() {
    read_during_a_cut(|w, ino| truncate(w, ino, 0), &[]);
}

#[test]
fn a_read_layout_asked_for_while_another_mount_punches_the_file_is_not_kept_past_it() {
    let punch = (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE) as u32;
    read_during_a_cut(
        move |w, ino| {
            w.fallocate(ino, 0, MIB as u64, punch, false)
                .expect("punch")
        },
        &vec![0; READ as usize],
    );
}

/// A read layout kept from before the connection dropped is not used until the mount is
/// back: a server restarted without a session log knows nothing of it, and may have given
/// its blocks to another file meanwhile. The read waits for the reconnect, and reads what
/// the file has then.
#[test]
fn a_read_layout_kept_from_before_a_restart_without_a_session_log_is_not_used() {
    let place = Place::new();
    let lease = Duration::from_secs(120);
    let no_log = move |cfg: &mut server::ServerConfig| {
        cfg.state_log = None;
        cfg.lease = lease;
    };
    let server = Server::start_config(&place, "127.0.0.1:0", no_log);
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let r = direct(&place, &proxy.addr, "r");
    let ino = r.create(ROOT_INO, b"f", 0o644, 0, 0).expect("create").ino;
    write_all(&*r, ino, &pattern(4 * MIB, 0));
    r.read(ino, 0, READ).expect("a read, its layout kept");
    // The mount cannot reach the server; the server crashes and comes back without the
    // mount's session, and another mount cuts the file, fills another with its blocks and
    // writes the file anew.
    proxy.set_down(true);
    server.crash();
    let _server = Server::start_config(&place, &addr, no_log);
    let w = client(&addr, "w");
    truncate(&w, ino, 0);
    let g = w.create(ROOT_INO, b"g", 0o644, 0, 0).expect("create").ino;
    write_all(&w, g, &pattern(4 * MIB, 99));
    let now = pattern(4 * MIB, 1);
    write_all(&w, ino, &now);
    let (tx, read) = std::sync::mpsc::channel();
    let reader = {
        let r = r.clone();
        std::thread::spawn(move || tx.send(r.read(ino, 0, READ)))
    };
    // Answered at once from the kept layout, or (as it must be) only once the mount is
    // back: the value says which, whenever it comes.
    let early = read.recv_timeout(Duration::from_secs(5));
    proxy.set_down(false);
    let got = early
        .or_else(|_| read.recv())
        .expect("the read's answer")
        .expect("read");
    reader.join().expect("reader").ok();
    assert!(
        got == now[..READ as usize],
        "a read with the server away: not what the file has ({})",
        match got == pattern(4 * MIB, 99)[..READ as usize] {
            true => "another file's bytes",
            false => "other bytes",
        }
    );
}
