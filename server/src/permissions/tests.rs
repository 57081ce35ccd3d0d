//! The permission rules, one case per row, against a table of inodes.

use std::collections::HashMap;

use super::*;
use volume::Ino;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;
const STAFF: u32 = 50;

#[derive(Default)]
struct Table {
    attrs: HashMap<u64, Attr>,
    names: HashMap<(u64, Vec<u8>), u64>,
}

impl Table {
    fn add(&mut self, ino: u64, kind: FileKind, perm: u16, uid: u32, gid: u32) {
        let a = Attr {
            ino: Ino::new(ino),
            generation: 0,
            size: 0,
            blocks: 0,
            atime: Default::default(),
            mtime: Default::default(),
            ctime: Default::default(),
            kind,
            perm,
            nlink: 1,
            uid,
            gid,
            rdev: 0,
        };
        self.attrs.insert(ino, a);
    }

    fn name(&mut self, parent: u64, name: &str, ino: u64) {
        self.names.insert((parent, name.as_bytes().to_vec()), ino);
    }
}

impl Inodes for Table {
    fn attr(&mut self, ino: u64) -> Result<Attr, FsError> {
        self.attrs.get(&ino).copied().ok_or(FsError::NotFound)
    }

    fn child(&mut self, parent: u64, name: &[u8]) -> Result<Option<Attr>, FsError> {
        Ok(self
            .names
            .get(&(parent, name.to_vec()))
            .and_then(|i| self.attrs.get(i).copied()))
    }
}

/// 1: / (0755 root); 2: /tmp (1777 root); 3: /tmp/a (0600 alice); 4: /home (0755 alice);
/// 5: /home/a (0644 alice, group staff); 6: /tmp/d (0755 alice, a directory).
fn table() -> Table {
    let mut t = Table::default();
    t.add(1, FileKind::Directory, 0o755, 0, 0);
    t.add(2, FileKind::Directory, 0o1777, 0, 0);
    t.add(3, FileKind::RegularFile, 0o600, ALICE, ALICE);
    t.add(4, FileKind::Directory, 0o755, ALICE, ALICE);
    t.add(5, FileKind::RegularFile, 0o644, ALICE, STAFF);
    t.add(6, FileKind::Directory, 0o755, ALICE, ALICE);
    t.name(1, "tmp", 2);
    t.name(2, "a", 3);
    t.name(1, "home", 4);
    t.name(4, "a", 5);
    t.name(2, "d", 6);
    t
}

fn user(uid: u32, groups: &[u32]) -> Caller {
    Caller::new(
        Some(Cred {
            uid,
            gid: uid,
            groups: groups.to_vec(),
        }),
        &Export::default(),
    )
}

fn root(squash: bool) -> Caller {
    let e = Export {
        root_squash: squash,
        ..Export::default()
    };
    Caller::new(Some(Cred::default()), &e)
}

fn run(c: &Caller, mut req: Request) -> Result<Request, i32> {
    check(c, &mut req, &mut table()).map_err(|e| e.errno())?;
    Ok(req)
}

fn errno(c: &Caller, req: Request) -> i32 {
    run(c, req).err().unwrap_or(0)
}

fn chmod(ino: u64, mode: u32) -> Request {
    Request::Setattr {
        ino,
        set: SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        },
    }
}

fn chown(ino: u64, uid: Option<u32>, gid: Option<u32>) -> Request {
    Request::Setattr {
        ino,
        set: SetAttr {
            uid,
            gid,
            ..SetAttr::default()
        },
    }
}

#[test]
fn squash_maps_root_and_its_group_to_nobody_unless_told_not_to() {
    assert_eq!((root(true).uid, root(true).gid), (NOBODY, NOBODY));
    assert_eq!((root(false).uid, root(false).gid), (0, 0));
    let c = Caller::new(
        Some(Cred {
            uid: 7,
            gid: 0,
            groups: (0..40).collect(),
        }),
        &Export::default(),
    );
    assert_eq!(c.gid, NOBODY);
    assert_eq!(c.groups.len(), 16, "at most 16 groups count");
    assert!(c.groups.contains(&NOBODY) && !c.groups.contains(&0));
    assert_eq!(Caller::new(None, &Export::default()).uid, NOBODY);
}

