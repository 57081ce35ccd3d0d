//! Arbitrary request sequences against the operation table, as a hostile or buggy client
//! could send them: unknown and stale inodes, absurd offsets and sizes, odd names and flags.
//! Nothing may panic, every answer is a response or an errno, and afterwards the volume
//! commits to an image fsck finds clean once reopened (files unlinked while open are orphans
//! until then). (`PROPTEST_CASES` raises the count.)

use std::sync::Arc;

use ops::{execute, Trusted};
use proptest::prelude::*;
use protocol::{RenameFlags, Request, SetAttr};
use volume::{fsck, mkfs, MemStore, MkfsOptions, SharedVolume, Volume};

fn ino() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 1u64..6,
        2 => (0u64..4, 1u64..8).prop_map(|(g, i)| g << 32 | i),
        1 => any::<u64>(),
        1 => Just(0u64),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec![&b"a"[..], b"b", b"dir", b"x.txt"]).prop_map(|n| n.to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        1 => Just(Vec::new()),
        1 => Just(vec![b'n'; 300]),
        1 => Just(b"a/b".to_vec()),
        1 => Just(vec![0u8, 1, 2]),
    ]
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..20_000,
        1 => Just(4095u64),
        1 => Just(1u64 << 40),
        1 => Just(u64::MAX - 5),
        1 => any::<u64>(),
    ]
}

fn names_and_files() -> impl Strategy<Value = Request> {
    prop_oneof![
        (ino(), name()).prop_map(|(parent, name)| Request::Lookup { parent, name }),
        ino().prop_map(|ino| Request::Getattr { ino }),
        (ino(), name(), any::<u32>()).prop_map(|(parent, name, mode)| Request::Create {
            parent,
            name,
            mode,
            uid: 0,
            gid: 0
        }),
        (ino(), name(), any::<u32>()).prop_map(|(parent, name, mode)| Request::Mkdir {
            parent,
            name,
            mode,
            uid: 0,
            gid: 0
        }),
        (ino(), name(), any::<u32>(), any::<u32>()).prop_map(|(parent, name, mode, rdev)| {
            Request::Mknod {
                parent,
                name,
                mode,
                rdev,
                uid: 0,
                gid: 0,
            }
        }),
        (ino(), name(), name()).prop_map(|(parent, name, target)| Request::Symlink {
            parent,
            name,
            target,
            uid: 0,
            gid: 0
        }),
        (ino(), ino(), name()).prop_map(|(ino, newparent, newname)| Request::Link {
            ino,
            newparent,
            newname
        }),
        (ino(), name()).prop_map(|(parent, name)| Request::Unlink { parent, name }),
        (ino(), name()).prop_map(|(parent, name)| Request::Rmdir { parent, name }),
        (ino(), name(), ino(), name(), any::<bool>(), any::<bool>()).prop_map(
            |(parent, name, newparent, newname, noreplace, exchange)| Request::Rename {
                parent,
                name,
                newparent,
                newname,
                flags: RenameFlags {
                    noreplace,
                    exchange
                }
            }
        ),
        (ino(), offset(), any::<u32>()).prop_map(|(ino, offset, max)| Request::Readdirplus {
            ino,
            offset,
            max
        }),
        ino().prop_map(|ino| Request::Readlink { ino }),
    ]
}

fn data_and_attrs() -> impl Strategy<Value = Request> {
    prop_oneof![
        (ino(), offset(), any::<u32>()).prop_map(|(ino, offset, size)| Request::Read {
            ino,
            offset,
            size
        }),
        (ino(), offset(), any::<bool>()).prop_map(|(ino, offset, kill_priv)| Request::Write {
            ino,
            offset,
            kill_priv
        }),
        (ino(), any::<bool>()).prop_map(|(ino, kill_priv)| Request::Append { ino, kill_priv }),
        (ino(), prop::option::of(offset())).prop_map(|(ino, size)| Request::Setattr {
            ino,
            set: SetAttr {
                size,
                ..SetAttr::default()
            }
        }),
        (ino(), offset(), offset(), any::<u32>(), any::<bool>()).prop_map(
            |(ino, offset, len, mode, kill_priv)| Request::Fallocate {
                ino,
                offset,
                len,
                mode,
                kill_priv,
            }
        ),
        (ino(), name(), name(), any::<u32>()).prop_map(|(ino, name, value, flags)| {
            Request::Setxattr {
                ino,
                name,
                value,
                flags,
            }
        }),
        ino().prop_map(|ino| Request::Open { ino, flags: 0 }),
        ino().prop_map(|ino| Request::Reopen { ino, flags: 0 }),
        ino().prop_map(|ino| Request::Release { ino }),
        ino().prop_map(|ino| Request::Fsync { ino }),
    ]
}

/// Layouts as a direct client asks for them, committing ranges it may or may not have been
/// given (the engine maps only what it reserved for them).
fn layouts() -> impl Strategy<Value = Request> {
    prop_oneof![
        (ino(), offset(), offset(), any::<bool>(), any::<bool>()).prop_map(
            |(ino, offset, len, write, kill_priv)| Request::LayoutGet {
                ino,
                offset,
                len,
                write,
                kill_priv,
            }
        ),
        (ino(), offset(), offset(), offset(), any::<bool>()).prop_map(
            |(ino, at, len, size, kill_priv)| Request::LayoutCommit {
                ino,
                written: vec![(at, len)],
                size,
                mtime: None,
                kill_priv,
            }
        ),
        ino().prop_map(|ino| Request::LayoutReturn { ino }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![names_and_files(), data_and_attrs(), layouts()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("RWXFS_FUZZ_CASES").ok().and_then(|s| s.parse::<u32>().ok()).map_or(64, |n| n / 16)
    ))]
    #[test]
    fn arbitrary_requests_never_panic_and_leave_a_clean_volume(
        reqs in prop::collection::vec(request(), 1..80)
    ) {
        let store = Arc::new(MemStore::new(64 << 20));
        mkfs(&store, &MkfsOptions::default()).unwrap();
        let vol = SharedVolume::new(Volume::open(store.clone()).unwrap());
        let bulk = vec![0x5Au8; 5000];
        for r in reqs {
            let _ = execute(&vol, r, &bulk, &Trusted);
        }
        vol.commit().unwrap();
        drop(vol);
        // Files unlinked while still open are orphans until the next open reclaims them
        // (their sessions never released them): nothing else may be wrong.
        let report = fsck::check(&store).unwrap();
        prop_assert!(
            report.findings.iter().all(|f| f.kind == fsck::Kind::Orphan),
            "fsck: {:#?}",
            report.findings
        );
        let mut v = Volume::open(store.clone()).unwrap();
        v.commit().unwrap();
        drop(v);
        let report = fsck::check(&store).unwrap();
        prop_assert!(report.is_clean(), "fsck after reopening: {:#?}", report.findings);
    }
}
