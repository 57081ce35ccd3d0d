//! A server in this process and a client speaking the wire protocol by hand: what a session
//! keeps across connections (reply routing, calls answered once, open files).

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use server::{serve, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::layout::ROOT_INO;
use volume::{mkfs, FileStore, MkfsOptions, Volume};

/// A server on a fresh image, on its own runtime; stopped (SIGTERM's path) on drop.
struct Server {
    addr: String,
    image: PathBuf,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rwxfs-sessions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn make_image(dir: &Path, size: u64) -> PathBuf {
    let image = dir.join("v.img");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&image)
        .unwrap();
    f.set_len(size).unwrap();
    mkfs(&FileStore::from_file(f), &MkfsOptions::default()).unwrap();
    image
}

impl Server {
    fn start(image: &Path) -> Server {
        let vol = Volume::open(Box::new(FileStore::open(image).unwrap()) as server::Store).unwrap();
        let cfg = ServerConfig {
            state_log: Some(std::sync::Arc::new(server::state_log::FileLog::new(
                &image.with_extension("sessions"),
            ))),
            ..ServerConfig::default()
        };
        let stop = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            // More workers than the machine has cores: a call that keeps one busy must not
            // be what hides a lost reply.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = tx.send(l.local_addr()?.to_string());
                serve(vol, l, cfg, s).await
            })
        });
        let addr = rx.recv().unwrap();
        Server {
            addr,
            image: image.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A hand-driven client connection.
struct Client {
    s: TcpStream,
    session: u64,
    /// The session's secret, from `Welcome`: resuming needs it.
    secret: Vec<u8>,
}

impl Client {
    fn hello(addr: &str, resume: Option<(u64, Vec<u8>)>) -> Client {
        let mut s = TcpStream::connect(addr).unwrap();
        let (node_id, mount_id) = ("test-node".to_string(), 42);
        let msg = match resume {
            None => ClientMsg::Hello {
                version: PROTOCOL_VERSION,
                node_id,
                mount_id,
                read_only: false,
                nonce: Vec::new(),
                export: String::new(),
            },
            Some((session, secret)) => ClientMsg::Resume {
                version: PROTOCOL_VERSION,
                node_id,
                mount_id,
                read_only: false,
                session,
                secret,
                nonce: Vec::new(),
                export: String::new(),
            },
        };
        std::io::Write::write_all(&mut s, &encode_frame(&msg, &[]).unwrap()).unwrap();
        let mut c = Client {
            s,
            session: 0,
            secret: Vec::new(),
        };
        match c.next(Duration::from_secs(30)) {
            Some(ServerMsg::Welcome {
                session, secret, ..
            }) => {
                c.session = session;
                c.secret = secret;
            }
            other => panic!("no welcome: {other:?}"),
        }
        c
    }

    fn send(&mut self, id: u64, req: Request) {
        let f = encode_frame(&ClientMsg::Call { id, req }, &[]).unwrap();
        std::io::Write::write_all(&mut self.s, &f).unwrap();
    }

    /// The next message, or `None` once `wait` passed without one.
    fn next(&mut self, wait: Duration) -> Option<ServerMsg> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let body = read_frame(&mut self.s).ok()?;
        Some(decode_body::<ServerMsg>(&body).unwrap().0)
    }

    /// The reply to call `id` (pushes skipped), or `None` if none came within `wait`. The
    /// lease is kept alive meanwhile.
    fn reply(&mut self, id: u64, wait: Duration) -> Option<Result<Response, i32>> {
        let done = std::sync::atomic::AtomicBool::new(false);
        let mut beat = self.s.try_clone().unwrap();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                let f = encode_frame(&ClientMsg::Heartbeat, &[]).unwrap();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if std::io::Write::write_all(&mut beat, &f).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
            let r = self.reply_within(id, wait);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        })
    }

    fn reply_within(&mut self, id: u64, wait: Duration) -> Option<Result<Response, i32>> {
        let until = Instant::now() + wait;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            match self.next(left.max(Duration::from_millis(1)))? {
                ServerMsg::Reply { id: i, result } if i == id => {
                    return Some(result.map_err(protocol::ErrorCode::errno))
                }
                _ => {}
            }
        }
    }

    fn call(&mut self, id: u64, req: Request) -> Result<Response, i32> {
        self.send(id, req);
        self.reply(id, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no reply to call {id}"))
    }
}

fn create(c: &mut Client, id: u64, name: &str) -> u64 {
    let req = Request::Create {
        parent: ROOT_INO,
        name: name.as_bytes().to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
    };
    match c.call(id, req) {
        Ok(Response::Attr(a)) => a.ino,
        other => panic!("create {name}: {other:?}"),
    }
}

