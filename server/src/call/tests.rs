//! The call pipeline in this process, without a network: a `Shared` on a fresh image and
//! calls made as sessions of their own, with a hook to land one call inside another.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use locks::SessionId;
use protocol::codec::decode_body;
use protocol::{Cred, Request, Response, ServerMsg, SetAttr};
use tokio_util::task::TaskTracker;
use volume::layout::ROOT_INO;
use volume::{mkfs, FileStore, MkfsOptions, SharedVolume, Volume};

use crate::listener::{Grace, Shared};
use crate::permissions::Caller;
use crate::session::{Session, SessionInfo};
use crate::ServerConfig;

mod confined;
mod opens;
mod recalls;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;

/// Run the hook a test set for the point right after a permission check, once.
pub(crate) fn after_check(shared: &Shared) {
    let hook = shared
        .after_check
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(hook) = hook {
        hook();
    }
}

fn shared(name: &str) -> Arc<Shared> {
    shared_with(name, ServerConfig::default())
}

fn shared_with(name: &str, cfg: ServerConfig) -> Arc<Shared> {
    let dir = std::env::temp_dir().join(format!("rwxfs-call-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image: PathBuf = dir.join("v.img");
    let f = std::fs::File::create_new(&image).unwrap();
    f.set_len(64 << 20).unwrap();
    mkfs(&FileStore::from_file(f), &MkfsOptions::default()).unwrap();
    let vol = Volume::open(Box::new(FileStore::open(&image).unwrap()) as crate::Store).unwrap();
    // The store holds the image open: the directory goes now, so nothing outlives the test.
    std::fs::remove_dir_all(&dir).unwrap();
    Arc::new(Shared {
        vol: SharedVolume::new(vol),
        locks: locks::LockManager::new(),
        sessions: Default::default(),
        next_session: AtomicU64::new(1),
        grace: Grace::new(Instant::now(), Default::default()),
        connections: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
        handshakes: Arc::new(tokio::sync::Semaphore::new(cfg.max_handshakes)),
        blocking: Arc::new(tokio::sync::Semaphore::new(cfg.max_blocking)),
        cfg,
        tracker: TaskTracker::new(),
        admission: Mutex::new(()),
        sessions_changed: tokio::sync::Notify::new(),
        state: None,
        boot: 1,
        commits: Default::default(),
        reopens: Default::default(),
        made: Default::default(),
        linger: Default::default(),
        recalls: Default::default(),
        fencing: Default::default(),
        clean_start: false,
        after_check: Default::default(),
    })
}

/// A session of `uid`, and its caller as the export sees it.
fn session(shared: &Shared, id: u64, uid: u32) -> (Arc<Session>, Caller) {
    let info = SessionInfo {
        export: 0,
        node_id: format!("node-{id}"),
        mount_id: id,
        read_only: false,
        started: Instant::now(),
        secret: Default::default(),
    };
    let s = Session::new(SessionId::new(id), info);
    shared.sessions.insert(SessionId::new(id), s.clone());
    let cred = Cred {
        uid,
        gid: uid,
        groups: Vec::new(),
    };
    (s, Caller::new(Some(cred), &shared.cfg.export))
}

fn call(
    shared: &Shared,
    (session, caller): &(Arc<Session>, Caller),
    id: u64,
    req: Request,
    bulk: &[u8],
) -> (Result<Response, i32>, Vec<u8>) {
    let frame = super::answer(shared, session, caller, id, req, bulk);
    match decode_body::<ServerMsg>(&frame[4..]).unwrap() {
        (ServerMsg::Reply { result, .. }, out) => {
            (result.map_err(protocol::ErrorCode::errno), out.to_vec())
        }
        (m, _) => panic!("not a reply: {m:?}"),
    }
}

type Party = (Arc<Session>, Caller);

/// Make call `req` of `first`, and land `between` (a call of `second`) right after its
/// permission check: run to its end there if the engine lets it, or else waiting its turn.
/// Returns the first call's answer and whether `between` had returned before that call's
/// engine work began.
fn interleave(
    shared: &Arc<Shared>,
    first: &Party,
    req: Request,
    bulk: &[u8],
    second: &Arc<Party>,
    between: Request,
) -> ((Result<Response, i32>, Vec<u8>), bool) {
    let ran = Arc::new(AtomicBool::new(false));
    let landed = Arc::new(AtomicBool::new(false));
    let waiting = Arc::new(Mutex::new(None));
    let hook = {
        let (weak, second) = (Arc::downgrade(shared), second.clone());
        let (ran, landed, waiting) = (ran.clone(), landed.clone(), waiting.clone());
        move || {
            ran.store(true, Ordering::SeqCst);
            let shared = weak.upgrade().unwrap();
            let free = shared.vol.try_with(|_| ()).is_some();
            let (second, between) = (second.clone(), between.clone());
            let t = std::thread::spawn(move || call(&shared, &second, 100, between, &[]).0);
            if free {
                assert!(t.join().unwrap().is_ok(), "the call in between was refused");
                landed.store(true, Ordering::SeqCst);
            } else {
                *waiting.lock().unwrap() = Some(t);
            }
        }
    };
    *shared.after_check.lock().unwrap() = Some(Arc::new(hook));
    let answer = call(shared, first, 1, req, bulk);
    assert!(ran.load(Ordering::SeqCst), "the hook never ran");
    if let Some(t) = waiting.lock().unwrap().take() {
        assert!(t.join().unwrap().is_ok(), "the call in between was refused");
    }
    (answer, landed.load(Ordering::SeqCst))
}

/// Alice, and Bob (who owns what is made), on a fresh volume with Bob's file `f` (0666) and
/// directory `d` (0777).
fn alice_and_bobs_files(name: &str) -> (Arc<Shared>, Party, Arc<Party>, u64, u64) {
    let shared = shared(name);
    let alice = session(&shared, 1, ALICE);
    let bob = Arc::new(session(&shared, 2, BOB));
    let make = |id, req| match call(&shared, &bob, id, req, &[]).0 {
        Ok(Response::Attr(a)) => a.ino,
        r => panic!("made: {r:?}"),
    };
    let f = make(
        1,
        Request::Create {
            parent: ROOT_INO,
            name: b"f".to_vec(),
            mode: libc::S_IFREG | 0o666,
            uid: BOB,
            gid: BOB,
        },
    );
    let d = make(
        2,
        Request::Mkdir {
            parent: ROOT_INO,
            name: b"d".to_vec(),
            mode: 0o777,
            uid: BOB,
            gid: BOB,
        },
    );
    (shared, alice, bob, f, d)
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

/// A chmod that takes write permission away from others cannot land between the check of
/// another connection's write and that write: either the write lands first and the chmod
/// after it, or the chmod first and the write is refused.
#[test]
fn a_chmod_cannot_land_between_a_write_check_and_the_write() {
    let (shared, alice, bob, f, _) = alice_and_bobs_files("write");
    let write = Request::Write {
        ino: f,
        offset: 0,
        kill_priv: false,
    };
    let ((written, _), chmod_first) =
        interleave(&shared, &alice, write, b"alice", &bob, chmod(f, 0o644));
    assert!(
        !(chmod_first && written.is_ok()),
        "the write landed after the chmod that revoked it had returned"
    );
    let read = Request::Read {
        ino: f,
        offset: 0,
        size: 16,
    };
    let (_, data) = call(&shared, &bob, 3, read, &[]);
    match written {
        Ok(_) => assert_eq!(data, b"alice"),
        Err(e) => assert_eq!((e, data.len()), (libc::EACCES, 0)),
    }
}

/// Likewise for an open for writing (checked in the hold that opens) and a create in a
/// directory whose write permission a chmod takes away (checked in the hold that creates).
#[test]
fn a_chmod_cannot_land_between_an_open_or_create_check_and_the_call() {
    let (shared, alice, bob, f, d) = alice_and_bobs_files("open-create");
    let open = Request::Open {
        ino: f,
        flags: libc::O_WRONLY,
    };
    let ((opened, _), chmod_first) = interleave(&shared, &alice, open, &[], &bob, chmod(f, 0o644));
    assert!(
        !(chmod_first && opened.is_ok()),
        "the open for writing succeeded after the chmod that revoked it had returned"
    );
    let create = Request::Create {
        parent: d,
        name: b"g".to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid: ALICE,
        gid: ALICE,
    };
    let ((created, _), chmod_first) =
        interleave(&shared, &alice, create, &[], &bob, chmod(d, 0o755));
    assert!(
        !(chmod_first && created.is_ok()),
        "the create landed after the chmod that revoked it had returned"
    );
    let lookup = Request::Lookup {
        parent: d,
        name: b"g".to_vec(),
    };
    let found = call(&shared, &bob, 4, lookup, &[]).0;
    assert_eq!(created.is_ok(), found.is_ok(), "{created:?} {found:?}");
}

/// Bob's file `f` (holding "old") replaced by a rename of his new file `g` (holding "new")
/// over it, after Alice looked `f` up and with neither open; returns what her lookup handed
/// out.
fn replaced_after_alice_looked_it_up(shared: &Shared, alice: &Party, bob: &Party) -> u64 {
    let write = |id, ino, data: &[u8]| {
        let req = Request::Write {
            ino,
            offset: 0,
            kill_priv: false,
        };
        assert!(call(shared, bob, id, req, data).0.is_ok());
    };
    let lookup = Request::Lookup {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    let Ok(Response::Attr(old)) = call(shared, alice, 1, lookup, &[]).0 else {
        panic!("f not found");
    };
    write(10, old.ino, b"old");
    // Bob's create opened it; he closes it.
    let release = |id, ino| {
        assert!(call(shared, bob, id, Request::Release { ino }, &[])
            .0
            .is_ok())
    };
    release(14, old.ino);
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"g".to_vec(),
        mode: libc::S_IFREG | 0o666,
        uid: BOB,
        gid: BOB,
    };
    let Ok(Response::Attr(new)) = call(shared, bob, 11, create, &[]).0 else {
        panic!("g not made");
    };
    write(12, new.ino, b"new");
    release(15, new.ino);
    let rename = Request::Rename {
        parent: ROOT_INO,
        name: b"g".to_vec(),
        newparent: ROOT_INO,
        newname: b"f".to_vec(),
        flags: protocol::RenameFlags::default(),
    };
    assert!(call(shared, bob, 13, rename, &[]).0.is_ok());
    old.ino
}

/// A client's kernel looks a name up and opens the inode it got in two calls: a rename over
/// the name by another session between them leaves the open the old file (as on a local file
/// system), not ESTALE.
#[test]
fn an_open_of_a_file_just_replaced_by_rename_opens_the_old_file() {
    let (shared, alice, bob, _, _) = alice_and_bobs_files("replaced-open");
    let old = replaced_after_alice_looked_it_up(&shared, &alice, &bob);
    let open = Request::Open {
        ino: old,
        flags: libc::O_RDONLY,
    };
    let opened = call(&shared, &alice, 2, open, &[]).0;
    assert!(matches!(opened, Ok(Response::Attr(_))), "{opened:?}");
    let read = Request::Read {
        ino: old,
        offset: 0,
        size: 16,
    };
    let (read, data) = call(&shared, &alice, 3, read, &[]);
    assert!(read.is_ok(), "{read:?}");
    assert_eq!(data, b"old");
    // Her open keeps the file once the server lets go of it; her release frees it.
    assert_eq!(shared.vol.with(|v| shared.linger.release_all(v)), 1);
    assert!(call(&shared, &alice, 4, Request::Getattr { ino: old }, &[])
        .0
        .is_ok());
    assert!(call(&shared, &alice, 5, Request::Release { ino: old }, &[])
        .0
        .is_ok());
    let gone = call(&shared, &alice, 6, Request::Getattr { ino: old }, &[]).0;
    assert_eq!(gone.err(), Some(libc::ESTALE));
}

/// A replaced file nobody opened is freed when the server lets go of it.
#[test]
fn a_replaced_file_kept_for_its_readers_is_freed_when_let_go() {
    let (shared, alice, bob, _, _) = alice_and_bobs_files("replaced-freed");
    let old = replaced_after_alice_looked_it_up(&shared, &alice, &bob);
    assert!(call(&shared, &alice, 2, Request::Getattr { ino: old }, &[])
        .0
        .is_ok());
    assert_eq!(shared.vol.with(|v| shared.linger.release_all(v)), 1);
    let gone = call(&shared, &alice, 3, Request::Getattr { ino: old }, &[]).0;
    assert_eq!(gone.err(), Some(libc::ESTALE));
}

/// A call on a name another session changed, not yet durable, commits that change first:
/// after a crash, replays run session by session and could otherwise land it first. Once:
/// a change that left nothing to commit does not hold the call back.
#[test]
fn a_call_on_a_name_another_session_changed_commits_that_change_first_once() {
    let (shared, alice, bob, _, d) = alice_and_bobs_files("by-name");
    let made = shared.made.clone();
    shared
        .vol
        .with(|v| v.set_commit_hook(Arc::new(move |upto| made.durable(upto))));
    shared.vol.commit().unwrap();
    let seq = || shared.vol.with(|v| v.next_seq());
    let rename = |from: &[u8], to: &[u8]| Request::Rename {
        parent: d,
        name: from.to_vec(),
        newparent: d,
        newname: to.to_vec(),
        flags: Default::default(),
    };
    let create = Request::Create {
        parent: d,
        name: b"f".to_vec(),
        mode: libc::S_IFREG | 0o666,
        uid: BOB,
        gid: BOB,
    };
    assert!(call(&shared, &bob, 10, create, &[]).0.is_ok());
    // Bob's create of `d/f` is not durable: Alice's rename of it goes in the next one.
    let before = seq();
    assert!(call(&shared, &alice, 1, rename(b"f", b"g"), &[]).0.is_ok());
    assert_eq!(seq(), before + 1, "Bob's create was not committed first");
    // Her own names hold her back no more than anyone's do the first time.
    let before = seq();
    assert!(call(&shared, &alice, 2, rename(b"g", b"h"), &[]).0.is_ok());
    assert_eq!(seq(), before, "a commit for a session's own change");
    shared.vol.commit().unwrap();
    // A rename onto itself changes nothing: Bob's unlink commits once, then runs.
    assert!(call(&shared, &alice, 3, rename(b"h", b"h"), &[]).0.is_ok());
    let (tx, rx) = std::sync::mpsc::channel();
    let (s, b) = (shared.clone(), bob.clone());
    std::thread::spawn(move || {
        let unlink = Request::Unlink {
            parent: d,
            name: b"h".to_vec(),
        };
        let _ = tx.send(call(&s, &b, 20, unlink, &[]).0);
    });
    let r = rx.recv_timeout(std::time::Duration::from_secs(60));
    assert!(matches!(r, Ok(Ok(Response::Empty))), "{r:?}");
}

/// A create made again after a crash whose slot a replaced file kept for its readers holds
/// takes it: in the history it repeats, that file was gone before the create took its slot.
#[test]
fn a_create_made_again_at_the_slot_of_a_kept_file_takes_it() {
    let (shared, alice, bob, _, _) = alice_and_bobs_files("again-kept");
    let old = replaced_after_alice_looked_it_up(&shared, &alice, &bob);
    let (index, generation) = volume::layout::split_ino(old);
    let ino = ((generation as u64 + 1) << 32) | index as u64;
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"h".to_vec(),
        mode: libc::S_IFREG | 0o666,
        uid: BOB,
        gid: BOB,
    };
    let again = Request::CreateAgain {
        ino,
        req: Box::new(create),
    };
    let made = call(&shared, &bob, 20, again, &[]).0;
    assert!(
        matches!(&made, Ok(Response::Attr(a)) if a.ino == ino),
        "{made:?}"
    );
    let gone = call(&shared, &alice, 21, Request::Getattr { ino: old }, &[]).0;
    assert_eq!(gone.err(), Some(libc::ESTALE));
}

/// A call refused for want of permission recalls nothing: Bob may not truncate, unlink or
/// rename over Alice's file, so her write layout on it stays hers, no recall is pushed to
/// her, and what she writes through it is not taken from her after a lease.
#[test]
fn a_refused_call_recalls_no_layouts() {
    let shared = shared("refused-recall");
    let alice = session(&shared, 1, ALICE);
    let bob = session(&shared, 2, BOB);
    let (tx, mut pushed) = tokio::sync::mpsc::channel(16);
    let addr = "127.0.0.1:1".parse().unwrap();
    alice.0.attach(tx, Default::default(), addr);
    let make = |party: &Party, id, req| match call(&shared, party, id, req, &[]).0 {
        Ok(Response::Attr(a)) => a.ino,
        r => panic!("made: {r:?}"),
    };
    let mkdir = Request::Mkdir {
        parent: ROOT_INO,
        name: b"d".to_vec(),
        mode: 0o755,
        uid: ALICE,
        gid: ALICE,
    };
    let d = make(&alice, 1, mkdir);
    let create = |parent, name: &[u8], uid| Request::Create {
        parent,
        name: name.to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid,
        gid: uid,
    };
    let f = make(&alice, 2, create(d, b"f", ALICE));
    make(&bob, 1, create(ROOT_INO, b"g", BOB));
    let get = Request::LayoutGet {
        ino: f,
        offset: 0,
        len: 4096,
        write: true,
        kill_priv: false,
    };
    let held = call(&shared, &alice, 3, get, &[]).0;
    assert!(matches!(held, Ok(Response::Layout(_))), "{held:?}");
    let truncate = Request::Setattr {
        ino: f,
        set: SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
    };
    let unlink = Request::Unlink {
        parent: d,
        name: b"f".to_vec(),
    };
    let rename = Request::Rename {
        parent: ROOT_INO,
        name: b"g".to_vec(),
        newparent: d,
        newname: b"f".to_vec(),
        flags: Default::default(),
    };
    for (id, req) in [(2, truncate.clone()), (3, unlink), (4, rename)] {
        let what = format!("{req:?}");
        let r = call(&shared, &bob, id, req, &[]).0;
        assert_eq!(r.err(), Some(libc::EACCES), "{what}");
        assert!(pushed.try_recv().is_err(), "{what}: a recall was pushed");
        let holders = shared.vol.with(|v| v.layout_holders(volume::Ino::new(f)));
        assert_eq!(holders, vec![1], "{what}: Alice's layout was taken");
    }
    // Once Bob may write it, his truncate recalls her layout, and runs when she returns it.
    let chmod = call(&shared, &alice, 4, chmod(f, 0o666), &[]).0;
    assert!(chmod.is_ok(), "{chmod:?}");
    let shared2 = shared.clone();
    let t = std::thread::spawn(move || call(&shared2, &bob, 5, truncate, &[]).0);
    let frame = pushed.blocking_recv().expect("a recall");
    let recall = decode_body::<ServerMsg>(&frame[4..]).unwrap().0;
    let of_f =
        matches!(recall, ServerMsg::Push(protocol::Push::LayoutRecall { ino, .. }) if ino == f);
    assert!(of_f, "{recall:?}");
    let back = call(&shared, &alice, 5, Request::LayoutReturn { ino: f }, &[]).0;
    assert!(back.is_ok(), "{back:?}");
    let truncated = t.join().unwrap();
    assert!(matches!(truncated, Ok(Response::Attr(_))), "{truncated:?}");
}
