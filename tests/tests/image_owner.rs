//! One image, one owner: a served image cannot get a second server, a raw mount or an fsck,
//! and the refusal names the server; raw mounts share an image among themselves, with a
//! warning; a server killed with SIGKILL leaves no lock behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use rwxfs_tests::{bin, harness, text, Harness};

fn rwxfs(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run rwxfs")
}

/// Try to start a second `rwxfs serve` with `args`: its exit code and what it said, or `None`
/// for the code when it started serving (it is stopped then: a refused server never does).
fn second_server(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rwxfs serve");
    let mut said = String::new();
    // Wait for either event: it exits (its stderr closes), or it says it is serving.
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        said += &line;
        said.push('\n');
        if line.starts_with("rwxfs: serving") {
            let _ = child.kill();
            let _ = child.wait();
            return (None, said);
        }
    }
    (child.wait().unwrap().code(), said)
}

/// A served image in `h`, with one mount through the server; the server's pid.
fn served(h: &mut Harness) -> (std::path::PathBuf, String, u32) {
    let img = h.mkfs("v.img", "256M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let pid = h.server_pid().unwrap();
    (img, addr, pid)
}

/// The server at `addr` still serves: a file written through a new mount reads back.
fn still_serves(h: &mut Harness, addr: &str) {
    let mp = h.mount_remote(addr).unwrap();
    std::fs::write(mp.join("still-here"), b"owned").unwrap();
    assert_eq!(std::fs::read(mp.join("still-here")).unwrap(), b"owned");
    h.unmount(&mp).unwrap();
}

#[test]
fn a_second_server_on_a_served_image_is_refused_naming_the_first() {
    let mut h = harness();
    let (img, addr, pid) = served(&mut h);
    let (code, msg) = second_server(&["--image", &img.to_string_lossy()]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("is in use"), "{msg}");
    assert!(
        msg.contains(&format!("held exclusively by pid {pid} on host ")),
        "{msg}"
    );
    assert!(msg.contains("rwxfs serve --image"), "{msg}");
    // A second server is not taken for a standby: the refusal says where one is possible.
    assert!(
        msg.contains("a local image has no standby") && msg.contains("rados://"),
        "{msg}"
    );
    still_serves(&mut h, &addr);
    h.stop_server().unwrap();
}

#[test]
fn a_second_server_with_the_same_session_log_is_refused() {
    let mut h = harness();
    let (_img, addr, pid) = served(&mut h);
    let other = h.mkfs("other.img", "64M").unwrap();
    let log = h.path("v.img.sessions");
    let (code, msg) = second_server(&[
        "--image",
        &other.to_string_lossy(),
        "--state-file",
        &log.to_string_lossy(),
    ]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("session log"), "{msg}");
    assert!(msg.contains(&format!("by pid {pid} ")), "{msg}");
    still_serves(&mut h, &addr);
    h.stop_server().unwrap();
}

#[test]
fn a_raw_mount_of_a_served_image_is_refused_naming_the_server() {
    let mut h = harness();
    let (img, addr, pid) = served(&mut h);
    // As the harness mounts (in the foreground, in a namespace of its own)...
    let err = h.mount_raw(&img).unwrap_err();
    assert!(err.contains(&format!("by pid {pid} ")), "{err}");
    assert!(err.contains("mounted through its server"), "{err}");
    // ...and as a user does: the background mount reports the refusal and exits 1.
    let mp = h.path("raw-mp");
    std::fs::create_dir_all(&mp).unwrap();
    let out = rwxfs(&[
        "mount",
        "--raw-image",
        &img.to_string_lossy(),
        &mp.to_string_lossy(),
    ]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!("held exclusively by pid {pid} ")),
        "{msg}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!(" {} ", mp.display())), "{mounts}");
    still_serves(&mut h, &addr);
    h.stop_server().unwrap();
}

#[test]
fn fsck_of_a_served_image_is_refused_naming_the_server() {
    let mut h = harness();
    let (img, addr, pid) = served(&mut h);
    let out = rwxfs(&["fsck", &img.to_string_lossy()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(8), "{msg}");
    assert!(msg.contains(&format!("by pid {pid} ")), "{msg}");
    still_serves(&mut h, &addr);
    h.stop_server().unwrap();
    let out = rwxfs(&["fsck", &img.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn fsck_repair_of_a_served_image_is_refused_and_mends_a_stopped_one() {
    let mut h = harness();
    let (img, addr, pid) = served(&mut h);
    let out = rwxfs(&["fsck", "--repair", &img.to_string_lossy()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(8), "{msg}");
    assert!(msg.contains(&format!("by pid {pid} ")), "{msg}");
    assert!(msg.contains("stop it to repair"), "{msg}");
    still_serves(&mut h, &addr);
    h.stop_server().unwrap();
    let out = rwxfs(&["fsck", "--repair", &img.to_string_lossy()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(msg.contains("made again") && msg.contains("clean"), "{msg}");
}

/// A foreground raw mount in a mount namespace of its own, stopped and reaped on drop (its
/// namespace, and so its mount, goes with it).
struct Foreground(Child);

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn raw_mounts_share_an_image_with_a_warning_and_keep_a_server_out() {
    let mut h = harness();
    let img = h.mkfs("v.img", "256M").unwrap();
    let first = h.mount_raw(&img).unwrap();
    let first_pid = h.mount_pid(&first).unwrap();
    let mp = h.path("second");
    std::fs::create_dir_all(&mp).unwrap();
    let mut second = Foreground(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(bin())
            .args(["mount", "--foreground", "--raw-image"])
            .arg(&img)
            .arg(&mp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = second.0.stderr.take().unwrap();
    let said = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // Wait for the event: the second mount is live beside the first (or it has exited).
    let mountinfo = format!("/proc/{}/mountinfo", second.0.id());
    let needle = format!(" {} ", mp.display());
    while !std::fs::read_to_string(&mountinfo).is_ok_and(|m| m.contains(&needle)) {
        assert!(
            second.0.try_wait().unwrap().is_none(),
            "the second raw mount exited instead of running beside the first"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Raw mounts hold the image: a server is refused, naming them.
    let (code, msg) = second_server(&["--image", &img.to_string_lossy()]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains(&format!("held shared by pid {first_pid} ")),
        "{msg}"
    );
    // What the second mount said, all of it once it is stopped: it warned before mounting.
    drop(second);
    let said = said.join().unwrap().join("\n");
    let warning = said
        .lines()
        .find(|l| l.contains("warning:") && l.contains("also held"))
        .unwrap_or_else(|| panic!("no warning that the image is shared:\n{said}"));
    assert!(
        warning.contains(&format!("held shared by pid {first_pid} ")),
        "{warning}"
    );
    assert!(warning.contains("WILL be corrupted"), "{warning}");
    h.unmount_all().unwrap();
    // Both gone: the image can be served.
    let addr = h.start_server(&img, &[]).unwrap();
    still_serves(&mut h, &addr);
    h.stop_server().unwrap();
}

#[test]
fn after_the_server_is_killed_the_image_can_be_served_again() {
    let mut h = harness();
    let (img, _addr, _pid) = served(&mut h);
    h.kill_server();
    // The kernel dropped the lock with the process: a new server takes the image...
    let addr = h.start_server(&img, &[]).unwrap();
    let pid = h.server_pid().unwrap();
    still_serves(&mut h, &addr);
    // ...and owns it as the first did.
    let err = h.mount_raw(&img).unwrap_err();
    assert!(err.contains(&format!("by pid {pid} ")), "{err}");
    h.stop_server().unwrap();
}
