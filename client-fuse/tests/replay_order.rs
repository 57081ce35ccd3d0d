//! Replays from different mounts after a crash run mount by mount, in whatever order the
//! mounts come back. A change one mount made on top of another mount's change, neither
//! durable when the server crashed, must not be replayed before it: here the mount whose
//! change came first comes back last (its connection is down through the restart).

mod support;

use protocol::{Request, Response};
use support::proxy::Proxy;
use support::{ask, link, wait_for, Place, Server};
use volume::layout::ROOT_INO;

fn create(l: &client_fuse::link::Link, name: &[u8]) -> u64 {
    let req = Request::Create {
        parent: ROOT_INO,
        name: name.to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
    };
    match ask(l, req, &[]) {
        Ok((Response::Attr(a), _)) => a.ino,
        other => panic!("create {}: {other:?}", String::from_utf8_lossy(name)),
    }
}

fn lookup(l: &client_fuse::link::Link, name: &[u8]) -> Result<u64, i32> {
    let req = Request::Lookup {
        parent: ROOT_INO,
        name: name.to_vec(),
    };
    match ask(l, req, &[]) {
        Ok((Response::Attr(a), _)) => Ok(a.ino),
        Ok(other) => panic!("lookup: {other:?}"),
        Err(e) => Err(e),
    }
}

/// Crash the server with `a` cut off, start it again, let `b` replay alone, then bring
/// `a` back and have it replay too.
fn crash_with_a_back_last(
    place: &Place,
    server: Server,
    proxy: &Proxy,
    b: &client_fuse::link::Link,
) -> Server {
    let addr = server.addr.to_string();
    proxy.set_down(true);
    server.crash();
    let server = Server::start(place, &addr);
    wait_for("the mount that came back first replayed", || {
        b.restarts() == 1
    });
    proxy.set_down(false);
    server
}

/// Mount A removes a name, then mount B makes a file of that name: replayed B first, B's
/// create found the name still taken and was lost.
#[test]
fn a_create_of_a_name_another_mount_removed_is_replayed_after_that_removal() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let a = link(&proxy.addr, "a");
    let b = link(&addr, "b");
    let old = create(&a, b"n");
    ask(&a, Request::Fsync { ino: old }, &[]).expect("fsync");
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"n".to_vec(),
    };
    ask(&a, unlink, &[]).expect("unlink");
    let new = create(&b, b"n");
    let server = crash_with_a_back_last(&place, server, &proxy, &b);
    ask(&a, Request::Statfs, &[]).expect("a call once back");
    assert_eq!(a.restarts(), 1);
    assert_eq!(lookup(&b, b"n"), Ok(new), "b's file");
    assert!(!b.lost(new, true), "b's create was reported lost");
    drop(server);
}

/// Mount A renames `x` to `y`, then mount B renames `y` to `z`: replayed B first, B's
/// rename found no `y` and was lost, and A's then brought `y` back.
#[test]
fn a_rename_of_a_name_another_mount_made_by_rename_is_replayed_after_it() {
    let place = Place::new();
    let server = Server::start(&place, "127.0.0.1:0");
    let addr = server.addr.to_string();
    let proxy = Proxy::start(&addr).expect("proxy");
    let a = link(&proxy.addr, "a");
    let b = link(&addr, "b");
    let x = create(&a, b"x");
    ask(&a, Request::Fsync { ino: x }, &[]).expect("fsync");
    let rename = |from: &[u8], to: &[u8]| Request::Rename {
        parent: ROOT_INO,
        name: from.to_vec(),
        newparent: ROOT_INO,
        newname: to.to_vec(),
        flags: Default::default(),
    };
    ask(&a, rename(b"x", b"y"), &[]).expect("a's rename");
    ask(&b, rename(b"y", b"z"), &[]).expect("b's rename");
    let server = crash_with_a_back_last(&place, server, &proxy, &b);
    ask(&a, Request::Statfs, &[]).expect("a call once back");
    assert_eq!(a.restarts(), 1);
    assert_eq!(lookup(&b, b"z"), Ok(x), "the file under its last name");
    assert_eq!(
        lookup(&b, b"y"),
        Err(libc::ENOENT),
        "a name renamed away came back"
    );
    assert_eq!(lookup(&b, b"x"), Err(libc::ENOENT));
    assert!(!b.lost(x, true), "b's rename was reported lost");
    drop(server);
}
