//! What the hand-driven wire tests share: a server in this process on a fresh image, and a
//! client speaking the protocol by hand. Each test file uses a part of it.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use server::{serve, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::layout::ROOT_INO;
use volume::{mkfs, FileStore, MkfsOptions, Volume};

/// A server on a fresh image, on its own runtime; stopped (SIGTERM's path) on drop.
pub struct Server {
    pub addr: String,
    pub image: PathBuf,
    pub stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rwxfs-sessions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn make_image(dir: &Path, size: u64) -> PathBuf {
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
    pub fn start(image: &Path) -> Server {
        Server::start_with(image, |_| {})
    }

    /// As `start`, with the configuration changed by `set`.
    pub fn start_with(image: &Path, set: impl FnOnce(&mut ServerConfig)) -> Server {
        let vol = Volume::open(Box::new(FileStore::open(image).unwrap()) as server::Store).unwrap();
        let mut cfg = ServerConfig {
            state_log: Some(std::sync::Arc::new(server::state_log::FileLog::new(
                &image.with_extension("sessions"),
            ))),
            ..ServerConfig::default()
        };
        set(&mut cfg);
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
pub struct Client {
    pub s: TcpStream,
    pub session: u64,
    /// The session's secret, from `Welcome`: resuming needs it.
    pub secret: Vec<u8>,
}

impl Client {
    pub fn hello(addr: &str, resume: Option<(u64, Vec<u8>)>) -> Client {
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

    pub fn send(&mut self, id: u64, req: Request) {
        let f = encode_frame(&ClientMsg::Call { id, req }, &[]).unwrap();
        std::io::Write::write_all(&mut self.s, &f).unwrap();
    }

    /// The next message, or `None` once `wait` passed without one.
    pub fn next(&mut self, wait: Duration) -> Option<ServerMsg> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let body = read_frame(&mut self.s).ok()?;
        Some(decode_body::<ServerMsg>(&body).unwrap().0)
    }

    /// The reply to call `id` (pushes skipped), or `None` if none came within `wait`. The
    /// lease is kept alive meanwhile.
    pub fn reply(&mut self, id: u64, wait: Duration) -> Option<Result<Response, i32>> {
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

    pub fn reply_within(&mut self, id: u64, wait: Duration) -> Option<Result<Response, i32>> {
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

    pub fn call(&mut self, id: u64, req: Request) -> Result<Response, i32> {
        self.send(id, req);
        self.reply(id, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no reply to call {id}"))
    }
}

pub fn create(c: &mut Client, id: u64, name: &str) -> u64 {
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
