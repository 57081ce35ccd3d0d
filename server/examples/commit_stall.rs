//! How long small metadata calls wait while commits happen: a server in this process, a few
//! clients creating and removing files as fast as they can, one more fsyncing in a loop (each
//! fsync a commit, with its session-log flush); prints each call's latency percentiles.
//!
//! `cargo run -p server --example commit_stall -- [CLIENTS] [SECONDS] [IMAGE_DIR]`

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::codec::{decode_body, encode_frame, read_frame};
use protocol::{ClientMsg, Request, Response, ServerMsg, PROTOCOL_VERSION};
use server::{serve, ServerConfig};
use tokio_util::sync::CancellationToken;
use volume::layout::ROOT_INO;
use volume::{mkfs, FileStore, MkfsOptions, Volume};

struct Client {
    s: TcpStream,
    next: u64,
}

impl Client {
    fn connect(addr: &str, n: u64) -> Client {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        let hello = ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            node_id: format!("bench-{n}"),
            mount_id: n,
            read_only: false,
            nonce: Vec::new(),
            export: String::new(),
        };
        s.write_all(&encode_frame(&hello, &[]).expect("encode"))
            .expect("hello");
        let mut c = Client { s, next: 1 };
        match c.recv() {
            ServerMsg::Welcome { .. } => c,
            other => panic!("no welcome: {other:?}"),
        }
    }

    fn recv(&mut self) -> ServerMsg {
        let body = read_frame(&mut self.s).expect("read");
        decode_body::<ServerMsg>(&body).expect("decode").0
    }

    fn call(&mut self, req: Request) -> Result<Response, i32> {
        let id = self.next;
        self.next += 1;
        let f = encode_frame(&ClientMsg::Call { id, req }, &[]).expect("encode");
        self.s.write_all(&f).expect("send");
        loop {
            if let ServerMsg::Reply { id: i, result } = self.recv() {
                if i == id {
                    return result.map_err(protocol::ErrorCode::errno);
                }
            }
        }
    }
}

fn create(name: &str) -> Request {
    Request::Create {
        parent: ROOT_INO,
        name: name.as_bytes().to_vec(),
        mode: libc::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clients: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = args
        .get(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("rwxfs-commit-stall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let stop = CancellationToken::new();
    let (server, addr) = start_server(&dir.join("v.img"), stop.clone());
    let done = Arc::new(AtomicBool::new(false));
    let syncer = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || fsync_loop(&addr, &done))
    };
    let workers: Vec<_> = (1..=clients)
        .map(|w| {
            let (addr, done) = (addr.clone(), done.clone());
            std::thread::spawn(move || create_unlink_loop(&addr, w, &done))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    done.store(true, Ordering::SeqCst);
    let mut lat: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let fsyncs = syncer.join().expect("syncer");
    stop.cancel();
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{clients} clients, {secs} s: {} calls ({:.0}/s), {fsyncs} fsyncs; latency ms: p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
        lat.len(),
        lat.len() as f64 / secs as f64,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 0.999)),
        ms(lat.last().copied().unwrap_or_default()),
    );
}

/// A fresh 1 GiB volume at `image`, served with its session log beside it on a thread of
/// its own until `stop`; the thread and the server's address.
fn start_server(
    image: &std::path::Path,
    stop: CancellationToken,
) -> (std::thread::JoinHandle<std::io::Result<()>>, String) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(image)
        .expect("image");
    f.set_len(1 << 30).expect("size");
    mkfs(&FileStore::from_file(f), &MkfsOptions::default()).expect("mkfs");
    let vol = Volume::open(Box::new(FileStore::open(image).expect("open")) as server::Store)
        .expect("volume");
    let cfg = ServerConfig {
        state_log: Some(std::sync::Arc::new(server::state_log::FileLog::new(
            &image.with_extension("sessions"),
        ))),
        ..ServerConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let _ = tx.send(l.local_addr()?.to_string());
            serve(vol, l, cfg, stop).await
        })
    });
    (server, rx.recv().expect("server address"))
}

/// One file fsynced again and again (each fsync a commit) until `done`; how many times.
fn fsync_loop(addr: &str, done: &AtomicBool) -> u64 {
    let mut c = Client::connect(addr, 0);
    let ino = match c.call(create("synced")) {
        Ok(Response::Attr(a)) => a.ino,
        other => panic!("create: {other:?}"),
    };
    let mut n = 0u64;
    while !done.load(Ordering::SeqCst) {
        c.call(Request::Fsync { ino }).expect("fsync");
        n += 1;
    }
    n
}

/// Client `w` creating and unlinking files until `done`; each call's latency.
fn create_unlink_loop(addr: &str, w: u64, done: &AtomicBool) -> Vec<Duration> {
    let mut c = Client::connect(addr, w);
    let mut lat = Vec::new();
    let mut j = 0u64;
    while !done.load(Ordering::SeqCst) {
        let name = format!("c{w}-{j}");
        let t = Instant::now();
        c.call(create(&name)).expect("create");
        lat.push(t.elapsed());
        let t = Instant::now();
        c.call(Request::Unlink {
            parent: ROOT_INO,
            name: name.into_bytes(),
        })
        .expect("unlink");
        lat.push(t.elapsed());
        j += 1;
    }
    lat
}