#[test]
fn a_squashed_root_is_just_nobody() {
    let nobody = root(true);
    let read = Request::Read {
        ino: 3,
        offset: 0,
        size: 1,
    };
    assert_eq!(errno(&nobody, read.clone()), libc::EACCES);
    assert_eq!(errno(&root(false), read), 0);
    assert_eq!(errno(&nobody, chmod(3, 0o777)), libc::EPERM);
    assert_eq!(errno(&nobody, chown(3, Some(NOBODY), None)), libc::EPERM);
    assert_eq!(errno(&nobody, chown(3, Some(0), Some(0))), libc::EPERM);
    // Its own file "given" to root stays its own: root is nobody, as a target too.
    let mut t = table();
    t.add(7, FileKind::RegularFile, 0o644, NOBODY, NOBODY);
    let mut own = chown(7, Some(0), Some(0));
    check(&nobody, &mut own, &mut t).unwrap();
    match own {
        Request::Setattr { set, .. } => {
            assert_eq!((set.uid, set.gid), (Some(NOBODY), Some(NOBODY)))
        }
        other => panic!("{other:?}"),
    }
    let unlink = |parent, name: &str| Request::Unlink {
        parent,
        name: name.into(),
    };
    assert_eq!(errno(&nobody, unlink(2, "a")), libc::EPERM, "sticky /tmp");
    assert_eq!(errno(&nobody, unlink(4, "a")), libc::EACCES, "0755 /home");
    assert_eq!(errno(&root(false), unlink(2, "a")), 0);
}

#[test]
fn reads_writes_and_opens_follow_the_mode_with_the_owners_override() {
    let open = |flags| Request::Open { ino: 5, flags };
    let bob = user(BOB, &[]);
    assert_eq!(errno(&bob, open(libc::O_RDONLY)), 0);
    assert_eq!(errno(&bob, open(libc::O_WRONLY)), libc::EACCES);
    assert_eq!(
        errno(&bob, open(libc::O_RDONLY | libc::O_TRUNC)),
        libc::EACCES
    );
    assert_eq!(errno(&user(ALICE, &[]), open(libc::O_RDWR)), 0);
    let write = |ino| Request::Write {
        ino,
        offset: 0,
        kill_priv: false,
    };
    assert_eq!(errno(&bob, write(5)), libc::EACCES);
    // Alice's own 0600 file, and her 0644 one, even if she made them read-only later.
    assert_eq!(errno(&user(ALICE, &[]), write(3)), 0);
    let read = Request::Read {
        ino: 3,
        offset: 0,
        size: 1,
    };
    assert_eq!(errno(&bob, read), libc::EACCES);
    let lookup = Request::Lookup {
        parent: 4,
        name: b"a".to_vec(),
    };
    assert_eq!(errno(&bob, lookup), 0);
    let mut t = table();
    t.add(4, FileKind::Directory, 0o700, ALICE, ALICE);
    let mut lookup = Request::Lookup {
        parent: 4,
        name: b"a".to_vec(),
    };
    assert!(matches!(
        check(&bob, &mut lookup, &mut t),
        Err(FsError::AccessDenied)
    ));
    let list = Request::Readdir {
        ino: 4,
        offset: 0,
        max: 10,
    };
    assert!(matches!(
        check(&bob, &mut list.clone(), &mut t),
        Err(FsError::AccessDenied)
    ));
}

