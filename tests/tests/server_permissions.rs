//! Permissions checked by the server with each call's (squashed) caller: root on a client,
//! squashed to nobody, cannot read or change another user's files, whatever its kernel
//! lets it try; a hand-made client gets exactly what the uid it claims may do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Cred, Request, Response, ServerMsg, PROTOCOL_VERSION};
use rwxfs_tests::{assert_fsck_clean, harness, sh_as, Harness};

const ALICE: u32 = 1000;

/// On a server that trusts root: /shared (1777 root) holding Alice's 0600 `t`, and /alice
/// (0755 Alice) holding her 0600 `f`.
fn alices_files(h: &mut Harness, img: &Path) {
    let addr = h.start_server(img, &["--no-root-squash"]).unwrap();
    let m = h.mount_remote(&addr).unwrap();
    std::fs::create_dir(m.join("shared")).unwrap();
    std::fs::set_permissions(m.join("shared"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir(m.join("alice")).unwrap();
    for f in ["shared/t", "alice/f"] {
        std::fs::write(m.join(f), b"alice's secret").unwrap();
        std::fs::set_permissions(m.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(m.join(f), Some(ALICE), Some(ALICE)).unwrap();
    }
    std::os::unix::fs::chown(m.join("alice"), Some(ALICE), Some(ALICE)).unwrap();
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
}

fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("allowed: {v:?}"),
        Err(e) => e.raw_os_error().unwrap_or(0),
    }
}

/// `sh -c script` as Alice, inside the mount's namespace ($MNT is the mount); its output.
fn as_alice(h: &Harness, m: &Path, script: &str) -> String {
    sh_as(h, m, ALICE, script)
}

#[test]
fn a_squashed_root_cannot_read_or_change_another_users_file() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    alices_files(&mut h, &img);
    let addr = h.start_server(&img, &[]).unwrap();
    let m = h.mount_remote(&addr).unwrap();
    let (t, f) = (m.join("shared/t"), m.join("alice/f"));
    assert_eq!(errno(std::fs::read(&t)), libc::EACCES, "read in 1777");
    assert_eq!(errno(std::fs::read(&f)), libc::EACCES, "read in 0755");
    let open_w = |p: &Path| std::fs::OpenOptions::new().write(true).open(p);
    assert_eq!(errno(open_w(&t)), libc::EACCES);
    let chmod = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666));
    assert_eq!(errno(chmod(&t)), libc::EPERM, "chmod in 1777");
    assert_eq!(errno(chmod(&f)), libc::EPERM, "chmod in 0755");
    let chown = |p: &Path| std::os::unix::fs::chown(p, Some(0), Some(0));
    assert_eq!(errno(chown(&t)), libc::EPERM);
    assert_eq!(errno(chown(&f)), libc::EPERM);
    assert_eq!(
        errno(std::fs::remove_file(&t)),
        libc::EPERM,
        "unlink in 1777"
    );
    assert_eq!(
        errno(std::fs::remove_file(&f)),
        libc::EACCES,
        "unlink in 0755"
    );
    let moved = m.join("shared/mine");
    assert_eq!(
        errno(std::fs::rename(&t, &moved)),
        libc::EPERM,
        "rename in 1777"
    );
    assert_eq!(
        errno(std::fs::rename(&f, &moved)),
        libc::EACCES,
        "rename out of 0755"
    );
    assert_eq!(
        errno(std::fs::write(m.join("alice/new"), b"x")),
        libc::EACCES,
        "create in 0755"
    );
    // Root's own files, squashed or not, are its own: created, written, read, removed.
    std::fs::write(m.join("shared/roots"), b"by root").unwrap();
    assert_eq!(std::fs::read(m.join("shared/roots")).unwrap(), b"by root");
    std::fs::remove_file(m.join("shared/roots")).unwrap();
    // Alice's files are as she left them, and hers to use.
    let seen = as_alice(
        &h,
        &m,
        "cat $MNT/shared/t $MNT/alice/f; stat -c '%u %a' $MNT/shared/t",
    );
    assert_eq!(seen, "alice's secretalice's secret1000 600\n");
    h.unmount_all().unwrap();
    h.stop_server().unwrap();
    assert_fsck_clean(&img);
}

