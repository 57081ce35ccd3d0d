//! What the server remembers of its sessions, end to end through real mounts: a call resent
//! while its first copy still runs is answered on the connection the client has now; files
//! held open (unlinked ones included) live through a server restart, planned or crash, and
//! are freed once no session that may hold them is left.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use rwxfs_tests::{assert_fsck_clean, harness, statvfs, wait_for, Proxy};

#[test]
fn a_call_resent_while_its_first_copy_runs_returns() {
    let mut h = harness();
    let img = h.mkfs("v.img", "8G").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let a = h.mount_remote(&proxy.addr).unwrap();
    let f = std::fs::File::create(a.join("big")).unwrap();
    f.sync_all().unwrap();
    let on_disk = || std::fs::metadata(&img).map(|m| m.blocks()).unwrap_or(0);
    let before = on_disk();
    // A fallocate large enough to run for a while on the server: each block it takes is
    // zeroed in the image, which is how the test sees it running.
    let len: i64 = 3 << 30;
    let call = std::thread::spawn(move || {
        // SAFETY: fallocate on an open descriptor with plain integer arguments.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
        (r, std::io::Error::last_os_error())
    });
    wait_for("the fallocate never reached the server", || {
        on_disk() > before + 64 * 1024 * 2
    });
    let connections = proxy.accepted();
    proxy.cut();
    assert!(
        !call.is_finished(),
        "the fallocate ended before the cut: the test proves nothing (make it larger)"
    );
    wait_for("the mount never reconnected", || {
        proxy.accepted() > connections
    });
    // The client resends the call on its new connection while the first copy still runs;
    // the first copy's reply must reach the application.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !call.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the fallocate resent during the reconnect never returned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (r, err) = call.join().unwrap();
    assert_eq!(r, 0, "fallocate failed: {err}");
    assert_eq!(std::fs::metadata(a.join("big")).unwrap().len(), len as u64);
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Read all of `f` through its descriptor and check it is `want`; then write `more` after it
/// and read that back.
fn check_and_extend(f: &std::fs::File, want: &[u8], more: &[u8], when: &str) {
    use std::os::unix::fs::FileExt;
    let mut got = vec![0u8; want.len() + 16];
    let n = f
        .read_at(&mut got, 0)
        .unwrap_or_else(|e| panic!("{when}: read through the descriptor: {e}"));
    assert!(
        n == want.len() && &got[..n] == want,
        "{when}: the descriptor reads {n} wrong bytes"
    );
    f.write_all_at(more, want.len() as u64)
        .unwrap_or_else(|e| panic!("{when}: write through the descriptor: {e}"));
    let mut back = vec![0u8; more.len()];
    f.read_exact_at(&mut back, want.len() as u64)
        .unwrap_or_else(|e| panic!("{when}: read back: {e}"));
    assert!(back == more, "{when}: wrote bytes that read back wrong");
}

#[test]
fn a_file_unlinked_while_open_lives_through_restarts_and_is_freed_at_its_close() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    // The directory's first block is taken by a name that stays.
    std::fs::File::create(a.join("stays"))
        .unwrap()
        .sync_all()
        .unwrap();
    let free_at_start = statvfs(&a).f_bfree;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(a.join("held"))
        .unwrap();
    std::fs::remove_file(a.join("held")).unwrap();
    let mut want = Vec::new();
    let more = pattern(1, 4 << 20);
    check_and_extend(&f, &want, &more, "before any restart");
    let b = h.mount_remote(&addr).unwrap();
    want.extend_from_slice(&more);

    // A planned restart.
    h.stop_server().unwrap();
    h.start_server_in(&[], &img, &addr, &[]).unwrap();
    let more = pattern(2, 1 << 20);
    check_and_extend(&f, &want, &more, "after SIGTERM and a new start");
    want.extend_from_slice(&more);

    // A crash restart: what the descriptor wrote is made durable first (by a commit another
    // mount asks for).
    std::fs::File::create(b.join("sync"))
        .unwrap()
        .sync_all()
        .unwrap();
    h.kill_server();
    h.start_server_in(&[], &img, &addr, &[]).unwrap();
    let more = pattern(3, 1 << 20);
    check_and_extend(&f, &want, &more, "after kill -9 and a new start");

    // The last close frees the blocks.
    drop(f);
    wait_for("the file's blocks were not freed at its last close", || {
        statvfs(&a).f_bfree == free_at_start
    });
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn a_file_unlinked_while_open_is_freed_once_its_holder_is_gone_for_good() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    // The directory's first block is taken by a name that stays.
    std::fs::File::create(a.join("stays"))
        .unwrap()
        .sync_all()
        .unwrap();
    let free_at_start = statvfs(&a).f_bfree;
    {
        let mut f = std::fs::File::create(a.join("held")).unwrap();
        std::io::Write::write_all(&mut f, &pattern(4, 4 << 20)).unwrap();
        f.sync_all().unwrap();
        std::fs::remove_file(a.join("held")).unwrap();
        // The mount dies holding it (its process killed), the server stops meanwhile.
        h.stop_server().unwrap();
        h.kill_mount(&a);
    }
    h.start_server_in(
        &[],
        &img,
        &addr,
        &["--lease-secs", "2", "--grace-secs", "2"],
    )
    .unwrap();
    let b = h.mount_remote(&addr).unwrap();
    wait_for(
        "the orphan of a holder that never came back was not freed",
        || statvfs(&b).f_bfree == free_at_start,
    );
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// `rwxfs fsck IMAGE --json [extra]`: its exit status and report.
fn fsck_json(img: &std::path::Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(rwxfs_tests::bin())
        .arg("fsck")
        .arg(img)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck printed no JSON ({e}): {out:?}"));
    (out.status.code().unwrap_or(-1), v)
}

/// The report's one orphan finding.
fn the_orphan(v: &serde_json::Value) -> &serde_json::Value {
    let mut orphans = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "orphan");
    let one = orphans.next().unwrap_or_else(|| panic!("no orphan: {v}"));
    assert!(orphans.next().is_none(), "more than one orphan: {v}");
    one
}

