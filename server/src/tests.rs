//! The call pipeline in this process, without a network: a `Shared` on a fresh image and
//! calls made as sessions of their own, with a hook to land one call inside another.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use protocol::codec::decode_body;
use protocol::{Cred, Request, Response, ServerMsg, SetAttr};
use tokio_util::task::TaskTracker;
use volume::layout::ROOT_INO;
use volume::{mkfs, FileStore, MkfsOptions, SharedVolume, Volume};

use crate::listener::{Grace, Shared};
use crate::permissions::Caller;
use crate::session::{Session, SessionInfo};
use crate::ServerConfig;

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
    let dir = std::env::temp_dir().join(format!("rwxfs-call-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image: PathBuf = dir.join("v.img");
    let f = std::fs::File::create_new(&image).unwrap();
    f.set_len(64 << 20).unwrap();
    mkfs(&FileStore::from_file(f), &MkfsOptions::default()).unwrap();
    let vol = Volume::open(FileStore::open(&image).unwrap()).unwrap();
    let cfg = ServerConfig::default();
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
        clean_start: false,
        after_check: Default::default(),
    })
}

/// A session of `uid`, and its caller as the export sees it.
fn session(shared: &Shared, id: u64, uid: u32) -> (Arc<Session>, Caller) {
    let info = SessionInfo {
        node_id: format!("node-{id}"),
        mount_id: id,
        read_only: false,
        started: Instant::now(),
        secret: Default::default(),
    };
    let s = Session::new(id, info);
    shared.sessions.insert(id, s.clone());
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
    let frame = crate::call::answer(shared, session, caller, id, req, bulk);
    match decode_body::<ServerMsg>(&frame[4..]).unwrap() {
        (ServerMsg::Reply { result, .. }, out) => (result, out.to_vec()),
        (m, _) => panic!("not a reply: {m:?}"),
    }
}

/// A chmod that takes write permission away from others cannot land between the check of
/// another connection's write and that write: either the write lands first and the chmod
/// after it, or the chmod first and the write is refused.
#[test]
fn a_chmod_cannot_land_between_a_write_check_and_the_write() {
    let shared = shared("toctou");
    let alice = session(&shared, 1, ALICE);
    let bob = Arc::new(session(&shared, 2, BOB));
    let create = Request::Create {
        parent: ROOT_INO,
        name: b"f".to_vec(),
        mode: libc::S_IFREG | 0o666,
        uid: BOB,
        gid: BOB,
    };
    let ino = match call(&shared, &bob, 1, create, &[]).0 {
        Ok(Response::Attr(a)) => a.ino,
        r => panic!("create: {r:?}"),
    };
    let chmod = Request::Setattr {
        ino,
        set: SetAttr {
            mode: Some(0o644),
            ..SetAttr::default()
        },
    };
    // Right after Alice's write is checked, Bob's chmod runs to its end if the engine lets
    // it; if the engine is held (the write runs in the same hold), it waits its turn.
    let ran = Arc::new(AtomicBool::new(false));
    let chmod_first = Arc::new(AtomicBool::new(false));
    let waiting = Arc::new(Mutex::new(None));
    let hook = {
        let (shared, bob, ran, first, waiting) = (
            Arc::downgrade(&shared),
            bob.clone(),
            ran.clone(),
            chmod_first.clone(),
            waiting.clone(),
        );
        move || {
            ran.store(true, Ordering::SeqCst);
            let shared = shared.upgrade().unwrap();
            let free = shared.vol.try_with(|_| ()).is_some();
            let bob = bob.clone();
            let chmod = chmod.clone();
            let t = std::thread::spawn(move || call(&shared, &bob, 2, chmod, &[]).0);
            if free {
                assert!(t.join().unwrap().is_ok(), "chmod refused");
                first.store(true, Ordering::SeqCst);
            } else {
                *waiting.lock().unwrap() = Some(t);
            }
        }
    };
    *shared.after_check.lock().unwrap() = Some(Arc::new(hook));
    let write = Request::Write {
        ino,
        offset: 0,
        kill_priv: false,
    };
    let (written, _) = call(&shared, &alice, 1, write, b"alice");
    assert!(ran.load(Ordering::SeqCst), "the hook never ran");
    if let Some(t) = waiting.lock().unwrap().take() {
        assert!(t.join().unwrap().is_ok(), "chmod refused");
    }
    let first = chmod_first.load(Ordering::SeqCst);
    assert!(
        !(first && written.is_ok()),
        "the write landed after the chmod that revoked it had returned"
    );
    let read = Request::Read {
        ino,
        offset: 0,
        size: 16,
    };
    let (_, data) = call(&shared, &bob, 3, read, &[]);
    match written {
        Ok(_) => assert_eq!(data, b"alice"),
        Err(e) => assert_eq!((e, data.len()), (libc::EACCES, 0)),
    }
}
