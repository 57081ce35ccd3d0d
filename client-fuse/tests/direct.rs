//! A direct mount's backend in one process, without FUSE: the real server on a temporary
//! image (see `support`), the direct backend reading and writing that image itself.

mod support;

use std::sync::mpsc::channel;
use std::time::Duration;

use client_fuse::backend::{ask, Backend, WriteHow};
use client_fuse::DirectBackend;
use protocol::{Layout, Request};
use support::{client, content, direct, direct_over_proxy, Place, Server};
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
    let (d, proxy) = direct_over_proxy(&place, &server);
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
    let d = direct(&place, &server.addr.to_string(), "d");
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

/// Calls made on this thread until the guard drops are made for uid and gid 1000.
fn as_user_1000() -> client_fuse::caller::Acting {
    client_fuse::caller::acting_for(protocol::Cred {
        uid: 1000,
        gid: 1000,
        groups: Vec::new(),
    })
}

fn chmod(c: &impl Backend, ino: u64, mode: u32) {
    let set = protocol::SetAttr {
        mode: Some(mode),
        ..Default::default()
    };
    c.setattr(ino, set).expect("chmod");
}

/// A file made by an anonymous client (owned by nobody) with mode 0666, which uid 1000
/// opens on the direct mount `d`.
fn opened_by_user_1000(d: &DirectBackend, owner: &impl Backend) -> u64 {
    let ino = create(owner, "shared");
    owner.release(ino).expect("release");
    chmod(owner, ino, 0o666);
    let _alice = as_user_1000();
    d.open(ino, libc::O_RDWR).expect("open");
    ino
}

/// uid 1000 writes 8 KiB through layouts (made, not committed: seen on the image); then the
/// file's owner makes it 0600, so their commit, made for uid 1000, is refused (EACCES).
fn a_commit_refused(place: &Place, d: &DirectBackend, owner: &impl Backend, ino: u64) {
    let data: Vec<u8> = (0..8192u32).map(|i| (i % 241) as u8 ^ 0x5a).collect();
    {
        let _alice = as_user_1000();
        d.write(ino, 0, &data, WriteHow::default()).expect("write");
    }
    support::wait_for("the direct write on the image", || {
        let image = std::fs::read(place.image()).expect("read the image");
        image.chunks(4096).any(|b| b == &data[..4096])
    });
    chmod(owner, ino, 0o600);
}

/// What the server holds for the session of the mount named `node`: its opens, its locks.
fn held_by(addr: &str, node: &str) -> (u32, u32) {
    let status = client_fuse::link::query_status(addr, None, None).expect("status");
    let s = status.sessions().iter().find(|s| s.node_id == node);
    let s = s.expect("the mount's session");
    (s.open_files, s.locks)
}

fn lock(owner: u64, typ: i32) -> client_fuse::backend::LockArgs {
    client_fuse::backend::LockArgs {
        owner,
        start: 0,
        end: u64::MAX,
        typ,
        pid: 1,
    }
}

/// A close whose commit fails (here the server refuses it) still closes the file on the
/// server, and reports the failure: the file is not held open for the rest of the mount.
#[test]
fn a_close_whose_commit_fails_reaches_the_server_and_reports_the_failure() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let d = direct(&place, &addr, "d");
    let owner = client(&addr, "owner");
    let ino = opened_by_user_1000(&d, &owner);
    a_commit_refused(&place, &d, &owner, ino);
    let closed = {
        let _alice = as_user_1000();
        d.release(ino)
    };
    assert_eq!(
        held_by(&addr, "d").0,
        0,
        "the file is still open on the server"
    );
    let e = closed.expect_err("a close whose commit was refused");
    assert_eq!(e.errno(), libc::EACCES);
}

/// An unlock whose commit fails still lets the lock go on the server (another mount takes
/// it), and reports the failure.
#[test]
fn an_unlock_whose_commit_fails_lets_the_lock_go_and_reports_the_failure() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let d = direct(&place, &addr, "d");
    let owner = client(&addr, "owner");
    let never = || false;
    let ino = opened_by_user_1000(&d, &owner);
    {
        let _alice = as_user_1000();
        d.setlk(ino, lock(7, libc::F_WRLCK), false, &never)
            .expect("lock");
    }
    a_commit_refused(&place, &d, &owner, ino);
    let unlocked = {
        let _alice = as_user_1000();
        d.setlk(ino, lock(7, libc::F_UNLCK), false, &never)
    };
    assert_eq!(
        held_by(&addr, "d").1,
        0,
        "the lock is still held on the server"
    );
    owner
        .setlk(ino, lock(9, libc::F_WRLCK), false, &never)
        .expect("another mount's lock once it was let go");
    let e = unlocked.expect_err("an unlock whose commit was refused");
    assert_eq!(e.errno(), libc::EACCES);
}

/// A user's writes to their own file of mode 0600 are committed for them, whoever's call
/// on the file commits them: here another user's stat (anonymous), which the server would
/// not let commit them.
#[test]
fn a_users_writes_are_committed_for_them_whoever_asks_for_the_commit() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let d = direct(&place, &addr, "d");
    let data = pattern(8192);
    let ino = {
        let _alice = as_user_1000();
        let ino = d
            .create(ROOT_INO, b"private", 0o600, 1000, 1000)
            .expect("create")
            .ino;
        d.write(ino, 0, &data, WriteHow::default()).expect("write");
        ino
    };
    support::wait_for("the direct write on the image", || {
        let image = std::fs::read(place.image()).expect("read the image");
        image.chunks(4096).any(|b| b == &data[..4096])
    });
    let seen = d.getattr(ino).expect("another user's stat");
    assert_eq!(seen.size, 8192);
    let _alice = as_user_1000();
    d.fsync(ino).expect("the user's fsync");
    assert_eq!(content(&client(&addr, "observer"), ino), data);
}

