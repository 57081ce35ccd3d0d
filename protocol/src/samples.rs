//! One value of every `Request` variant, for tests that must cover them all: adding a
//! variant fails to build `index` until it has a sample here.

use crate::messages::Request;
use crate::wire::{LockKind, LockRange, RenameFlags, SetAttr};

/// The variant's index on the wire; exhaustive, so a new variant must be added here.
pub(crate) fn index(r: &Request) -> u32 {
    use Request as R;
    match r {
        R::Lookup { .. } => 0,
        R::Getattr { .. } => 1,
        R::Setattr { .. } => 2,
        R::Mknod { .. } => 3,
        R::Mkdir { .. } => 4,
        R::Symlink { .. } => 5,
        R::Link { .. } => 6,
        R::Unlink { .. } => 7,
        R::Rmdir { .. } => 8,
        R::Rename { .. } => 9,
        R::Readlink { .. } => 10,
        R::Readdir { .. } => 11,
        R::Readdirplus { .. } => 12,
        R::Create { .. } => 13,
        R::Open { .. } => 14,
        R::Release { .. } => 15,
        R::Read { .. } => 16,
        R::Write { .. } => 17,
        R::Fsync { .. } => 18,
        R::Fallocate { .. } => 19,
        R::Statfs => 20,
        R::Getxattr { .. } => 21,
        R::Setxattr { .. } => 22,
        R::Listxattr { .. } => 23,
        R::Removexattr { .. } => 24,
        R::Append { .. } => 25,
        R::Getlk { .. } => 26,
        R::Setlk { .. } => 27,
        R::CancelLock { .. } => 28,
        R::ReleaseLocks { .. } => 29,
        R::ReclaimLock { .. } => 30,
        R::ReclaimDone => 31,
        R::CreateAgain { .. } => 32,
        R::Lseek { .. } => 33,
        R::LayoutGet { .. } => 34,
        R::LayoutCommit { .. } => 35,
        R::LayoutReturn { .. } => 36,
        R::VolumeLocation => 37,
        R::StoreClient { .. } => 38,
        R::Reopen { .. } => 39,
    }
}

pub(crate) const VARIANTS: u32 = 40;

fn n(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Every variant once (a truncating and a plain `Setattr`), in variant order.
pub(crate) fn requests() -> Vec<Request> {
    let lock = (LockRange { start: 0, end: 9 }, LockKind::Write);
    vec![
        Request::Lookup {
            parent: 1,
            name: n("a"),
        },
        Request::Getattr { ino: 2 },
        Request::Setattr {
            ino: 2,
            set: SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        },
        Request::Setattr {
            ino: 2,
            set: SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        },
        Request::Mknod {
            parent: 1,
            name: n("p"),
            mode: 0o10644,
            rdev: 0,
            uid: 5,
            gid: 6,
        },
        Request::Mkdir {
            parent: 1,
            name: n("d"),
            mode: 0o755,
            uid: 5,
            gid: 6,
        },
        Request::Symlink {
            parent: 1,
            name: n("s"),
            target: n("t"),
            uid: 5,
            gid: 6,
        },
        Request::Link {
            ino: 2,
            newparent: 3,
            newname: n("l"),
        },
        Request::Unlink {
            parent: 1,
            name: n("u"),
        },
        Request::Rmdir {
            parent: 1,
            name: n("r"),
        },
        Request::Rename {
            parent: 1,
            name: n("x"),
            newparent: 3,
            newname: n("y"),
            flags: RenameFlags::default(),
        },
        Request::Readlink { ino: 2 },
        Request::Readdir {
            ino: 1,
            offset: 0,
            max: 10,
        },
        Request::Readdirplus {
            ino: 1,
            offset: 0,
            max: 10,
        },
        Request::Create {
            parent: 1,
            name: n("c"),
            mode: 0o644,
            uid: 5,
            gid: 6,
        },
        Request::Open { ino: 2, flags: 0 },
        Request::Release { ino: 2 },
        Request::Read {
            ino: 2,
            offset: 0,
            size: 4096,
        },
        Request::Write {
            ino: 2,
            offset: 0,
            kill_priv: false,
        },
        Request::Fsync { ino: 2 },
        Request::Fallocate {
            ino: 2,
            offset: 0,
            len: 4096,
            mode: 0,
            kill_priv: true,
        },
        Request::Statfs,
        Request::Getxattr {
            ino: 2,
            name: n("user.a"),
        },
        Request::Setxattr {
            ino: 2,
            name: n("user.a"),
            value: n("v"),
            flags: 0,
        },
        Request::Listxattr { ino: 2 },
        Request::Removexattr {
            ino: 2,
            name: n("user.a"),
        },
        Request::Append {
            ino: 2,
            kill_priv: true,
        },
        Request::Getlk {
            ino: 2,
            owner: 7,
            range: lock.0,
            kind: lock.1,
            pid: 8,
        },
        Request::Setlk {
            ino: 2,
            owner: 7,
            range: lock.0,
            kind: lock.1,
            pid: 8,
            wait: true,
        },
        Request::CancelLock { wait: 11 },
        Request::ReleaseLocks { ino: 2, owner: 7 },
        Request::ReclaimLock {
            ino: 2,
            owner: 7,
            range: lock.0,
            kind: lock.1,
            pid: 8,
        },
        Request::ReclaimDone,
        Request::CreateAgain {
            ino: 42,
            req: Box::new(Request::Mkdir {
                parent: 1,
                name: n("d"),
                mode: 0o755,
                uid: 5,
                gid: 6,
            }),
        },
        Request::Lseek {
            ino: 2,
            offset: 4096,
            whence: 4,
        },
        Request::LayoutGet {
            ino: 2,
            offset: 4096,
            len: 8192,
            write: true,
            kill_priv: true,
        },
        Request::LayoutCommit {
            ino: 2,
            written: vec![(4096, 8192)],
            size: 12288,
            mtime: None,
            kill_priv: true,
        },
        Request::LayoutReturn { ino: 2 },
        Request::VolumeLocation,
        Request::StoreClient {
            address: "127.0.0.1:0/42".to_string(),
        },
        Request::Reopen { ino: 2, flags: 2 },
    ]
}

#[test]
fn every_variant_has_a_sample() {
    let mut seen: Vec<u32> = requests().iter().map(index).collect();
    seen.dedup();
    assert_eq!(seen, (0..VARIANTS).collect::<Vec<_>>());
}
