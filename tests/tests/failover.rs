//! A standby server that takes a RADOS volume over, against a real cluster
//! (`rwxfs_tests::ceph`): the active killed with SIGKILL under writers on two mounts, which
//! carry on without a remount and keep their locks; the active stopped with SIGSTOP past
//! its lease, fenced, then woken: it writes nothing and stops; two servers started at once:
//! one serves; the active's host cut off from the network (hosts are network namespaces on
//! one bridge, the cluster in the bridge's), fenced, and silent when the network heals. Each ends with fsck clean and every fsync-acknowledged byte read back from a
//! fresh mount. Built with `--features ceph`, as tests/rados.rs.

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use demo::workload::contents;
use rwxfs_tests::ceph::{image, CephCluster, POOL};
use rwxfs_tests::rados_server::Server;
use rwxfs_tests::{bin, command, harness, ok, time_of, Lan, Locker};

/// How long any one event may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

fn status(addr: &str) -> serde_json::Value {
    serde_json::from_slice(&ok(status_in(&[], addr)).into_bytes()).expect("status --json is JSON")
}

/// `rwxfs status ADDR --json` run through `prefix`, whatever its outcome.
fn status_in(prefix: &[&str], addr: &str) -> Output {
    command(prefix, bin())
        .args(["status", addr, "--json"])
        .output()
        .expect("rwxfs status runs")
}

/// One writer on a mount: files written whole and fsynced, one after another, every error
/// counted (an application must see none); the files whose fsync returned, by number.
struct Writer {
    acked: Arc<Mutex<Vec<usize>>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    who: usize,
}