/// A recall's holder is answered the layouts it asks for while the calls waiting for that
/// recall hold every thread of the server's blocking pool (here its one), and commits what
/// it wrote before it gives them back: a direct mount's recall answer first makes the
/// writes answered before it, which ask for layouts (refused while the file is being cut:
/// those writes go through the server). Before, the layout call waited for a pool thread
/// until the recall gave up a lease later and took the holder's layouts, so the commit was
/// refused and the writes lost.
#[test]
fn a_holder_gets_layouts_while_the_calls_that_recall_them_hold_the_whole_pool() {
    let place = Place::new();
    // A lease far longer than the test: the holder's answer must not wait for it.
    let server = Server::start_config(&place, "127.0.0.1:0", |cfg| {
        cfg.max_blocking = 1;
        cfg.lease = Duration::from_secs(60);
    });
    let addr = server.addr.to_string();
    let holder = client(&addr, "holder");
    let (tx, recalls) = channel();
    holder.on_recall(move |r| _ = tx.send(r.ino));
    let other = client(&addr, "other");
    let ino = create(&other, "f");
    let layout = |offset| Request::LayoutGet {
        ino,
        offset,
        len: 4096,
        write: true,
        kill_priv: false,
    };
    let l: Result<Layout, _> = ask(&holder, layout(0), &[]);
    l.expect("a layout");
    let truncate = std::thread::spawn(move || {
        let size = protocol::SetAttr {
            size: Some(0),
            ..Default::default()
        };
        other.setattr(ino, size).map(|_| ())
    });
    // The truncate holds the pool's one thread, waiting for the holder's answer.
    let recalled = recalls.recv_timeout(Duration::from_secs(60));
    assert_eq!(recalled.expect("a recall"), ino);
    let more: Result<Layout, _> = ask(&holder, layout(8192), &[]);
    assert!(
        matches!(more, Err(volume::FsError::WouldBlock)),
        "a layout of the file being cut: {more:?}"
    );
    let through = holder.write(ino, 8192, &[7; 4096], WriteHow::default());
    assert_eq!(through.expect("a write through the server"), 4096);
    commit_and_return(&holder, ino);
    truncate.join().expect("truncate thread").expect("truncate");
    assert_eq!(holder.getattr(ino).expect("getattr").size, 0);
}

/// However many calls `max_blocking` lets wait at once, they leave threads of the runtime's
/// blocking pool (here 4 of them) to the calls that answer recalls: four truncates, each
/// waiting for the holder's answer to its recall, do not keep the holder from committing
/// and returning its layouts. Before, with `max_blocking` past the pool's size, the
/// truncates took every thread, and the holder's commit waited for one until the recall
/// gave up a lease later and took its layouts: refused (Stale), its writes lost.
#[test]
fn calls_waiting_for_recalls_never_take_every_thread_of_the_blocking_pool() {
    const FILES: usize = 4;
    let place = Place::new();
    // A lease far longer than the test: the holder's answers must not wait for it.
    let server = Server::start_config(&place, "127.0.0.1:0", |cfg| {
        cfg.blocking_threads = FILES;
        cfg.max_blocking = 512;
        cfg.lease = Duration::from_secs(60);
    });
    let addr = server.addr.to_string();
    let holder = client(&addr, "holder");
    let (tx, recalls) = channel();
    holder.on_recall(move |r| _ = tx.send(r.ino));
    let other = std::sync::Arc::new(client(&addr, "other"));
    let files: Vec<u64> = (0..FILES)
        .map(|k| create(&*other, &format!("f{k}")))
        .collect();
    for &ino in &files {
        let layout = Request::LayoutGet {
            ino,
            offset: 0,
            len: 4096,
            write: true,
            kill_priv: false,
        };
        let l: Result<Layout, _> = ask(&holder, layout, &[]);
        l.expect("a layout");
    }
    let truncates: Vec<_> = (files.iter())
        .map(|&ino| {
            let other = other.clone();
            std::thread::spawn(move || {
                let size = protocol::SetAttr {
                    size: Some(0),
                    ..Default::default()
                };
                other.setattr(ino, size).map(|_| ())
            })
        })
        .collect();
    // Each recall answered as it comes: what was written committed, then returned.
    for _ in 0..FILES {
        let ino = recalls
            .recv_timeout(Duration::from_secs(60))
            .expect("a recall");
        commit_and_return(&holder, ino);
    }
    for t in truncates {
        t.join().expect("truncate thread").expect("truncate");
    }
}

/// `holder` commits the first block of `ino`, written through its layout, and gives its
/// layouts of the file back, as a mount answers a recall.
fn commit_and_return(holder: &impl Backend, ino: u64) {
    let commit = Request::LayoutCommit {
        ino,
        written: vec![(0, 4096)],
        size: 4096,
        mtime: None,
        kill_priv: false,
    };
    let committed: Result<(), _> = ask(holder, commit, &[]);
    committed.expect("the holder's commit, before its layouts are given back");
    let returned: Result<(), _> = ask(holder, Request::LayoutReturn { ino }, &[]);
    returned.expect("return");
}
