//! What may touch a RADOS volume besides its server, against a real cluster
//! (`rwxfs_tests::ceph`): fsck and mkfs of a volume a live server owns are refused, naming it,
//! and change nothing; a mkfs interrupted while it clears the old image's objects leaves a
//! marker that no server opens, and the next mkfs removes every object of the old image, past
//! the new size too. Built with `--features ceph`, as tests/rados.rs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rados_store::{CephOptions, Cluster, Header, ImageName, DEFAULT_OBJECT_SIZE};
use rwxfs_tests::ceph::{image, CephCluster, POOL};
use rwxfs_tests::rados_server::Server;
use rwxfs_tests::{bin, text};

/// How long any one event may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

#[test]
fn fsck_and_mkfs_of_a_served_volume_are_refused_naming_the_server() {
    let cluster = CephCluster::start();
    let made = cluster.rwxfs(&["mkfs", &image("vol"), "--size", "256M"]);
    assert!(made.status.success(), "{}", text(&made));
    let server = Server::start(&cluster, &image("vol"));
    server.wait_for(&["rwxfs: serving"]);
    let header = cluster.rados(&["-p", POOL, "stat", "vol.header"]);

    let fsck = cluster.rwxfs(&["fsck", &image("vol")]);
    assert_eq!(fsck.status.code(), Some(8), "{}", text(&fsck));
    let said = text(&fsck);
    assert!(said.contains("is in use"), "{said}");
    assert!(said.contains(&server.addr), "the server is named: {said}");
    assert!(said.contains("stop its servers"), "{said}");

    let mkfs = cluster.rwxfs(&["mkfs", &image("vol"), "--size", "64M", "--force"]);
    assert_eq!(mkfs.status.code(), Some(1), "{}", text(&mkfs));
    assert!(text(&mkfs).contains("is in use"), "{}", text(&mkfs));
    // Nothing changed: the header is the same object, the server still serves.
    let again = cluster.rados(&["-p", POOL, "stat", "vol.header"]);
    assert_eq!(header, again, "mkfs touched a served volume's header");
    let st = Command::new(bin())
        .args(["status", &server.addr, "--json"])
        .output()
        .unwrap();
    assert!(st.status.success(), "the server went away: {}", text(&st));

    server.signal(libc::SIGTERM);
    let mut server = server;
    assert_eq!(server.exit_code(), Some(0), "{}", server.log());
    // Once the server stopped, fsck checks the volume (and lets it go: a server serves again).
    cluster.assert_fsck_clean(&image("vol"));
    let next = Server::start(&cluster, &image("vol"));
    next.wait_for(&["rwxfs: serving"]);
}

/// The test's own handle on the cluster's pool.
fn pool(cluster: &CephCluster) -> rados_store::Pool {
    let opts = CephOptions {
        conf: Some(cluster.conf()),
        id: None,
    };
    Cluster::connect(&opts).unwrap().pool(POOL).unwrap()
}

#[test]
fn an_interrupted_mkfs_leaves_no_object_of_the_old_image() {
    let cluster = CephCluster::start();
    let pool = pool(&cluster);
    let name = ImageName::parse(&image("vol")).unwrap().unwrap();
    // An old image with data at both ends of a large range: clearing it takes a while.
    let old = Header {
        size: 256 << 30,
        object_size: DEFAULT_OBJECT_SIZE,
    };
    rados_store::create(&pool, &name, old).unwrap();
    let (first, last) = (name.data_object(0), name.data_object(old.objects() - 1));
    pool.write_full(&first, b"old data").unwrap();
    pool.write_full(&last, b"old data").unwrap();

    // mkfs of a small image over it, killed once it has begun removing objects.
    let mut mkfs = Command::new(bin())
        .args(["mkfs", &image("vol"), "--size", "64M", "--force"])
        .arg("--ceph-conf")
        .arg(cluster.conf())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !pool.read_all(&first).unwrap().is_empty() {
        assert!(mkfs.try_wait().unwrap().is_none(), "mkfs ended first");
        assert!(Instant::now() < deadline, "mkfs removed nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    mkfs.kill().unwrap();
    mkfs.wait().unwrap();
    assert_eq!(
        pool.read_all(&last).unwrap(),
        b"old data",
        "mkfs was not interrupted: it finished before it was killed"
    );

    // No server opens what is left, and fsck says what to do.
    let fsck = cluster.rwxfs(&["fsck", &image("vol")]);
    assert_eq!(fsck.status.code(), Some(8), "{}", text(&fsck));
    assert!(
        text(&fsck).contains("mkfs of this image was interrupted"),
        "{}",
        text(&fsck)
    );
    // mkfs again, with no --force (there is no volume to protect): once the killed one's
    // hold has lapsed, it clears the rest, past the new size too.
    loop {
        let out = cluster.rwxfs(&["mkfs", &image("vol"), "--size", "64M"]);
        if out.status.success() {
            break;
        }
        assert!(text(&out).contains("is in use"), "{}", text(&out));
        assert!(
            Instant::now() < deadline,
            "the killed mkfs's hold never lapsed"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let left: Vec<String> = cluster
        .rados(&["-p", POOL, "ls"])
        .lines()
        .filter(|o| o.starts_with("vol.") && *o != "vol.header")
        .map(str::to_string)
        .collect();
    assert!(!left.contains(&last), "the old image's last object is left");
    assert!(
        left.len() as u64
            <= Header {
                size: 64 << 20,
                object_size: DEFAULT_OBJECT_SIZE
            }
            .objects(),
        "objects past the new image: {left:?}"
    );
    assert_ne!(pool.read_all(&first).unwrap(), b"old data");
    cluster.assert_fsck_clean(&image("vol"));
}
