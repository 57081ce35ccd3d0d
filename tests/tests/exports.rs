//! Exports: named directories of one volume, each mounted as HOST:PORT/NAME with its own
//! access mode and quota, made and changed with `rwxfs export` against the running server
//! under an administrator token of its own. Real mounts, a real server.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use rwxfs_tests::{assert_fsck_clean, bin, harness, statvfs, write_synced, Harness};

const MIB: u64 = 1 << 20;

/// A server with an administrator token (and a mount token of its own), and the arguments
/// `rwxfs export` needs.
struct Served {
    h: Harness,
    img: std::path::PathBuf,
    addr: String,
    admin: Vec<String>,
    mount_token: String,
}

fn served() -> Served {
    served_with(&[])
}

/// As `served`, the server started with `extra` arguments too.
fn served_with(extra: &[&str]) -> Served {
    let mut h = harness();
    let img = h.mkfs("v.img", "128M").unwrap();
    let admin_token = h.path("admin.token");
    std::fs::write(&admin_token, "the-administrators-secret\n").unwrap();
    let mount_token = h.path("mount.token");
    std::fs::write(&mount_token, "the-mounts-secret\n").unwrap();
    let (a, m) = (
        admin_token.to_string_lossy().into_owned(),
        mount_token.to_string_lossy().into_owned(),
    );
    let mut args = vec!["--admin-token-file", &a, "--token-file", &m];
    args.extend(extra);
    let addr = h.start_server(&img, &args).unwrap();
    let admin = vec![
        "--server".into(),
        addr.clone(),
        "--admin-token-file".into(),
        a,
    ];
    Served {
        h,
        img,
        addr,
        admin,
        mount_token: m,
    }
}

impl Served {
    /// `rwxfs export ARGS` as the administrator: its stdout, or its stderr as the error.
    fn export(&self, args: &[&str]) -> Result<String, String> {
        self.export_with(args, &self.admin)
    }

    fn export_with(&self, args: &[&str], admin: &[String]) -> Result<String, String> {
        let out = Command::new(bin())
            .arg("export")
            .args(args)
            .args(admin)
            .output()
            .unwrap();
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn list(&self) -> Vec<serde_json::Value> {
        let out = self.export(&["list", "--json"]).unwrap();
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn mount(&mut self, export: &str, node: &str) -> Result<std::path::PathBuf, String> {
        let source = match export {
            "" => self.addr.clone(),
            e => format!("{}/{e}", self.addr),
        };
        let token = self.mount_token.clone();
        self.h
            .mount_remote_with(&source, &["--node-id", node, "--token-file", &token])
    }

    fn finish(mut self) {
        self.h.unmount_all().unwrap();
        self.h.stop_server().unwrap();
        assert_fsck_clean(&self.img);
    }
}

#[test]
fn two_exports_are_confined_to_their_directories_and_the_volume_sees_both() {
    let mut s = served();
    s.export(&["create", "alpha", "--size", "16M"]).unwrap();
    s.export(&["create", "beta", "--size", "8M", "--access-mode", "rwx"])
        .unwrap();
    let a = s.mount("alpha", "n1").unwrap();
    let b = s.mount("beta", "n1").unwrap();
    let whole = s.mount("", "admin").unwrap();
    std::fs::write(a.join("in-alpha"), b"a").unwrap();
    std::fs::create_dir(b.join("dir")).unwrap();
    std::fs::write(b.join("dir/in-beta"), b"b").unwrap();
    let names = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&a), vec!["in-alpha"]);
    assert_eq!(names(&b), vec!["dir"]);
    // The export's root is the mount's root: its `.` is inode 1, as any FUSE root.
    assert_eq!(std::fs::metadata(&a).unwrap().ino(), 1);
    // The whole volume, still mountable, holds both under /exports.
    assert_eq!(names(&whole.join("exports")), vec!["alpha", "beta"]);
    assert_eq!(
        std::fs::read(whole.join("exports/beta/dir/in-beta")).unwrap(),
        b"b"
    );
    // Names never cross from one export into another, even through the whole volume.
    let e = std::fs::rename(
        whole.join("exports/alpha/in-alpha"),
        whole.join("exports/beta/in-alpha"),
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
    // `df` on a mount of an export shows its quota as the size.
    let st = statvfs(&a);
    assert_eq!(st.f_blocks * st.f_frsize, 16 * MIB);
    let st = statvfs(&b);
    assert_eq!(st.f_blocks * st.f_frsize, 8 * MIB);
    assert!(statvfs(&whole).f_blocks * statvfs(&whole).f_frsize > 100 * MIB);
    let e = s.mount("gamma", "n1").unwrap_err();
    assert!(e.contains("no export named \"gamma\""), "{e}");
    s.finish();
}

#[test]
fn a_full_export_refuses_with_edquot_and_holds_only_whole_writes() {
    let mut s = served();
    s.export(&["create", "small", "--size", "4M"]).unwrap();
    let m = s.mount("small", "n1").unwrap();
    let chunk: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut f = std::fs::File::create(m.join("big")).unwrap();
    let mut written = 0u64;
    let err = loop {
        match f.write_all(&chunk) {
            Ok(()) => written += chunk.len() as u64,
            Err(e) => break e,
        }
        if written > 16 * MIB {
            panic!("wrote {written} bytes into a 4 MiB export");
        }
    };
    let err = match err.raw_os_error() {
        Some(libc::EDQUOT) => err,
        _ => panic!("expected EDQUOT, got {err}"),
    };
    drop(err);
    // Whatever the close reports, the file holds exactly the bytes its size says, each
    // the one written there.
    let _ = f.sync_all();
    drop(f);
    let back = std::fs::read(m.join("big")).unwrap();
    assert!(back.len() as u64 <= 4 * MIB, "{} bytes", back.len());
    assert!(back.len() as u64 >= 3 * MIB, "only {} bytes", back.len());
    for (i, b) in back.iter().enumerate() {
        assert_eq!(*b, ((i % chunk.len()) % 251) as u8, "byte {i}");
    }
    // What is left is less than the write that was refused; a larger one is refused too,
    // and no file keeps more than it holds.
    let st = statvfs(&m);
    assert!(
        st.f_bfree * st.f_frsize < 256 * 1024 + 8192,
        "{} blocks free",
        st.f_bfree
    );
    let e = write_synced(&m.join("more"), &vec![1u8; 1024 * 1024]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EDQUOT), "{e}");
    assert_eq!(std::fs::metadata(m.join("more")).unwrap().len(), 0);
    // Resized, it takes more.
    s.export(&["resize", "small", "--size", "8M"]).unwrap();
    assert_eq!(statvfs(&m).f_blocks * statvfs(&m).f_frsize, 8 * MIB);
    write_synced(&m.join("more"), &vec![1u8; 1024 * 1024]).unwrap();
    // Never below what it holds.
    let e = s.export(&["resize", "small", "--size", "1M"]).unwrap_err();
    assert!(e.contains("cannot be made smaller"), "{e}");
    let list = s.list();
    assert_eq!(list[0]["bytes"], 8 * MIB);
    assert!(list[0]["bytes_used"].as_u64().unwrap() > 4 * MIB);
    s.finish();
}

