//! What the in-process tests of the middle share: a real server on `127.0.0.1` over a
//! temporary image, in this process, that a test stops cleanly or crashes and starts again on
//! the same image, port and session log; the cutting proxy of the mount tests; clients.
//! Each test file uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use client_fuse::link::ConnectOptions;
use client_fuse::RemoteBackend;
use tokio_util::sync::CancellationToken;
use volume::{FileStore, MkfsOptions, Volume};

#[path = "../../../tests/src/proxy.rs"]
pub mod proxy;

#[path = "../../../tests/src/layout_hold.rs"]
pub mod layout_hold;

/// A MiB.
pub const MIB: usize = 1 << 20;

/// `n` bytes of a pattern that differs with `seed`.
pub fn pattern(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

/// Write `data` at 0 through `c` a MiB at a time, and make it durable.
pub fn write_all(c: &impl client_fuse::Backend, ino: u64, data: &[u8]) {
    use client_fuse::backend::WriteHow;
    for (i, chunk) in data.chunks(MIB).enumerate() {
        let n = c.write(ino, (i * MIB) as u64, chunk, WriteHow::default());
        assert_eq!(n.expect("write") as usize, chunk.len());
    }
    c.fsync(ino).expect("fsync");
}

/// A temporary directory holding an image (of 64 MiB unless `sized`) and the server's
/// session log.
pub struct Place {
    pub dir: tempfile::TempDir,
}

impl Place {
    pub fn new() -> Place {
        Place::sized(64 << 20)
    }

    /// A place whose image is `bytes` long.
    pub fn sized(bytes: u64) -> Place {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = std::fs::File::create(dir.path().join("image")).expect("image");
        file.set_len(bytes).expect("image size");
        let store = FileStore::from_file(file);
        volume::mkfs(
            &store,
            &MkfsOptions {
                force: true,
                ..Default::default()
            },
        )
        .expect("mkfs");
        Place { dir }
    }

    pub fn image(&self) -> PathBuf {
        self.dir.path().join("image")
    }

    pub fn state_log(&self) -> PathBuf {
        self.dir.path().join("sessions")
    }
}

/// The server, serving in its own runtime until stopped or crashed.
pub struct Server {
    rt: Option<tokio::runtime::Runtime>,
    token: CancellationToken,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub addr: SocketAddr,
}

impl Server {
    /// Serve the place's image on `addr` (`127.0.0.1:0` for any free port). Nothing is
    /// committed on a timer: what is not fsynced stays in memory until a clean stop.
    pub fn start(place: &Place, addr: &str) -> Server {
        Server::start_with(
            place,
            addr,
            Duration::from_secs(15),
            Duration::from_secs(20),
        )
    }

    /// As `start`, with sessions whose clients are silent for `lease` ended, and a grace
    /// period of `grace` after a restart.
    pub fn start_with(place: &Place, addr: &str, lease: Duration, grace: Duration) -> Server {
        Server::start_config(place, addr, |cfg| {
            cfg.lease = lease;
            cfg.grace = grace;
        })
    }

    /// As `start`, with the server's configuration changed by `set` (leases of 15 s and a
    /// grace period of 20 s unless it changes them).
    pub fn start_config(
        place: &Place,
        addr: &str,
        set: impl FnOnce(&mut server::ServerConfig),
    ) -> Server {
        let mut cfg = server::ServerConfig {
            commit_interval: Duration::from_secs(3600),
            state_log: Some(std::sync::Arc::new(server::state_log::FileLog::new(
                &place.state_log(),
            ))),
            grace: Duration::from_secs(20),
            lease: Duration::from_secs(15),
            ..Default::default()
        };
        set(&mut cfg);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(cfg.blocking_threads)
            .enable_all()
            .build()
            .expect("runtime");
        let store: server::Store = Box::new(FileStore::open(&place.image()).expect("open image"));
        let vol = Volume::open_keeping_orphans(store).expect("open volume");
        // A server just crashed at `addr` lets its listener go in the background: wait for
        // the address to be free.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let listener = loop {
            match rt.block_on(tokio::net::TcpListener::bind(addr)) {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    assert!(std::time::Instant::now() < deadline, "bind {addr}: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r.expect("bind"),
            }
        };
        let addr = listener.local_addr().expect("address");
        let token = CancellationToken::new();
        let done = rt.spawn(server::serve(vol, listener, cfg, token.clone()));
        Server {
            rt: Some(rt),
            token,
            done: Some(done),
            addr,
        }
    }

    /// A planned stop: every connection ends, everything is committed, the sessions are
    /// kept in the session log for the next start.
    pub fn stop(mut self) {
        self.token.cancel();
        let (Some(rt), Some(done)) = (self.rt.take(), self.done.take()) else {
            return;
        };
        rt.block_on(done).expect("server task").expect("clean stop");
    }

    /// A crash: every task is dropped where it stands, nothing more is committed.
    pub fn crash(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// A remote client (the mount's backend, without FUSE) of the server at `addr`.
pub fn client(addr: &str, node: &str) -> RemoteBackend {
    let opts = ConnectOptions {
        node_id: node.into(),
        ..Default::default()
    };
    RemoteBackend::connect(addr, &opts, &|_| {}).expect("connect")
}

/// A direct mount's backend (without FUSE) of `place`'s image, reaching the server at
/// `addr` as node `node`.
pub fn direct(place: &Place, addr: &str, node: &str) -> std::sync::Arc<client_fuse::DirectBackend> {
    let local = Default::default();
    client_fuse::DirectBackend::new(client(addr, node), Some(&place.image()), &local, false)
        .expect("direct backend")
}

/// A direct mount's backend of `place`'s image reaching `server` through a proxy that can
/// cut it off, and the proxy.
pub fn direct_over_proxy(
    place: &Place,
    server: &Server,
) -> (std::sync::Arc<client_fuse::DirectBackend>, proxy::Proxy) {
    let proxy = proxy::Proxy::start(&server.addr.to_string()).expect("proxy");
    (direct(place, &proxy.addr, "d"), proxy)
}

/// Wait until `cond` holds, checking every few milliseconds; panics after a minute.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The whole content of `ino` as `c` reads it.
pub fn content(c: &RemoteBackend, ino: u64) -> Vec<u8> {
    use client_fuse::Backend;
    let mut out = Vec::new();
    loop {
        let d = c.read(ino, out.len() as u64, 1 << 20).expect("read");
        if d.is_empty() {
            return out;
        }
        out.extend_from_slice(&d);
    }
}

/// A link (no write-behind, no caches) to the server at `addr`.
pub fn link(addr: &str, node: &str) -> client_fuse::link::Link {
    let opts = ConnectOptions {
        node_id: node.into(),
        ..Default::default()
    };
    client_fuse::link::Link::connect(addr, &opts, &|_| {}).expect("connect")
}

/// One call on `l`; its response and bulk bytes.
pub fn ask(
    l: &client_fuse::link::Link,
    req: protocol::Request,
    bulk: &[u8],
) -> Result<(protocol::Response, Vec<u8>), i32> {
    let (r, out) = l.call(req, bulk).expect("the link is open");
    r.map(|resp| (resp, out))
}