#[test]
fn creates_are_the_callers_own_whatever_the_request_claims() {
    let claims = Request::Create {
        parent: 2,
        name: b"n".to_vec(),
        mode: 0o4755,
        uid: 0,
        gid: 0,
    };
    match run(&user(BOB, &[]), claims.clone()) {
        Ok(Request::Create { uid, gid, .. }) => assert_eq!((uid, gid), (BOB, BOB)),
        other => panic!("{other:?}"),
    }
    match run(
        &user(BOB, &[STAFF]),
        Request::Mkdir {
            parent: 2,
            name: b"m".to_vec(),
            mode: 0o755,
            uid: BOB,
            gid: STAFF,
        },
    ) {
        Ok(Request::Mkdir { uid, gid, .. }) => assert_eq!((uid, gid), (BOB, STAFF)),
        other => panic!("{other:?}"),
    }
    let in_home = Request::Create {
        parent: 4,
        name: b"n".to_vec(),
        mode: 0o644,
        uid: BOB,
        gid: BOB,
    };
    assert_eq!(errno(&user(BOB, &[]), in_home), libc::EACCES);
    let device = Request::Mknod {
        parent: 2,
        name: b"sda".to_vec(),
        mode: libc::S_IFBLK | 0o600,
        rdev: 0x800,
        uid: BOB,
        gid: BOB,
    };
    assert_eq!(errno(&user(BOB, &[]), device.clone()), libc::EPERM);
    assert_eq!(errno(&root(false), device), 0);
}

#[test]
fn setattr_rules() {
    let (alice, bob) = (user(ALICE, &[STAFF]), user(BOB, &[]));
    assert_eq!(errno(&alice, chmod(5, 0o600)), 0);
    assert_eq!(errno(&bob, chmod(5, 0o666)), libc::EPERM);
    assert_eq!(errno(&alice, chown(5, Some(BOB), None)), libc::EPERM);
    assert_eq!(errno(&alice, chown(5, Some(ALICE), None)), 0);
    assert_eq!(errno(&root(false), chown(5, Some(BOB), None)), 0);
    assert_eq!(errno(&alice, chown(5, None, Some(STAFF))), 0);
    assert_eq!(errno(&alice, chown(5, None, Some(7))), libc::EPERM);
    assert_eq!(errno(&bob, chown(5, None, Some(BOB))), libc::EPERM);
    // Setgid is dropped by an owner outside the file's group.
    match run(&user(ALICE, &[]), chmod(5, 0o2755)) {
        Ok(Request::Setattr { set, .. }) => assert_eq!(set.mode, Some(0o755)),
        other => panic!("{other:?}"),
    }
    let truncate = Request::Setattr {
        ino: 5,
        set: SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
    };
    assert_eq!(errno(&bob, truncate.clone()), libc::EACCES);
    assert_eq!(errno(&alice, truncate), 0);
    let touch = |t| Request::Setattr {
        ino: 5,
        set: SetAttr {
            mtime: Some(t),
            ..SetAttr::default()
        },
    };
    let at = SetTime::At(protocol::TimeSpec { sec: 5, nsec: 0 });
    assert_eq!(errno(&bob, touch(at)), libc::EPERM);
    assert_eq!(errno(&bob, touch(SetTime::Now)), libc::EACCES);
    assert_eq!(errno(&alice, touch(at)), 0);
}

#[test]
fn renames_need_both_directories_and_respect_sticky_bits() {
    let rename = |parent, name: &str, newparent, newname: &str| Request::Rename {
        parent,
        name: name.into(),
        newparent,
        newname: newname.into(),
        flags: protocol::RenameFlags::default(),
    };
    let bob = user(BOB, &[]);
    assert_eq!(
        errno(&bob, rename(2, "a", 2, "b")),
        libc::EPERM,
        "sticky source"
    );
    assert_eq!(
        errno(&bob, rename(4, "a", 2, "b")),
        libc::EACCES,
        "0755 source dir"
    );
    let alice = user(ALICE, &[]);
    assert_eq!(errno(&alice, rename(2, "a", 4, "b")), 0);
    // A directory moved to another parent must be writable by the mover: root's own
    // directory 1 is not Bob's to move, and Alice's 0755 directory 6 moves for her.
    assert_eq!(errno(&alice, rename(2, "d", 4, "d")), 0);
    let mut t = table();
    t.add(6, FileKind::Directory, 0o555, ALICE, ALICE);
    let mut r = rename(2, "d", 4, "d");
    assert!(matches!(
        check(&alice, &mut r, &mut t),
        Err(FsError::AccessDenied)
    ));
}