#[test]
fn each_export_admits_by_its_own_access_mode() {
    let mut s = served();
    s.export(&["create", "once", "--size", "4M", "--access-mode", "rwo"])
        .unwrap();
    s.export(&["create", "many", "--size", "4M", "--access-mode", "rwx"])
        .unwrap();
    s.export(&["create", "readers", "--size", "4M", "--access-mode", "rox"])
        .unwrap();
    let o1 = s.mount("once", "node-a").unwrap();
    s.mount("once", "node-a").unwrap();
    let e = s.mount("once", "node-b").unwrap_err();
    assert!(
        e.contains("export once is ReadWriteOnce") && e.contains("node node-a"),
        "{e}"
    );
    // Another export of the same server is not held by node-a's mounts.
    let m1 = s.mount("many", "node-b").unwrap();
    let m2 = s.mount("many", "node-c").unwrap();
    std::fs::write(m1.join("x"), b"1").unwrap();
    assert_eq!(std::fs::read(m2.join("x")).unwrap(), b"1");
    let r = s.mount("readers", "node-b").unwrap();
    let e = std::fs::write(r.join("x"), b"1").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    std::fs::write(o1.join("f"), b"mine").unwrap();
    let list = s.list();
    let once = list.iter().find(|e| e["name"] == "once").unwrap();
    assert_eq!(once["mode"], "Rwo");
    assert_eq!(once["nodes"], serde_json::json!(["node-a", "node-a"]));
    s.finish();
}

#[test]
fn delete_is_refused_while_mounted_and_removes_everything_after() {
    let mut s = served();
    s.export(&["create", "gone", "--size", "8M"]).unwrap();
    let m = s.mount("gone", "n1").unwrap();
    std::fs::create_dir_all(m.join("a/b/c")).unwrap();
    for i in 0..50 {
        std::fs::write(m.join(format!("a/b/c/f{i}")), vec![7u8; 8192]).unwrap();
    }
    std::fs::write(m.join("top"), b"t").unwrap();
    let e = s.export(&["delete", "gone"]).unwrap_err();
    assert!(e.contains("mounted on node n1"), "{e}");
    s.h.unmount(&m).unwrap();
    s.export(&["delete", "gone"]).unwrap();
    assert!(s.list().is_empty());
    let e = s.mount("gone", "n1").unwrap_err();
    assert!(e.contains("no export named"), "{e}");
    let whole = s.mount("", "admin").unwrap();
    assert_eq!(std::fs::read_dir(whole.join("exports")).unwrap().count(), 0);
    // The name can be made again, empty.
    s.export(&["create", "gone", "--size", "8M"]).unwrap();
    let again = s.mount("gone", "n1").unwrap();
    assert_eq!(std::fs::read_dir(&again).unwrap().count(), 0);
    s.finish();
}