impl Writer {
    fn start(mount: &Path, who: usize) -> Writer {
        let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (a, e, s, m) = (
            Arc::clone(&acked),
            Arc::clone(&errors),
            stop.clone(),
            mount.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            let mut j = 0;
            while !s.load(Ordering::SeqCst) {
                let path = m.join(format!("w{who}-{j}"));
                let r = std::fs::File::create(&path).and_then(|mut f| {
                    f.write_all(&contents(who, j))?;
                    f.sync_all()
                });
                match r {
                    Ok(()) => a.lock().unwrap().push(j),
                    Err(err) => e.lock().unwrap().push(format!("{}: {err}", path.display())),
                }
                j += 1;
            }
        });
        Writer {
            acked,
            errors,
            stop,
            thread: Some(thread),
            who,
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Wait until `n` more files than now are acknowledged.
    fn wait_more(&self, n: usize) {
        let want = self.count() + n;
        let deadline = Instant::now() + PATIENCE;
        while self.count() < want {
            assert!(Instant::now() < deadline, "writer {} stalled", self.who);
            assert!(self.errors.lock().unwrap().is_empty(), "{:?}", self.errors);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop; the files acknowledged, after checking no call failed.
    fn finish(mut self) -> Vec<usize> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let errors = self.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "writer {} saw errors: {errors:?}",
            self.who
        );
        self.acked.lock().unwrap().clone()
    }
}

/// Every acknowledged file of writer `who`, read back through `mount`.
fn check_files(mount: &Path, who: usize, acked: &[usize]) {
    for &j in acked {
        let got = std::fs::read(mount.join(format!("w{who}-{j}")))
            .unwrap_or_else(|e| panic!("w{who}-{j} was acknowledged and is gone: {e}"));
        assert_eq!(got, contents(who, j), "w{who}-{j}");
    }
}

#[test]
fn a_killed_active_is_replaced_by_its_standby_under_writers_and_locks() {
    let cluster = CephCluster::start();
    ok(cluster.rwxfs(&["mkfs", &image("vol"), "--size", "1G"]));
    let a = Server::start(&cluster, &image("vol"));
    a.wait_for(&["rwxfs: serving"]);
    let b = Server::start(&cluster, &image("vol"));
    b.wait_for(&["standby for"]);
    let st = status(&b.addr);
    assert_eq!(st["role"], "standby", "{st}");
    assert!(st["active"].as_str().unwrap().contains(&a.addr), "{st}");
    assert!(status(&a.addr).is_array());

    let both = format!("{},{}", a.addr, b.addr);
    // Declared before the harness, so dropped after it: a failing test unmounts first, and
    // a locker blocked in the mount is not waited for on a dead server.
    let (mut holder, waiter, t);
    let mut h = harness();
    let (m1, m2) = (
        h.mount_remote(&both).unwrap(),
        h.mount_remote(&both).unwrap(),
    );
    std::fs::write(m1.join("lk"), b"lock file").unwrap();
    holder = Locker::start(&h, &m1, &["hold", "$MNT/lk", "posix", "w", "0", "0"]);
    assert!(holder.line(60).starts_with("held"));
    waiter = Locker::start(&h, &m2, &["wait", "$MNT/lk", "posix", "w", "0", "0"]);
    let (w1, w2) = (Writer::start(&m1, 1), Writer::start(&m2, 2));
    w1.wait_more(10);
    w2.wait_more(10);

    drop(a); // SIGKILL
    let took = b.wait_for(&["taken over", "owns the volume"]);
    assert!(
        took.contains("fenced"),
        "the killed owner is fenced: {took}"
    );
    b.wait_for(&["rwxfs: serving"]);
    // The writers carry on through the same mounts, with no error.
    w1.wait_more(10);
    w2.wait_more(10);
    // The lock came across: the waiter still waits, a try from the other mount is refused.
    assert!(
        waiter.no_line_for(500),
        "the lock was granted to another during the failover"
    );
    t = Locker::start(&h, &m2, &["try", "$MNT/lk", "posix", "w", "0", "0"]);
    assert_eq!(t.line(60), "EAGAIN", "the held lock was reclaimed");
    holder.finish();
    let released = time_of(&holder.line(60), "released");
    let granted = time_of(&waiter.line(60), "granted");
    assert!(
        granted >= released,
        "granted {granted} before the release {released}"
    );

    let (acked1, acked2) = (w1.finish(), w2.finish());
    let fresh = h.mount_remote(&b.addr).unwrap();
    check_files(&fresh, 1, &acked1);
    check_files(&fresh, 2, &acked2);
    h.unmount_all().unwrap();
    b.signal(libc::SIGTERM);
    let mut b = b;
    assert_eq!(b.exit_code(), Some(0), "{}", b.log());
    cluster.assert_fsck_clean(&image("vol"));
}

/// Each data and header object's content, by name (the session log left out: the standby
/// keeps writing it).
fn objects(cluster: &CephCluster, name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = cluster
        .rados(&["-p", POOL, "ls"])
        .lines()
        .filter(|l| l.starts_with(&format!("{name}.")) && !l.ends_with(".sessions"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|o| {
            let f = dir.path().join(&o);
            cluster.rados(&["-p", POOL, "get", &o, &f.to_string_lossy()]);
            (o, std::fs::read(&f).unwrap())
        })
        .collect()
}

#[test]
fn a_paused_active_is_fenced_and_writes_nothing_when_it_wakes() {
    let cluster = CephCluster::start();
    ok(cluster.rwxfs(&["mkfs", &image("vol"), "--size", "256M"]));
    // Both at once: exactly one serves, the other stands by.
    let (s1, s2) = (
        Server::start(&cluster, &image("vol")),
        Server::start(&cluster, &image("vol")),
    );
    let words = ["rwxfs: serving", "standby for"];
    let (l1, l2) = (s1.wait_for(&words), s2.wait_for(&words));
    let (a, b) = match (l1.contains("serving"), l2.contains("serving")) {
        (true, false) => (s1, s2),
        (false, true) => (s2, s1),
        _ => panic!("not exactly one active:\n{l1}\n{l2}"),
    };
    let both = format!("{},{}", a.addr, b.addr);
    let mut h = harness();
    let m = h.mount_remote(&both).unwrap();
    let w = Writer::start(&m, 1);
    w.wait_more(10);
    let acked = w.finish();
    // A change the paused server holds and has not committed yet.
    std::fs::write(m.join("late"), b"written just before the pause").unwrap();
    a.signal(libc::SIGSTOP);
    b.wait_for(&["taken over"]);
    b.wait_for(&["rwxfs: serving"]);
    // The mount follows: a new file through it is acknowledged by the new owner.
    let w = Writer::start(&m, 2);
    w.wait_more(5);
    let acked2 = w.finish();
    let before = objects(&cluster, "vol");
    let mut a = a;
    a.signal(libc::SIGCONT);
    assert_eq!(
        a.exit_code(),
        Some(3),
        "the woken server stops:\n{}",
        a.log()
    );
    assert!(a.log().contains("no longer this server's"), "{}", a.log());
    let after = objects(&cluster, "vol");
    assert!(
        before == after,
        "the fenced server changed the volume after it woke"
    );
    let fresh = h.mount_remote(&b.addr).unwrap();
    check_files(&fresh, 1, &acked);
    check_files(&fresh, 2, &acked2);
    h.unmount_all().unwrap();
    b.signal(libc::SIGTERM);
    let mut b = b;
    assert_eq!(b.exit_code(), Some(0), "{}", b.log());
    cluster.assert_fsck_clean(&image("vol"));
}

#[test]
fn a_partitioned_active_is_fenced_and_writes_nothing_when_the_network_heals() {
    // Declared first, so removed last: after the mounts, the servers and the cluster.
    let lan = Lan::new(3).unwrap();
    let (host_a, host_b, client) = (1, 2, 3);
    let cluster = CephCluster::start_in(&lan.on_hub(), &lan.hub_ip());
    ok(cluster.rwxfs(&["mkfs", &image("vol"), "--size", "256M"]));
    let addr_a = format!("{}:7411", lan.ip(host_a));
    let addr_b = format!("{}:7411", lan.ip(host_b));
    let vol = image("vol");
    let a = Server::start_in(&lan.on(host_a), &cluster, &vol, &addr_a, &[]);
    a.wait_for(&["rwxfs: serving"]);
    let b = Server::start_in(&lan.on(host_b), &cluster, &vol, &addr_b, &[]);
    b.wait_for(&["standby for"]);
    let mut h = harness();
    let m = h
        .mount_remote_in(&lan.on(client), &format!("{addr_a},{addr_b}"))
        .unwrap();
    let w = Writer::start(&m, 1);
    w.wait_more(10);

    // The active's host is cut off with writes in flight; the client's too, for a while,
    // so that nothing reaches the new owner until the old one has had its chance to write.
    lan.set_link(host_a, false).unwrap();
    lan.set_link(client, false).unwrap();
    let took = b.wait_for(&["taken over", "owns the volume"]);
    assert!(
        took.contains("fenced"),
        "the cut-off owner is fenced: {took}"
    );
    b.wait_for(&["rwxfs: serving"]);
    let before = objects(&cluster, "vol");
    lan.set_link(host_a, true).unwrap();
    let mut a = a;
    assert_eq!(
        a.exit_code(),
        Some(3),
        "the old owner stops once it can hear again:\n{}",
        a.log()
    );
    assert!(a.log().contains("no longer this server's"), "{}", a.log());
    let after = objects(&cluster, "vol");
    assert!(
        before == after,
        "the fenced server changed the volume after the network healed"
    );
    // From the client's host, back on the network: the new owner answers, nothing answers
    // where the old one listened, and the client follows the new owner through the same
    // mount, with no error.
    lan.set_link(client, true).unwrap();
    let st = status_in(&lan.on(client), &addr_b);
    assert!(
        st.status.success(),
        "the new owner: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let st = status_in(&lan.on(client), &addr_a);
    assert!(
        !st.status.success(),
        "the old owner still answers: {}",
        String::from_utf8_lossy(&st.stdout)
    );
    w.wait_more(10);
    let acked = w.finish();
    let fresh = h.mount_remote_in(&lan.on(client), &addr_b).unwrap();
    check_files(&fresh, 1, &acked);
    h.unmount_all().unwrap();
    b.signal(libc::SIGTERM);
    let mut b = b;
    assert_eq!(b.exit_code(), Some(0), "{}", b.log());
    cluster.assert_fsck_clean(&image("vol"));
}
