//! A few calls through the table on a volume in memory, as any placement makes them.

use std::sync::{Arc, Mutex};

use protocol::{Request, Response};
use volume::layout::ROOT_INO;
use volume::{mkfs, FsError, FsResult, MemStore, MkfsOptions, SharedVolume, Volume};

use crate::{execute, Hooks, Trusted};

fn volume() -> SharedVolume<Arc<MemStore>> {
    let store = Arc::new(MemStore::new(16 << 20));
    mkfs(&store, &MkfsOptions::default()).unwrap();
    SharedVolume::new(Volume::open(store).unwrap())
}

fn create(name: &[u8], mode: u32) -> Request {
    Request::Create {
        parent: ROOT_INO,
        name: name.to_vec(),
        mode: libc::S_IFREG | mode,
        uid: 7,
        gid: 7,
    }
}

fn attr(r: FsResult<Response>) -> protocol::Attr {
    match r {
        Ok(Response::Attr(a)) => a,
        r => panic!("not attributes: {r:?}"),
    }
}

#[test]
fn a_file_made_written_read_listed_and_removed() {
    let vol = volume();
    let f = attr(execute(&vol, create(b"f", 0o644), &[], &Trusted).0);
    assert_eq!((f.uid, f.gid, f.perm), (7, 7, 0o644));
    let write = Request::Write {
        ino: f.ino,
        offset: 3,
        kill_priv: false,
    };
    let (r, _) = execute(&vol, write, b"hello", &Trusted);
    assert!(matches!(r, Ok(Response::Written(5))), "{r:?}");
    let read = Request::Read {
        ino: f.ino,
        offset: 0,
        size: 100,
    };
    let (r, data) = execute(&vol, read, &[], &Trusted);
    assert!(matches!(r, Ok(Response::Data)));
    assert_eq!(data, b"\0\0\0hello");
    let list = Request::Readdir {
        ino: ROOT_INO,
        offset: 0,
        max: 100,
    };
    match execute(&vol, list, &[], &Trusted).0 {
        Ok(Response::Entries(es)) => assert!(es.iter().any(|e| e.name == b"f")),
        r => panic!("readdir: {r:?}"),
    }
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    assert!(matches!(
        execute(&vol, unlink, &[], &Trusted).0,
        Ok(Response::Empty)
    ));
    let lookup = Request::Lookup {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    assert!(matches!(
        execute(&vol, lookup, &[], &Trusted).0,
        Err(FsError::NotFound)
    ));
}

#[test]
fn a_write_by_one_who_may_not_keep_setuid_drops_it() {
    let vol = volume();
    let f = attr(execute(&vol, create(b"s", 0o4755), &[], &Trusted).0);
    assert_eq!(f.perm, 0o4755);
    let write = |kill_priv| Request::Write {
        ino: f.ino,
        offset: 0,
        kill_priv,
    };
    execute(&vol, write(false), b"x", &Trusted).0.unwrap();
    let get = Request::Getattr { ino: f.ino };
    assert_eq!(
        attr(execute(&vol, get.clone(), &[], &Trusted).0).perm,
        0o4755
    );
    execute(&vol, write(true), b"x", &Trusted).0.unwrap();
    assert_eq!(attr(execute(&vol, get, &[], &Trusted).0).perm, 0o755);
}

#[test]
fn a_fallocate_by_one_who_may_not_keep_setuid_drops_it_as_a_write_does() {
    let vol = volume();
    let f = attr(execute(&vol, create(b"s", 0o6775), &[], &Trusted).0);
    assert_eq!(f.perm, 0o6775);
    let falloc = |kill_priv| Request::Fallocate {
        ino: f.ino,
        offset: 0,
        len: 4096,
        mode: 0,
        kill_priv,
    };
    execute(&vol, falloc(false), &[], &Trusted).0.unwrap();
    let get = Request::Getattr { ino: f.ino };
    assert_eq!(
        attr(execute(&vol, get.clone(), &[], &Trusted).0).perm,
        0o6775
    );
    execute(&vol, falloc(true), &[], &Trusted).0.unwrap();
    assert_eq!(attr(execute(&vol, get, &[], &Trusted).0).perm, 0o775);
}

/// Refuses creates, makes every other call uid 9's, and notes what it records.
#[derive(Default)]
struct Strict {
    recorded: Mutex<Vec<(u64, Response)>>,
}

impl Hooks<Arc<MemStore>> for Strict {
    fn authorize(&self, _: &mut Volume<Arc<MemStore>>, req: &mut Request) -> FsResult<()> {
        match req {
            Request::Create { .. } => Err(FsError::AccessDenied),
            Request::Mkdir { uid, .. } => {
                *uid = 9;
                Ok(())
            }
            _ => Ok(()),
        }
    }
    fn record(&self, seq: u64, resp: &Response, _: &[u8]) {
        self.recorded.lock().unwrap().push((seq, resp.clone()));
    }
}

#[test]
fn the_hooks_refuse_adjust_and_record_with_the_engine_held() {
    let vol = volume();
    let hooks = Strict::default();
    let (r, _) = execute(&vol, create(b"no", 0o644), &[], &hooks);
    assert!(matches!(r, Err(FsError::AccessDenied)));
    let lookup = Request::Lookup {
        parent: ROOT_INO,
        name: b"no".to_vec(),
    };
    assert!(matches!(
        execute(&vol, lookup, &[], &hooks).0,
        Err(FsError::NotFound)
    ));
    let mkdir = Request::Mkdir {
        parent: ROOT_INO,
        name: b"d".to_vec(),
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    let d = attr(execute(&vol, mkdir, &[], &hooks).0);
    assert_eq!(d.uid, 9);
    execute(&vol, Request::Getattr { ino: d.ino }, &[], &hooks)
        .0
        .unwrap();
    // Only the change is recorded, tagged with the transaction it went into.
    let recorded = hooks.recorded.lock().unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(matches!(&recorded[0], (seq, Response::Attr(a)) if *seq > 0 && a.ino == d.ino));
}

/// Fill `ino` from offset 0 in 256 KiB writes until the volume is full; the bytes written.
fn fill(vol: &SharedVolume<Arc<MemStore>>, ino: u64) -> u64 {
    let chunk = vec![0xA5u8; 256 << 10];
    let mut at = 0u64;
    loop {
        let write = Request::Write {
            ino,
            offset: at,
            kill_priv: false,
        };
        match execute(vol, write, &chunk, &Trusted).0 {
            Ok(Response::Written(n)) if n > 0 => at += n as u64,
            Ok(r) => panic!("write: {r:?}"),
            Err(FsError::NoSpace) => return at,
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Space a delete freed a moment ago waits for its commit before it is reused; a writer who
/// needs it then gets it after one commit, in every placement, not ENOSPC.
#[test]
fn space_freed_a_moment_ago_is_written_after_one_commit_not_refused() {
    let vol = volume();
    let a = attr(execute(&vol, create(b"a", 0o644), &[], &Trusted).0);
    let write = |ino, data: &[u8]| {
        let req = Request::Write {
            ino,
            offset: 0,
            kill_priv: false,
        };
        execute(&vol, req, data, &Trusted).0
    };
    let mb = vec![7u8; 1 << 20];
    assert!(matches!(write(a.ino, &mb), Ok(Response::Written(n)) if n == 1 << 20));
    let rest = attr(execute(&vol, create(b"rest", 0o644), &[], &Trusted).0);
    let filled = fill(&vol, rest.ino);
    assert!(filled > 8 << 20, "only {filled} bytes fit");
    vol.commit().unwrap();
    // Closed (a create opens), then removed: its blocks are freed, not kept for an opener.
    let release = Request::Release { ino: a.ino };
    execute(&vol, release, &[], &Trusted).0.unwrap();
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"a".to_vec(),
    };
    execute(&vol, unlink, &[], &Trusted).0.unwrap();
    assert!(vol.with(|v| v.quarantined_blocks()) > 0);
    let b = attr(execute(&vol, create(b"b", 0o644), &[], &Trusted).0);
    let r = write(b.ino, &mb[..512 << 10]);
    assert!(
        matches!(r, Ok(Response::Written(n)) if n == 512 << 10),
        "{r:?}"
    );
}

/// Holds layouts as the holder it names.
struct Holder(u64);

impl<S: volume::BlockStore> Hooks<S> for Holder {
    fn authorize(&self, _: &mut Volume<S>, _: &mut Request) -> FsResult<()> {
        Ok(())
    }
    fn record(&self, _: u64, _: &Response, _: &[u8]) {}
    fn holder(&self) -> u64 {
        self.0
    }
}

#[test]
fn a_file_written_through_a_layout_reads_back_through_the_table() {
    let vol = volume();
    let f = attr(execute(&vol, create(b"d", 0o644), &[], &Trusted).0);
    let get = |write| Request::LayoutGet {
        ino: f.ino,
        offset: 0,
        len: 5,
        write,
        kill_priv: false,
    };
    let layout = match execute(&vol, get(true), &[], &Holder(1)).0 {
        Ok(Response::Layout(l)) => l,
        r => panic!("not a layout: {r:?}"),
    };
    // Another holder may not write there before it is committed, and reads a hole.
    let e = execute(&vol, get(true), &[], &Holder(2)).0.unwrap_err();
    assert!(matches!(e, FsError::WouldBlock), "{e}");
    match execute(&vol, get(false), &[], &Holder(2)).0 {
        Ok(Response::Layout(l)) => assert!(l.extents.is_empty(), "{l:?}"),
        r => panic!("not a layout: {r:?}"),
    }
    let disk = layout.extents[0].disk.expect("a block for writing");
    let store = vol.with(|v| v.shared_store());
    volume::BlockStore::write_at(&*store, b"hello", disk).unwrap();
    let commit = Request::LayoutCommit {
        ino: f.ino,
        written: vec![(0, 5)],
        size: 5,
        mtime: None,
        kill_priv: false,
    };
    assert_eq!(attr(execute(&vol, commit, &[], &Holder(1)).0).size, 5);
    let read = Request::Read {
        ino: f.ino,
        offset: 0,
        size: 100,
    };
    assert_eq!(execute(&vol, read, &[], &Trusted).1, b"hello");
    let ret = Request::LayoutReturn { ino: f.ino };
    execute(&vol, ret, &[], &Holder(1)).0.unwrap();
    assert_eq!(vol.with(|v| v.reserved_blocks()), 0);
    // A placement that says nowhere: no client may reach the volume itself.
    let e = execute(&vol, Request::VolumeLocation, &[], &Trusted).0;
    assert!(matches!(e, Err(FsError::NotSupported)), "{e:?}");
    // Nor fences one.
    let client = Request::StoreClient {
        address: "127.0.0.1:0/1".into(),
    };
    let e = execute(&vol, client, &[], &Trusted).0;
    assert!(matches!(e, Err(FsError::NotSupported)), "{e:?}");
}

/// A placement whose caller sees directory `.0` as the volume's root (a mount of an export).
struct Rooted(u64);

impl Hooks<Arc<MemStore>> for Rooted {
    fn authorize(&self, _: &mut Volume<Arc<MemStore>>, _: &mut Request) -> FsResult<()> {
        Ok(())
    }
    fn record(&self, _: u64, _: &Response, _: &[u8]) {}
    fn root(&self) -> Option<u64> {
        Some(self.0)
    }
}

/// Statfs is of what the caller sees as the root: a quota tree's limits as the sizes for a
/// caller rooted in the tree, the whole volume for one who is not.
#[test]
fn statfs_is_of_the_tree_the_caller_sees_as_its_root() {
    let vol = volume();
    let mkdir = Request::Mkdir {
        parent: ROOT_INO,
        name: b"t".to_vec(),
        mode: 0o755,
        uid: 7,
        gid: 7,
    };
    let t = attr(execute(&vol, mkdir, &[], &Trusted).0).ino;
    let quota = volume::Quota {
        max_blocks: 100,
        max_inodes: 10,
        tag: 0,
    };
    vol.with(|v| v.set_quota(volume::Ino::new(t), quota))
        .unwrap();
    let statfs =
        |hooks: &dyn Hooks<Arc<MemStore>>| match execute(&vol, Request::Statfs, &[], hooks).0 {
            Ok(Response::StatFs(s)) => s,
            r => panic!("statfs: {r:?}"),
        };
    let tree = statfs(&Rooted(t));
    assert_eq!((tree.blocks, tree.files), (100, 10), "{tree:?}");
    assert_eq!(tree.ffree, 9, "{tree:?}");
    let whole = statfs(&Trusted);
    let all: protocol::StatFs = vol.with(|v| v.statfs()).into();
    assert_eq!(whole, all);
    assert!(whole.blocks > 100 && whole.files > 10, "{whole:?}");
    assert_eq!(statfs(&Rooted(ROOT_INO)), whole);
}

/// A write layout for a writer who may not keep setuid, setgid and capabilities
/// (`kill_priv`) is refused while the file has any it would drop, so such a write goes
/// through the placement's own write, which drops them first; a setgid bit without group
/// execute is not one (Linux keeps it). A refusal changes nothing.
#[test]
fn a_write_layout_is_refused_to_a_writer_who_must_drop_privileges_the_file_has() {
    let vol = volume();
    let run = |req| execute(&vol, req, &[], &Holder(1)).0;
    let get = |ino, kill_priv| Request::LayoutGet {
        ino,
        offset: 0,
        len: 5,
        write: true,
        kill_priv,
    };
    let cases: [(&[u8], u16, bool); 5] = [
        (b"suid", 0o4755, true),
        (b"sgid", 0o2775, true),
        (b"sgid-no-exec", 0o2765, false),
        (b"plain", 0o755, false),
        (b"caps", 0o755, true),
    ];
    for (name, mode, refused) in cases {
        let f = attr(execute(&vol, create(name, mode.into()), &[], &Trusted).0);
        if name == b"caps" {
            let caps = Request::Setxattr {
                ino: f.ino,
                name: b"security.capability".to_vec(),
                value: vec![1, 2, 3],
                flags: 0,
            };
            run(caps).unwrap();
        }
        let what = String::from_utf8_lossy(name);
        assert!(
            matches!(run(get(f.ino, false)), Ok(Response::Layout(_))),
            "{what}"
        );
        match run(get(f.ino, true)) {
            Err(FsError::NotPermitted) => assert!(refused, "{what} refused"),
            Ok(Response::Layout(_)) => assert!(!refused, "{what} given"),
            r => panic!("{what}: {r:?}"),
        }
        assert_eq!(
            attr(run(Request::Getattr { ino: f.ino })).perm,
            mode,
            "{what}"
        );
    }
}

/// A commit of writes made through layouts by a writer who may not keep setuid drops it,
/// as a write through the placement would: one set after the layout was given included. A
/// commit of a privileged writer's keeps it.
#[test]
fn a_commit_of_a_writer_who_must_drop_privileges_drops_those_set_since_its_layout() {
    let vol = volume();
    let run = |req, bulk: &[u8]| execute(&vol, req, bulk, &Holder(1)).0;
    let f = attr(execute(&vol, create(b"f", 0o755), &[], &Trusted).0);
    let store = vol.with(|v| v.shared_store());
    let chmod = Request::Setattr {
        ino: f.ino,
        set: protocol::SetAttr {
            mode: Some(0o4755),
            ..Default::default()
        },
    };
    for (kill_priv, perm) in [(true, 0o755), (false, 0o4755)] {
        let get = Request::LayoutGet {
            ino: f.ino,
            offset: 0,
            len: 5,
            write: true,
            kill_priv,
        };
        let disk = match run(get, &[]) {
            Ok(Response::Layout(l)) => l.extents[0].disk.expect("a block for writing"),
            r => panic!("not a layout: {r:?}"),
        };
        assert_eq!(attr(run(chmod.clone(), &[])).perm, 0o4755);
        volume::BlockStore::write_at(&*store, b"hello", disk).unwrap();
        let commit = Request::LayoutCommit {
            ino: f.ino,
            written: vec![(0, 5)],
            size: 5,
            mtime: None,
            kill_priv,
        };
        assert_eq!(attr(run(commit, &[])).perm, perm, "kill_priv {kill_priv}");
        let get = Request::Getattr { ino: f.ino };
        assert_eq!(attr(run(get, &[])).perm, perm, "kill_priv {kill_priv}");
    }
    let read = Request::Read {
        ino: f.ino,
        offset: 0,
        size: 100,
    };
    assert_eq!(execute(&vol, read, &[], &Trusted).1, b"hello");
}

/// A layout is handed out only once the placement's own writes to the blocks it maps have
/// landed: a write through the server just before it, on a store whose writes land late,
/// would otherwise show a reader through the layout the older bytes, and land over a
/// writer's bytes after them.
#[test]
fn a_layout_is_handed_out_once_the_writes_through_the_table_to_its_blocks_landed() {
    use volume::BlockStore;
    let beside = Arc::new(MemStore::new(16 << 20));
    mkfs(&beside, &MkfsOptions::default()).unwrap();
    let store = Arc::new(volume::LateStore::over(beside.clone()));
    let vol = SharedVolume::new(Volume::open(store.clone()).unwrap());
    let f = attr(execute(&vol, create(b"f", 0o644), &[], &Trusted).0);
    let write = |at: u64, byte: u8| {
        let w = Request::Write {
            ino: f.ino,
            offset: at,
            kill_priv: false,
        };
        execute(&vol, w, &[byte; 4096], &Trusted).0.unwrap();
    };
    let layout = |at, write| {
        let get = Request::LayoutGet {
            ino: f.ino,
            offset: at,
            len: 4096,
            write,
            kill_priv: false,
        };
        match execute(&vol, get, &[], &Holder(1)).0 {
            Ok(Response::Layout(l)) => l.extents[0].disk.expect("mapped"),
            r => panic!("not a layout: {r:?}"),
        }
    };
    write(0, 1);
    write(4096, 1);
    store.flush().unwrap();
    // Written again through the table: on its way to the store.
    write(0, 2);
    let mut seen = vec![0; 4096];
    beside.read_at(&mut seen, layout(0, false)).unwrap();
    assert!(
        seen == [2; 4096],
        "read through the layout: the older bytes"
    );
    write(4096, 3);
    beside.write_at(b"mine", layout(4096, true)).unwrap();
    store.flush().unwrap();
    let read = Request::Read {
        ino: f.ino,
        offset: 4096,
        size: 4,
    };
    let got = execute(&vol, read, &[], &Trusted).1;
    assert_eq!(got, b"mine", "written through the layout, then overwritten");
}