#[test]
fn xattr_namespaces() {
    let get = |name: &str| Request::Getxattr {
        ino: 5,
        name: name.into(),
    };
    let set = |name: &str| Request::Setxattr {
        ino: 5,
        name: name.into(),
        value: b"v".to_vec(),
        flags: 0,
    };
    let (alice, bob) = (user(ALICE, &[]), user(BOB, &[]));
    assert_eq!(errno(&alice, set("trusted.x")), libc::EPERM);
    assert_eq!(errno(&alice, get("trusted.x")), libc::ENODATA);
    assert_eq!(errno(&root(false), set("trusted.x")), 0);
    assert_eq!(errno(&root(true), set("trusted.x")), libc::EPERM);
    assert_eq!(errno(&alice, set("user.x")), 0);
    assert_eq!(errno(&bob, set("user.x")), libc::EACCES);
    assert_eq!(errno(&bob, get("user.x")), 0);
    assert_eq!(errno(&bob, set("security.capability")), libc::EPERM);
    assert_eq!(errno(&bob, get("security.capability")), 0);
    let mut names = vec![b"user.a".to_vec(), b"trusted.b".to_vec()];
    visible_names(&alice, &mut names);
    assert_eq!(names, vec![b"user.a".to_vec()]);
}

/// An open made again after a lost session or a restart (`Request::Reopen`) keeps its
/// owner's access whatever the mode (a file created 0200 and written through its creator's
/// descriptor, one created 0); a new open of it does not, whatever its flags hold (the bit
/// that once marked an open made again is no mark any more), nor does anyone else's open
/// made again.
#[test]
fn an_open_made_again_lets_the_owner_past_the_mode_bits_and_nobody_else() {
    let mut t = table();
    t.add(7, FileKind::RegularFile, 0o200, ALICE, STAFF);
    t.add(8, FileKind::RegularFile, 0, ALICE, STAFF);
    let mut errno = |c: &Caller, ino: u64, flags: i32, again: bool| {
        let mut open = match again {
            true => Request::Reopen { ino, flags },
            false => Request::Open { ino, flags },
        };
        check(c, &mut open, &mut t).err().map_or(0, |e| e.errno())
    };
    let (alice, bob) = (user(ALICE, &[]), user(BOB, &[STAFF]));
    for (ino, access) in [(7, libc::O_WRONLY), (7, libc::O_RDWR), (8, libc::O_RDONLY)] {
        assert_eq!(errno(&alice, ino, access, true), 0, "{ino} {access}");
    }
    assert_eq!(
        errno(&alice, 7, libc::O_RDONLY, false),
        libc::EACCES,
        "a new open"
    );
    assert_eq!(
        errno(&alice, 8, libc::O_WRONLY, false),
        libc::EACCES,
        "a new open"
    );
    let old_mark = libc::O_RDONLY | 0x4000_0000;
    assert_eq!(
        errno(&alice, 7, old_mark, false),
        libc::EACCES,
        "a flag bit"
    );
    assert_eq!(
        errno(&alice, 7, libc::O_WRONLY, false),
        0,
        "0200 lets her write"
    );
    assert_eq!(
        errno(&bob, 7, libc::O_WRONLY, true),
        libc::EACCES,
        "not his file"
    );
    assert_eq!(errno(&bob, 8, libc::O_RDONLY, true), libc::EACCES);
    // Made again, someone else's open is checked as a new one: Bob reads Alice's 0644 file.
    assert_eq!(errno(&bob, 5, libc::O_RDONLY, true), 0);
}