#[test]
fn fsck_of_a_stopped_image_tells_a_file_a_session_holds_open_from_a_lost_one() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    std::fs::File::create(a.join("stays"))
        .unwrap()
        .sync_all()
        .unwrap();
    let free_at_start = statvfs(&a).f_bfree;
    let mut f = std::fs::File::create(a.join("held")).unwrap();
    std::io::Write::write_all(&mut f, &pattern(5, 1 << 20)).unwrap();
    f.sync_all().unwrap();
    std::fs::remove_file(a.join("held")).unwrap();
    h.stop_server().unwrap();
    // The session log beside the image keeps the session and its open: held, not damage.
    let (code, v) = fsck_json(&img, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["held_orphans"], 1, "{v}");
    let held = the_orphan(&v);
    let by = held["held_by"].as_str().unwrap_or_default();
    assert!(by.starts_with("session "), "{held}");
    // Read without the session log, nothing holds it: lost.
    let none = img.with_extension("no-such-log");
    let (code, v) = fsck_json(&img, &["--state-file", none.to_str().unwrap()]);
    assert_eq!(code, 4, "{v}");
    let lost = the_orphan(&v);
    assert!(lost.get("held_by").is_none(), "{lost}");
    let detail = lost["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("lost"), "{lost}");
    // The mount comes back and closes it: freed.
    h.start_server_in(&[], &img, &addr, &[]).unwrap();
    drop(f);
    wait_for("the file's blocks were not freed at its last close", || {
        statvfs(&a).f_bfree == free_at_start
    });
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// As Alice (uid 1000): create the file named by argv[1] write-only with mode 0200, write
/// and fsync through the descriptor; on a line of input, write and fsync again through it.
const WRITE_ONLY_CREATOR: &str = r#"
import os, sys
os.umask(0o077)
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o200)
    os.write(fd, b"before the session was lost;")
    os.fsync(fd)
    print("written", os.getpid(), fd, flush=True)
    sys.stdin.readline()
    os.write(fd, b"after it")
    os.fsync(fd)
    print("synced", flush=True)
except OSError as e:
    print("error", e, flush=True)
sys.stdin.readline()
"#;

/// A process of the test's, killed and reaped when dropped; its output lines.
struct Script {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Script {
    fn line(&self) -> String {
        let wait = Duration::from_secs(60);
        self.lines
            .recv_timeout(wait)
            .unwrap_or_else(|_| "(nothing)".into())
    }

    fn tell(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files each session the server at `addr` has holds open, by its node.
fn open_files(addr: &str) -> Vec<(String, u64)> {
    let out = std::process::Command::new(rwxfs_tests::bin())
        .args(["status", addr, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "status: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap().iter();
    list.map(|s| {
        let node = s["node"].as_str().unwrap_or_default().to_string();
        (node, s["open_files"].as_u64().unwrap_or(u64::MAX))
    })
    .collect()
}

/// A non-root user's file created write-only with mode 0200 stays held open by its
/// creator's descriptor when the mount's session is lost: the new session opens it again
/// with the create's access mode (before, it went as read-only, the server refused it with
/// EACCES, and another mount's unlink then freed the file under its writer, whose next
/// fsync could fail once the server's short hold of a file just unlinked was over).
#[test]
fn a_file_created_write_only_with_mode_0200_stays_held_when_the_session_is_lost() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let server = ["--lease-secs", "2", "--no-root-squash"];
    let addr = h.start_server(&img, &server).unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let a = h
        .mount_remote_with(&proxy.addr, &["--node-id", "creator"])
        .unwrap();
    let b = h.mount_remote(&addr).unwrap();
    let (mut cmd, inner) = h.command_in(&a, "setpriv").unwrap();
    // The system's python3: one under root's home is not Alice's to run.
    let mut child = cmd
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "python3",
            "-c",
        ])
        .arg(WRITE_ONLY_CREATOR)
        .arg(inner.join("w"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in out.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut alice = Script { child, lines };
    let written = alice.line();
    let words: Vec<&str> = written.split(' ').collect();
    let ["written", pid, fd] = words[..] else {
        panic!("the first write: {written}");
    };
    let held = format!("/proc/{pid}/fd/{fd}");

    // The mount is cut off past its lease: the server ends its session.
    proxy.set_down(true);
    wait_for("the server kept the session of a mount cut off", || {
        !open_files(&addr).iter().any(|(n, _)| n == "creator")
    });
    proxy.set_down(false);
    // A lookup through the mount waits for its recovery, files opened again included.
    assert!(!a.join("no-such-name").exists());
    let held_by = |node| open_files(&addr).into_iter().find(|(n, _)| n == node);
    let creator = Some(("creator".to_string(), 1));
    assert_eq!(
        held_by("creator"),
        creator,
        "the new session holds the file"
    );
    std::fs::remove_file(b.join("w")).unwrap();
    alice.tell();
    assert_eq!(
        alice.line(),
        "synced",
        "through the descriptor after the unlink"
    );
    let got = std::fs::read(&held).unwrap();
    assert_eq!(got, b"before the session was lost;after it");
    alice.tell();
    drop(alice);
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
