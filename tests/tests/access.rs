//! Who may mount what: access modes enforced by the server, the shared token, address ranges,
//! root squash and `rwxfs status` — both the accepted and the refused side of each rule.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rwxfs_tests::{assert_fsck_clean, bin, certificate, finish, harness, status, Hosts, Proxy};

fn nodes(list: &[serde_json::Value]) -> Vec<String> {
    let mut n: Vec<String> = list
        .iter()
        .map(|s| s["node"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn rox_mounts_are_read_only() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &[]).unwrap();
    let m = h.mount_remote(&addr).unwrap();
    std::fs::write(m.join("f"), b"before").unwrap();
    h.unmount_all().unwrap();
    let addr = h.start_server(&img, &["--access-mode", "rox"]).unwrap();
    let a = h.mount_remote(&addr).unwrap();
    let b = h
        .mount_remote_with(&addr, &["--node-id", "elsewhere"])
        .unwrap();
    assert_eq!(std::fs::read(b.join("f")).unwrap(), b"before");
    let e = std::fs::write(a.join("f"), b"after").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let e = std::fs::create_dir(b.join("d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    assert!(status(&addr, &[]).iter().all(|s| s["access"] == "ro"));
    finish(h, &img);
}

#[test]
fn rwo_admits_one_node_at_a_time() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &["--access-mode", "rwo"]).unwrap();
    let a1 = h
        .mount_remote_with(&addr, &["--node-id", "node-a"])
        .unwrap();
    let a2 = h
        .mount_remote_with(&addr, &["--node-id", "node-a"])
        .unwrap();
    std::fs::write(a1.join("f"), b"x").unwrap();
    assert_eq!(std::fs::read(a2.join("f")).unwrap(), b"x");
    let e = h
        .mount_remote_with(&addr, &["--node-id", "node-b"])
        .unwrap_err();
    assert!(
        e.contains("ReadWriteOnce") && e.contains("node node-a"),
        "{e}"
    );
    assert_eq!(nodes(&status(&addr, &[])), vec!["node-a", "node-a"]);
    h.unmount(&a1).unwrap();
    h.unmount(&a2).unwrap();
    let b = h
        .mount_remote_with(&addr, &["--node-id", "node-b"])
        .unwrap();
    std::fs::write(b.join("g"), b"y").unwrap();
    finish(h, &img);
}

#[test]
fn rwop_makes_the_next_mount_wait_until_the_first_goes() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let addr = h.start_server(&img, &["--access-mode", "rwop"]).unwrap();
    let first = h.mount_remote_with(&addr, &["--node-id", "pod-1"]).unwrap();
    // --no-wait: refused while the first mount still holds the volume, naming the holder. (A
    // mount that waited instead would fail the harness's wait for it to go live, without
    // that reason: no clock needed.)
    let e = h
        .mount_remote_with(&addr, &["--node-id", "pod-2", "--no-wait"])
        .unwrap_err();
    assert!(e.contains("ReadWriteOncePod") && e.contains("pod-1"), "{e}");
    // Without it, `rwxfs mount` says it is pending and returns once the first is gone.
    let mp = h.path("second");
    std::fs::create_dir(&mp).unwrap();
    let mut second = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(bin())
        .args(["mount", &addr])
        .arg(&mp)
        .args(["--node-id", "pod-2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(second.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("pending") && line.contains("pod-1"), "{line}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        second.try_wait().unwrap().is_none(),
        "returned while pending"
    );
    h.unmount(&first).unwrap();
    let t = Instant::now();
    let status_code = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "still pending");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut second.stdout.take().unwrap(), &mut out).unwrap();
    // The mount lives on in its own namespace, served by the pid it reports: stop it.
    let pid: i32 = out
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"));
    let now = nodes(&status(&addr, &[]));
    // SAFETY: signalling the mount process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(status_code.success(), "{out}");
    assert_eq!(now, vec!["pod-2"]);
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "mount {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(h, &img);
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_the_token_never_crosses_the_wire() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let secret = "correct-horse-battery-staple-31415";
    let good = h.path("token");
    std::fs::write(&good, format!("{secret}\n")).unwrap();
    let bad = h.path("wrong");
    std::fs::write(&bad, "not-the-token\n").unwrap();
    let addr = h
        .start_server(&img, &["--token-file", &good.to_string_lossy()])
        .unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let e = h.mount_remote(&proxy.addr).unwrap_err();
    assert!(e.contains("requires a token"), "{e}");
    let e = h
        .mount_remote_with(&proxy.addr, &["--token-file", &bad.to_string_lossy()])
        .unwrap_err();
    // Proofs go both ways: the client finds out first that the tokens differ.
    assert!(e.contains("proof of the token is wrong"), "{e}");
    let m = h
        .mount_remote_with(&proxy.addr, &["--token-file", &good.to_string_lossy()])
        .unwrap();
    std::fs::write(m.join("f"), b"authenticated").unwrap();
    assert_eq!(std::fs::read(m.join("f")).unwrap(), b"authenticated");
    let wire = proxy.captured();
    assert!(wire.len() > 100, "nothing captured");
    assert!(
        !wire.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the token crossed the wire"
    );
    // status needs the token too.
    let out = Command::new(bin())
        .args(["status", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        status(&addr, &["--token-file", &good.to_string_lossy()]).len(),
        1
    );
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

#[test]
fn only_clients_inside_the_allowed_range_get_in() {
    let hosts = Hosts::star(2).unwrap();
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let bound = h
        .start_server_in(
            &Hosts::exec(&hosts.server),
            &img,
            "0.0.0.0:0",
            &["--allow", "10.231.1.0/24"],
        )
        .unwrap();
    let port = bound.rsplit(':').next().unwrap();
    let inside = h
        .mount_remote_in(
            &Hosts::exec(&hosts.clients[0]),
            &format!("{}:{port}", hosts.server_ip_for(1)),
        )
        .unwrap();
    std::fs::write(inside.join("f"), b"in").unwrap();
    let e = h
        .mount_remote_in(
            &Hosts::exec(&hosts.clients[1]),
            &format!("{}:{port}", hosts.server_ip_for(2)),
        )
        .unwrap_err();
    assert!(e.contains("10.231.2.2") && e.contains("not allowed"), "{e}");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    drop(hosts);
    assert_fsck_clean(&img);
}

#[test]
fn root_is_squashed_by_default_and_not_with_the_flag() {
    for (flags, want) in [(&[][..], 65534u32), (&["--no-root-squash"][..], 0)] {
        let mut h = harness();
        let img = h.mkfs("v.img", "64M").unwrap();
        let addr = h.start_server(&img, flags).unwrap();
        let m = h.mount_remote(&addr).unwrap();
        std::fs::write(m.join("f"), b"by root").unwrap();
        std::fs::create_dir(m.join("d")).unwrap();
        let f = std::fs::metadata(m.join("f")).unwrap();
        let d = std::fs::metadata(m.join("d")).unwrap();
        assert_eq!(
            (f.uid(), f.gid(), d.uid(), d.gid()),
            (want, want, want, want),
            "{flags:?}"
        );
        finish(h, &img);
    }
}

#[test]
fn tls_carries_the_volume_and_plain_or_untrusting_clients_are_refused() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    let (cert, key) = certificate(&h, "server");
    let (other, _) = certificate(&h, "other");
    let addr = h
        .start_server(
            &img,
            &[
                "--tls-cert",
                &cert.to_string_lossy(),
                "--tls-key",
                &key.to_string_lossy(),
            ],
        )
        .unwrap();
    let proxy = Proxy::start(&addr).unwrap();
    let e = h.mount_remote(&proxy.addr).unwrap_err();
    assert!(e.contains("TLS"), "a plain client: {e}");
    let e = h
        .mount_remote_with(&proxy.addr, &["--tls-ca", &other.to_string_lossy()])
        .unwrap_err();
    assert!(
        e.contains("TLS handshake failed"),
        "an untrusting client: {e}"
    );
    let m = h
        .mount_remote_with(&proxy.addr, &["--tls-ca", &cert.to_string_lossy()])
        .unwrap();
    let secret = b"plain text that must not be seen on the wire ".repeat(50_000);
    std::fs::write(m.join("f"), &secret).unwrap();
    let b = h
        .mount_remote_with(&proxy.addr, &["--tls-ca", &cert.to_string_lossy()])
        .unwrap();
    assert_eq!(std::fs::read(b.join("f")).unwrap(), secret);
    let wire = proxy.captured();
    assert!(
        wire.len() > secret.len(),
        "the data did not cross the proxy"
    );
    assert!(
        !wire.windows(45).any(|w| w == &secret[..45]),
        "file data crossed the wire in clear"
    );
    let s = status(&addr, &["--tls-ca", &cert.to_string_lossy()]);
    assert_eq!(s.len(), 2);
    h.unmount_all().unwrap();
    drop(proxy);
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}