#[test]
fn a_call_resent_while_its_first_copy_runs_gets_its_reply_on_the_new_connection() {
    let dir = scratch("resent");
    let image = make_image(&dir, 8 << 30);
    let srv = Server::start(&image);
    let mut c = Client::hello(&srv.addr, None);
    let ino = create(&mut c, 1, "big");
    let on_disk = || {
        std::fs::metadata(&srv.image)
            .map(|m| m.blocks())
            .unwrap_or(0)
    };
    let before = on_disk();
    // Long enough to still run when the client is back: every block it takes is zeroed in
    // the image, which is how the test sees it running.
    let slow = Request::Fallocate {
        ino,
        offset: 0,
        len: 3 << 30,
        mode: 0,
        kill_priv: false,
    };
    c.send(2, slow.clone());
    let started = Instant::now();
    while on_disk() < before + 2 * 64 * 1024 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fallocate never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (session, secret) = (c.session, c.secret.clone());
    drop(c);
    let mut c = Client::hello(&srv.addr, Some((session, secret)));
    assert_eq!(c.session, session, "the session was not resumed");
    c.send(2, slow);
    let grown = on_disk();
    let r = c.reply(2, Duration::from_secs(300));
    assert!(
        grown < (3u64 << 30) / 512,
        "the fallocate had ended before it was resent: the test proves nothing"
    );
    assert_eq!(
        r,
        Some(Ok(Response::Empty)),
        "the resent call never got its reply"
    );
    drop(c);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opens_and_releases_count_once_per_session_across_resends() {
    let dir = scratch("opens");
    let image = make_image(&dir, 64 << 20);
    let srv = Server::start(&image);
    let mut a = Client::hello(&srv.addr, None);
    let ino = create(&mut a, 1, "f");
    assert!(matches!(
        a.call(2, Request::Open { ino, flags: 0 }),
        Ok(Response::Attr(_))
    ));
    // Another session releases a file it never opened: A's opens must stand.
    let mut b = Client::hello(&srv.addr, None);
    assert_eq!(b.call(1, Request::Release { ino }), Ok(Response::Empty));
    let unlink = Request::Unlink {
        parent: ROOT_INO,
        name: b"f".to_vec(),
    };
    assert_eq!(a.call(3, unlink), Ok(Response::Empty));
    // A closes one of its two opens, and sends that release again (as after a reconnect).
    assert_eq!(a.call(4, Request::Release { ino }), Ok(Response::Empty));
    assert_eq!(a.call(4, Request::Release { ino }), Ok(Response::Empty));
    let read = Request::Read {
        ino,
        offset: 0,
        size: 16,
    };
    assert!(
        matches!(a.call(5, read), Ok(Response::Data)),
        "the file A still holds open is gone"
    );
    assert_eq!(a.call(6, Request::Release { ino }), Ok(Response::Empty));
    drop((a, b));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ask the server at `addr` for its sessions (a handshake answered, then closed).
fn status(addr: &str) -> Vec<protocol::SessionStatus> {
    let mut s = TcpStream::connect(addr).unwrap();
    let msg = ClientMsg::Status {
        version: PROTOCOL_VERSION,
        nonce: Vec::new(),
    };
    std::io::Write::write_all(&mut s, &encode_frame(&msg, &[]).unwrap()).unwrap();
    match decode_body::<ServerMsg>(&read_frame(&mut s).unwrap())
        .unwrap()
        .0
    {
        ServerMsg::Status(list) => list,
        other => panic!("no status: {other:?}"),
    }
}

/// A server that is stopping ended its sessions in memory only (the session log keeps them
/// for the next start): a mount that reconnects meanwhile, on a connection accepted before
/// the stop, is refused, not given a new session. A new session would leave the mount with
/// a secret the next start does not know for the session it does (its resumes refused until
/// that session's lease ends and its files are freed under it).
#[test]
fn a_resume_while_the_server_stops_is_refused_and_the_next_start_resumes_the_session() {
    let dir = scratch("stopping");
    let image = make_image(&dir, 64 << 20);
    let srv = Server::start(&image);
    let mut a = Client::hello(&srv.addr, None);
    let ino = create(&mut a, 1, "f");
    let (session, secret) = (a.session, a.secret.clone());
    // A connection in the listen queue, then a status query after it: once that is
    // answered, the server has accepted the one before it too.
    let mut early = TcpStream::connect(&srv.addr).unwrap();
    assert_eq!(status(&srv.addr).len(), 1);
    srv.stop.cancel();
    // The stop ends the session's connection; the session is then ended in memory.
    a.s.set_read_timeout(None).unwrap();
    while read_frame(&mut a.s).is_ok() {}
    let resume = ClientMsg::Resume {
        version: PROTOCOL_VERSION,
        node_id: "test-node".into(),
        mount_id: 42,
        read_only: false,
        session,
        secret: secret.clone(),
        nonce: Vec::new(),
        export: String::new(),
    };
    std::io::Write::write_all(&mut early, &encode_frame(&resume, &[]).unwrap()).unwrap();
    let answer = read_frame(&mut early)
        .ok()
        .map(|b| decode_body::<ServerMsg>(&b).unwrap().0);
    assert!(
        !matches!(answer, Some(ServerMsg::Welcome { .. })),
        "a stopping server admitted a mount: {answer:?}"
    );
    drop(srv);
    // The next start resumes the session with its secret; the file it holds is its own.
    let srv = Server::start(&image);
    let mut a = Client::hello(&srv.addr, Some((session, secret)));
    assert_eq!(a.session, session, "the session was not resumed");
    assert!(matches!(
        a.call(2, Request::Getattr { ino }),
        Ok(Response::Attr(_))
    ));
    assert_eq!(status(&srv.addr).len(), 1, "a session made during the stop");
    drop(a);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