/// A connection greeted by hand.
struct Raw {
    s: TcpStream,
    next: u64,
}

impl Raw {
    fn hello(addr: &str) -> Raw {
        let mut s = TcpStream::connect(addr).unwrap();
        let hello = ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            node_id: "hand-made".into(),
            mount_id: 77,
            read_only: false,
            nonce: Vec::new(),
            export: String::new(),
        };
        s.write_all(&encode_frame(&hello, &[]).unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = read_frame(&mut s).unwrap();
        let welcome = decode_body::<ServerMsg>(&body).unwrap().0;
        assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
        Raw { s, next: 1 }
    }

    /// One call as `cred` (`None`: a plain, anonymous call); its result.
    fn call(&mut self, cred: Option<Cred>, req: Request) -> Result<Response, i32> {
        let id = self.next;
        self.next += 1;
        let msg = match cred {
            Some(cred) => ClientMsg::CallAs { id, req, cred },
            None => ClientMsg::Call { id, req },
        };
        self.s.write_all(&encode_frame(&msg, &[]).unwrap()).unwrap();
        loop {
            let body = read_frame(&mut self.s).unwrap();
            if let ServerMsg::Reply { id: got, result } = decode_body::<ServerMsg>(&body).unwrap().0
            {
                if got == id {
                    return result.map_err(protocol::ErrorCode::errno);
                }
            }
        }
    }

    fn ino(&mut self, parent: u64, name: &str) -> u64 {
        let req = Request::Lookup {
            parent,
            name: name.into(),
        };
        match self.call(Some(uid(ALICE)), req) {
            Ok(Response::Attr(a)) => a.ino,
            other => panic!("{other:?}"),
        }
    }
}

fn uid(uid: u32) -> Cred {
    Cred {
        uid,
        gid: uid,
        groups: Vec::new(),
    }
}

#[test]
fn a_hand_made_client_gets_what_the_uid_it_claims_may_and_root_is_squashed() {
    let mut h = harness();
    let img = h.mkfs("v.img", "64M").unwrap();
    alices_files(&mut h, &img);
    for (flags, root_reads) in [(&[][..], false), (&["--no-root-squash"][..], true)] {
        let addr = h.start_server(&img, flags).unwrap();
        let mut c = Raw::hello(&addr);
        let dir = c.ino(1, "alice");
        let f = c.ino(dir, "f");
        let read = Request::Read {
            ino: f,
            offset: 0,
            size: 100,
        };
        let chmod = Request::Setattr {
            ino: f,
            set: protocol::SetAttr {
                mode: Some(0o666),
                ..Default::default()
            },
        };
        assert_eq!(c.call(None, read.clone()), Err(libc::EACCES), "anonymous");
        assert_eq!(c.call(Some(uid(1001)), read.clone()), Err(libc::EACCES));
        assert_eq!(c.call(Some(uid(1001)), chmod.clone()), Err(libc::EPERM));
        assert_eq!(
            c.call(Some(uid(0)), read.clone()).is_ok(),
            root_reads,
            "{flags:?}"
        );
        assert_eq!(c.call(Some(uid(ALICE)), read), Ok(Response::Data));
        // A create claiming root's ownership is the caller's own.
        let shared = c.ino(1, "shared");
        let create = Request::Create {
            parent: shared,
            name: format!("by-2000{}", flags.len()).into_bytes(),
            mode: 0o4755,
            uid: 0,
            gid: 0,
        };
        match c.call(Some(uid(2000)), create) {
            Ok(Response::Attr(a)) => assert_eq!((a.uid, a.gid), (2000, 2000)),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.call(Some(uid(0)), chmod).is_ok(), root_reads, "{flags:?}");
        c.s.write_all(&encode_frame(&ClientMsg::Goodbye, &[]).unwrap())
            .unwrap();
        // The server ends the session, then closes: the next start has none to restore.
        let _ = c.s.read_to_end(&mut Vec::new());
        drop(c);
        h.stop_server().unwrap();
    }
    assert_fsck_clean(&img);
}