#[test]
fn administration_needs_the_administrators_token_and_bad_input_changes_nothing() {
    let s = served();
    let wrong = s.h.path("wrong.token");
    std::fs::write(&wrong, "the-mounts-secret\n").unwrap();
    let mut admin = s.admin.clone();
    admin[3] = wrong.to_string_lossy().into_owned();
    let e = s
        .export_with(&["create", "x", "--size", "1M"], &admin)
        .unwrap_err();
    // The client refuses a server that cannot prove the token it was given (the server would
    // refuse the client's proof next); either way nothing is done.
    assert!(e.contains("proof of the token is wrong"), "{e}");
    for (args, why) in [
        (vec!["create", "../x", "--size", "1M"], "not an export name"),
        (vec!["create", ".x", "--size", "1M"], "not an export name"),
        (vec!["create", "x", "--size", "0"], "more than 0 bytes"),
        (vec!["resize", "nope", "--size", "1M"], "no export named"),
        (vec!["delete", "nope"], "no export named"),
    ] {
        let e = s.export(&args).unwrap_err();
        assert!(e.contains(why), "{args:?}: {e}");
    }
    s.export(&["create", "x", "--size", "1M"]).unwrap();
    let e = s.export(&["create", "x", "--size", "1M"]).unwrap_err();
    assert!(e.contains("exists"), "{e}");
    assert_eq!(s.list().len(), 1);
    s.finish();
}

#[test]
fn handles_from_outside_an_export_are_stale_and_its_roots_dotdot_is_itself() {
    use client_fuse::link::ConnectOptions;
    use client_fuse::{Backend, RemoteBackend};
    use protocol::{Request, Response};
    let mut s = served();
    s.export(&["create", "alpha", "--size", "4M"]).unwrap();
    s.export(&["create", "beta", "--size", "4M"]).unwrap();
    let whole = s.mount("", "admin").unwrap();
    std::fs::write(whole.join("exports/beta/secret"), b"beta's").unwrap();
    std::fs::write(whole.join("exports/alpha/mine"), b"alpha's").unwrap();
    let outside = std::fs::metadata(whole.join("exports/beta/secret"))
        .unwrap()
        .ino();
    let volume_root_file = whole.join("top");
    std::fs::write(&volume_root_file, b"top").unwrap();
    let top = std::fs::metadata(&volume_root_file).unwrap().ino();
    let token = std::fs::read(&s.mount_token).unwrap();
    let opts = ConnectOptions {
        node_id: "probe".into(),
        export: "alpha".into(),
        token: Some(protocol::auth::token_from_file(&token).unwrap()),
        ..Default::default()
    };
    let b = RemoteBackend::connect(&s.addr, &opts, &|_| {}).unwrap();
    for ino in [outside, top] {
        for req in [
            Request::Getattr { ino },
            Request::Read {
                ino,
                offset: 0,
                size: 10,
            },
            Request::Lookup {
                parent: ino,
                name: b"x".to_vec(),
            },
        ] {
            let r = b.call(req.clone(), &[]);
            assert!(matches!(r, Err(volume::FsError::Stale)), "{req:?}: {r:?}");
        }
    }
    let up = Request::Lookup {
        parent: 1,
        name: b"..".to_vec(),
    };
    match b.call(up, &[]).unwrap().0 {
        Response::Attr(a) => assert_eq!(a.ino, 1, "`..` of the export's root is itself"),
        other => panic!("{other:?}"),
    }
    let list = Request::Readdir {
        ino: 1,
        offset: 0,
        max: 100,
    };
    let Response::Entries(es) = b.call(list, &[]).unwrap().0 else {
        panic!("not a listing");
    };
    let names: Vec<(String, u64)> = es
        .iter()
        .map(|e| (String::from_utf8_lossy(&e.name).into_owned(), e.ino))
        .collect();
    assert_eq!(names[0], (".".to_string(), 1));
    assert_eq!(names[1], ("..".to_string(), 1));
    assert_eq!(names[2].0, "mine");
    assert_eq!(names.len(), 3);
    drop(b);
    s.finish();
}

