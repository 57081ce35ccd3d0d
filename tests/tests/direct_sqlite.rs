//! SQLite on direct mounts of two hosts: the database's pages are read and written by each
//! mount on the shared image itself, its locks and journal go through the server.

use std::path::Path;
use std::time::Duration;

use rwxfs_tests::{assert_fsck_clean, harness, sqlite, Hosts};

/// Processes on two hosts' direct mounts increment one counter in one database at once,
/// each increment a transaction under SQLite's own (POSIX) locks: none is lost, and the
/// database is sound on the other host, on a fresh mount, and on the image (fsck).
#[test]
fn sqlite_writers_on_direct_mounts_of_two_hosts_lose_no_update() {
    let hosts = Hosts::star(2).unwrap();
    let mut h = harness();
    let img = h.mkfs("v.img", "128M").unwrap();
    let bound = h
        .start_server_in(&Hosts::exec(&hosts.server), &img, "0.0.0.0:0", &[])
        .unwrap();
    let port = bound.rsplit(':').next().unwrap().to_string();
    let addr = |k: usize| format!("{}:{port}", hosts.server_ip_for(k + 1));
    let mut direct = |k: usize| {
        h.mount_remote_in_with(&Hosts::exec(&hosts.clients[k]), &addr(k), &["--direct"])
            .unwrap()
    };
    let (a, b) = (direct(0), direct(1));
    sqlite::create(&h, &a);
    let per = 50;
    let on: [&Path; 4] = [&a, &b, &a, &b];
    sqlite::Writers::start(&h, &on, per).wait(Duration::from_secs(600));
    let counted = format!("ok {}", on.len() * per);
    assert_eq!(sqlite::check(&h, &b), counted, "read on a writer's mount");
    h.unmount_all().unwrap();
    let fresh = h
        .mount_remote_in(&Hosts::exec(&hosts.clients[0]), &addr(0))
        .unwrap();
    assert_eq!(sqlite::check(&h, &fresh), counted, "read on a fresh mount");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