#[test]
fn a_mount_of_an_export_stays_confined_across_a_server_crash() {
    let mut s = served();
    s.export(&["create", "kept", "--size", "8M", "--access-mode", "rwo"])
        .unwrap();
    let m = s.mount("kept", "node-a").unwrap();
    std::fs::write(m.join("before"), b"1").unwrap();
    s.h.kill_server();
    let (a, t) = (s.admin[3].clone(), s.mount_token.clone());
    let addr = s.addr.clone();
    let listen = addr.clone();
    s.h.start_server_in(
        &[],
        &s.img.clone(),
        &listen,
        &["--admin-token-file", &a, "--token-file", &t],
    )
    .unwrap();
    // The restored session is the export's: it still holds it against another node, and
    // its mount still sees the export as its root.
    std::fs::write(m.join("after"), b"2").unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["after", "before"]);
    let e = s.mount("kept", "node-b").unwrap_err();
    assert!(e.contains("node node-a"), "{e}");
    let st = statvfs(&m);
    assert_eq!(st.f_blocks * st.f_frsize, 8 * MIB);
    s.finish();
}

#[test]
fn a_delete_cut_short_by_a_crash_is_finished_when_the_server_starts() {
    // Root unsquashed: the whole volume's root renames in /exports as the server would.
    let mut s = served_with(&["--no-root-squash"]);
    s.export(&["create", "kept", "--size", "8M"]).unwrap();
    let whole = s.mount("", "admin").unwrap();
    let free = statvfs(&whole).f_bfree;
    s.export(&["create", "doomed", "--size", "16M"]).unwrap();
    let m = s.mount("doomed", "n1").unwrap();
    std::fs::create_dir_all(m.join("a/b")).unwrap();
    for i in 0..20 {
        write_synced(&m.join(format!("a/b/f{i}")), &vec![5u8; 64 * 1024]).unwrap();
    }
    s.h.unmount(&m).unwrap();
    // Where a delete stops if the server dies while it empties the export: renamed out of
    // reach under a hidden name, its files still there.
    let exports = whole.join("exports");
    std::fs::rename(exports.join("doomed"), exports.join(".deleting-doomed-1f")).unwrap();
    std::fs::File::open(&exports).unwrap().sync_all().unwrap();
    assert!(statvfs(&whole).f_bfree < free - 256);
    s.h.unmount(&whole).unwrap();
    s.h.kill_server();
    let (a, t) = (s.admin[3].clone(), s.mount_token.clone());
    let listen = s.addr.clone();
    // A short grace period: the leftover was seen gone only once it was over (30 s by default).
    s.h.start_server_in(
        &[],
        &s.img.clone(),
        &listen,
        &[
            "--admin-token-file",
            &a,
            "--token-file",
            &t,
            "--no-root-squash",
            "--grace-secs",
            "2",
        ],
    )
    .unwrap();
    let whole = s.mount("", "admin").unwrap();
    let exports = whole.join("exports");
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&exports)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let began = std::time::Instant::now();
    while names() != ["kept"] {
        assert!(
            began.elapsed().as_secs() < 30,
            "left behind after a restart: {:?}",
            names()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(statvfs(&whole).f_bfree, free);
    let listed: Vec<_> = s.list().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(listed, ["kept"]);
    s.finish();
}

#[test]
fn an_exports_root_has_the_owner_and_mode_asked_for() {
    let mut s = served();
    s.export(&["create", "plain", "--size", "8M"]).unwrap();
    s.export(&["create", "mine", "--size", "8M", "--uid", "1000"])
        .unwrap();
    let args = ["--uid", "1000", "--gid", "2000", "--perm", "0770"];
    let mut create = vec!["create", "owned", "--size", "8M"];
    create.extend(args);
    s.export(&create).unwrap();
    for bad in [["--perm", "10777"], ["--perm", "rwx"]] {
        let mut c = vec!["create", "bad", "--size", "8M"];
        c.extend(bad);
        let e = s.export(&c).unwrap_err();
        assert!(e.contains("--perm"), "{e}");
    }
    let whole = s.mount("", "admin").unwrap();
    let meta = |n: &str| std::fs::metadata(whole.join("exports").join(n)).unwrap();
    let (p, m, o) = (meta("plain"), meta("mine"), meta("owned"));
    // No owner: world-writable as a fresh volume's root (root is squashed).
    assert_eq!((p.mode() & 0o7777, p.uid(), p.gid()), (0o777, 0, 0));
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 1000, 0));
    assert_eq!((o.mode() & 0o7777, o.uid(), o.gid()), (0o770, 1000, 2000));
    let names: Vec<_> = s.list().iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, ["mine", "owned", "plain"]);
    s.finish();
}
